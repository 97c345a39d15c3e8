"""`ResultCollector`: gathers the results of many started enrichments with as few polls as possible.

One collector serves every pending enrichment of a run, whichever front door started it (leads or
contacts): it tracks item keys and enrichment ids, nothing more. Each enrichment gets a first poll
at the expected completion time, then polls with growing gaps (capped), until it is finished or
its deadline passes. Results may also be handed in by the webhook receiver (`deliver`); a webhook
result that does not say something recognisable about every requested workflow is confirmed by
one poll (`confirm="when_unclear"`). How the expected duration adapts is in
`docs/architecture.md`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.api.models import Enrichment
from prefect_lemlist.api.workflows import Workflow

logger = logging.getLogger("prefect_lemlist.collector")

_MISS_FACTOR = 1.05
_HIT_FACTOR = 0.995
_GENERATION_SPAN = 1.5  # how far one cohort of first polls may move the estimate
_MIN_FIRST_POLL = 1.0
_MAX_FIRST_POLL = 120.0

Confirm = Literal["when_unclear", "always", "never"]
CollectedKind = Literal["finished", "failed", "timed_out", "not_collected"]


@dataclass(frozen=True)
class Collected:
    """The collector's last word on one enrichment.

    Attributes:
        key: the item it belongs to.
        enrichment_id: the enrichment.
        kind: `finished` (lemlist ended it: see `enrichment`), `failed` (polling it failed for
            good), `timed_out` (still running at the deadline) or `not_collected` (the key was
            refused before its result could be read).
        enrichment: the finished enrichment, for `finished`.
        error: what went wrong, otherwise.
        source: `poll`, `webhook` or `webhook+poll` (a webhook confirmed by a poll).
        raw_json: lemlist's body for `enrichment`, as compact JSON text (the parsed body is
            dropped: a run keeps 100,000s of results).
    """

    key: str
    enrichment_id: str
    kind: CollectedKind
    enrichment: Enrichment | None = None
    error: str | None = None
    source: str = "poll"
    raw_json: str | None = None


def compact_json(body: dict[str, Any]) -> str | None:
    """A body as compact JSON text (None when empty): how results are kept in memory."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body else None


@dataclass
class _Pending:
    key: str
    enrichment_id: str
    deadline: float
    polls: int = 0
    next_gap: float = 0.0
    polling: bool = False
    confirming: bool = False  # a webhook result came: the next poll confirms it
    first_delay: float | None = None  # the expected duration its first poll was scheduled with


@dataclass
class CollectorStats:
    """Counters of one collector: polls sent, results by source, first-poll accuracy."""

    polls: int = 0
    results_from_polls: int = 0
    results_from_webhook: int = 0
    webhook_confirmations: int = 0
    webhook_duplicates: int = 0
    webhook_unknown: int = 0
    first_poll_hits: int = 0
    first_poll_misses: int = 0
    timed_out: int = 0
    failed: int = 0
    first_poll_delay: float = 0.0
    sources: dict[str, int] = field(default_factory=dict)


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
        workflows: the requested workflows (a webhook result must cover them to be taken as is).
        confirm: when a webhook result is confirmed by one poll: `when_unclear` (it does not
            say something recognisable about every requested workflow), `always`, `never`.
        concurrency: polls in flight at once.
        on_result: called with each `Collected` as soon as it is known.
        unreachable_seconds: while every poll finds lemlist unreachable (nothing sent), keep
            polling this long, then report what is pending `not_collected` (their ids are
            recorded: a re-run collects them). Any answer from lemlist resets it.
    """

    def __init__(
        self,
        client: LemlistClient,
        *,
        timeout_seconds: float = 600.0,
        first_poll_seconds: float = 10.0,
        max_poll_interval_seconds: float = 30.0,
        webhook_grace_seconds: float | None = None,
        workflows: Iterable[Workflow] = (),
        confirm: Confirm = "when_unclear",
        concurrency: int = 10,
        on_result: Callable[[Collected], None] | None = None,
        unreachable_seconds: float = 15.0,
    ) -> None:
        self._client = client
        self.timeout_seconds = timeout_seconds
        self.max_poll_interval_seconds = max_poll_interval_seconds
        self.webhook_grace_seconds = webhook_grace_seconds
        self.workflows = tuple(workflows)
        self.confirm = confirm
        self.stats = CollectorStats(first_poll_delay=first_poll_seconds)
        self.results: dict[str, Collected] = {}
        self._on_result = on_result
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
        self.unreachable_seconds = unreachable_seconds
        self._unreachable_since: float | None = None
        self._abandoned: str | None = None

    @property
    def pending(self) -> int:
        """Enrichments added and not yet resolved."""
        return len(self._pending)

    def add(self, key: str, enrichment_id: str, *, started_at: float | None = None) -> None:
        """Start tracking an enrichment.

        Args:
            key: its item (a lead id, or a contact's fingerprint).
            enrichment_id: the `enr_…` id.
            started_at: `time.monotonic()` when lemlist accepted it; None when it was started by
                an earlier run (it is polled at once).
        """
        if enrichment_id in self._pending or key in self.results:
            return
        if self._abandoned is not None:  # refused key: it cannot be read in this run
            self.results[key] = Collected(
                key, enrichment_id, "not_collected", error=self._abandoned, source="none"
            )
            return
        now = time.monotonic()
        start = now if started_at is None else started_at
        item = _Pending(key, enrichment_id, deadline=start + self.timeout_seconds)
        self._pending[enrichment_id] = item
        early = self._early.pop(enrichment_id, None)
        if early is not None:  # its webhook arrived before the batch that started it returned
            self._take_webhook(item, early)
            return
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
        that started it has not returned yet; `add()` then takes it at once.

        Returns:
            True when it resolved (or will confirm) a pending enrichment or was kept for one;
            False for duplicates, in-progress notices and results beyond the buffer.
        """
        item = self._pending.get(enrichment.enrichment_id)
        if item is None:
            return self._keep_early(enrichment)
        if enrichment.in_progress or item.confirming:
            return False
        self._take_webhook(item, enrichment)
        return True

    def _keep_early(self, enrichment: Enrichment) -> bool:
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

    def _take_webhook(self, item: _Pending, enrichment: Enrichment) -> None:
        """Resolve with a webhook result, or poll once to confirm it."""
        unclear = not enrichment.covers(self.workflows)
        if self.confirm == "always" or (unclear and self.confirm == "when_unclear"):
            item.confirming = True
            self.stats.webhook_confirmations += 1
            self._schedule(item.enrichment_id, time.monotonic())
            return
        self.stats.results_from_webhook += 1
        self._resolve(
            item, Collected(item.key, item.enrichment_id, "finished", enrichment), "webhook"
        )

    def abandon(self, reason: str) -> None:
        """Stop collecting for good: every pending enrichment, and any added later, ends
        `not_collected` with `reason` (the key was refused; a later run with a working key
        collects them)."""
        self._abandoned = reason
        self.give_up(reason)
        self.close()

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

    def _resolve(self, item: _Pending, collected: Collected, source: str) -> None:
        self._pending.pop(item.enrichment_id, None)
        self._resolved_ids.add(item.enrichment_id)
        enrichment = collected.enrichment
        raw_json = collected.raw_json
        if enrichment is not None and enrichment.raw:  # kept for 100,000s: as compact text
            raw_json = compact_json(enrichment.raw)
            enrichment = enrichment.model_copy(update={"raw": {}})
        collected = Collected(
            **{
                **collected.__dict__,
                "source": source,
                "enrichment": enrichment,
                "raw_json": raw_json,
            }
        )
        self.results[item.key] = collected
        self.stats.sources[source] = self.stats.sources.get(source, 0) + 1
        self._wake.set()
        if self._on_result is not None:
            self._on_result(collected)

    def _reschedule(self, item: _Pending, now: float, reason: str) -> None:
        """Poll again later, or give up at the deadline."""
        if now >= item.deadline:
            self.stats.timed_out += 1
            error = (
                f"{reason} after {self.timeout_seconds:g}s; collect it later by its enrichment id"
            )
            self._resolve(
                item, Collected(item.key, item.enrichment_id, "timed_out", error=error), "timeout"
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
                enrichment = await self._fetch(item)
            if enrichment is None or item.enrichment_id not in self._pending:
                return
            if item.polls == 1 and not item.confirming:
                self._learn_first_poll(item, not enrichment.in_progress)
            if enrichment.in_progress:
                self._reschedule(item, time.monotonic(), "still in progress")
                return
            self.stats.results_from_polls += 1
            source = "webhook+poll" if item.confirming else "poll"
            self._resolve(
                item, Collected(item.key, item.enrichment_id, "finished", enrichment), source
            )
        except Exception as exc:  # a bug must not lose the item: report it as failed
            logger.exception("unexpected error while polling %s", item.enrichment_id)
            if item.enrichment_id in self._pending:
                self._fail(item, f"unexpected error while polling: {type(exc).__name__}: {exc}")
        finally:
            item.polling = False

    async def _fetch(self, item: _Pending) -> Enrichment | None:
        """One poll; failures are turned into a reschedule or a final result (None returned)."""
        self.stats.polls += 1
        item.polls += 1
        try:
            enrichment = await self._client.get_enrichment(item.enrichment_id)
            self._unreachable_since = None
            return enrichment
        except LemlistAuthError as exc:
            self.abandon(f"the API key was refused before the result was read ({exc.message})")
        except LemlistNotFoundError as exc:
            self._fail(item, f"lemlist no longer knows this enrichment: {exc}")
        except LemlistError as exc:
            if exc.delivery == "not_sent":
                self._while_unreachable(item, exc)
                return None
            self._unreachable_since = None
            # a GET is safe to repeat: unreachable lemlist, 5xx and unusable answers are
            # polled again until the deadline; only a definitive refusal ends it here
            if exc.retryable or isinstance(exc, (LemlistServerError, LemlistResponseError)):
                self._reschedule(item, time.monotonic(), f"polling kept failing ({exc})")
            else:
                self._fail(item, f"polling failed: {exc}")
        return None

    def _while_unreachable(self, item: _Pending, exc: LemlistError) -> None:
        """lemlist could not be reached: poll again later, until it has been unreachable for
        `unreachable_seconds`; then give up on everything pending (ids kept)."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        if now - self._unreachable_since < self.unreachable_seconds:
            self._reschedule(item, now, f"lemlist unreachable ({exc.message})")
            return
        self.give_up(
            f"lemlist could not be reached for {now - self._unreachable_since:.0f} s "
            f"({exc.message}); re-run the same command to collect it by its id (no new charge)"
        )

    def give_up(self, reason: str) -> None:
        """Stop collecting: every pending enrichment ends `not_collected` with `reason` (its id
        is kept; a later run collects it)."""
        for item in list(self._pending.values()):
            self._resolve(
                item, Collected(item.key, item.enrichment_id, "not_collected", error=reason), "none"
            )

    def _fail(self, item: _Pending, message: str) -> None:
        self.stats.failed += 1
        self._resolve(
            item, Collected(item.key, item.enrichment_id, "failed", error=message), "error"
        )
