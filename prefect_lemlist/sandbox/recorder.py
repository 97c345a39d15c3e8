"""The sandbox's statistics: what it saw and did, and the `SandboxStats` snapshot built from it.

The recorder has its own lock: routes, the completion loop and the caller's thread record and
read concurrently. Statistics are not persisted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prefect_lemlist.sandbox.models import WebhookDelivery


def max_in_window(times: list[float], window_seconds: float) -> int:
    """Largest number of arrivals inside any window (t - window, t].

    Args:
        times: arrival times in seconds (any order).
        window_seconds: window length.

    Returns:
        The maximum count (0 for no arrivals).
    """
    ordered = sorted(times)
    best = 0
    start = 0
    for end, current in enumerate(ordered):
        while ordered[start] <= current - window_seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_second(times: list[float], base: float) -> list[int]:
    """Arrivals counted per 1-second bucket from `base` (benchmark instrumentation).

    Args:
        times: arrival times (monotonic seconds).
        base: the time of bucket 0.

    Returns:
        One count per second.
    """
    counts: list[int] = []
    for at in times:
        bucket = max(int(at - base), 0)
        if bucket >= len(counts):
            counts.extend([0] * (bucket + 1 - len(counts)))
        counts[bucket] += 1
    return counts


@dataclass(frozen=True)
class SandboxStats:
    """A snapshot of what the sandbox saw and did.

    Attributes:
        total_requests: every HTTP request received (any route, any outcome).
        requests_by_route: count per route name (`enrich_post`, `enrich_get`, `export`,
            `credits`, `enrich_data`, `bulk`, `team`, `lead_by_email`, `catch_all`).
        count_429: every 429 sent (rate limiter and injected).
        count_429_injected: 429s injected by `fault_429_rate`.
        faults_injected: count per injected fault kind (`429`, `5xx`, `drop`, `malformed`, `slow`).
        responses_by_status: count per HTTP status sent.
        enrich_posts_by_lead: lead id → authenticated `POST /leads/{id}/enrich` attempts
            (every one, including those answered 429, 5xx, dropped or malformed).
        enrich_posts_processed_by_lead: lead id → enrich POSTs that reached lemlist's enrich
            logic (not rate-limited, not faulted; slow ones included), whatever the answer.
        enrichments_started_by_lead: lead id → enrichments accepted (200 with an `enr_` id)
            through `POST /leads/{id}/enrich`.
        credits_used: credits consumed by finished enrichments (every route).
        credits_remaining: the team balance now.
        webhook_deliveries: one record per webhook delivery.
        arrival_times: API key → monotonic arrival times of its requests (incl. 429'd).
        default_key: the key `max_requests_in_window` uses by default.
        bulk_items: items received in accepted (200) bulk bodies, including items answered
            with a per-item error.
        enrichments_started_by_person: `person_key` → enrichments accepted for that person on
            every route (`POST /enrich`, bulk items, leads of people campaigns; seeded-campaign
            leads are not people and are not counted here).
        enrichments_started_by_contact: contact id → enrichments accepted through the lead
            route (seeded and people campaigns).
        enrichments_started_by_route: route name → enrichments accepted (`enrich_post`,
            `enrich_data`, `bulk`).
    """

    total_requests: int
    requests_by_route: dict[str, int]
    count_429: int
    count_429_injected: int
    faults_injected: dict[str, int]
    responses_by_status: dict[int, int]
    enrich_posts_by_lead: dict[str, int]
    enrich_posts_processed_by_lead: dict[str, int]
    enrichments_started_by_lead: dict[str, int]
    credits_used: int
    credits_remaining: int
    webhook_deliveries: list[WebhookDelivery]
    arrival_times: dict[str, list[float]] = field(repr=False)
    default_key: str = field(repr=False)
    bulk_items: int = 0
    enrichments_started_by_person: dict[str, int] = field(default_factory=dict)
    enrichments_started_by_contact: dict[str, int] = field(default_factory=dict)
    enrichments_started_by_route: dict[str, int] = field(default_factory=dict)

    @property
    def enrichments_started(self) -> int:
        """Total number of accepted enrichments (every route)."""
        if self.enrichments_started_by_route:
            return sum(self.enrichments_started_by_route.values())
        return sum(self.enrichments_started_by_lead.values())

    def max_requests_in_window(self, window_seconds: float = 2.0, key: str | None = None) -> int:
        """Largest number of requests of one key that arrived within any sliding window.

        Counts every recorded arrival of the key, including the ones answered 429.

        Args:
            window_seconds: window length in seconds.
            key: API key (default: the sandbox's first key).

        Returns:
            The maximum count over all windows (t - window_seconds, t].
        """
        times = self.arrival_times.get(key if key is not None else self.default_key, [])
        return max_in_window(times, window_seconds)


class Recorder:
    """Every counter of the sandbox (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._total_requests = 0
        self._by_route: Counter[str] = Counter()
        self._count_429 = 0
        self._count_429_injected = 0
        self._faults: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._posts_by_lead: Counter[str] = Counter()
        self._processed_by_lead: Counter[str] = Counter()
        self._started_by_lead: Counter[str] = Counter()
        self._started_by_person: Counter[str] = Counter()
        self._started_by_contact: Counter[str] = Counter()
        self._started_by_route: Counter[str] = Counter()
        self._bulk_items = 0
        self._credits_used = 0
        self._deliveries: list[WebhookDelivery] = []
        self._arrivals: dict[str, list[float]] = {}
        # Benchmark instrumentation: when lemlist first *served* a lead's final answer.
        self._first_result_by_enrichment: dict[str, tuple[float, str]] = {}
        self._first_result_by_lead: dict[str, tuple[float, str]] = {}

    def reset(self) -> None:
        """Zero every statistic."""
        with self._lock:
            self._reset()

    def request(self, route: str) -> None:
        """Count one received request on `route`."""
        with self._lock:
            self._total_requests += 1
            self._by_route[route] += 1

    def arrival(self, key: str, at: float) -> None:
        """Note the (monotonic) arrival time of one authenticated request of `key`."""
        with self._lock:
            self._arrivals.setdefault(key, []).append(at)

    def response(self, status: int, *, injected_429: bool = False) -> None:
        """Count one sent response by status."""
        with self._lock:
            self._by_status[status] += 1
            if status == 429:
                self._count_429 += 1
                self._count_429_injected += injected_429

    def fault(self, kind: str) -> None:
        """Count one injected fault."""
        with self._lock:
            self._faults[kind] += 1

    def enrich_post(self, lead_id: str) -> None:
        """Count one authenticated enrich POST for `lead_id`."""
        with self._lock:
            self._posts_by_lead[lead_id] += 1

    def enrich_processed(self, lead_id: str) -> None:
        """Count one enrich POST for `lead_id` that reached the enrich logic."""
        with self._lock:
            self._processed_by_lead[lead_id] += 1

    def started(
        self,
        route: str,
        *,
        lead_id: str | None = None,
        contact_id: str | None = None,
        person_key: str | None = None,
    ) -> None:
        """Count one accepted enrichment."""
        with self._lock:
            self._started_by_route[route] += 1
            if lead_id is not None:
                self._started_by_lead[lead_id] += 1
            if contact_id is not None:
                self._started_by_contact[contact_id] += 1
            if person_key is not None:
                self._started_by_person[person_key] += 1

    def bulk_items(self, count: int) -> None:
        """Count the items of one accepted bulk body."""
        with self._lock:
            self._bulk_items += count

    def credits_used(self, cost: int) -> None:
        """Count credits consumed by a finished enrichment."""
        with self._lock:
            self._credits_used += cost

    def webhook_delivery(self, delivery: WebhookDelivery, lead_id: str | None) -> None:
        """Store the outcome of one webhook delivery (`lead_id`: the enrichment's lead)."""
        with self._lock:
            self._deliveries.append(delivery)
        if delivery.ok:
            self.result_served(delivery.enrichment_id, lead_id, "webhook")

    def result_served(self, enrichment_id: str, lead_id: str | None, source: str) -> None:
        """Note (once) when a finished enrichment's result first reached the client.

        Benchmark instrumentation only: it changes no answer.

        Args:
            enrichment_id: the finished enrichment.
            lead_id: its lead, if any.
            source: `poll` (first 200 on `GET /enrich/{id}`) or `webhook` (first 2xx delivery).
        """
        with self._lock:
            if enrichment_id in self._first_result_by_enrichment:
                return
            now = time.monotonic()
            self._first_result_by_enrichment[enrichment_id] = (now, source)
            if lead_id is not None and lead_id not in self._first_result_by_lead:
                self._first_result_by_lead[lead_id] = (now, source)

    def enrich_answer(self, lead_id: str, status: int) -> None:
        """Note (once) a lead whose enrich POST got a final answer (400/404/409: no enrichment).

        Benchmark instrumentation only: a 200 is not final (its result comes later).

        Args:
            lead_id: the path's lead id.
            status: the HTTP status of the answer.
        """
        if status not in (400, 404, 409):
            return
        with self._lock:
            if lead_id not in self._first_result_by_lead:
                self._first_result_by_lead[lead_id] = (time.monotonic(), f"post_{status}")

    def stats(self, credits_remaining: int, default_key: str) -> SandboxStats:
        """A consistent `SandboxStats` snapshot.

        Args:
            credits_remaining: the team balance now.
            default_key: the sandbox's first API key.

        Returns:
            The snapshot (copies).
        """
        with self._lock:
            return SandboxStats(
                total_requests=self._total_requests,
                requests_by_route=dict(self._by_route),
                count_429=self._count_429,
                count_429_injected=self._count_429_injected,
                faults_injected=dict(self._faults),
                responses_by_status=dict(self._by_status),
                enrich_posts_by_lead=dict(self._posts_by_lead),
                enrich_posts_processed_by_lead=dict(self._processed_by_lead),
                enrichments_started_by_lead=dict(self._started_by_lead),
                credits_used=self._credits_used,
                credits_remaining=credits_remaining,
                webhook_deliveries=list(self._deliveries),
                arrival_times={key: list(times) for key, times in self._arrivals.items()},
                default_key=default_key,
                bulk_items=self._bulk_items,
                enrichments_started_by_person=dict(self._started_by_person),
                enrichments_started_by_contact=dict(self._started_by_contact),
                enrichments_started_by_route=dict(self._started_by_route),
            )

    def benchmark(self, key: str, rate_limit: int, window: float) -> dict[str, Any]:
        """Counters and per-lead result times as JSON-ready data (`GET /_sandbox/stats`).

        Times are seconds relative to the first request of `key` (`t0`), on the sandbox's
        monotonic clock, so they measure what lemlist saw, not what a client believes.

        Args:
            key: the sandbox's first API key.
            rate_limit: `config.rate_limit`.
            window: `config.rate_window_seconds`.

        Returns:
            A dict: totals, counts per route and status, 429s, the largest number of requests
            in any rate window, and `results`: lead id -> [seconds since t0, source].
        """
        with self._lock:
            times = list(self._arrivals.get(key, []))
            base = times[0] if times else 0.0
            return {
                "now": round(time.monotonic() - base, 4),
                "total_requests": self._total_requests,
                "requests_by_route": dict(self._by_route),
                "responses_by_status": {str(k): v for k, v in self._by_status.items()},
                "count_429": self._count_429,
                "enrichments_started": sum(self._started_by_lead.values()),
                "webhook_deliveries": len(self._deliveries),
                "webhook_deliveries_ok": sum(1 for d in self._deliveries if d.ok),
                "credits_used": self._credits_used,
                "rate_limit": rate_limit,
                "rate_window_seconds": window,
                "first_request": 0.0 if times else None,
                "last_request": round(times[-1] - base, 4) if times else None,
                "max_requests_in_window": max_in_window(times, window),
                "arrivals_per_second": per_second(times, base),
                "results": {
                    lead: [round(at - base, 4), source]
                    for lead, (at, source) in self._first_result_by_lead.items()
                },
            }


__all__ = ["Recorder", "SandboxStats", "max_in_window", "per_second"]
