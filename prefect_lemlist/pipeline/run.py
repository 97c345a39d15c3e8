"""The orchestration shared by every flow: plan → guard → start → collect → report → export.

`EnrichmentRun` holds what every execution uses (its open client, the team's ledger, the
options) and `execute()` reads top to bottom; what one execution learns lives in its own
`RunState`, so a run can execute twice. The two kinds of items differ only in how they are
recalled and started (`LeadStarter`: `POST /leads/{id}/enrich`, 20 in flight; `PeopleStarter`:
bulk, 500 per request); everything else is the same engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    EnrichmentsNotCollectedError,
    InsufficientCreditsError,
    LemlistError,
)
from prefect_lemlist.api.models import Contact
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.pipeline.bulk import start_contact_chunk
from prefect_lemlist.pipeline.collect import ResultCollector
from prefect_lemlist.pipeline.credit_watch import CreditWatch
from prefect_lemlist.pipeline.events import emit_run_events, facts_of_run
from prefect_lemlist.pipeline.export import ExportContext, row_statuses
from prefect_lemlist.pipeline.input_rules import apply_skip_rules
from prefect_lemlist.pipeline.landing import check_destination, land_results
from prefect_lemlist.pipeline.ledger import (
    NOT_ATOMIC_WARNING,
    Ledger,
    Recall,
    describe_storage,
)
from prefect_lemlist.pipeline.options import ContactOptions, EnrichmentOptions, RunOptions
from prefect_lemlist.pipeline.outcomes import FINAL_STATUSES, Outcome, count_by_status
from prefect_lemlist.pipeline.plan import ItemKind, Plan, credit_refusal, make_plan
from prefect_lemlist.pipeline.report import (
    ROWS_IN_RESULT,
    TABLE_MAX_PAGES,
    TABLE_PAGE_ROWS,
    PipelineSummary,
    Progress,
    ProgressEvent,
    publish,
    run_log,
)
from prefect_lemlist.pipeline.run_state import RunState
from prefect_lemlist.pipeline.start import (
    StartAnswer,
    StartContext,
    known_team,
    not_started,
    start_lead_batch,
    team_ledger,
)
from prefect_lemlist.pipeline.stop import StopReason, StopSignal
from prefect_lemlist.pipeline.webhook_server import WebhookReceiver
from prefect_lemlist.pipeline.worklist import Worklist
from prefect_lemlist.settings import lemlist_settings

ELSEWHERE_NOTE = "started by another run at the same time; collected here"


class Starter(Protocol):
    """How one kind of item is recalled from the ledger and started."""

    kind: ItemKind
    batch_size: int

    async def recall(self, ledger: Ledger, keys: list[str]) -> dict[str, Recall]:
        """What earlier runs did for these items."""

    async def start(
        self, batch: list[str], worklist: Worklist, context: StartContext, plan: Plan, name: str
    ) -> list[StartAnswer]:
        """Start one batch (a Prefect task run named `name`)."""


class LeadStarter:
    """Leads: `POST /leads/{id}/enrich`, `batch_size` leads per task run."""

    kind: ItemKind = "leads"

    def __init__(self, options: EnrichmentOptions) -> None:
        self.batch_size = options.batch_size

    async def recall(self, ledger: Ledger, keys: list[str]) -> dict[str, Recall]:
        """The leads' records."""
        return await ledger.recall_leads(keys)

    async def start(
        self, batch: list[str], worklist: Worklist, context: StartContext, plan: Plan, name: str
    ) -> list[StartAnswer]:
        """One `start-lead-batch` task run."""
        recalled = {key: plan.recalled[key] for key in batch if key in plan.recalled}
        task = start_lead_batch.with_options(task_run_name=f"start leads {name}")
        return await task(batch, context, recalled)


class PeopleStarter:
    """People: `POST /v2/enrichments/bulk`, `bulk_size` people per request and task run."""

    kind: ItemKind = "contacts"

    def __init__(self, options: ContactOptions) -> None:
        self.batch_size = options.bulk_size

    async def recall(self, ledger: Ledger, keys: list[str]) -> dict[str, Recall]:
        """The chunks' records."""
        return await ledger.recall_contacts(keys)

    async def start(
        self, batch: list[str], worklist: Worklist, context: StartContext, plan: Plan, name: str
    ) -> list[StartAnswer]:
        """One `start-contact-chunk` task run (one bulk request)."""
        contacts: list[Contact] = [worklist.items[key] for key in batch]
        recalled = {key: plan.recalled[key] for key in batch if key in plan.recalled}
        task = start_contact_chunk.with_options(task_run_name=f"start people {name}")
        return await task(batch, contacts, context, recalled)


class EnrichmentRun:
    """A run of an enrichment flow: what every execution uses (an open client, the ledger).

    Args:
        options: the run's options.
        client: an open client (every request of the run goes through it).
        ledger: the team's ledger for the requested workflows.
    """

    def __init__(self, options: RunOptions, client: LemlistClient, ledger: Ledger) -> None:
        self.options = options
        self.flags = options.flags
        self.client = client
        self.ledger = ledger
        self._requests_counted = 0  # the client's requests already reported by an execution

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, credentials: LemlistCredentials, options: RunOptions
    ) -> AsyncIterator[EnrichmentRun]:
        """Open the run's client and the team's ledger (one `GET /team`).

        Raises:
            LemlistError: the key is refused or lemlist cannot be reached.
        """
        async with credentials.get_client() as client:
            yield cls(options, client, await team_ledger(client, options.flags))

    async def execute(
        self, worklist: Worklist, starter: Starter, recalls: dict[str, Recall] | None = None
    ) -> PipelineSummary:
        """Enrich the worklist's items, collect every result, export every row and report.

        Args:
            worklist: the rows and items.
            starter: how items are recalled and started.
            recalls: the ledger's recall when the caller already read it.

        Returns:
            The summary.

        Raises:
            InsufficientCreditsError: the run could cost more than allowed (nothing spent).
            DatabaseTargetError: the destination database cannot be reached (nothing spent),
                or it refused the rows after the run (every row is in the files).
            LemlistAuthError, LemlistOutOfCreditsError, LemlistUnreachableError: the run
                stopped starting enrichments (everything started was collected or reported;
                every row is exported).
            EnrichmentsNotCollectedError: started enrichments could not be collected (timed
                out, or lemlist unreachable); their ids are exported and recorded.

            Those errors carry the run's `summary` (every row is exported).
        """
        clock = time.monotonic()
        await check_destination(self.options.destination)  # before anything is spent
        context = ExportContext(
            self.flags, people=starter.kind == "contacts", key_column=self.options.destination.key
        )
        apply_skip_rules(
            worklist, self.flags, force=self.options.force, only_missing=self.options.only_missing
        )
        worklist.limit(self.options.limit, drop_others=worklist.source.kind == "campaign")
        keys = list(worklist.items)
        if recalls is None:
            recalls = await starter.recall(self.ledger, keys)
        plan = make_plan(
            keys,
            recalls,
            self.flags,
            force=self.options.force,
            kind=starter.kind,
            refresh_before=_refresh_before(self.options.refresh_after_days, context.run_at),
        )
        summary = self._summary(worklist, plan)
        summary.credits_before = (await self.client.get_credits()).credits
        self._log_plan(summary)
        refusal = credit_refusal(plan, summary.credits_before, self.options.max_credits)
        if self.options.dry_run or refusal:
            summary.stopped = refusal
            await self._report(summary, worklist, RunState(), clock, export=None)
            if refusal:
                raise InsufficientCreditsError(refusal)
            return summary
        state = await self._enrich(worklist, plan, starter, summary)
        summary.credits_after = await self._credits() if state.started else summary.credits_before
        try:
            await self._report(summary, worklist, state, clock, export=context)
        finally:
            self._emit_events(summary, state)
        failure = self._failure(summary, state)
        if failure is not None:
            failure.summary = summary  # every row is exported
            raise failure
        return summary

    def _emit_events(self, summary: PipelineSummary, state: RunState) -> None:
        """The run's Prefect events on its lemlist team (completed or halted, credits low)."""
        team = known_team(self.client)
        if team is None:
            return
        reason, error = state.stop.reason, state.stop.error
        facts = facts_of_run(
            summary,
            team_id=team.team_id,
            team_name=team.name,
            halted=reason.value if reason is not None else None,
            halted_message=error.message if error is not None else None,
            credits_alert=self.options.credits_alert,
        )
        emit_run_events(facts)

    def _failure(self, summary: PipelineSummary, state: RunState) -> LemlistError | None:
        """Why the run must end Failed although every row is exported: it stopped starting,
        or some started enrichments could not be collected (their ids are kept), or the
        database refused the rows (the files hold them)."""
        if state.stop.error is not None:
            return self._stopped_error(summary, state)
        if state.landing_error is not None:
            where = summary.csv_path or summary.jsonl_path or summary.parquet_path
            return state.landing_error.copy_with(
                f"{state.landing_error.message}; every row is in {where}"
            )
        pending = state.uncollected()
        if not pending:
            return None
        return EnrichmentsNotCollectedError(
            f"{pending} started enrichment{'s' if pending > 1 else ''} could not be collected "
            f"(still running, or lemlist unreachable); their ids are in "
            f"{summary.csv_path or summary.jsonl_path} and in the ledger"
        )

    # ------------------------------------------------------------------ enrich and collect

    async def _enrich(
        self, worklist: Worklist, plan: Plan, starter: Starter, summary: PipelineSummary
    ) -> RunState:
        """Start what the plan says and collect every result (webhook first, or polls)."""
        stop = StopSignal()
        watch = CreditWatch(self.client, stop, self.flags.max_credits_each())
        collector = self._collector(watch)
        stop.subscribe(lambda signal: _abandon_on_refusal(signal, collector))
        state = RunState(stop, collector, dict(plan.decided), waiting=list(plan.elsewhere))
        state.sent = len(plan.to_collect) + len(plan.decided)
        progress = Progress(worklist.source, len(worklist.items))
        await progress.start()
        collecting = asyncio.create_task(collector.run())
        try:
            async with self._webhook(collector) as webhook_url:
                context = StartContext(
                    self.client,
                    self.ledger,
                    self.flags,
                    webhook_url,
                    self.options.force,
                    stop,
                    refresh=frozenset(plan.refresh),
                )
                for key, enrichment_id in plan.to_collect.items():
                    collector.add(key, enrichment_id)
                await self._start_all(worklist, plan, starter, context, state, progress)
                await self._follow(worklist, starter, context, state)
                collector.close()
                await self._wait(collecting, progress, state)
        finally:
            collector.close()
            if not collecting.done():
                collecting.cancel()
        await watch.settle()
        state.collected(self.flags)
        _count_collection(collector, summary)
        await self._remember(state, plan)
        return state

    async def _start_all(
        self,
        worklist: Worklist,
        plan: Plan,
        starter: Starter,
        context: StartContext,
        state: RunState,
        progress: Progress | None = None,
    ) -> None:
        """Start the plan's items batch by batch; once the run is stopped, the rest is
        reported `not_started` with the reason."""
        total = len(worklist.items)
        batches = _chunks(plan.to_start, starter.batch_size)
        for number, batch in enumerate(batches, start=1):
            reason = state.stop.not_started
            if reason:
                answers = [not_started(key, reason) for key in batch]
            else:
                name = f"{number}/{len(batches)}"
                answers = await self._start_batch(starter, batch, worklist, context, plan, name)
            state.take(answers)
            if progress is not None:
                event = ProgressEvent("start", state.sent, state.finished(), total)
                await progress.update(event)

    async def _follow(
        self, worklist: Worklist, starter: Starter, context: StartContext, state: RunState
    ) -> None:
        """Follow the items another live run is starting (never sent twice): read their
        records until its answer is there (then collect or report it), or start them if it
        ended without starting them; report what is still pending after the collect timeout."""
        deadline = time.monotonic() + self.options.collect_timeout_seconds
        every = lemlist_settings().follow_seconds
        if state.waiting:
            run_log(
                logging.INFO,
                "lemlist: %d items are being started by another run right now: waiting for its "
                "answers (never sent twice)",
                len(state.waiting),
            )
        while state.waiting and time.monotonic() < deadline and not state.stop.stopped:
            await asyncio.sleep(every)
            keys, state.waiting = state.waiting, []
            recalls = await starter.recall(self.ledger, keys)
            settled = make_plan(keys, recalls, self.flags, force=False, kind=starter.kind)
            for key, enrichment_id in settled.to_collect.items():
                state.collect_elsewhere(key, enrichment_id, ELSEWHERE_NOTE)
            state.outcomes.update(settled.decided)
            state.waiting += settled.elsewhere
            await self._start_all(worklist, settled, starter, context, state)
        reason = state.stop.not_started or (
            "not started: another run was starting it and had not recorded lemlist's answer "
            f"after {self.options.collect_timeout_seconds:g} s; re-run to collect it"
        )
        for key in state.waiting:
            state.outcomes[key] = Outcome(status="not_started", error=reason)

    async def _start_batch(
        self,
        starter: Starter,
        batch: list[str],
        worklist: Worklist,
        context: StartContext,
        plan: Plan,
        name: str,
    ) -> list[StartAnswer]:
        try:
            return await starter.start(batch, worklist, context, plan, name)
        except Exception as exc:  # the task failed as a whole: report, never lose an item
            error = f"the start task failed: {type(exc).__name__}: {exc}"
            return [
                StartAnswer(key, outcome=Outcome(status="failed", error=error)) for key in batch
            ]

    async def _wait(
        self, collecting: asyncio.Task[None], progress: Progress, state: RunState
    ) -> None:
        total = progress.total
        while not collecting.done():
            await asyncio.wait({collecting}, timeout=2.0)
            event = ProgressEvent("collect", state.sent, state.finished(), total)
            await progress.update(event)
        await collecting
        done = ProgressEvent("done", state.sent, state.finished(), total)
        await progress.update(done, force=True)

    def _collector(self, watch: CreditWatch) -> ResultCollector:
        webhook = self.options.webhook
        return ResultCollector(
            self.client,
            timeout_seconds=self.options.collect_timeout_seconds,
            first_poll_seconds=self.options.first_poll_seconds,
            webhook_grace_seconds=(
                webhook.grace_seconds if self.options.collection == "webhook" else None
            ),
            workflows=self.flags.workflows,
            confirm=webhook.confirm,
            on_result=watch.on_result,
            unreachable_seconds=self.options.unreachable_timeout_seconds,
        )

    @contextlib.asynccontextmanager
    async def _webhook(self, collector: ResultCollector) -> AsyncIterator[str | None]:
        """In webhook mode, serve the receiver on this loop and yield the URL for lemlist."""
        if self.options.collection != "webhook":
            yield None
            return
        settings = self.options.webhook
        receiver = WebhookReceiver(
            collector.deliver,
            host=settings.host,
            port=settings.port,
            public_url=settings.public_url,
        )
        async with receiver:
            yield receiver.webhook_url

    async def _remember(self, state: RunState, plan: Plan) -> None:
        """Record final results in the ledger; forget enrichments lemlist ended without charge
        because the credits ran out (a re-run after a top-up starts them again)."""
        out_of_credits = state.stop.reason is StopReason.OUT_OF_CREDITS
        final, forget = {}, []
        for key, outcome in state.outcomes.items():
            if not outcome.enrichment_id or outcome.status not in FINAL_STATUSES:
                continue
            if out_of_credits and outcome.status == "failed":
                forget.append(key)
                state.outcomes[key] = outcome.with_note("not charged: re-run after a top-up")
            elif key not in plan.decided:
                final[key] = outcome.model_dump(mode="json")
        await self.ledger.record_outcomes(final)
        await self.ledger.forget(forget)

    # ------------------------------------------------------------------ report

    def _summary(self, worklist: Worklist, plan: Plan) -> PipelineSummary:
        rejected = worklist.rejected
        return PipelineSummary(
            source=worklist.source.label,
            workflows=[w.value for w in self.flags.workflows],
            dry_run=self.options.dry_run,
            input_rows=len(worklist.rows),
            selected=len(worklist.items),
            not_needed=worklist.not_needed,
            rejected=rejected[:100],
            rejected_count=len(rejected),
            rejected_reasons=dict(Counter(r.reason for r in rejected).most_common()),
            hints=list(worklist.hints),
            left_out=worklist.left_out,
            to_start=len(plan.to_start),
            recalled_from_ledger=plan.from_earlier_runs,
            resent_after_interruption=len(plan.resend),
            refreshed=len(plan.refresh),
            max_credit_cost=plan.max_credit_cost,
        )

    def _log_plan(self, summary: PipelineSummary) -> None:
        reasons = list(summary.rejected_reasons.items())
        for reason, count in reasons[:20]:
            lines = [r.line for r in summary.rejected if r.reason == reason][:5]
            where = f"lines {', '.join(map(str, lines))}{', …' if count > len(lines) else ''}: "
            run_log(
                logging.WARNING, "rejected %d rows (%s%s)", count, where if lines else "", reason
            )
        if len(reasons) > 20:
            rest = sum(count for _, count in reasons[20:])
            run_log(
                logging.WARNING, "… and %d more rejected rows (every one: the rejected file)", rest
            )
        for hint in summary.hints:
            run_log(logging.WARNING, "hint: %s", hint)
        run_log(
            logging.INFO,
            "lemlist: %d to enrich (%s), %d to start, %d from earlier runs; at most %d credits "
            "(upper-bound prices), %g available; ledger: %s",
            summary.selected,
            "+".join(summary.workflows),
            summary.to_start,
            summary.recalled_from_ledger,
            summary.max_credit_cost,
            summary.credits_before or 0,
            describe_storage(self.ledger.storage),
        )
        if not self.ledger.storage.atomic_create:
            run_log(
                logging.WARNING, "lemlist: %s", NOT_ATOMIC_WARNING % self.ledger.storage.location
            )

    async def _credits(self) -> float | None:
        try:
            return (await self.client.get_credits()).credits
        except LemlistError as exc:
            run_log(logging.WARNING, "could not read the credits after the run: %s", exc)
            return None

    async def _report(
        self,
        summary: PipelineSummary,
        worklist: Worklist,
        state: RunState,
        clock: float,
        *,
        export: ExportContext | None,
    ) -> None:
        """Fill the summary's counts and paths, write the exports, publish the artifacts."""
        summary.started = state.started
        # this execution's requests (the first also counts the run's opening GET /team and
        # whatever the flow asked before executing: the export, the emails' leads)
        summary.requests_made = self.client.requests_sent - self._requests_counted
        self._requests_counted = self.client.requests_sent
        summary.duration_seconds = time.monotonic() - clock
        rows: list[dict[str, Any]] = []
        if export is not None:
            rows = await self._export(summary, worklist, state, export)
        summary.stopped = summary.stopped or state.stop.not_started
        await publish(summary, worklist.source, rows, state.batches)

    async def _export(
        self,
        summary: PipelineSummary,
        worklist: Worklist,
        state: RunState,
        context: ExportContext,
    ) -> list[dict[str, Any]]:
        shown = max(ROWS_IN_RESULT, TABLE_PAGE_ROWS * TABLE_MAX_PAGES) + 1
        outcomes = state.outcomes
        try:
            landed = await land_results(worklist, outcomes, self.options, context, shown_rows=shown)
        finally:
            summary.counts = count_by_status(row_statuses(worklist, outcomes))
        state.landing_error = landed.table_error
        summary.csv_path = _text(landed.paths.get("csv"))
        summary.jsonl_path = _text(landed.paths.get("jsonl"))
        summary.parquet_path = _text(landed.paths.get("parquet"))
        summary.rejected_path = _text(landed.rejected_path)
        summary.table = landed.table
        if landed.upsert is not None:
            summary.table_inserted = landed.upsert.inserted
            summary.table_updated = landed.upsert.updated
        summary.rows = landed.shown if len(landed.shown) <= ROWS_IN_RESULT else None
        return landed.shown

    def _stopped_error(self, summary: PipelineSummary, state: RunState) -> LemlistError:
        error = state.stop.error
        assert error is not None
        where = (
            f"; every row is in {summary.csv_path or summary.jsonl_path}"
            if (summary.csv_path or summary.jsonl_path)
            else ""
        )
        return error.copy_with(
            f"{error.message} (the run stopped starting enrichments after {state.sent} of "
            f"{summary.selected} were sent, and collected what it had started{where})"
        )


def _abandon_on_refusal(signal: StopSignal, collector: ResultCollector) -> None:
    """A refused key ends collecting too (a block with a working key collects later)."""
    if signal.reason is StopReason.KEY_REFUSED and signal.error is not None:
        collector.abandon(f"the API key was refused ({signal.error.message})")


def _count_collection(collector: ResultCollector, summary: PipelineSummary) -> None:
    stats = collector.stats
    summary.polls = stats.polls
    summary.webhook_results = stats.results_from_webhook
    summary.webhook_confirmations = stats.webhook_confirmations


def _refresh_before(days: float | None, now: datetime) -> datetime | None:
    """The refresh cut-off: results recorded before it are enriched again (None: never)."""
    return None if days is None else now - timedelta(days=days)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _text(path: Any) -> str | None:
    return None if path is None else str(path)
