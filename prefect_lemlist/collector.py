"""`ResultCollector`: gathers the results of many started enrichments with as few polls as possible.

One collector serves every pending enrichment of a run. Each enrichment gets a first poll at the
expected completion time, then polls with growing gaps (capped), until it is finished or its
deadline passes (`timed_out`). Results may also be handed in by a webhook receiver (`deliver`),
in which case the scheduled poll is only a fallback after a grace period.

The expected completion time adapts: every first poll that finds the enrichment still running
lengthens it by 5 %, every one that finds it finished shortens it by 0.5 %. That settles where
about 9 % of first polls miss (near the 91st percentile of enrichment durations), so an average
lead costs about 1.1 polls while lemlist's rate budget, not latency, bounds the run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

from prefect_lemlist.client import LemlistClient
from prefect_lemlist.exceptions import LemlistError, LemlistNotFoundError, LemlistResponseError
from prefect_lemlist.export import LeadOutcome
from prefect_lemlist.models import Enrichment

logger = logging.getLogger("prefect_lemlist.collector")

_MISS_FACTOR = 1.05
_HIT_FACTOR = 0.995
_GENERATION_SPAN = 1.5  # how far one cohort of first polls may move the estimate
_MIN_FIRST_POLL = 1.0
_MAX_FIRST_POLL = 120.0


@dataclass
class _Pending:
    lead_id: str
    enrichment_id: str
    deadline: float
    polls: int = 0
    next_gap: float = 0.0
    polling: bool = False
    first_delay: float | None = None  # the expected duration its first poll was scheduled with


@dataclass
class CollectorStats:
    """Counters of one collector: polls sent, results by source, first-poll accuracy."""

    polls: int = 0
    results_from_polls: int = 0
    results_from_webhook: int = 0
    webhook_duplicates: int = 0
    webhook_unknown: int = 0
    first_poll_hits: int = 0
    first_poll_misses: int = 0
    timed_out: int = 0
    failed: int = 0
    first_poll_delay: float = 0.0
    outcome_sources: dict[str, str] = field(default_factory=dict)


class ResultCollector:
    """Collects finished enrichments by scheduled polls and, optionally, webhook deliveries.

    Use inside one event loop: `add()` enrichments as they start, run `run()` as a background
    task, call `close()` when nothing more will be added, then await the `run()` task.

    Args:
        client: an open `LemlistClient` (shares the key's rate budget with everything else).
        timeout_seconds: per-enrichment deadline, counted from its start; then `timed_out`.
        first_poll_seconds: initial guess of how long an enrichment takes.
        max_poll_interval_seconds: the longest gap between two polls of one enrichment.
        webhook_grace_seconds: when set (webhook mode), the first poll of a new enrichment waits
            this long for the webhook and the adaptive first-poll time is not used.
        concurrency: polls in flight at once.
    """

    def __init__(
        self,
        client: LemlistClient,
        *,
        timeout_seconds: float = 600.0,
        first_poll_seconds: float = 10.0,
        max_poll_interval_seconds: float = 30.0,
        webhook_grace_seconds: float | None = None,
        concurrency: int = 10,
    ) -> None:
        self._client = client
        self.timeout_seconds = timeout_seconds
        self.max_poll_interval_seconds = max_poll_interval_seconds
        self.webhook_grace_seconds = webhook_grace_seconds
        self.stats = CollectorStats(first_poll_delay=first_poll_seconds)
        self.outcomes: dict[str, LeadOutcome] = {}
        self._pending: dict[str, _Pending] = {}
        self._resolved_ids: set[str] = set()
        self._early: dict[str, Enrichment] = {}
        self.max_early_results = 100_000
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closed = False
        self._semaphore = asyncio.Semaphore(concurrency)
        self._polls_in_flight: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Enrichments added and not yet resolved."""
        return len(self._pending)

    def add(self, lead_id: str, enrichment_id: str, *, started_at: float | None = None) -> None:
        """Start tracking an enrichment.

        Args:
            lead_id: its lead.
            enrichment_id: the `enr_…` id.
            started_at: `time.monotonic()` when lemlist accepted it; None when it was started by
                an earlier run (it is polled at once).
        """
        if enrichment_id in self._pending or lead_id in self.outcomes:
            return
        early = self._early.pop(enrichment_id, None)
        if early is not None:  # its webhook arrived before the batch that started it returned
            self.stats.results_from_webhook += 1
            self._resolved_ids.add(enrichment_id)
            self.outcomes[lead_id] = LeadOutcome.from_enrichment(lead_id, early)
            self.stats.outcome_sources[lead_id] = "webhook"
            self._wake.set()
            return
        now = time.monotonic()
        start = now if started_at is None else started_at
        item = _Pending(lead_id, enrichment_id, deadline=start + self.timeout_seconds)
        self._pending[enrichment_id] = item
        if started_at is None:
            due = now
        elif self.webhook_grace_seconds is not None:
            due = start + self.webhook_grace_seconds
        else:
            item.first_delay = self.stats.first_poll_delay
            due = start + item.first_delay
        self._schedule(enrichment_id, min(due, item.deadline))

    def deliver(self, enrichment: Enrichment) -> bool:
        """Hand in a result that arrived by webhook.

        A result for an id not added yet is kept (up to `max_early_results`) in case the batch
        that started it has not returned yet; `add()` then resolves it at once.

        Returns:
            True when it resolved a pending enrichment or was kept for one; False for
            duplicates (already resolved), in-progress notices and results beyond the buffer.
        """
        item = self._pending.get(enrichment.enrichment_id)
        if item is None:
            if enrichment.enrichment_id in self._resolved_ids:
                self.stats.webhook_duplicates += 1
                return False
            if enrichment.in_progress or enrichment.enrichment_id in self._early:
                return False
            if self._closed or len(self._early) >= self.max_early_results:
                self.stats.webhook_unknown += 1
                return False
            self._early[enrichment.enrichment_id] = enrichment
            return True
        if enrichment.in_progress:
            return False
        self._resolve(item, LeadOutcome.from_enrichment(item.lead_id, enrichment), "webhook")
        self.stats.results_from_webhook += 1
        return True

    def close(self) -> None:
        """No more enrichments will be added; `run()` returns once all are resolved."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """Poll until closed and every added enrichment is resolved."""
        try:
            while not (self._closed and not self._pending):
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, enrichment_id = heapq.heappop(self._heap)
                    item = self._pending.get(enrichment_id)
                    if item is not None and not item.polling:
                        item.polling = True
                        task = asyncio.create_task(self._poll(item))
                        self._polls_in_flight.add(task)
                        task.add_done_callback(self._polls_in_flight.discard)
                timeout = self._heap[0][0] - now if self._heap else None
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in list(self._polls_in_flight):
                task.cancel()

    def _schedule(self, enrichment_id: str, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), enrichment_id))
        self._wake.set()

    def _resolve(self, item: _Pending, outcome: LeadOutcome, source: str) -> None:
        self._pending.pop(item.enrichment_id, None)
        self._resolved_ids.add(item.enrichment_id)
        self.outcomes[item.lead_id] = outcome
        self.stats.outcome_sources[item.lead_id] = source
        self._wake.set()

    def _reschedule(self, item: _Pending, now: float, reason: str) -> None:
        """Poll again later, or give up at the deadline."""
        if now >= item.deadline:
            self.stats.timed_out += 1
            self._resolve(
                item,
                LeadOutcome(
                    lead_id=item.lead_id,
                    enrichment_id=item.enrichment_id,
                    status="timed_out",
                    error=f"{reason} after {self.timeout_seconds:g}s; collect it later by its "
                    "enrichment id",
                ),
                "timeout",
            )
            return
        if item.next_gap <= 0:
            item.next_gap = max(2.0, self.stats.first_poll_delay * 0.25)
        else:
            item.next_gap = min(item.next_gap * 1.5, self.max_poll_interval_seconds)
        gap = min(item.next_gap, self.max_poll_interval_seconds)
        self._schedule(item.enrichment_id, min(now + gap, item.deadline))

    def _learn_first_poll(self, item: _Pending, finished: bool) -> None:
        """Adapt the expected duration from one first poll.

        Each observation moves the estimate by a small factor, but never beyond 1.5 times (or
        below two thirds of) the delay *that poll* was scheduled with: at a high request rate,
        hundreds of first polls scheduled with the same old estimate land together, and
        compounding all their misses would send the estimate far past the durations observed.
        """
        if self.webhook_grace_seconds is not None or item.first_delay is None:
            return
        current = self.stats.first_poll_delay
        if finished:
            self.stats.first_poll_hits += 1
            delay = max(current * _HIT_FACTOR, min(current, item.first_delay / _GENERATION_SPAN))
        else:
            self.stats.first_poll_misses += 1
            delay = min(current * _MISS_FACTOR, max(current, item.first_delay * _GENERATION_SPAN))
        self.stats.first_poll_delay = min(max(delay, _MIN_FIRST_POLL), _MAX_FIRST_POLL)

    async def _poll(self, item: _Pending) -> None:
        try:
            async with self._semaphore:
                if item.enrichment_id not in self._pending:
                    return  # resolved by a webhook while waiting
                self.stats.polls += 1
                item.polls += 1
                first = item.polls == 1
                try:
                    enrichment = await self._client.get_enrichment(item.enrichment_id)
                except LemlistNotFoundError as exc:
                    self._fail(item, f"lemlist no longer knows this enrichment: {exc}")
                    return
                except LemlistError as exc:
                    # a GET is safe to repeat: unusable answers are retried like 5xx ones
                    if exc.retryable or isinstance(exc, LemlistResponseError):
                        self._reschedule(item, time.monotonic(), f"polling kept failing ({exc})")
                    else:
                        self._fail(item, f"polling failed: {exc}")
                    return
            if item.enrichment_id not in self._pending:
                return
            if first:
                self._learn_first_poll(item, not enrichment.in_progress)
            if enrichment.in_progress:
                self._reschedule(item, time.monotonic(), "still in progress")
            else:
                self.stats.results_from_polls += 1
                self._resolve(item, LeadOutcome.from_enrichment(item.lead_id, enrichment), "poll")
        except Exception as exc:  # a bug must not lose the lead: report it as failed
            logger.exception("unexpected error while polling %s", item.enrichment_id)
            if item.enrichment_id in self._pending:
                self._fail(item, f"unexpected error while polling: {type(exc).__name__}: {exc}")
        finally:
            item.polling = False

    def _fail(self, item: _Pending, message: str) -> None:
        self.stats.failed += 1
        self._resolve(
            item,
            LeadOutcome(
                lead_id=item.lead_id,
                enrichment_id=item.enrichment_id,
                status="failed",
                error=message,
            ),
            "error",
        )
