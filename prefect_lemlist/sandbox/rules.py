"""lemlist's rules: which workflows are skipped, what they cost and what their results look like.

HTTP-agnostic and lock-free: the backend calls these under its own lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefect_lemlist.sandbox.data import SandboxLead
from prefect_lemlist.sandbox.exceptions import AlreadyEnriched, EnrichmentInProgress
from prefect_lemlist.sandbox.models import Contact, Enrichment
from prefect_lemlist.sandbox.people import PersonTruth
from prefect_lemlist.sandbox.workflows import CREDIT_COSTS, WORKFLOWS

FOUND_EMAIL_STATUSES = frozenset({"deliverable", "risky"})
"""Email statuses for which `find_email` is charged."""

BULK_MAX_ITEMS = 500
"""Most items one `POST /v2/enrichments/bulk` body may hold."""

NotFoundMark = tuple[str, str, tuple[str | None, ...]]
"""(contact id, workflow, inputs) of a remembered not-found."""

LinkedinMark = tuple[str, str | None]
"""(contact id, LinkedIn URL) of a done LinkedIn enrichment."""


def strip_query(url: str) -> str:
    """Return `url` without its query string and fragment.

    Args:
        url: any URL.

    Returns:
        scheme://host[:port]/path.
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def webhook_url_allowed(url: str, allowed_hosts: set[str]) -> bool:
    """Whether the sandbox may POST to this webhook URL.

    Args:
        url: the requested `webhookUrl`.
        allowed_hosts: `SandboxConfig.webhook_allowed_hosts`.

    Returns:
        True for an http(s) URL whose host is allowed.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and host in allowed_hosts


def _bulk_item_error(item: Any) -> str | None:
    """The whole-request error code one bulk item causes, or None."""
    if not isinstance(item, dict):
        return "WRONG_BODY_FORMAT"
    inputs = item.get("input")
    if not isinstance(inputs, dict) or any(
        value is not None and not isinstance(value, str) for value in inputs.values()
    ):
        return "WRONG_INPUT_FORMAT"
    if "metadata" in item and not isinstance(item["metadata"], (str, dict)):
        return "WRONG_METADATA_FORMAT"
    requests = item.get("enrichmentRequests")
    if not isinstance(requests, list) or not all(isinstance(r, str) for r in requests):
        return "WRONG_ENRICHMENT_REQUEST_FORMAT"
    if not requests:
        return "NO_WORKFLOW_REQUESTED"
    if any(name not in WORKFLOWS for name in requests):
        return "UNAUTHORIZED_WORKFLOW_REQUESTED"
    return None


def bulk_body_error(body: Any) -> str | None:
    """Validate a bulk body as a whole (every item), before anything starts.

    Checks, in order: the body is an array; not empty; at most 500 items; then each item in
    order: an object (else `WRONG_BODY_FORMAT`), `input` an object of string/null values
    (`WRONG_INPUT_FORMAT`), `metadata` absent or a string or object (`WRONG_METADATA_FORMAT`),
    `enrichmentRequests` a list of strings (`WRONG_ENRICHMENT_REQUEST_FORMAT`), not empty
    (`NO_WORKFLOW_REQUESTED`), only known workflow names (`UNAUTHORIZED_WORKFLOW_REQUESTED`).

    Args:
        body: the parsed JSON body.

    Returns:
        The error code of the first problem, or None when the body is acceptable.
    """
    if not isinstance(body, list):
        return "WRONG_BODY_FORMAT"
    if not body:
        return "NO_ENRICHMENTS_REQUESTED"
    if len(body) > BULK_MAX_ITEMS:
        return "TOO_MANY_ENRICHMENTS_REQUESTED"
    for item in body:
        code = _bulk_item_error(item)
        if code is not None:
            return code
    return None


@dataclass(frozen=True)
class Outcome:
    """What an enrichment finds, whatever the source of truth (seeded lead or person)."""

    email: str | None
    email_status: str | None
    phone: str | None
    profile: dict[str, Any] | None
    verify_of: Callable[[str], str | None]

    @classmethod
    def of_lead(cls, lead: SandboxLead, contact: Contact | None) -> Outcome:
        """The hidden truth of a seeded lead."""
        status = lead.true_email_status
        return cls(
            email=lead.true_email,
            email_status=lead.true_email_status,
            phone=lead.true_phone,
            profile=lead.linkedin_profile if contact and contact.linkedin_url else None,
            verify_of=lambda _email: status or "risky",
        )

    @classmethod
    def of_person(cls, truth: PersonTruth) -> Outcome:
        """The truth of a person (`person_truth`)."""
        return cls(
            email=truth.email,
            email_status=truth.email_status,
            phone=truth.phone,
            profile=truth.linkedin_profile,
            verify_of=truth.status_of,
        )


@dataclass
class EnrichmentResults:
    """The results of a finished enrichment.

    Attributes:
        poll: the polling `data` object.
        hook: the documented webhook data (workflow name → result).
        cost: credits it costs.
        writes: (contact attribute, value) to write back.
        not_found: not-founds to remember.
        linkedin_done: LinkedIn enrichments to remember.
    """

    poll: dict[str, Any] = field(default_factory=dict)
    hook: dict[str, Any] = field(default_factory=dict)
    cost: int = 0
    writes: list[tuple[str, Any]] = field(default_factory=list)
    not_found: list[NotFoundMark] = field(default_factory=list)
    linkedin_done: list[LinkedinMark] = field(default_factory=list)


class _ResultBuilder:
    """Computes `EnrichmentResults`, one workflow after the other (email flows into verify)."""

    def __init__(
        self,
        enrichment: Enrichment,
        outcome: Outcome,
        contact: Contact | None,
        linkedin_credits: int,
    ) -> None:
        self.outcome = outcome
        self.contact = contact
        self.linkedin_credits = linkedin_credits
        self.key = tuple(enrichment.input.values())
        self.cid = contact.contact_id if contact is not None else None
        self.input_email = enrichment.input.get("email") if contact is None else None
        self.email = contact.email if contact is not None else self.input_email
        self.status: str | None = contact.email_status if contact is not None else None
        self.results = EnrichmentResults()

    def build(self, workflows: Sequence[str]) -> EnrichmentResults:
        steps: dict[str, Callable[[], None]] = {
            "find_email": self._find_email,
            "verify": self._verify,
            "linkedin_enrichment": self._linkedin,
            "find_phone": self._find_phone,
        }
        for name in WORKFLOWS:
            if name in workflows:
                steps[name]()
        return self.results

    def _find_email(self) -> None:
        res, outcome = self.results, self.outcome
        if outcome.email:
            self.email, self.status = outcome.email, outcome.email_status
            res.writes += [("email", self.email), ("email_status", self.status)]
            res.hook["find_email"] = {"email": self.email, "status": self.status}
            res.poll["email"] = {"email": self.email, "notFound": False, "status": self.status}
            if self.status in FOUND_EMAIL_STATUSES:
                res.cost += CREDIT_COSTS["find_email"]
            return
        self.email, self.status = self.input_email, None  # a lead's email becomes "not found"
        if self.cid is not None:
            res.not_found.append((self.cid, "find_email", self.key))
        res.hook["find_email"] = {"email": None, "status": None, "notFound": True}
        res.poll["email"] = {"email": None, "notFound": True, "status": None}

    def _verify(self) -> None:
        res = self.results
        if self.email:
            self.status = self.outcome.verify_of(self.email)
            res.writes.append(("email_status", self.status))
            res.cost += CREDIT_COSTS["verify"]
            res.poll["email"] = {"email": self.email, "notFound": False, "status": self.status}
        else:
            res.poll.setdefault("email", {"email": None, "notFound": True, "status": None})
        res.hook["verify"] = {"status": self.status if self.email else None}

    def _linkedin(self) -> None:
        res = self.results
        res.cost += self.linkedin_credits
        if self.contact is not None and self.cid is not None:
            res.linkedin_done.append((self.cid, self.contact.linkedin_url))
        profile = self.outcome.profile
        if profile is not None:
            res.hook["linkedin_enrichment"] = dict(profile)
            res.poll["linkedin"] = {**profile, "notFound": False}
        else:
            res.hook["linkedin_enrichment"] = {"notFound": True}
            res.poll["linkedin"] = {"notFound": True}

    def _find_phone(self) -> None:
        res, phone = self.results, self.outcome.phone
        if phone:
            res.writes.append(("phone", phone))
            res.hook["find_phone"] = {"phone": phone}
            res.poll["phone"] = {"phone": phone, "notFound": False}
            res.cost += CREDIT_COSTS["find_phone"]
            return
        if self.cid is not None:
            res.not_found.append((self.cid, "find_phone", self.key))
        res.hook["find_phone"] = {"phone": None, "notFound": True}
        res.poll["phone"] = {"phone": None, "notFound": True}


def enrichment_results(
    enrichment: Enrichment, outcome: Outcome, contact: Contact | None, linkedin_credits: int
) -> EnrichmentResults:
    """Results of a finished enrichment from its source of truth.

    Args:
        enrichment: the finishing enrichment.
        outcome: its source of truth.
        contact: the lead's current contact (None for `POST /enrich` and bulk enrichments).
        linkedin_credits: the price of `linkedin_enrichment`.

    Returns:
        The polling and webhook data, the cost and what to write back and remember.
    """
    builder = _ResultBuilder(enrichment, outcome, contact, linkedin_credits)
    return builder.build(enrichment.workflows)


class SkipMemory:
    """What lemlist remembers per contact to skip work: running enrichments, not-founds per
    inputs, and LinkedIn enrichments already done."""

    def __init__(self) -> None:
        self._running: dict[str, str] = {}
        self._not_found: set[NotFoundMark] = set()
        self._linkedin_done: set[LinkedinMark] = set()

    def check_idle(self, contact: Contact) -> None:
        """Raise `EnrichmentInProgress` when the contact is being enriched."""
        if contact.contact_id in self._running:
            raise EnrichmentInProgress()

    def started(self, contact_id: str, enrichment_id: str) -> None:
        """Note that a lead enrichment of this contact runs."""
        self._running[contact_id] = enrichment_id

    def finished(self, enrichment: Enrichment) -> None:
        """Note that an enrichment ended (frees its contact when it was the running one)."""
        cid = enrichment.contact_id
        if cid is not None and self._running.get(cid) == enrichment.enrichment_id:
            del self._running[cid]

    def remember_not_found(self, contact: Contact, workflows: Sequence[str]) -> None:
        """Remember earlier not-founds of these workflows with the contact's current inputs."""
        key = contact.input_key()
        for workflow in workflows:
            self._not_found.add((contact.contact_id, workflow, key))

    def remember(self, results: EnrichmentResults) -> None:
        """Remember the not-founds and LinkedIn enrichments of written-back results."""
        self._not_found.update(results.not_found)
        self._linkedin_done.update(results.linkedin_done)

    def _skipped(self, workflow: str, contact: Contact, kept: list[str], force: bool) -> bool:
        """Whether lemlist skips one requested workflow."""
        cid = contact.contact_id
        if workflow in ("find_email", "find_phone"):
            if (cid, workflow, contact.input_key()) in self._not_found:
                return True  # an earlier not-found with the same inputs: force does not help
            existing = contact.email if workflow == "find_email" else contact.phone
            return bool(existing) and not force
        if workflow == "linkedin_enrichment":
            return (cid, contact.linkedin_url) in self._linkedin_done and not force
        if not contact.email:
            return "find_email" not in kept  # nothing to verify
        return contact.email_status is not None and not force

    def workflows_to_run(
        self, contact: Contact, requested: Sequence[str], force: bool
    ) -> tuple[str, ...]:
        """The requested workflows lemlist runs (raises `AlreadyEnriched` when none).

        Args:
            contact: the lead's contact.
            requested: requested workflows, in processing order.
            force: the `force` flag.

        Returns:
            The kept workflows, in processing order.
        """
        kept: list[str] = []
        for workflow in requested:
            if not self._skipped(workflow, contact, kept, force):
                kept.append(workflow)
        if not kept:
            raise AlreadyEnriched()
        return tuple(kept)

    def to_state(self) -> dict[str, Any]:
        """Running enrichments, not-founds and LinkedIn marks as JSON-ready data."""
        return {
            "running": dict(self._running),
            "not_found": [[c, wf, list(key)] for c, wf, key in sorted(self._not_found, key=str)],
            "linkedin_done": [list(mark) for mark in sorted(self._linkedin_done, key=str)],
        }

    def from_state(self, data: dict[str, Any]) -> None:
        """Restore what `to_state` saved."""
        self._running = dict(data["running"])
        self._not_found = {(c, wf, tuple(key)) for c, wf, key in data["not_found"]}
        self._linkedin_done = {(c, url) for c, url in data["linkedin_done"]}


__all__ = [
    "BULK_MAX_ITEMS",
    "FOUND_EMAIL_STATUSES",
    "EnrichmentResults",
    "Outcome",
    "SkipMemory",
    "bulk_body_error",
    "enrichment_results",
    "strip_query",
    "webhook_url_allowed",
]
