"""Prefect tasks for lemlist enrichment: thin wrappers over `LemlistClient` and the ledger.

Retry layers: the client already repeats 429s (after `Retry-After`), 5xx and dropped connections
within one task run. The task-level retries below are the coarse second layer, for failures that
outlast the client's budget; they only fire for errors marked `retryable`, so a 4xx, an
unreachable host or an enrichment that may already have started is never repeated.

Every start goes through the enrichment ledger (records of the key's lemlist team on Prefect's
result storage): calling a start task again for the same person and workflows returns the
recorded enrichment instead of paying again, unless `force=True`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, get_args

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from prefect_lemlist.api.client import BULK_MAX_ITEMS
from prefect_lemlist.api.exceptions import (
    ClaimedElsewhereError,
    EnrichmentInterruptedError,
    EnrichmentTimeoutError,
    LemlistError,
    error_for_status,
)
from prefect_lemlist.api.models import (
    BulkItemResult,
    CampaignLead,
    Contact,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
    EnrichmentStart,
    SkipReason,
)
from prefect_lemlist.api.validation import LeadId
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.pipeline.ledger import Ledger, Recall, RecordedAnswer
from prefect_lemlist.pipeline.start import StartContext, claim_and_start_lead, team_ledger

DEFAULT_WAIT_TIMEOUT_SECONDS = 300.0
DEFAULT_POLL_INTERVAL_SECONDS = 5.0


async def retry_if_retryable(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Prefect `retry_condition_fn`: retry only `LemlistError`s marked `retryable`.

    It is async on purpose: for async tasks, Prefect 3 hands the condition a state whose
    `result()` is a coroutine, so a sync condition never sees the exception.
    """
    try:
        await state.aresult()
    except LemlistError as exc:
        return exc.retryable
    except Exception:
        return False
    return False


_TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_retryable,
}


def _flags(
    find_email: bool, verify_email: bool, linkedin_enrichment: bool, find_phone: bool
) -> EnrichmentFlags:
    return EnrichmentFlags(
        find_email=find_email,
        verify_email=verify_email,
        linkedin_enrichment=linkedin_enrichment,
        find_phone=find_phone,
    ).require_any()


@task(name="enrich-lead", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def enrich_lead(
    lead_id: str,
    credentials: LemlistCredentials,
    *,
    find_email: bool = False,
    verify_email: bool = False,
    linkedin_enrichment: bool = False,
    find_phone: bool = False,
    webhook_url: str | None = None,
    force: bool = False,
) -> EnrichLeadResult:
    """Start the enrichment of one lead (`POST /leads/{leadId}/enrich`), at most once.

    Idempotent across runs, processes and API keys of the same team: the start is recorded in
    the enrichment ledger, so calling it again for the same lead and workflows returns the
    recorded enrichment id instead of paying again. A start whose answer was lost (the process
    died mid-request) is sent once more without `force`: lemlist itself then refuses a second
    start of the contact (409). `force=True` bypasses the ledger and lemlist's own skip.

    Args:
        lead_id: the lead (`lea_…`).
        credentials: the lemlist credentials block.
        find_email: find an email address.
        verify_email: verify the existing email address.
        linkedin_enrichment: enrich the LinkedIn profile.
        find_phone: find a phone number.
        webhook_url: where lemlist POSTs the result when ready.
        force: start it again even if it was started before or the data exists (costs credits).

    Returns:
        The enrichment id, or `skipped=True` with `skip_reason` when lemlist answered 409.

    Raises:
        ValueError: bad lead id or webhook URL, or no workflow requested (nothing sent).
        LemlistError: lemlist refused; see the subclasses.

    Examples:
        Start an email search and wait for its result:
        ```python
        from prefect import flow
        from prefect_lemlist import LemlistCredentials, enrich_lead, wait_for_enrichment

        @flow
        async def find_email(lead_id: str):
            credentials = await LemlistCredentials.aload("lemlist")
            started = await enrich_lead(lead_id, credentials, find_email=True)
            if started.skipped:
                return started.skip_reason
            return await wait_for_enrichment(started.enrichment_id, credentials)
        ```
    """
    lead = LeadId(lead_id)
    flags = _flags(find_email, verify_email, linkedin_enrichment, find_phone)
    async with credentials.get_client() as client:
        ledger = await team_ledger(client, flags)
        recall = (await ledger.recall_leads([lead])).get(lead)
        if not force:
            recorded = _recorded_lead_result(lead, recall)
            if recorded is not None:
                return recorded
        context = StartContext(client, ledger, flags, webhook_url=webhook_url, force=force)
        return await claim_and_start_lead(context, lead, recall)


def _recorded_lead_result(lead: LeadId, recall: Recall | None) -> EnrichLeadResult | None:
    """The answer an earlier call recorded, or None when lemlist must be asked.

    Raises:
        ClaimedElsewhereError: another run is sending this start right now (nothing sent).
    """
    if recall is not None and recall.in_flight:
        raise ClaimedElsewhereError(f"another run is starting lead {lead} right now; not sent")
    if recall is None or recall.interrupted or recall.expired:
        return None
    enrichment_id = recall.enrichment_id or (recall.outcome or {}).get("enrichment_id")
    if enrichment_id:
        return EnrichLeadResult(lead_id=lead, enrichment_id=enrichment_id)
    answer = recall.answer
    if answer is not None and _is_skip_reason(answer.skip_reason):
        return EnrichLeadResult(lead_id=lead, skipped=True, skip_reason=answer.skip_reason)
    if answer is not None:
        raise _refusal(answer)
    return None


def _is_skip_reason(value: str | None) -> TypeGuard[SkipReason]:
    """Whether a recorded answer's `skip_reason` is one of lemlist's 409 skips."""
    return value in get_args(SkipReason)


def _refusal(answer: RecordedAnswer) -> LemlistError:
    """The error lemlist's recorded answer stands for (the one status table: exceptions.py)."""
    message = (
        f"{answer.message or answer.code} (answer recorded by an earlier run; force=True asks "
        "again)"
    )
    return error_for_status(answer.status_code, message, code=answer.code)


@task(name="enrich-contact", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def enrich_contact(
    contact: Contact | dict[str, Any],
    credentials: LemlistCredentials,
    *,
    find_email: bool = False,
    verify_email: bool = False,
    linkedin_enrichment: bool = False,
    find_phone: bool = False,
    webhook_url: str | None = None,
    force: bool = False,
) -> EnrichmentStart:
    """Start the enrichment of one person who need not be a lead (`POST /enrich`), at most once.

    lemlist never deduplicates this endpoint, so the ledger does: the same person (same inputs,
    normalised) and workflows return the recorded enrichment id; a start whose answer was lost
    raises `EnrichmentInterruptedError` instead of paying again. `force=True` sends it anyway.

    Args:
        contact: the person (a `Contact`, or a dict in snake_case or lemlist's camelCase).
        credentials: the lemlist credentials block.
        find_email: find an email address (needs `linkedin_url`, or first and last name,
            company name and domain).
        verify_email: verify the contact's email (needs `email`).
        linkedin_enrichment: enrich the LinkedIn profile (needs `linkedin_url`, `email`, or
            first and last name with company name or domain).
        find_phone: find a phone number (needs `linkedin_url`).
        webhook_url: where lemlist POSTs the result when ready.
        force: start it even if it was started before (costs credits again).

    Returns:
        The started enrichment (`.enrichment_id`).

    Raises:
        ValueError: no workflow, a malformed value, or a workflow without its inputs (nothing
            sent).
        EnrichmentInterruptedError: an earlier start's answer was lost (nothing sent).
        LemlistError: lemlist refused.

    Examples:
        Find the email of someone from a CRM:
        ```python
        from prefect import flow
        from prefect_lemlist import (
            Contact, LemlistCredentials, enrich_contact, wait_for_enrichment
        )

        @flow
        async def find_email():
            credentials = await LemlistCredentials.aload("lemlist")
            person = Contact(linkedin_url="https://www.linkedin.com/in/someone")
            started = await enrich_contact(person, credentials, find_email=True)
            return await wait_for_enrichment(started.enrichment_id, credentials)
        ```
    """
    person = Contact.model_validate(contact) if isinstance(contact, dict) else contact
    flags = _flags(find_email, verify_email, linkedin_enrichment, find_phone)
    missing = person.missing_inputs(flags.workflows)
    if missing is not None:
        raise ValueError(
            f"{missing.option} needs {missing.describe_inputs()} ({missing.missing_code})"
        )
    key = person.fingerprint(flags)
    async with credentials.get_client() as client:
        ledger = await team_ledger(client, flags)
        recalls = await ledger.recall_contacts([key])
        if not force:
            recorded = _recorded_contact(key, recalls.get(key))
            if recorded is not None:
                return recorded
        async with ledger.claim_chunk([key], replace=force, recalled=recalls) as claim:
            started = await client.enrich_contact(
                person, flags, webhook_url=webhook_url, before_send=claim.sending
            )
            claim.answered({key: started.enrichment_id}, {})
        return started


def _recorded_contact(key: str, recall: Recall | None) -> EnrichmentStart | None:
    if recall is None or recall.expired:
        return None
    if recall.in_flight:
        raise ClaimedElsewhereError("another run is starting this person right now; not sent")
    enrichment_id = recall.enrichment_id or (recall.outcome or {}).get("enrichment_id")
    if enrichment_id:
        return EnrichmentStart(enrichment_id=enrichment_id)
    if recall.interrupted:
        raise EnrichmentInterruptedError(
            "an earlier start of this person was sent but its answer was never recorded; "
            "lemlist may have started (and billed) it. Not sent again; force=True sends it."
        )
    if recall.answer is not None:
        raise _refusal(recall.answer)
    return None


@task(name="bulk-enrich", cache_policy=NO_CACHE)
async def bulk_enrich(
    contacts: Sequence[Contact | dict[str, Any]],
    credentials: LemlistCredentials,
    *,
    find_email: bool = False,
    verify_email: bool = False,
    linkedin_enrichment: bool = False,
    find_phone: bool = False,
    webhook_url: str | None = None,
    force: bool = False,
) -> list[BulkItemResult]:
    """Start the enrichments of many people, 500 per request (`POST /v2/enrichments/bulk`).

    Contacts that lack a workflow's inputs are not sent: their result carries the code lemlist
    would answer (`MISSING_INPUTS`, `MISSING_EMAIL`, `MISSING_LINKEDIN_URL`). The others go in
    ⌈n/500⌉ requests (the same person twice is sent once); answers are matched by position and
    by the echoed `metadata`. Like the other start tasks it goes through the ledger: people
    started before get their recorded enrichment id (or the code `MAY_HAVE_STARTED` when an
    earlier request's answer was lost), unless `force=True`.

    Args:
        contacts: the people (`Contact`s or dicts in snake_case or camelCase).
        credentials: the lemlist credentials block.
        find_email: find an email address.
        verify_email: verify the contact's email.
        linkedin_enrichment: enrich the LinkedIn profile.
        find_phone: find a phone number.
        webhook_url: where lemlist POSTs each result when ready.
        force: send people started before again (costs credits again).

    Returns:
        One result per contact, in input order, with `.enrichment_id` (None when not started)
        and `.error`.

    Raises:
        ValueError: no workflow, or a malformed contact (nothing sent).
        LemlistError: a whole request was refused (`.code` is lemlist's, e.g.
            `TOO_MANY_ENRICHMENTS_REQUESTED`).

    Examples:
        Start email searches for a list of people:
        ```python
        from prefect import flow
        from prefect_lemlist import LemlistCredentials, bulk_enrich

        @flow
        async def start(people: list[dict]):
            credentials = await LemlistCredentials.aload("lemlist")
            results = await bulk_enrich(people, credentials, find_email=True)
            return [r.enrichment_id for r in results if r.enrichment_id]
        ```
    """
    people = [Contact.model_validate(c) if isinstance(c, dict) else c for c in contacts]
    flags = _flags(find_email, verify_email, linkedin_enrichment, find_phone)
    results: list[BulkItemResult] = [
        BulkItemResult(index=i, sent=False) for i in range(len(people))
    ]
    to_send: dict[str, list[int]] = {}
    for index, person in enumerate(people):
        missing = person.missing_inputs(flags.workflows)
        if missing is not None:
            results[index] = BulkItemResult(index=index, error=missing.missing_code, sent=False)
        else:
            to_send.setdefault(person.fingerprint(flags), []).append(index)
    async with credentials.get_client() as client:
        ledger = await team_ledger(client, flags)
        recalls = await ledger.recall_contacts(list(to_send))
        fresh = [
            key
            for key in to_send
            if force or not _apply_recall(results, to_send[key], recalls.get(key))
        ]
        for start in range(0, len(fresh), BULK_MAX_ITEMS):
            keys = fresh[start : start + BULK_MAX_ITEMS]
            chunk = _Chunk(keys, {key: recalls[key] for key in keys if key in recalls})
            await _send_chunk(
                client, ledger, flags, chunk, people, to_send, results, webhook_url, force
            )
    return results


def _apply_recall(results: list[BulkItemResult], indexes: list[int], recall: Recall | None) -> bool:
    """Fill the results of a person an earlier run started; returns whether it did."""
    if recall is None or recall.expired or recall.answer is not None:
        return False
    enrichment_id = recall.enrichment_id or (recall.outcome or {}).get("enrichment_id")
    unknown = "STARTING_ELSEWHERE" if recall.in_flight else "MAY_HAVE_STARTED"
    for index in indexes:
        results[index] = BulkItemResult(
            index=index,
            enrichment_id=enrichment_id,
            error=None if enrichment_id else unknown,
            sent=False,
        )
    return True


@dataclass(frozen=True)
class _Chunk:
    keys: list[str]
    recalled: dict[str, Recall]


async def _send_chunk(
    client: Any,
    ledger: Ledger,
    flags: EnrichmentFlags,
    chunk: _Chunk,
    people: list[Contact],
    indexes: dict[str, list[int]],
    results: list[BulkItemResult],
    webhook_url: str | None,
    force: bool,
) -> None:
    keys = chunk.keys
    contacts = [people[indexes[key][0]] for key in keys]
    async with ledger.claim_chunk(keys, replace=force, recalled=chunk.recalled) as claim:
        answers = await client.bulk_enrich(
            contacts, flags, metadata=keys, webhook_url=webhook_url, before_send=claim.sending
        )
        claim.answered(
            {keys[a.index]: a.enrichment_id for a in answers if a.enrichment_id},
            {keys[a.index]: RecordedAnswer(code=a.error) for a in answers if not a.enrichment_id},
        )
    for answer in answers:
        for index in indexes[keys[answer.index]]:
            results[index] = answer.model_copy(update={"index": index})


@task(name="get-enrichment", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def get_enrichment(enrichment_id: str, credentials: LemlistCredentials) -> Enrichment:
    """Read an enrichment once (`GET /enrich/{id}`); never cached, so every call is fresh.

    Args:
        enrichment_id: the `enr_…` id.
        credentials: the lemlist credentials block.

    Returns:
        The enrichment; `in_progress` is True while lemlist still works on it.

    Raises:
        LemlistNotFoundError: unknown enrichment id.
        LemlistError: any other refusal.

    Examples:
        ```python
        enrichment = await get_enrichment("enr_XXXXXXXXXXXXXXXXX", credentials)
        if enrichment.done:
            print(enrichment.email, enrichment.email_status)
        ```
    """
    async with credentials.get_client() as client:
        return await client.get_enrichment(enrichment_id)


@task(name="wait-for-enrichment", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def wait_for_enrichment(
    enrichment_id: str,
    credentials: LemlistCredentials,
    *,
    timeout_seconds: float = DEFAULT_WAIT_TIMEOUT_SECONDS,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
) -> Enrichment:
    """Poll an enrichment until lemlist has finished it.

    Args:
        enrichment_id: the `enr_…` id.
        credentials: the lemlist credentials block.
        timeout_seconds: give up after this long (default 300 s).
        poll_interval_seconds: pause between polls (default 5 s, lemlist's advice is 5-10 s).

    Returns:
        The finished enrichment: `done`, or another end status (check `.done`).

    Raises:
        EnrichmentTimeoutError: still in progress at the timeout (carries `enrichment_id`).
        LemlistError: a poll failed.

    Examples:
        ```python
        result = await wait_for_enrichment(started.enrichment_id, credentials)
        print(result.email, result.phone)
        ```
    """
    async with credentials.get_client() as client:
        deadline = time.monotonic() + timeout_seconds
        while True:
            enrichment = await client.get_enrichment(enrichment_id)
            if not enrichment.in_progress:
                return enrichment
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnrichmentTimeoutError(
                    f"enrichment {enrichment_id} was still in progress after "
                    f"{timeout_seconds:g}s; collect it later with get_enrichment",
                    enrichment_id=enrichment_id,
                )
            await asyncio.sleep(min(poll_interval_seconds, remaining))


@task(name="export-campaign-leads", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def export_campaign_leads(
    campaign_id: str, credentials: LemlistCredentials, state: str = "all"
) -> list[CampaignLead]:
    """All leads of a campaign with their data (`GET /campaigns/{id}/export/leads`).

    Args:
        campaign_id: the campaign (`cam_…`).
        credentials: the lemlist credentials block.
        state: lead state filter (one value or a comma list); `all` for every lead.

    Returns:
        The campaign's leads.

    Raises:
        LemlistNotFoundError: unknown campaign.
        LemlistError: any other refusal.

    Examples:
        ```python
        leads = await export_campaign_leads("cam_XXXXXXXXXXXXXXXXX", credentials)
        without_email = [lead.lead_id for lead in leads if not lead.email]
        ```
    """
    async with credentials.get_client() as client:
        return await client.export_campaign_leads(campaign_id, state=state)


@task(name="get-credits", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def get_credits(credentials: LemlistCredentials) -> Credits:
    """The team's remaining credits (`GET /team/credits`).

    Args:
        credentials: the lemlist credentials block.

    Returns:
        The balance (`.credits`) and lemlist's breakdown (`.details`).

    Examples:
        ```python
        balance = await get_credits(credentials)
        print(balance.credits)
        ```
    """
    async with credentials.get_client() as client:
        return await client.get_credits()
