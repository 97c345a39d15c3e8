"""Starting enrichments of people through `POST /v2/enrichments/bulk`, 500 per request.

`start_chunk` is the only code path that sends a bulk request: the chunk is claimed in the ledger
(one record for the whole chunk) right before it leaves, and lemlist's per-item answers are
recorded at once. lemlist never deduplicates this endpoint, so a chunk whose answer was lost is
never sent again unless the user asks (`force`).
"""

from __future__ import annotations

import asyncio
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_lemlist.api.exceptions import ClaimedElsewhereError, LemlistError
from prefect_lemlist.api.models import Contact
from prefect_lemlist.pipeline.ledger import Recall, RecordedAnswer
from prefect_lemlist.pipeline.outcomes import Outcome
from prefect_lemlist.pipeline.start import (
    StartAnswer,
    StartContext,
    finish_or_cancel,
    not_started,
)

ITEM_ERRORS = {
    "MISSING_INPUTS": "lemlist: the inputs this workflow needs are missing (MISSING_INPUTS)",
    "MISSING_EMAIL": "lemlist: verify needs an email (MISSING_EMAIL)",
    "MISSING_LINKEDIN_URL": "lemlist: this workflow needs a LinkedIn URL (MISSING_LINKEDIN_URL)",
}


async def start_chunk(
    context: StartContext,
    keys: list[str],
    contacts: list[Contact],
    recalled: dict[str, Recall] | None = None,
) -> list[StartAnswer]:
    """Send one bulk request for up to 500 people, through the ledger.

    Args:
        context: the run's start context.
        keys: the people's fingerprints (also sent as `metadata`, which lemlist echoes).
        contacts: the people, in the same order.
        recalled: the run's recall of these people (the chunk's claim may take over the
            record version it read).

    Returns:
        One answer per person, in order (never raises for lemlist's refusals).
    """
    if context.stop.not_started:
        return [not_started(key, context.stop.not_started) for key in keys]
    try:
        claim = context.ledger.claim_chunk(keys, replace=context.force, recalled=recalled)
        async with claim:
            results = await context.client.bulk_enrich(
                contacts,
                context.flags,
                metadata=keys,
                webhook_url=context.webhook_url,
                before_send=context.sending(claim.sending),
            )
            started = {keys[r.index]: r.enrichment_id for r in results if r.enrichment_id}
            refused = {
                keys[r.index]: RecordedAnswer(code=r.error, message=ITEM_ERRORS.get(r.error or ""))
                for r in results
                if not r.enrichment_id
            }
            claim.answered(started, refused)
    except ClaimedElsewhereError:
        return [StartAnswer(key, elsewhere=True) for key in keys]
    except LemlistError as exc:
        if context.stop.stop_for(exc):
            return [not_started(key, f"not started: {exc.message}") for key in keys]
        return [
            StartAnswer(key, outcome=Outcome(status="failed", error=exc.message)) for key in keys
        ]
    now = time.monotonic()
    return [
        StartAnswer(key, enrichment_id=started[key], started_at=now)
        if key in started
        else StartAnswer(key, outcome=refusal_outcome(refused[key]))
        for key in keys
    ]


def refusal_outcome(answer: RecordedAnswer) -> Outcome:
    """The outcome of a person lemlist refused to enrich (a per-item error: nothing started)."""
    message = answer.message or f"lemlist refused this person ({answer.code})"
    return Outcome(status="rejected", error=message)


@task(name="start-contact-chunk", cache_policy=NO_CACHE)
async def start_contact_chunk(
    keys: list[str],
    contacts: list[Contact],
    context: StartContext,
    recalled: dict[str, Recall] | None = None,
) -> list[StartAnswer]:
    """Start the enrichments of up to 500 people in one bulk request (a Prefect task run).

    Args:
        keys: the people's fingerprints.
        contacts: the people.
        context: the run's start context.
        recalled: the run's recall of these people.

    Returns:
        One `StartAnswer` per person, in order.
    """
    work = asyncio.create_task(start_chunk(context, keys, contacts, recalled))
    try:  # shielded: a Ctrl-C must not cut a bulk request on the wire (see finish_or_cancel)
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await finish_or_cancel(context, [work])
        raise
