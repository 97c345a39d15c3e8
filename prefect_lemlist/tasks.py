"""Prefect tasks for lemlist enrichment: thin wrappers over `LemlistClient` and `enrichment`.

Retry layers: the client already repeats 429s (after `Retry-After`), 5xx and connection errors
within one task run. The task-level retries below are the coarse second layer, for failures that
outlast the client's budget; they only fire for errors marked `retryable`, so a 4xx or an
enrichment that may already have started is never repeated.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.enrichment import start_enrichment, wait_until_finished
from prefect_lemlist.exceptions import LemlistError
from prefect_lemlist.ledger import EnrichmentLedger
from prefect_lemlist.models import (
    CampaignLead,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
)

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
    """Start the enrichment of one lead (`POST /leads/{leadId}/enrich`).

    Idempotent across runs and processes: the start is recorded in the enrichment ledger
    (Prefect result records under the Prefect home, keyed on the key's fingerprint, the lead and
    the workflows), so calling it again for the same lead and workflows returns the recorded
    enrichment id instead of paying again. `force=True` bypasses that, and lemlist's own skip.

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
        EnrichmentInterruptedError: an earlier attempt's outcome is unknown (nothing sent).
        LemlistError: lemlist refused; see the subclasses.
    """
    flags = EnrichmentFlags(
        find_email=find_email,
        verify_email=verify_email,
        linkedin_enrichment=linkedin_enrichment,
        find_phone=find_phone,
    ).require_any()
    ledger = EnrichmentLedger(credentials.fingerprint(), flags)
    async with credentials.get_client() as client:
        result, _ = await start_enrichment(
            client, ledger, lead_id, flags, webhook_url=webhook_url, force=force
        )
    return result


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
    """
    async with credentials.get_client() as client:
        return await wait_until_finished(
            client,
            enrichment_id,
            timeout_seconds=timeout_seconds,
            poll_interval_seconds=poll_interval_seconds,
        )


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
    """
    async with credentials.get_client() as client:
        return await client.export_campaign_leads(campaign_id, state=state)


@task(name="get-credits", cache_policy=NO_CACHE, **_TRANSIENT_RETRIES)
async def get_credits(credentials: LemlistCredentials) -> Credits:
    """The team's remaining credits (`GET /team/credits`)."""
    async with credentials.get_client() as client:
        return await client.get_credits()
