"""The enrich -> collect -> export chain shared by the `enrich_campaign` and `enrich_leads` flows.

Work is batched: one `enrich-batch` task run per `batch_size` leads (plain coroutines inside,
sharing the key's rate budget), one collector polling for every pending enrichment in the
background while later batches start, and one export at the end. So a 10,000-lead run makes
about 100 task runs, not 10,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from prefect import get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, Field, model_validator

from prefect_lemlist.collector import ResultCollector
from prefect_lemlist.costs import max_credits, max_credits_per_lead
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.enrichment import start_enrichment
from prefect_lemlist.exceptions import LemlistError
from prefect_lemlist.export import LeadOutcome, count_by_status, write_exports
from prefect_lemlist.ledger import EnrichmentLedger, LedgerEntry
from prefect_lemlist.models import EnrichLeadResult, EnrichmentFlags
from prefect_lemlist.selection import LeadSelection, RejectedInput
from prefect_lemlist.webhook_server import WebhookReceiver

TABLE_PAGE_ROWS = 500
BATCH_CONCURRENCY = 20


class InsufficientCreditsError(LemlistError):
    """The run could cost more credits than are available (or than `max_credits` allows)."""


class WebhookSettings(BaseModel):
    """Where the webhook receiver listens and which URL lemlist is given."""

    host: str = Field(
        default="127.0.0.1",
        description="Interface the receiver binds to (loopback unless you expose it on purpose).",
    )
    port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one.")
    public_url: str | None = Field(
        default=None,
        description="URL at which lemlist can reach the receiver (e.g. a tunnel), without path.",
    )
    grace_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Poll an enrichment whose webhook has not arrived this long after its start.",
    )


class EnrichmentOptions(BaseModel):
    """What to enrich and how: the flows' main parameter, rendered as a form by the Prefect UI."""

    find_email: bool = Field(default=True, description="Find an email (5 credits if found).")
    verify_email: bool = Field(default=False, description="Verify existing emails (1 credit).")
    linkedin_enrichment: bool = Field(
        default=False, description="Enrich LinkedIn profiles (1 credit)."
    )
    find_phone: bool = Field(default=False, description="Find a phone (20 credits if found).")
    force: bool = Field(
        default=False,
        description="Re-enrich even if already enriched or started by an earlier run (costs).",
    )
    dry_run: bool = Field(
        default=False, description="Only report what would be enriched and the maximum cost."
    )
    max_credits: float | None = Field(
        default=None, ge=0, description="Refuse to start if the run could cost more than this."
    )
    batch_size: int = Field(default=100, ge=1, le=1000, description="Leads per enrich task run.")
    collection: Literal["poll", "webhook"] = Field(
        default="poll", description="Collect results by polling, or by webhook with polling."
    )
    collect_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Report a lead as timed_out after this long."
    )
    first_poll_seconds: float = Field(
        default=10.0, gt=0, description="First guess of an enrichment's duration (adapts)."
    )
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    output_dir: str = Field(default="lemlist-output", description="Directory for the exports.")
    output_name: str | None = Field(
        default=None, description="Export file name without extension (default: a timestamp)."
    )

    @model_validator(mode="after")
    def _needs_a_flag(self) -> EnrichmentOptions:
        self.flags.require_any()
        return self

    @property
    def flags(self) -> EnrichmentFlags:
        """The requested workflows."""
        return EnrichmentFlags(
            find_email=self.find_email,
            verify_email=self.verify_email,
            linkedin_enrichment=self.linkedin_enrichment,
            find_phone=self.find_phone,
        )


class PipelineSummary(BaseModel):
    """What a run did: returned by the flows and shown as a markdown artifact."""

    source: str
    workflows: list[str]
    dry_run: bool
    selected: int
    not_needed: int = 0
    rejected: list[RejectedInput] = []
    to_start: int = 0
    recalled_from_ledger: int = 0
    max_credit_cost: int = 0
    counts: dict[str, int] = {}
    credits_before: float | None = None
    credits_after: float | None = None
    requests_made: int = 0
    polls: int = 0
    webhook_results: int = 0
    duration_seconds: float = 0.0
    csv_path: str | None = None
    jsonl_path: str | None = None

    @property
    def requests_per_lead(self) -> float:
        """API requests per selected lead (selection and credit checks included)."""
        return self.requests_made / self.selected if self.selected else 0.0


class StartOutcome(BaseModel):
    """How starting one lead's enrichment went, inside a batch."""

    lead_id: str
    result: EnrichLeadResult | None = None
    recalled: bool = False
    started_at: float | None = None
    error: str | None = None


async def resolve_credentials(block_name: str | None) -> LemlistCredentials:
    """The credentials to use: a saved block by name, else `LEMLIST_API_KEY` from the environment.

    `LEMLIST_BASE_URL` (optional) overrides the base URL of environment credentials.

    Raises:
        ValueError: the block does not exist, or no block name and no `LEMLIST_API_KEY`.
    """
    if block_name:
        try:
            return await LemlistCredentials.aload(block_name)
        except (ValueError, ObjectNotFound):
            raise ValueError(
                f"No LemlistCredentials block named {block_name!r} exists on this Prefect API. "
                "Save one with `python blocks/save_credentials.py NAME` (reads LEMLIST_API_KEY)."
            ) from None
    api_key = os.environ.get("LEMLIST_API_KEY", "").strip()
    if not api_key:
        raise ValueError(
            "No lemlist credentials: pass credentials_block (a saved LemlistCredentials block) "
            "or set LEMLIST_API_KEY."
        )
    base_url = os.environ.get("LEMLIST_BASE_URL", "").strip()
    if base_url:
        return LemlistCredentials(api_key=api_key, base_url=base_url)
    return LemlistCredentials(api_key=api_key)


@task(name="enrich-batch", cache_policy=NO_CACHE)
async def enrich_batch(
    lead_ids: list[str],
    credentials: LemlistCredentials,
    flags: EnrichmentFlags,
    webhook_url: str | None = None,
    force: bool = False,
) -> list[StartOutcome]:
    """Start the enrichment of a batch of leads, each through the ledger (never twice).

    Per-lead failures are returned, not raised, so one bad lead never hides the others.

    Returns:
        One `StartOutcome` per lead, in input order.
    """
    ledger = EnrichmentLedger(credentials.fingerprint(), flags)
    semaphore = asyncio.Semaphore(BATCH_CONCURRENCY)
    async with credentials.get_client() as client:

        async def start_one(lead_id: str) -> StartOutcome:
            async with semaphore:
                try:
                    result, recalled = await start_enrichment(
                        client, ledger, lead_id, flags, webhook_url=webhook_url, force=force
                    )
                except (LemlistError, ValueError) as exc:
                    return StartOutcome(lead_id=lead_id, error=str(exc))
                return StartOutcome(
                    lead_id=lead_id, result=result, recalled=recalled, started_at=time.monotonic()
                )

        return list(await asyncio.gather(*(start_one(lead_id) for lead_id in lead_ids)))


def _start_outcome_to_final(start: StartOutcome) -> LeadOutcome | None:
    """The final outcome of a lead decided at start time (skip or failure), else None."""
    if start.error is not None:
        return LeadOutcome(lead_id=start.lead_id, status="failed", error=start.error)
    result = start.result
    if result is not None and result.skipped:
        status = (
            "skipped_already_enriched"
            if result.skip_reason == "ALREADY_ENRICHED"
            else "skipped_in_progress"
        )
        return LeadOutcome(lead_id=start.lead_id, status=status)
    return None


class _Progress:
    """Progress for people: a console line (a bar on a terminal) and a Prefect progress artifact."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.artifact_id = None
        self.tty = sys.stderr.isatty()
        self._last_artifact = 0.0

    async def start(self) -> None:
        self.artifact_id = await acreate_progress_artifact(
            0.0, key="lemlist-enrichment-progress", description=self.label
        )

    async def update(self, started: int, finished: int, *, force: bool = False) -> None:
        # Half the work is starting enrichments, half is collecting their results.
        percent = 100.0 * (started + finished) / (2 * self.total)
        line = (
            f"{self.label}: {started}/{self.total} started, "
            f"{finished}/{self.total} finished ({percent:5.1f}%)"
        )
        if self.tty:
            filled = int(percent / 5)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (20 - filled)}] {line}")
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)
        now = time.monotonic()
        if self.artifact_id is not None and (force or now - self._last_artifact >= 5.0):
            self._last_artifact = now
            await aupdate_progress_artifact(self.artifact_id, percent)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


@contextlib.asynccontextmanager
async def _maybe_webhook(
    options: EnrichmentOptions, collector: ResultCollector
) -> AsyncIterator[str | None]:
    """In webhook mode, run the receiver and yield the URL to give lemlist; else yield None."""
    if options.collection != "webhook":
        yield None
        return
    loop = asyncio.get_running_loop()

    async def deliver(enrichment):  # runs on the flow's loop, where the collector lives
        return collector.deliver(enrichment)

    def on_result(enrichment):
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(deliver(enrichment), loop))

    receiver = WebhookReceiver(
        on_result,
        host=options.webhook.host,
        port=options.webhook.port,
        public_url=options.webhook.public_url,
    )
    with receiver:
        yield receiver.webhook_url


async def run_pipeline(
    credentials: LemlistCredentials,
    selection: LeadSelection,
    options: EnrichmentOptions,
    *,
    source: str,
    requests_before: int = 0,
    ledger_entries: Mapping[str, LedgerEntry] | None = None,
) -> PipelineSummary:
    """Enrich the selected leads, collect every result, export them and report.

    Args:
        credentials: the lemlist credentials.
        selection: the lead ids to enrich and the rejected inputs.
        options: the run's options.
        source: a label for the report ("campaign cam_…", "CSV leads.csv", …).
        requests_before: requests already spent on selection by the caller (for the report).
        ledger_entries: the ledger entries of the selected leads when the caller has already
            read them (they are read here otherwise).

    Returns:
        The run's summary (also published as a markdown artifact).

    Raises:
        InsufficientCreditsError: the maximum cost exceeds the credits or `max_credits`
            (nothing was spent).
        LemlistError: lemlist could not be reached for the credit check.
        OSError: the export could not be written (results are in the table artifact).
    """
    logger = get_run_logger()
    flags = options.flags
    clock = time.monotonic()
    lead_ids = selection.lead_ids
    summary = PipelineSummary(
        source=source,
        workflows=flags.workflows,
        dry_run=options.dry_run,
        selected=len(lead_ids),
        not_needed=selection.not_needed,
        rejected=selection.rejected,
    )
    for rejected in selection.rejected:
        logger.warning(
            "skipped input at line %d (%r): %s", rejected.line, rejected.value, rejected.reason
        )

    recalled: dict[str, str] = {}
    if not options.force:
        if ledger_entries is None:
            ledger = EnrichmentLedger(credentials.fingerprint(), flags)
            ledger_entries = await ledger.read_many(lead_ids)
        for lead_id in lead_ids:
            entry = ledger_entries.get(lead_id)
            if entry is not None and entry.state == "started" and entry.result is not None:
                if entry.result.enrichment_id:
                    recalled[lead_id] = entry.result.enrichment_id
    to_start = [lead_id for lead_id in lead_ids if lead_id not in recalled]
    summary.to_start = len(to_start)
    summary.recalled_from_ledger = len(recalled)
    summary.max_credit_cost = max_credits(flags, len(to_start))

    async with credentials.get_client() as client:
        requests_at_start = client.budget.requests_granted - requests_before
        credits = await client.get_credits()
        summary.credits_before = credits.credits
        logger.info(
            "%d leads selected (%d already started by an earlier run), workflows %s, "
            "at most %d credits (%d per lead); %s credits available",
            len(lead_ids),
            len(recalled),
            flags.label(),
            summary.max_credit_cost,
            max_credits_per_lead(flags),
            f"{credits.credits:g}",
        )
        if options.dry_run:
            summary.requests_made = client.budget.requests_granted - requests_at_start
            summary.duration_seconds = time.monotonic() - clock
            await _publish_summary(summary)
            return summary
        allowed = credits.credits
        if options.max_credits is not None:
            allowed = min(allowed, options.max_credits)
        if summary.max_credit_cost > allowed:
            raise InsufficientCreditsError(
                f"This run could cost up to {summary.max_credit_cost} credits "
                f"({len(to_start)} leads x {max_credits_per_lead(flags)} for {flags.label()}), "
                f"more than the {allowed:g} allowed ({credits.credits:g} available"
                + (
                    f", max_credits={options.max_credits:g}"
                    if options.max_credits is not None
                    else ""
                )
                + "). Nothing was spent: lower the number of leads or raise max_credits."
            )

        collector = ResultCollector(
            client,
            timeout_seconds=options.collect_timeout_seconds,
            first_poll_seconds=options.first_poll_seconds,
            webhook_grace_seconds=(
                options.webhook.grace_seconds if options.collection == "webhook" else None
            ),
        )
        progress = _Progress(len(lead_ids), f"lemlist {flags.label()}")
        await progress.start()
        final: dict[str, LeadOutcome] = {}
        collector_task = asyncio.create_task(collector.run())
        try:
            async with _maybe_webhook(options, collector) as webhook_url:
                for lead_id, enrichment_id in recalled.items():
                    collector.add(lead_id, enrichment_id)
                started = len(recalled)
                for batch in _chunks(to_start, options.batch_size):
                    try:
                        outcomes = await enrich_batch(
                            batch, credentials, flags, webhook_url=webhook_url, force=options.force
                        )
                    except Exception as exc:  # the task failed as a whole: report, never lose
                        outcomes = [
                            StartOutcome(lead_id=lead_id, error=f"enrich batch failed: {exc}")
                            for lead_id in batch
                        ]
                    for start in outcomes:
                        decided = _start_outcome_to_final(start)
                        if decided is not None:
                            final[start.lead_id] = decided
                        elif start.result is not None and start.result.enrichment_id:
                            collector.add(
                                start.lead_id,
                                start.result.enrichment_id,
                                started_at=None if start.recalled else start.started_at,
                            )
                    started += len(batch)
                    await progress.update(started, len(final) + len(collector.outcomes))
                collector.close()
                while not collector_task.done():
                    await asyncio.wait({collector_task}, timeout=5.0)
                    await progress.update(started, len(final) + len(collector.outcomes))
                await collector_task
        finally:
            collector.close()
            if not collector_task.done():
                collector_task.cancel()
            progress.done()
        await progress.update(len(lead_ids), len(lead_ids), force=True)
        final.update(collector.outcomes)
        summary.polls = collector.stats.polls
        summary.webhook_results = collector.stats.results_from_webhook
        try:
            summary.credits_after = (await client.get_credits()).credits
        except LemlistError as exc:
            logger.warning("could not read the credits after the run: %s", exc)
        summary.requests_made = client.budget.requests_granted - requests_at_start

    ordered = [
        final.get(lead_id)
        or LeadOutcome(lead_id=lead_id, status="failed", error="no result was recorded (bug)")
        for lead_id in lead_ids
    ]
    summary.counts = count_by_status(ordered)
    summary.duration_seconds = time.monotonic() - clock
    name = options.output_name or datetime.now(timezone.utc).strftime("enrichment-%Y%m%dT%H%M%SZ")
    csv_path, jsonl_path = write_exports(ordered, Path(options.output_dir) / name)
    summary.csv_path, summary.jsonl_path = str(csv_path), str(jsonl_path)
    await _publish_results(ordered)
    await _publish_summary(summary)
    return summary


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def _publish_results(outcomes: list[LeadOutcome]) -> None:
    """One table artifact per page of results (keeps each API call small)."""
    pages = max(1, -(-len(outcomes) // TABLE_PAGE_ROWS))
    for page in range(pages):
        rows = [o.row() for o in outcomes[page * TABLE_PAGE_ROWS : (page + 1) * TABLE_PAGE_ROWS]]
        await acreate_table_artifact(
            rows,
            key=f"lemlist-results-page-{page + 1}",
            description=f"lemlist enrichment results, page {page + 1} of {pages}",
        )


def render_summary(summary: PipelineSummary) -> str:
    """The run's summary as markdown (used for the artifact and the console)."""
    lines = [
        f"# lemlist enrichment: {summary.source}",
        "",
        f"- workflows: {', '.join(summary.workflows)}" + (" (dry run)" if summary.dry_run else ""),
        f"- leads selected: {summary.selected} (not needing enrichment: {summary.not_needed}, "
        f"rejected inputs: {len(summary.rejected)})",
        f"- to start: {summary.to_start}, already started by an earlier run: "
        f"{summary.recalled_from_ledger}",
        f"- maximum credit cost: {summary.max_credit_cost}",
        f"- credits before: {_fmt(summary.credits_before)}, after: {_fmt(summary.credits_after)}",
        f"- API requests: {summary.requests_made} ({summary.requests_per_lead:.2f} per lead; "
        f"{summary.polls} polls, {summary.webhook_results} results by webhook)",
        f"- duration: {summary.duration_seconds:.1f} s",
    ]
    if summary.csv_path:
        lines.append(f"- export: `{summary.csv_path}`, `{summary.jsonl_path}`")
    if summary.counts:
        lines += ["", "| status | leads |", "| --- | ---: |"]
        lines += [f"| {status} | {count} |" for status, count in summary.counts.items()]
    if summary.rejected:
        lines += ["", "Rejected inputs (line: value, reason):", ""]
        lines += [f"- {r.line}: `{r.value}` {r.reason}" for r in summary.rejected[:50]]
        if len(summary.rejected) > 50:
            lines.append(f"- … and {len(summary.rejected) - 50} more")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


async def _publish_summary(summary: PipelineSummary) -> None:
    await acreate_markdown_artifact(
        render_summary(summary),
        key="lemlist-enrichment-summary",
        description="lemlist enrichment summary",
    )
