"""The orchestration shared by every flow: plan → guard → start → collect → report → export.

`EnrichmentRun` holds what one run uses (its open client, the team's ledger, the options) and
`execute()` reads top to bottom. The two front doors differ only in how items are recalled and
started (`LeadDoor`: `POST /leads/{id}/enrich`, 20 in flight; `ContactDoor`: bulk, 500 per
request); everything else is the same engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    EnrichmentsNotCollectedError,
    InsufficientCreditsError,
    LemlistError,
    LemlistOutOfCreditsError,
)
from prefect_lemlist.api.models import Contact
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.pipeline.bulk import start_contact_chunk
from prefect_lemlist.pipeline.collect import ResultCollector
from prefect_lemlist.pipeline.credit_watch import CreditWatch
from prefect_lemlist.pipeline.export import (
    export_columns,
    export_rows,
    output_stem,
    row_statuses,
    write_exports,
    write_rejected,
)
from prefect_lemlist.pipeline.ledger import (
    NOT_ATOMIC_WARNING,
    Ledger,
    Recall,
    describe_storage,
)
from prefect_lemlist.pipeline.options import ContactOptions, EnrichmentOptions, RunOptions
from prefect_lemlist.pipeline.outcomes import (
    FINAL_STATUSES,
    Outcome,
    count_by_status,
    outcome_of,
)
from prefect_lemlist.pipeline.plan import FrontDoor as DoorName
from prefect_lemlist.pipeline.plan import Plan, credit_refusal, make_plan
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
from prefect_lemlist.pipeline.start import (
    Halt,
    StartAnswer,
    StartContext,
    not_started,
    start_lead_batch,
    team_ledger,
)
from prefect_lemlist.pipeline.webhook_server import WebhookReceiver
from prefect_lemlist.pipeline.worklist import Worklist

_FOLLOW_SECONDS = 1.0
ELSEWHERE_NOTE = "started by another run at the same time; collected here"


class FrontDoor(Protocol):
    """How one kind of item is recalled from the ledger and started."""

    name: DoorName
    batch_size: int

    async def recall(self, ledger: Ledger, keys: list[str]) -> dict[str, Recall]:
        """What earlier runs did for these items."""

    async def start(
        self, batch: list[str], worklist: Worklist, context: StartContext, plan: Plan, name: str
    ) -> list[StartAnswer]:
        """Start one batch (a Prefect task run named `name`)."""


class LeadDoor:
    """Leads: `POST /leads/{id}/enrich`, `batch_size` leads per task run."""

    name: DoorName = "leads"

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


class ContactDoor:
    """People: `POST /v2/enrichments/bulk`, `bulk_size` people per request and task run."""

    name: DoorName = "contacts"

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
    """One run of an enrichment flow.

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
        self.halt = Halt()
        self.clock = time.monotonic()
        self.started = 0
        self.sent = 0  # items whose start request was sent (or answered by an earlier run)
        self.batches: list[dict[str, Any]] = []

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
        self, worklist: Worklist, door: FrontDoor, recalls: dict[str, Recall] | None = None
    ) -> PipelineSummary:
        """Enrich the worklist's items, collect every result, export every row and report.

        Args:
            worklist: the rows and items.
            door: how items are recalled and started.
            recalls: the ledger's recall when the caller already read it.

        Returns:
            The summary.

        Raises:
            InsufficientCreditsError: the run could cost more than allowed (nothing spent).
            LemlistAuthError, LemlistOutOfCreditsError, LemlistUnreachableError: the run
                stopped starting enrichments (everything started was collected or reported;
                every row is exported).
            EnrichmentsNotCollectedError: started enrichments could not be collected (timed
                out, or lemlist unreachable); their ids are exported and recorded.

            Those errors carry the run's `summary` (every row is exported).
        """
        worklist.limit(self.options.limit, drop_others=worklist.source.kind == "campaign")
        keys = list(worklist.items)
        if recalls is None:
            recalls = await door.recall(self.ledger, keys)
        plan = make_plan(keys, recalls, self.flags, force=self.options.force, door=door.name)
        summary = self._summary(worklist, plan)
        summary.credits_before = (await self.client.get_credits()).credits
        self._log_plan(summary)
        refusal = credit_refusal(plan, summary.credits_before, self.options.max_credits)
        if self.options.dry_run or refusal:
            summary.stopped = refusal
            await self._report(summary, worklist, {}, export=False)
            if refusal:
                raise InsufficientCreditsError(refusal)
            return summary
        outcomes = await self._enrich(worklist, plan, door, summary)
        summary.credits_after = await self._credits() if self.started else summary.credits_before
        await self._report(summary, worklist, outcomes, export=True)
        failure = self._failure(summary, outcomes)
        if failure is not None:
            failure.summary = summary  # type: ignore[attr-defined]  # every row is exported
            raise failure
        return summary

    def _failure(
        self, summary: PipelineSummary, outcomes: dict[str, Outcome]
    ) -> LemlistError | None:
        """Why the run must end Failed although every row is exported: it stopped starting,
        or some started enrichments could not be collected (their ids are kept)."""
        if self.halt.error is not None:
            return self._stopped_error(summary)
        pending = sum(o.status in ("timed_out", "not_collected") for o in outcomes.values())
        if not pending:
            return None
        return EnrichmentsNotCollectedError(
            f"{pending} started enrichment{'s' if pending > 1 else ''} could not be collected "
            f"(still running, or lemlist unreachable); their ids are in "
            f"{summary.csv_path or summary.jsonl_path} and in the ledger"
        )

    # ------------------------------------------------------------------ enrich and collect

    async def _enrich(
        self, worklist: Worklist, plan: Plan, door: FrontDoor, summary: PipelineSummary
    ) -> dict[str, Outcome]:
        """Start what the plan says and collect every result (webhook first, or polls)."""
        outcomes: dict[str, Outcome] = dict(plan.decided)
        notes: dict[str, str] = {}
        watch = CreditWatch(self.client, self.halt, self.flags.max_credits_each())
        collector = self._collector(watch)
        progress = Progress(worklist.source, len(worklist.items))
        self.sent = len(plan.to_collect) + len(plan.decided)
        await progress.start()
        collecting = asyncio.create_task(collector.run())
        try:
            async with self._webhook(collector) as webhook_url:
                context = StartContext(
                    self.client, self.ledger, self.flags, webhook_url, self.options.force, self.halt
                )
                for key, enrichment_id in plan.to_collect.items():
                    collector.add(key, enrichment_id)
                absorb = _Absorb(collector, outcomes, notes, list(plan.elsewhere))
                await self._start_all(worklist, plan, door, context, absorb, progress)
                await self._follow(worklist, door, context, absorb)
                collector.close()
                await self._wait(collector, collecting, progress, absorb)
        finally:
            collector.close()
            if not collecting.done():
                collecting.cancel()
        await watch.settle()
        self._collected(collector, outcomes, notes, summary)
        await self._remember(outcomes, plan)
        return outcomes

    async def _start_all(
        self,
        worklist: Worklist,
        plan: Plan,
        door: FrontDoor,
        context: StartContext,
        absorb: _Absorb,
        progress: Progress | None = None,
    ) -> None:
        """Start the plan's items batch by batch; stop starting when the run is halted."""
        total = len(worklist.items)
        batches = _chunks(plan.to_start, door.batch_size)
        for number, batch in enumerate(batches, start=1):
            if self.halt.reason:
                answers = [not_started(key, self.halt.reason) for key in batch]
            else:
                name = f"{number}/{len(batches)}"
                answers = await self._start_batch(door, batch, worklist, context, plan, name)
            self.started += absorb(answers)
            self.sent += sum(answer.sent for answer in answers)
            self.batches.append(_batch_row(len(self.batches) + 1, answers))
            if progress is not None:
                event = ProgressEvent("start", self.sent, absorb.finished(), total)
                await progress.update(event)

    async def _follow(
        self, worklist: Worklist, door: FrontDoor, context: StartContext, absorb: _Absorb
    ) -> None:
        """Follow the items another live run is starting (never sent twice): read their
        records until its answer is there (then collect or report it), or start them if it
        ended without starting them; report what is still pending after the collect timeout."""
        deadline = time.monotonic() + self.options.collect_timeout_seconds
        if absorb.waiting:
            run_log(
                logging.INFO,
                "lemlist: %d items are being started by another run right now: waiting for its "
                "answers (never sent twice)",
                len(absorb.waiting),
            )
        while absorb.waiting and time.monotonic() < deadline and not self.halt.reason:
            await asyncio.sleep(_FOLLOW_SECONDS)
            keys, absorb.waiting = absorb.waiting, []
            recalls = await door.recall(self.ledger, keys)
            settled = make_plan(keys, recalls, self.flags, force=False, door=door.name)
            for key, enrichment_id in settled.to_collect.items():
                absorb.collector.add(key, enrichment_id)
                absorb.notes[key] = ELSEWHERE_NOTE
            absorb.outcomes.update(settled.decided)
            absorb.waiting += settled.elsewhere
            await self._start_all(worklist, settled, door, context, absorb)
        reason = self.halt.reason or (
            "not started: another run was starting it and had not recorded lemlist's answer "
            f"after {self.options.collect_timeout_seconds:g} s; re-run to collect it"
        )
        for key in absorb.waiting:
            absorb.outcomes[key] = Outcome(status="not_started", error=reason)

    async def _start_batch(
        self,
        door: FrontDoor,
        batch: list[str],
        worklist: Worklist,
        context: StartContext,
        plan: Plan,
        name: str,
    ) -> list[StartAnswer]:
        try:
            return await door.start(batch, worklist, context, plan, name)
        except Exception as exc:  # the task failed as a whole: report, never lose an item
            error = f"the start task failed: {type(exc).__name__}: {exc}"
            return [
                StartAnswer(key, outcome=Outcome(status="failed", error=error)) for key in batch
            ]

    async def _wait(
        self,
        collector: ResultCollector,
        collecting: asyncio.Task[None],
        progress: Progress,
        absorb: _Absorb,
    ) -> None:
        total = progress.total
        while not collecting.done():
            await asyncio.wait({collecting}, timeout=2.0)
            if self.client.refused is not None:
                collector.abandon(f"the API key was refused ({self.client.refused.message})")
            event = ProgressEvent("collect", self.sent, absorb.finished(), total)
            await progress.update(event)
        await collecting
        done = ProgressEvent("done", self.sent, absorb.finished(), total)
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

    def _collected(
        self,
        collector: ResultCollector,
        outcomes: dict[str, Outcome],
        notes: dict[str, str],
        summary: PipelineSummary,
    ) -> None:
        for key, collected in collector.results.items():
            outcomes[key] = outcome_of(collected, self.flags).with_note(notes.get(key))
        for key in notes.keys() - collector.results.keys():
            if key in outcomes:
                outcomes[key] = outcomes[key].with_note(notes[key])
        stats = collector.stats
        summary.polls = stats.polls
        summary.webhook_results = stats.results_from_webhook
        summary.webhook_confirmations = stats.webhook_confirmations

    async def _remember(self, outcomes: dict[str, Outcome], plan: Plan) -> None:
        """Record final results in the ledger; forget enrichments lemlist ended without charge
        because the credits ran out (a re-run after a top-up starts them again)."""
        out_of_credits = isinstance(self.halt.error, LemlistOutOfCreditsError)
        final, forget = {}, []
        for key, outcome in outcomes.items():
            if not outcome.enrichment_id or outcome.status not in FINAL_STATUSES:
                continue
            if out_of_credits and outcome.status == "failed":
                forget.append(key)
                outcomes[key] = outcome.with_note("not charged: re-run after a top-up")
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
            to_start=len(plan.to_start),
            recalled_from_ledger=plan.from_earlier_runs,
            resent_after_interruption=len(plan.resend),
            max_credit_cost=plan.max_credit_cost,
        )

    def _log_plan(self, summary: PipelineSummary) -> None:
        for item in summary.rejected[:20]:
            run_log(
                logging.WARNING, "rejected line %d (%r): %s", item.line, item.value, item.reason
            )
        if summary.rejected_count > 20:
            run_log(logging.WARNING, "… and %d more rejected rows", summary.rejected_count - 20)
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
        outcomes: dict[str, Outcome],
        *,
        export: bool,
    ) -> None:
        """Fill the summary's counts and paths, write the exports, publish the artifacts."""
        summary.started = self.started
        summary.requests_made = self.client.requests_sent
        summary.duration_seconds = time.monotonic() - self.clock
        rows: list[dict[str, Any]] = []
        if export:
            rows = self._export(summary, worklist, outcomes)
        summary.stopped = summary.stopped or self.halt.reason
        await publish(summary, worklist.source, rows, self.batches)

    def _export(
        self, summary: PipelineSummary, worklist: Worklist, outcomes: dict[str, Outcome]
    ) -> list[dict[str, Any]]:
        columns = export_columns(worklist, self.flags)
        stem = output_stem(self.options.output_dir, self.options.output_name, worklist.source.slug)
        paths = write_exports(
            export_rows(worklist, outcomes, self.flags), columns, stem, self.options.formats
        )
        rejected = write_rejected(worklist, stem)
        summary.csv_path = _text(paths.get("csv"))
        summary.jsonl_path = _text(paths.get("jsonl"))
        summary.parquet_path = _text(paths.get("parquet"))
        summary.rejected_path = _text(rejected)
        rows = export_rows(worklist, outcomes, self.flags)
        shown = list(_take(rows, max(ROWS_IN_RESULT, TABLE_PAGE_ROWS * TABLE_MAX_PAGES) + 1))
        summary.counts = count_by_status(row_statuses(worklist, outcomes))
        summary.rows = shown if len(shown) <= ROWS_IN_RESULT else None
        return shown

    def _stopped_error(self, summary: PipelineSummary) -> LemlistError:
        error = self.halt.error
        assert error is not None
        where = (
            f"; every row is in {summary.csv_path or summary.jsonl_path}"
            if (summary.csv_path or summary.jsonl_path)
            else ""
        )
        return error.copy_with(
            f"{error.message} (the run stopped starting enrichments after {self.sent} of "
            f"{summary.selected} were sent, and collected what it had started{where})"
        )


class _Absorb:
    """Takes start answers into the run: enrichment ids to the collector, decided outcomes and
    notes to the run's maps, items another run holds to `waiting`."""

    def __init__(
        self,
        collector: ResultCollector,
        outcomes: dict[str, Outcome],
        notes: dict[str, str],
        waiting: list[str],
    ) -> None:
        self.collector = collector
        self.outcomes = outcomes
        self.notes = notes
        self.waiting = waiting

    def finished(self) -> int:
        """Items with a final answer so far (not counting those left unsent)."""
        unsent = sum(o.status == "not_started" for o in self.outcomes.values())
        return len(self.outcomes) - unsent + len(self.collector.results)

    def __call__(self, answers: list[StartAnswer]) -> int:
        """Take the answers in; returns how many enrichments they started."""
        started = 0
        for answer in answers:
            if answer.note:
                self.notes[answer.key] = answer.note
            if answer.enrichment_id:
                started += 1
                self.collector.add(answer.key, answer.enrichment_id, started_at=answer.started_at)
            elif answer.elsewhere:
                self.waiting.append(answer.key)
            elif answer.outcome is not None:
                self.outcomes[answer.key] = answer.outcome
        return started


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _batch_row(number: int, answers: list[StartAnswer]) -> dict[str, Any]:
    statuses = [a.outcome.status for a in answers if a.outcome is not None and not a.enrichment_id]
    return {
        "batch": number,
        "items": len(answers),
        "started": sum(1 for a in answers if a.enrichment_id),
        "skipped": sum(1 for s in statuses if s.startswith("skipped")),
        "refused": sum(1 for s in statuses if s in ("failed", "rejected")),
        "not_started": sum(1 for s in statuses if s == "not_started"),
    }


def _take(rows: Any, count: int) -> Any:
    for index, row in enumerate(rows):
        if index >= count:
            return
        yield row


def _text(path: Any) -> str | None:
    return None if path is None else str(path)
