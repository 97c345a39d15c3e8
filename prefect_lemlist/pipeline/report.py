"""What people see of a run: progress, the summary, logs and artifacts in the Prefect UI.

Everything goes through the run logger (so the flow run's logs tell the story) and into artifacts
whose keys carry the input's name, so the Artifacts page groups each campaign or file's history.
A process-local listener (the CLI's progress bar) can follow the same progress events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from pydantic import BaseModel, Field

from prefect_lemlist.pipeline.export import table_columns
from prefect_lemlist.pipeline.worklist import RejectedInput, Source

TABLE_PAGE_ROWS = 500
TABLE_MAX_PAGES = 2
ROWS_IN_RESULT = 5_000
"""Above this many rows, the flow's result carries the export's path, not the rows."""
REJECTED_IN_SUMMARY = 100
_ARTIFACT_UPDATE_SECONDS = 5.0
LOG_KIND = "lemlist_kind"
"""The log-record attribute that marks prefect-lemlist's own run-log lines (and their kind:
`info`, `progress`, `summary`), so a console can tell them from the engine's."""


def run_log(level: int, message: str, *args: object, kind: str = "info") -> None:
    """Log through the flow run's logger (the run's logs in the Prefect UI), marked as ours."""
    get_run_logger().log(level, message, *args, extra={LOG_KIND: kind})


class PipelineSummary(BaseModel):
    """What a run did: the flows' return value, logged and shown as a markdown artifact.

    Attributes:
        source: where the rows came from.
        workflows: the requested workflows.
        dry_run: nothing was started.
        input_rows: rows read (every one is in the export).
        selected: distinct leads or people to enrich.
        not_needed: campaign leads that already had the data.
        left_out: campaign leads a trial (`limit`) left out of the run and of the export.
        rejected: the first rejected rows (all of them: `rejected_path`).
        rejected_count: how many rows were rejected.
        rejected_reasons: rejected rows per reason (most frequent first).
        hints: what would let rejected rows be enriched (e.g. a column to add).
        to_start: enrichments to start (dry run: that would be started).
        started: enrichments lemlist accepted in this run.
        recalled_from_ledger: items answered or collected thanks to an earlier run.
        resent_after_interruption: leads whose earlier start was interrupted, sent once more.
        refreshed: items whose earlier result was older than `refresh_after_days`: enriched
            (and paid) again.
        max_credit_cost: the most `to_start` can cost (upper-bound prices).
        credits_before: the team's credits before (`GET /team/credits`).
        credits_after: the team's credits after.
        requests_made: API requests of this run (every route, retries included).
        polls: `GET /enrich/{id}` requests.
        webhook_results: results taken from webhooks.
        webhook_confirmations: webhook results confirmed by a poll.
        duration_seconds: wall time of the run.
        counts: rows per status.
        stopped: why the run stopped starting enrichments early, or None.
        csv_path, jsonl_path, parquet_path, rejected_path: absolute export paths.
        table: the database table the rows were merged into (URL without password).
        table_inserted, table_updated: rows the merge inserted and updated.
        rows: the exported rows when there are at most 5,000 (else None: read the export).
    """

    source: str
    workflows: list[str]
    dry_run: bool
    input_rows: int = 0
    selected: int
    not_needed: int = 0
    left_out: int = 0
    rejected: list[RejectedInput] = Field(default_factory=list)
    rejected_count: int = 0
    rejected_reasons: dict[str, int] = Field(default_factory=dict)
    hints: list[str] = Field(default_factory=list)
    to_start: int = 0
    started: int = 0
    recalled_from_ledger: int = 0
    resent_after_interruption: int = 0
    refreshed: int = 0
    max_credit_cost: int = 0
    credits_before: float | None = None
    credits_after: float | None = None
    requests_made: int = 0
    polls: int = 0
    webhook_results: int = 0
    webhook_confirmations: int = 0
    duration_seconds: float = 0.0
    counts: dict[str, int] = Field(default_factory=dict)
    stopped: str | None = None
    csv_path: str | None = None
    jsonl_path: str | None = None
    parquet_path: str | None = None
    rejected_path: str | None = None
    table: str | None = None
    table_inserted: int = 0
    table_updated: int = 0
    rows: list[dict[str, Any]] | None = None

    @property
    def credits_spent(self) -> float | None:
        """Credits the team's balance went down by during the run (None when unknown)."""
        if self.credits_before is None or self.credits_after is None:
            return None
        return self.credits_before - self.credits_after

    @property
    def row_breakdown(self) -> dict[str, int]:
        """The rows by what the run made of them (the parts add up to `total_rows`): to enrich
        (distinct leads or people), not needing it, rejected, then the other rows: repeats of
        an earlier row (enriched once), rows a trial did not start, unknown emails."""
        parts = {
            "to enrich": self.selected,
            "not needing it": self.not_needed,
            "rejected": self.rejected_count,
        }
        rest = max(self.input_rows - self.selected - self.rejected_count, 0)
        for status, label in _OTHER_ROWS:
            parts[label] = count = min(self.counts.get(status, 0), rest)
            rest -= count
        parts["repeats" if self.counts else "repeats or not started or not in lemlist"] = rest
        parts["left out by the trial limit"] = self.left_out
        return parts

    @property
    def total_rows(self) -> int:
        """Every row the run looked at: the input's rows, and a campaign's leads that did not
        need enriching or that a trial left out (neither is in the export)."""
        return max(self.input_rows, self.selected + self.rejected_count) + (
            self.not_needed + self.left_out
        )

    @property
    def requests_per_lead(self) -> float:
        """API requests per selected lead or person."""
        return self.requests_made / self.selected if self.selected else 0.0


def render_summary(summary: PipelineSummary) -> str:
    """The run's summary as markdown (the artifact, the log and the CLI's last lines)."""
    what = "would start" if summary.dry_run else "started"
    lines = [
        f"# lemlist enrichment: {summary.source}",
        "",
        f"- workflows: {', '.join(summary.workflows)}" + (" (dry run)" if summary.dry_run else ""),
        f"- rows: {summary.total_rows} ({_breakdown_text(summary)})",
        f"- {what}: {summary.started if not summary.dry_run else summary.to_start}; "
        f"from earlier runs (no new charge): {summary.recalled_from_ledger}"
        + (
            f"; re-sent after an interruption: {summary.resent_after_interruption}"
            if summary.resent_after_interruption
            else ""
        ),
        f"- credits: at most {summary.max_credit_cost} (upper-bound prices)"
        + _credits_text(summary),
        f"- API requests: {summary.requests_made} ({summary.requests_per_lead:.2f} per item; "
        f"{summary.polls} polls, {summary.webhook_results} results by webhook"
        + (
            f", {summary.webhook_confirmations} confirmed by a poll"
            if summary.webhook_confirmations
            else ""
        )
        + ")",
    ]
    if not summary.dry_run:
        lines.append(f"- duration: {summary.duration_seconds:.1f} s")
    if summary.stopped:
        lines.append(f"- stopped early: {summary.stopped}")
    paths = [p for p in (summary.csv_path, summary.jsonl_path, summary.parquet_path) if p]
    if paths:
        lines.append("- export: " + ", ".join(f"`{p}`" for p in paths))
    if summary.rejected_path:
        lines.append(f"- rejected rows: `{summary.rejected_path}`")
    if summary.table:
        lines.append(
            f"- database: {summary.table} ({summary.table_inserted} rows inserted, "
            f"{summary.table_updated} updated)"
        )
    counts = {status: n for status, n in summary.counts.items() if n}
    if counts:
        lines += ["", "| status | rows |", "| --- | ---: |"]
        lines += [f"| {status} | {count} |" for status, count in counts.items()]
    if summary.rejected_reasons:
        lines += ["", "Rejected inputs (rows: reason):", ""]
        reasons = list(summary.rejected_reasons.items())
        lines += [f"- {n}: {reason}" for reason, n in reasons[:20]]
        if len(reasons) > 20:
            rest = sum(n for _, n in reasons[20:])
            lines.append(f"- {rest}: other reasons (every rejected row: the rejected file)")
    lines += [f"- hint: {hint}" for hint in summary.hints]
    return "\n".join(lines)


_OTHER_ROWS = (
    ("not_started", "not started (trial limit)"),
    ("not_in_lemlist", "not in lemlist"),
    ("skipped_has_email", "skipped: had an email"),
    ("skipped_has_data", "skipped: had the data"),
)
_ALWAYS_SHOWN = ("to enrich", "not needing it", "rejected")


def _breakdown_text(summary: PipelineSummary) -> str:
    parts = summary.row_breakdown
    return ", ".join(
        f"{count} {label}" for label, count in parts.items() if count or label in _ALWAYS_SHOWN
    )


def _credits_text(summary: PipelineSummary) -> str:
    if summary.credits_before is None:
        return ""
    if summary.dry_run or summary.credits_after is None:
        return f"; {summary.credits_before:g} available"
    return (
        f"; spent {summary.credits_spent:g} (before {summary.credits_before:g}, "
        f"after {summary.credits_after:g})"
    )


# ------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run stands.

    Attributes:
        phase: `start` (starting enrichments), `collect` (waiting for results) or `done`.
        started: items whose start request was sent (or answered by an earlier run).
        finished: items with a final answer.
        total: items of the run.
    """

    phase: str
    started: int
    finished: int
    total: int


ProgressListener = Callable[[ProgressEvent], None]
_listeners: list[ProgressListener] = []


def add_progress_listener(listener: ProgressListener) -> None:
    """Follow every run's progress in this process (e.g. to draw a progress bar)."""
    _listeners.append(listener)


def remove_progress_listener(listener: ProgressListener) -> None:
    """Stop following."""
    if listener in _listeners:
        _listeners.remove(listener)


class Progress:
    """A run's progress: log lines through the run logger, a progress artifact, listeners.

    Args:
        source: the run's input (names the artifact).
        total: items to enrich.
    """

    def __init__(self, source: Source, total: int) -> None:
        self.source = source
        self.total = total
        self._artifact: UUID | None = None
        self._last_update = 0.0
        self._last_logged: tuple[str, int] | None = None
        self.batches: list[dict[str, Any]] = []

    async def start(self) -> None:
        """Create the progress artifact."""
        self._artifact = await acreate_progress_artifact(
            0.0,
            key=f"lemlist-progress-{self.source.slug}",
            description=f"lemlist enrichment of {self.source.label}",
        )

    async def update(self, event: ProgressEvent, *, force: bool = False) -> None:
        """Report progress: a log line when the phase's count changed, the artifact at most
        every 5 s (and when `force`), and every listener."""
        for listener in list(_listeners):
            listener(event)
        count = event.started if event.phase == "start" else event.finished
        if (event.phase, count) != self._last_logged:
            self._last_logged = (event.phase, count)
            run_log(logging.INFO, _progress_line(event), kind="progress")
        now = time.monotonic()
        if self._artifact is not None and (
            force or now - self._last_update >= _ARTIFACT_UPDATE_SECONDS
        ):
            self._last_update = now
            total = max(event.total, 1)
            percent = 100.0 * (event.started + event.finished) / (2 * total)
            await aupdate_progress_artifact(
                self._artifact,
                min(percent, 100.0),
                description=(
                    f"{self.source.label}: started {event.started}/{event.total}, "
                    f"results {event.finished}/{event.total}"
                ),
            )


def _progress_line(event: ProgressEvent) -> str:
    if event.phase == "start":
        return f"lemlist: started {event.started} of {event.total}"
    if event.phase == "collect":
        return f"lemlist: results {event.finished} of {event.total}"
    unsent = event.total - event.started
    line = f"lemlist: done: {event.finished} of {event.total} with a final answer"
    return line + (f"; {unsent} not sent" if unsent > 0 else "")


async def publish(
    summary: PipelineSummary,
    source: Source,
    rows: list[dict[str, Any]],
    batches: list[dict[str, Any]],
) -> None:
    """Log the summary and publish the artifacts (summary, result table, batches table)."""
    text = render_summary(summary)
    run_log(logging.INFO, text, kind="summary")
    await acreate_markdown_artifact(
        text, key=f"lemlist-summary-{source.slug}", description=f"lemlist: {source.label}"
    )
    order = table_columns(list(rows[0])) if rows else []
    shown = [
        {column: row.get(column) for column in order}
        for row in rows[: TABLE_PAGE_ROWS * TABLE_MAX_PAGES]
    ]
    pages = max(1, -(-len(shown) // TABLE_PAGE_ROWS))
    for page in range(pages):
        suffix = "" if page == 0 else f"-page-{page + 1}"
        part = shown[page * TABLE_PAGE_ROWS : (page + 1) * TABLE_PAGE_ROWS]
        more = (
            f" (first {len(shown)} of {summary.input_rows}; all: the export)"
            if len(shown) < summary.input_rows
            else ""
        )
        await acreate_table_artifact(
            part,
            key=f"lemlist-results-{source.slug}{suffix}",
            description=f"lemlist results for {source.label}, page {page + 1} of {pages}{more}",
        )
    if batches:
        await acreate_table_artifact(
            batches,
            key=f"lemlist-batches-{source.slug}",
            description=f"lemlist start requests for {source.label}, one row per batch",
        )
