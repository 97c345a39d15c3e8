"""Starting enrichments through the lead endpoint, never twice for the same lead and workflows.

`start_lead` is the only code path that POSTs `/leads/{id}/enrich`: it claims the start in the
ledger right before the request leaves, and records lemlist's answer (or, when the request
failed, whether it may have started paid work). The shared pieces of both front doors live here
too: `StartAnswer`, the start context, and the ledger of a team.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_lemlist.api.client import LemlistClient, SendHook
from prefect_lemlist.api.exceptions import ClaimedElsewhereError, LemlistError
from prefect_lemlist.api.models import EnrichLeadResult, EnrichmentFlags, Team
from prefect_lemlist.pipeline.ledger import (
    Ledger,
    Recall,
    RecordedAnswer,
    account_key,
    default_storage,
)
from prefect_lemlist.pipeline.outcomes import Outcome, Status
from prefect_lemlist.pipeline.stop import StopSignal
from prefect_lemlist.settings import lemlist_settings

_teams: dict[str, Team] = {}  # key fingerprint -> its lemlist team, for this process
# one team lookup at a time per event loop: 50 concurrent `enrich_lead` calls send one GET /team
_team_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class StartContext:
    """What a start needs: the run's open client, its ledger, the workflows and the stop signal.

    Attributes:
        client: the run's client (its counters are the run's).
        ledger: the team's ledger for these workflows.
        flags: the requested workflows.
        webhook_url: given to lemlist when collecting by webhook.
        force: start again what was started before (costs again).
        stop: the run's stop signal: set when nothing more may be started.
        refresh: leads whose recorded result is stale (`refresh_after_days`): sent with
            lemlist's `force`, their record taken over exclusively (never by two runs).
    """

    client: LemlistClient
    ledger: Ledger
    flags: EnrichmentFlags
    webhook_url: str | None = None
    force: bool = False
    stop: StopSignal = field(default_factory=StopSignal)
    refresh: frozenset[str] = frozenset()

    def sending(self, claim_sending: SendHook) -> SendHook:
        """The hook a start request awaits right before it leaves: nothing is sent once the run
        is interrupted (a Ctrl-C); otherwise the ledger claim records the send."""

        async def hook() -> None:
            if self.stop.cancelled:
                raise asyncio.CancelledError  # not sent: nothing to record
            await claim_sending()

        return hook


async def finish_or_cancel(context: StartContext, tasks: list[asyncio.Task[Any]]) -> None:
    """After a Ctrl-C: send nothing more, give requests on the wire a few seconds to answer
    (their answers are recorded in the ledger), then cancel what is left."""
    context.stop.cancel()
    if not tasks:
        return
    grace = lemlist_settings().stop_grace_seconds
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for unfinished in pending:
        unfinished.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@dataclass
class StartAnswer:
    """How starting one item went.

    Attributes:
        key: the item.
        enrichment_id: the started enrichment (collect it), or None.
        started_at: `time.monotonic()` when lemlist accepted it.
        outcome: the item's final outcome when decided at start (a skip, a refusal, a failure).
        note: to add to the item's final outcome.
        elsewhere: another run claimed this start first (nothing sent): follow its record.
    """

    key: str
    enrichment_id: str | None = None
    started_at: float | None = None
    outcome: Outcome | None = None
    note: str | None = None
    elsewhere: bool = False

    @property
    def sent(self) -> bool:
        """Whether a start request went out for it (or lemlist answered it)."""
        if self.elsewhere:
            return False
        return self.outcome is None or self.outcome.status != "not_started"


async def team_ledger(client: LemlistClient, flags: EnrichmentFlags) -> Ledger:
    """The ledger of the client's lemlist team (one `GET /team` per key and process).

    Raises:
        LemlistError: the team cannot be read (a refused key is found here, before any start).
    """
    loop = asyncio.get_running_loop()
    lookup = _team_lookups.setdefault(loop, asyncio.Lock())
    async with lookup:
        team = _teams.get(client.fingerprint)
        if team is None:
            team = _teams[client.fingerprint] = await client.get_team()
    storage = await default_storage()
    return Ledger(storage, account_key(team.team_id), flags.label())


def known_team(client: LemlistClient) -> Team | None:
    """The client's team, once `team_ledger` has read it."""
    return _teams.get(client.fingerprint)


def not_started(key: str, reason: str) -> StartAnswer:
    """The answer for an item the run did not start."""
    return StartAnswer(key, outcome=Outcome(status="not_started", error=reason))


async def claim_and_start_lead(
    context: StartContext, lead_id: str, recalled: Recall | None = None
) -> EnrichLeadResult:
    """POST one lead's enrichment inside a ledger claim, and record lemlist's answer.

    The claim is exclusive unless `force`: a record the ledger's last recall read (an
    interrupted start, sent once more *without* `force`: lemlist refuses a second start of a
    contact while one runs and skips one that finished; an expired answer) is taken over by one
    run only.

    Args:
        context: the run's start context.
        lead_id: a validated lead id.
        recalled: what the run's recall read for this lead (the claim may take over that
            version of its record only), or None.

    Returns:
        lemlist's answer: an enrichment id, or a 409 skip.

    Raises:
        ClaimedElsewhereError: another run is starting this lead (nothing sent).
        LemlistError: lemlist refused or could not be reached.
    """
    claim = context.ledger.claim_lead(lead_id, replace=context.force, recalled=recalled)
    async with claim:
        result = await context.client.enrich_lead(
            lead_id,
            context.flags,
            webhook_url=context.webhook_url,
            force=context.force or lead_id in context.refresh,
            before_send=context.sending(claim.sending),
        )
        if result.skipped:
            claim.answered(RecordedAnswer(status_code=409, skip_reason=result.skip_reason))
        else:
            assert result.enrichment_id is not None
            claim.started(result.enrichment_id)
    return result


async def start_lead(context: StartContext, lead_id: str, recall: Recall | None) -> StartAnswer:
    """Start one lead's enrichment (see `claim_and_start_lead`); refusals become outcomes.

    Returns:
        The answer (never raises for lemlist's refusals).
    """
    if context.stop.not_started:
        return not_started(lead_id, context.stop.not_started)
    interrupted = recall is not None and recall.interrupted
    try:
        result = await claim_and_start_lead(context, lead_id, recall)
    except ClaimedElsewhereError:
        return StartAnswer(lead_id, elsewhere=True)
    except LemlistError as exc:
        if context.stop.stop_for(exc):
            return not_started(lead_id, f"not started: {exc.message}")
        note = "re-sent once without force after an interrupted run" if interrupted else None
        failed = Outcome(status="failed", error=exc.message, note=note)
        return StartAnswer(lead_id, outcome=failed)
    if result.skipped:
        return StartAnswer(lead_id, outcome=_skip_outcome(result, interrupted))
    note = "started again: the interrupted run's request had not reached lemlist"
    return StartAnswer(
        lead_id,
        enrichment_id=result.enrichment_id,
        started_at=time.monotonic(),
        note=note if interrupted else None,
    )


INTERRUPTED_NOTE = (
    "re-sent once without force after an interrupted run; lemlist answered that {what}: maybe "
    "the interrupted request's enrichment, whose id cannot be recovered"
)


def _skip_outcome(result: EnrichLeadResult, interrupted: bool) -> Outcome:
    """A 409: lemlist started nothing (and, after an interruption, says so in the note)."""
    status: Status
    if result.skip_reason == "ALREADY_ENRICHED":
        status, what = "skipped_already_enriched", "the contact is already enriched"
    else:
        status, what = "skipped_in_progress", "an enrichment of this contact is running"
    note = INTERRUPTED_NOTE.format(what=what) if interrupted else None
    return Outcome(status=status, note=note)


@task(name="start-lead-batch", cache_policy=NO_CACHE)
async def start_lead_batch(
    lead_ids: list[str], context: StartContext, recalls: dict[str, Recall]
) -> list[StartAnswer]:
    """Start the enrichments of a batch of leads (20 requests in flight), through the ledger.

    Per-lead failures are returned as outcomes, not raised, so one bad lead never hides the
    others.

    Args:
        lead_ids: the batch.
        context: the run's start context.
        recalls: what earlier runs did for leads of the batch (interrupted starts, expired
            records): each lead's claim is tied to the record version its recall read.

    Returns:
        One `StartAnswer` per lead, in input order.
    """
    semaphore = asyncio.Semaphore(lemlist_settings().leads_in_flight)

    async def one(lead_id: str) -> StartAnswer:
        async with semaphore:
            return await start_lead(context, lead_id, recalls.get(lead_id))

    tasks = [asyncio.create_task(one(lead_id)) for lead_id in lead_ids]
    try:
        if tasks:  # `wait`, not `gather`: a cancelled batch must not cut requests on the wire
            await asyncio.wait(tasks)
    except asyncio.CancelledError:
        await finish_or_cancel(context, tasks)
        raise
    return [done.result() for done in tasks]
