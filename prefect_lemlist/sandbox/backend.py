"""The lemlist backend of a sandbox: lemlist's enrichment logic over the domain objects.

Like a moto backend, its methods apply lemlist's rules and return domain results
(`Enrichment`, `LeadMatch`…) or raise typed errors (`exceptions`); they build no HTTP answer.
Thread-safe: one re-entrant lock guards the domain (contacts, enrichments, credits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefect_lemlist.sandbox.account import Account
from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import LeadKind
from prefect_lemlist.sandbox.directory import Directory
from prefect_lemlist.sandbox.exceptions import (
    BadRequest,
    BulkRequestError,
    CampaignNotFound,
    EnrichmentNotFound,
    InvalidWebhookUrl,
    LeadEmailNotFound,
    NoEnrichmentRequested,
)
from prefect_lemlist.sandbox.models import (
    BulkItemAnswer,
    Contact,
    Enrichment,
    EnrichmentStore,
    LeadMatch,
    LeadView,
    PendingEnrichment,
    PersonLead,
    WebhookJob,
)
from prefect_lemlist.sandbox.people import missing_input_error, normalize_inputs, person_key
from prefect_lemlist.sandbox.recorder import Recorder
from prefect_lemlist.sandbox.responses import styled_webhook_data, webhook_job
from prefect_lemlist.sandbox.rules import (
    Outcome,
    SkipMemory,
    bulk_body_error,
    enrichment_results,
    webhook_url_allowed,
)
from prefect_lemlist.sandbox.scheduler import CompletionScheduler, Randomness
from prefect_lemlist.sandbox.workflows import in_processing_order, requested_workflows


class LemlistBackend:
    """lemlist's enrichment API over one sandbox's world.

    Args:
        config: returns the current configuration.
        directory: campaigns, leads and contacts.
        account: the team and its credits.
        randomness: the seeded RNGs.
        recorder: where accepted enrichments and spent credits are counted.
    """

    def __init__(
        self,
        config: Callable[[], SandboxConfig],
        directory: Directory,
        account: Account,
        randomness: Randomness,
        recorder: Recorder,
    ) -> None:
        self.lock = threading.RLock()
        self._config = config
        self.directory = directory
        self.account = account
        self._random = randomness
        self._recorder = recorder
        self.enrichments = EnrichmentStore()
        self.memory = SkipMemory()
        self.scheduler = CompletionScheduler(self.enrichments, randomness)
        self._webhook_jobs: list[WebhookJob] = []

    def seed_app_state(self) -> None:
        """Create the pre-seeded not-found records and app-started enrichments."""
        with self.lock:
            now = time.monotonic()
            for lead in self.directory.leads:
                contact = self.directory.contact(lead.lead_id)
                if contact is None:
                    continue
                if lead.kind is LeadKind.RECENTLY_NOT_FOUND:
                    self.memory.remember_not_found(contact, ("find_email", "find_phone"))
                elif lead.kind is LeadKind.IN_PROGRESS:
                    pending = PendingEnrichment(
                        route="app",
                        workflows=("find_email",),
                        inputs=contact.enrichment_input(),
                        webhook_url=None,
                        duration=self._config().app_enrichment_seconds,
                        lead_id=lead.lead_id,
                        contact_id=contact.contact_id,
                    )
                    self._start_lead(pending, now)

    # ------------------------------------------------------------------ starting

    def _begin(self) -> float:
        """The first step of every start: read the clock and finish due enrichments.

        Returns:
            The monotonic time of the request.
        """
        now = time.monotonic()
        self.complete_due(now)
        return now

    def _check_request(
        self, workflows: Sequence[str] | None, webhook_url: str | None
    ) -> SandboxConfig:
        """The checks shared by every start: something is requested, the webhook URL is allowed.

        Args:
            workflows: the requested workflows (None: checked per item, bulk).
            webhook_url: the `webhookUrl` query value, if given.

        Returns:
            The current configuration.

        Raises:
            NoEnrichmentRequested: no workflow was asked for.
            InvalidWebhookUrl: the webhook URL may not be called.
        """
        cfg = self._config()
        if workflows is not None and not workflows:
            raise NoEnrichmentRequested()
        if webhook_url is not None and not webhook_url_allowed(
            webhook_url, cfg.webhook_allowed_hosts
        ):
            raise InvalidWebhookUrl()
        return cfg

    def _create(self, pending: PendingEnrichment, now: float) -> Enrichment:
        enrichment = self.scheduler.create(
            pending, now, self._config(), out_of_credits=self.account.credits <= 0
        )
        if pending.from_app:
            return enrichment
        self._recorder.started(
            pending.route,
            lead_id=pending.lead_id if pending.route == "enrich_post" else None,
            contact_id=pending.contact_id,
            person_key=pending.person_key,
        )
        return enrichment

    def _start_lead(self, pending: PendingEnrichment, now: float) -> Enrichment:
        enrichment = self._create(pending, now)
        if pending.contact_id is not None:
            self.memory.started(pending.contact_id, enrichment.enrichment_id)
        return enrichment

    def start_lead_enrichment(
        self, lead_id: str, flags: Mapping[str, bool], webhook_url: str | None, force: bool
    ) -> Enrichment:
        """Apply `POST /leads/{leadId}/enrich`.

        Args:
            lead_id: the path's lead id.
            flags: query flag name (`findEmail`…) → value.
            webhook_url: the `webhookUrl` query value, if given.
            force: the `force` flag.

        Returns:
            The started enrichment.

        Raises:
            SandboxError: `BadTeam`, `LeadNotFound`, `ContactNotFound`,
                `NoEnrichmentRequested`, `InvalidWebhookUrl`, `EnrichmentInProgress`,
                `AlreadyEnriched`, `NotEnoughCredits`.
        """
        with self.lock:
            now = self._begin()
            contact, person = self.directory.enrichable(lead_id)
            requested = requested_workflows(flags)
            cfg = self._check_request(requested, webhook_url)
            self.memory.check_idle(contact)
            workflows = self.memory.workflows_to_run(contact, requested, force)
            self.account.check_can_start()
            pending = PendingEnrichment(
                route="enrich_post",
                workflows=workflows,
                inputs=contact.enrichment_input(),
                webhook_url=webhook_url,
                duration=self._random.duration(cfg.enrichment_seconds),
                lead_id=lead_id,
                contact_id=contact.contact_id,
                person_key=person.person_key if person is not None else None,
                person_inputs=dict(person.inputs) if person is not None else None,
            )
            return self._start_lead(pending, now)

    def _start_person(
        self,
        route: str,
        workflows: Sequence[str],
        inputs: dict[str, str],
        webhook_url: str | None,
        now: float,
        echo: Mapping[str, Any] | None = None,
    ) -> Enrichment:
        cfg = self._config()
        pending = PendingEnrichment(
            route=route,
            workflows=in_processing_order(workflows),
            inputs=dict(inputs),
            webhook_url=webhook_url,
            duration=self._random.duration(cfg.enrichment_seconds),
            person_key=person_key(inputs),
            person_inputs=dict(inputs),
            metadata=(echo or {}).get("metadata"),
            has_metadata=echo is not None and "metadata" in echo,
        )
        return self._create(pending, now)

    def start_data_enrichment(
        self,
        flags: Mapping[str, bool],
        raw_inputs: Mapping[str, str | None],
        webhook_url: str | None,
    ) -> Enrichment:
        """Apply `POST /enrich` (one person, no lead, no dedupe, always billable).

        Args:
            flags: query flag name (`findEmail`…) → value.
            raw_inputs: the person inputs from the query (`email`, `linkedinUrl`...).
            webhook_url: the `webhookUrl` query value, if given.

        Returns:
            The started enrichment.

        Raises:
            SandboxError: `NoEnrichmentRequested`, `InvalidWebhookUrl`, `BadRequest` (a
                requested workflow lacks its inputs), `NotEnoughCredits`.
        """
        with self.lock:
            now = self._begin()
            requested = requested_workflows(flags)
            self._check_request(requested, webhook_url)
            inputs = normalize_inputs(raw_inputs)
            if missing_input_error(requested, inputs) is not None:
                raise BadRequest()
            self.account.check_can_start()
            return self._start_person("enrich_data", requested, inputs, webhook_url, now)

    def start_bulk(self, body: Any, webhook_url: str | None) -> list[BulkItemAnswer]:
        """Apply `POST /v2/enrichments/bulk` to a parsed JSON body.

        Args:
            body: the parsed JSON body.
            webhook_url: the `webhookUrl` query value, if given.

        Returns:
            One answer per item in request order: a started enrichment id or a per-item
            error code, each with the item's `metadata` when it was sent.

        Raises:
            SandboxError: `BulkRequestError` (nothing started), `InvalidWebhookUrl`,
                `NotEnoughCredits`.
        """
        with self.lock:
            now = self._begin()
            code = bulk_body_error(body)
            if code is not None:
                raise BulkRequestError(code)
            self._check_request(None, webhook_url)
            prepared = [_bulk_item(item) for item in body]
            if any(error is None for _, _, error, _ in prepared):
                self.account.check_can_start()
            answers = [self._bulk_answer(item, webhook_url, now) for item in prepared]
            self._recorder.bulk_items(len(body))
            return answers

    def _bulk_answer(
        self,
        item: tuple[dict[str, str], list[str], str | None, dict[str, Any]],
        webhook_url: str | None,
        now: float,
    ) -> BulkItemAnswer:
        inputs, requests, error, echo = item
        if error is not None:
            return BulkItemAnswer(None, error, echo)
        enrichment = self._start_person("bulk", requests, inputs, webhook_url, now, echo)
        return BulkItemAnswer(enrichment.enrichment_id, None, echo)

    # ------------------------------------------------------------------ completion

    def next_due(self) -> float | None:
        """Monotonic time of the next enrichment to finish, or None."""
        with self.lock:
            return self.scheduler.next_due()

    def complete_due(self, now: float | None = None) -> int:
        """Finish every enrichment whose duration has passed (idempotent, cheap).

        Args:
            now: monotonic time (default: now).

        Returns:
            How many enrichments were finished.
        """
        with self.lock:
            now = time.monotonic() if now is None else now
            finished = 0
            for enrichment in self.scheduler.pop_due(now):
                self._finish(enrichment)
                finished += 1
            return finished

    def _outcome(self, enrichment: Enrichment, contact: Contact | None) -> Outcome:
        """The source of truth of an enrichment: the seeded lead, or the person's truth."""
        lead = self.directory.seeded_lead(enrichment.lead_id)
        if lead is not None and enrichment.person_inputs is None:
            return Outcome.of_lead(lead, contact)
        return Outcome.of_person(self.directory.truth(enrichment.person_inputs or {}))

    def _settle(self, enrichment: Enrichment, contact: Contact | None) -> dict[str, Any]:
        """Compute, charge and write back the results; returns the webhook `data`."""
        cfg = self._config()
        results = enrichment_results(
            enrichment, self._outcome(enrichment, contact), contact, cfg.linkedin_credits
        )
        cost = 0 if enrichment.from_app else results.cost  # billed in the app, before the API
        if not self.account.charge(cost):
            enrichment.status = "error"  # out of credits: lemlist just stops
            return {}
        if contact is not None:
            self.directory.write_back(contact, results.writes)
            self.memory.remember(results)
        self._recorder.credits_used(cost)
        enrichment.status = "done"
        enrichment.poll_data = results.poll
        return styled_webhook_data(
            cfg.webhook_body_style, results.hook, results.poll, enrichment.workflows
        )

    def _finish(self, enrichment: Enrichment) -> None:
        """Compute the results of an enrichment, write them back and queue its webhook."""
        contact = self.directory.contact(enrichment.lead_id) if enrichment.lead_id else None
        self.memory.finished(enrichment)
        enrichment.finished = True
        hook_data: dict[str, Any] = {}
        if enrichment.fails or enrichment.out_of_credits:
            enrichment.status = "error"
        else:
            hook_data = self._settle(enrichment, contact)
        job = webhook_job(enrichment, hook_data, self._config().webhook_strip_query)
        if job is not None:
            self._webhook_jobs.append(job)

    def take_webhook_jobs(self) -> list[WebhookJob]:
        """Remove and return the webhooks waiting to be delivered."""
        with self.lock:
            jobs, self._webhook_jobs = self._webhook_jobs, []
            return jobs

    # ------------------------------------------------------------------ reads

    def get_enrichment(self, enrichment_id: str) -> Enrichment:
        """Apply `GET /enrich/{enrichId}`.

        Raises:
            EnrichmentNotFound: unknown, or vanished once it would be finished.
        """
        with self.lock:
            now = time.monotonic()
            self.complete_due(now)
            enrichment = self.enrichments.get(enrichment_id)
            if enrichment is None or (enrichment.vanishes and now >= enrichment.due_at):
                raise EnrichmentNotFound()
            return enrichment

    def credits(self) -> int:
        """The team balance now (after finishing due enrichments)."""
        with self.lock:
            self.complete_due()
            return self.account.credits

    def leads_by_email(self, email: str) -> list[LeadMatch]:
        """Apply `GET /leads/{email}`: the leads whose contact email is `email`.

        Raises:
            LeadEmailNotFound: no lead has this email.
        """
        with self.lock:
            self.complete_due()
            found = self.directory.leads_by_email(email, self.account.created_epoch)
            if not found:
                raise LeadEmailNotFound()
            return found

    def export_rows(self, wanted_states: list[str] | None, campaign_id: str) -> list[LeadView]:
        """Leads of `GET /campaigns/{id}/export/leads` with their current contact data.

        Args:
            wanted_states: the `state` values (`all` for every lead); None or empty → no rows.
            campaign_id: the campaign; unknown → no rows.

        Returns:
            One row per matching lead.
        """
        with self.lock:
            self.complete_due()
            if not wanted_states:
                return []
            return self.directory.export_rows(campaign_id, wanted_states)

    def require_campaign(self, campaign_id: str) -> None:
        """Raise `CampaignNotFound` unless the campaign exists."""
        with self.lock:
            if not self.directory.has_campaign(campaign_id):
                raise CampaignNotFound()

    def person_lead(self, lead_id: str) -> PersonLead | None:
        """The lead of a people campaign with this id, or None."""
        with self.lock:
            return self.directory.person_lead(lead_id)


def _bulk_item(
    item: dict[str, Any],
) -> tuple[dict[str, str], list[str], str | None, dict[str, Any]]:
    """(inputs, requested workflows, per-item error, metadata echo) of one valid bulk item."""
    inputs = normalize_inputs(item["input"])
    requests = list(dict.fromkeys(item["enrichmentRequests"]))
    echo: dict[str, Any] = {"metadata": item["metadata"]} if "metadata" in item else {}
    return inputs, requests, missing_input_error(requests, inputs), echo


__all__ = ["LemlistBackend"]
