"""The per-lead enrichment steps as plain coroutines, shared by the tasks and the flows.

`start_enrichment` is the only code path that POSTs an enrichment: it consults and updates the
ledger around the POST so that no (key, lead, workflows) is ever started twice unless `force`.
`wait_until_finished` polls one enrichment until lemlist is done with it.
"""

from __future__ import annotations

import asyncio
import time

from prefect_lemlist.client import LemlistClient
from prefect_lemlist.exceptions import (
    EnrichmentTimeoutError,
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.ledger import EnrichmentInterruptedError, EnrichmentLedger, LedgerEntry
from prefect_lemlist.models import EnrichLeadResult, Enrichment, EnrichmentFlags
from prefect_lemlist.validation import validate_http_url, validate_id


async def start_enrichment(
    client: LemlistClient,
    ledger: EnrichmentLedger | None,
    lead_id: str,
    flags: EnrichmentFlags,
    *,
    webhook_url: str | None = None,
    force: bool = False,
) -> tuple[EnrichLeadResult, bool]:
    """Start (or recall) the enrichment of one lead, never POSTing the same work twice.

    Args:
        client: an open `LemlistClient`.
        ledger: the durable ledger for this key and these workflows; None disables it.
        lead_id: the lead.
        flags: the workflows (at least one).
        webhook_url: passed on to lemlist.
        force: POST even when the ledger says it was started before, and ask lemlist to
            bypass its "already has the data" skip (spends credits again).

    Returns:
        The result and whether it came from the ledger (True: nothing was sent).

    Raises:
        ValueError: bad input (nothing sent).
        EnrichmentInterruptedError: an earlier POST's outcome is unknown (nothing sent).
        LemlistError: lemlist refused or could not be reached.
    """
    validate_id(lead_id, "lead id")
    flags.require_any()
    if webhook_url is not None:
        webhook_url = validate_http_url(webhook_url, "webhook_url")
    if ledger is not None and not force:
        entry = await ledger.read(lead_id)
        if entry is not None:
            recalled = _recall(entry, lead_id, flags)
            if recalled is not None:
                return recalled, True

    async def record_starting() -> None:
        # Written once the POST holds its rate slot, right before it is sent: a crash while it
        # still waits for the slot must not leave a "may have been billed" record.
        await ledger.write(lead_id, LedgerEntry(state="starting"))

    try:
        result = await client.enrich_lead(
            lead_id,
            flags,
            webhook_url=webhook_url,
            force=force,
            before_send=record_starting if ledger is not None else None,
        )
    except LemlistError as exc:
        if ledger is not None:
            await ledger.write(lead_id, _entry_for_failure(exc))
        raise
    if ledger is not None:
        state = "answered" if result.skipped else "started"
        await ledger.write(lead_id, LedgerEntry(state=state, result=result))
    return result, False


def _recall(entry: LedgerEntry, lead_id: str, flags: EnrichmentFlags) -> EnrichLeadResult | None:
    """The recorded answer to reuse instead of POSTing, or None when a POST is needed.

    Raises:
        EnrichmentInterruptedError: a POST was sent but its answer never recorded.
        LemlistError: lemlist refused this enrichment before (a definitive 4xx).
    """
    if entry.state in ("started", "answered") and entry.result is not None:
        return entry.result
    if entry.state == "answered" and entry.error is not None:
        raise _REFUSALS.get(entry.status_code, LemlistError)(
            f"{entry.error} (answer recorded by an earlier run; force=True asks again)",
            status_code=entry.status_code,
            code=entry.code,
        )
    if entry.state == "starting":
        raise EnrichmentInterruptedError(
            f"an earlier run sent the enrichment of lead {lead_id} ({flags.label()}) but "
            "never recorded lemlist's answer; lemlist may have started and billed it. It is "
            "not sent again; re-run with force=True to start it anew."
        )
    return None


def _entry_for_failure(exc: LemlistError) -> LedgerEntry:
    """How to record a failed POST: maybe started, definitively refused, or try again later."""
    if isinstance(exc, LemlistServerError) and not exc.retryable:
        # a read timeout, dropped connection or 502/504 after the POST was sent: keep `starting`
        return LedgerEntry(state="starting")
    if isinstance(exc, LemlistResponseError) and "html" not in (exc.content_type or ""):
        # a 200 whose JSON we could not use: lemlist may well have started the enrichment (an
        # HTML page, on the other hand, is the web app answering a path the API does not have)
        return LedgerEntry(state="starting")
    if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429:
        return LedgerEntry(
            state="answered", error=exc.message, status_code=exc.status_code, code=exc.code
        )
    return LedgerEntry(state="none")


_REFUSALS: dict[int | None, type[LemlistError]] = {
    401: LemlistAuthError,
    403: LemlistAuthError,
    404: LemlistNotFoundError,
}


async def wait_until_finished(
    client: LemlistClient,
    enrichment_id: str,
    *,
    timeout_seconds: float,
    poll_interval_seconds: float,
) -> Enrichment:
    """Poll `GET /enrich/{id}` until the enrichment is no longer in progress.

    Args:
        client: an open `LemlistClient`.
        enrichment_id: the `enr_…` id.
        timeout_seconds: give up after this long.
        poll_interval_seconds: pause between polls.

    Returns:
        The finished enrichment (`done`, or another end status lemlist reported).

    Raises:
        EnrichmentTimeoutError: still in progress after `timeout_seconds`.
        LemlistError: a poll failed.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        enrichment = await client.get_enrichment(enrichment_id)
        if not enrichment.in_progress:
            return enrichment
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EnrichmentTimeoutError(
                f"enrichment {enrichment_id} was still in progress after {timeout_seconds:g}s; "
                "collect it later with get_enrichment",
                enrichment_id=enrichment_id,
            )
        await asyncio.sleep(min(poll_interval_seconds, remaining))
