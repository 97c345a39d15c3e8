"""In-memory state of a sandbox: contacts, enrichments, credits, rate limiter and statistics.

Everything here is HTTP-agnostic and guarded by one re-entrant lock, so the server thread and
the caller's thread (`Sandbox.configure`, `Sandbox.stats`) can use it concurrently.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import (
    LeadKind,
    SandboxLead,
    SeededCampaign,
    make_id,
    seed_campaign,
)

Workflow = Literal["find_email", "verify", "linkedin_enrichment", "find_phone"]
"""lemlist enrichment workflow names."""

WORKFLOW_FLAGS: dict[str, Workflow] = {
    "findEmail": "find_email",
    "verifyEmail": "verify",
    "linkedinEnrichment": "linkedin_enrichment",
    "findPhone": "find_phone",
}
"""Query flag of `POST /leads/{id}/enrich` → workflow, in processing order."""

FaultKind = Literal["429", "5xx", "drop", "malformed", "slow"]
"""Faults the sandbox can inject, in the order they are drawn."""

FOUND_EMAIL_STATUSES = frozenset({"deliverable", "risky"})
"""Email statuses for which `find_email` is charged."""

CREDIT_COSTS: dict[str, int] = {
    "find_email": 5,
    "verify": 1,
    "linkedin_enrichment": 1,
    "find_phone": 20,
}
"""Credits per workflow (find_email only when found deliverable/risky, find_phone when found)."""

MSG_ALREADY_ENRICHED = (
    "Enrichment skipped: contact already has the requested data or was recently enriched"
)
MSG_NO_FLAG = (
    "No enrichment requested (findEmail, findPhone, linkedinEnrichment or verifyEmail required)"
)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer decided by the state: status plus a JSON or plain-text body.

    Attributes:
        status: HTTP status code.
        body: JSON-serialisable value (when `is_json`) or text.
        is_json: whether `body` is sent as application/json.
    """

    status: int
    body: Any
    is_json: bool = True


@dataclass
class Contact:
    """The current (mutable) data lemlist holds on a lead's contact."""

    contact_id: str
    first_name: str | None
    last_name: str | None
    company_name: str | None
    company_domain: str | None
    job_title: str | None
    linkedin_url: str | None
    email: str | None
    email_status: str | None
    phone: str | None

    @classmethod
    def from_lead(cls, lead: SandboxLead) -> Contact:
        """Build the starting contact of a seeded lead.

        Args:
            lead: the seeded lead.

        Returns:
            A new `Contact` with the lead's visible data.
        """
        return cls(
            contact_id=lead.contact_id,
            first_name=lead.first_name,
            last_name=lead.last_name,
            company_name=lead.company_name,
            company_domain=lead.company_domain,
            job_title=lead.job_title,
            linkedin_url=lead.linkedin_url,
            email=lead.email,
            email_status=lead.email_status,
            phone=lead.phone,
        )

    def enrichment_input(self) -> dict[str, str | None]:
        """Return the `input` object lemlist shows for an enrichment of this contact."""
        return {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "linkedinUrl": self.linkedin_url,
            "companyName": self.company_name,
            "companyDomain": self.company_domain,
        }


@dataclass
class Enrichment:
    """One enrichment (`enr_…`) and its decided fate."""

    enrichment_id: str
    lead_id: str
    contact_id: str
    workflows: tuple[str, ...]
    input: dict[str, str | None]
    started_at: float
    due_at: float
    webhook_url: str | None = None
    from_app: bool = False
    fails: bool = False
    vanishes: bool = False
    never_finishes: bool = False
    duplicate_webhook: bool = False
    finished: bool = False
    status: str = "in-progress"
    poll_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookJob:
    """A webhook POST the server loop must deliver.

    Attributes:
        enrichment_id: the finished enrichment.
        url: target URL (with its query string).
        payload: the JSON body.
        copies: how many times to deliver it (2 when duplicated).
    """

    enrichment_id: str
    url: str
    payload: dict[str, Any]
    copies: int = 1


@dataclass(frozen=True)
class WebhookDelivery:
    """The outcome of one webhook delivery (after up to 3 attempts).

    Attributes:
        enrichment_id: the enrichment it reported.
        url: the target URL without its query string (which may hold a secret).
        status_code: the receiver's last HTTP status, None if never answered.
        attempts: number of attempts made.
        ok: whether a 2xx was received.
        error: last transport error, if any.
        delivered_at: wall-clock time (epoch seconds) of the last attempt.
    """

    enrichment_id: str
    url: str
    status_code: int | None
    attempts: int
    ok: bool
    error: str | None
    delivered_at: float


@dataclass(frozen=True)
class Admission:
    """What the rate limiter decided for one request.

    Attributes:
        allowed: False when the request must be answered 429.
        limit: `X-RateLimit-Limit`.
        remaining: `X-RateLimit-Remaining`.
        reset_epoch: wall-clock time of `X-RateLimit-Reset`.
        retry_after: seconds for `Retry-After` on a real 429.
        arrival: the monotonic arrival time recorded for the request.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_epoch: float
    retry_after: int
    arrival: float


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


@dataclass(frozen=True)
class SandboxStats:
    """A snapshot of what the sandbox saw and did.

    Attributes:
        total_requests: every HTTP request received (any route, any outcome).
        requests_by_route: count per route name (`enrich_post`, `enrich_get`, `export`,
            `credits`, `catch_all`).
        count_429: every 429 sent (rate limiter and injected).
        count_429_injected: 429s injected by `fault_429_rate`.
        faults_injected: count per injected fault kind (`429`, `5xx`, `drop`, `malformed`, `slow`).
        responses_by_status: count per HTTP status sent.
        enrich_posts_by_lead: lead id → authenticated `POST /leads/{id}/enrich` attempts
            (every one, including those answered 429, 5xx, dropped or malformed).
        enrich_posts_processed_by_lead: lead id → enrich POSTs that reached lemlist's enrich
            logic (not rate-limited, not faulted; slow ones included), whatever the answer.
        enrichments_started_by_lead: lead id → enrichments accepted (200 with an `enr_` id).
        credits_used: credits consumed by finished enrichments.
        credits_remaining: the team balance now.
        webhook_deliveries: one record per webhook delivery.
        arrival_times: API key → monotonic arrival times of its requests (incl. 429'd).
        default_key: the key `max_requests_in_window` uses by default.
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

    @property
    def enrichments_started(self) -> int:
        """Total number of accepted enrichments."""
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


def _per_second(times: list[float], base: float) -> list[int]:
    """Arrivals counted per 1-second bucket from `base` (benchmark instrumentation)."""
    counts: list[int] = []
    for at in times:
        bucket = max(int(at - base), 0)
        if bucket >= len(counts):
            counts.extend([0] * (bucket + 1 - len(counts)))
        counts[bucket] += 1
    return counts


def strip_query(url: str) -> str:
    """Return `url` without its query string and fragment.

    Args:
        url: any URL.

    Returns:
        scheme://host[:port]/path.
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def webhook_url_allowed(url: str, allowed_hosts: set[str]) -> bool:
    """Whether the sandbox may POST to this webhook URL.

    Args:
        url: the requested `webhookUrl`.
        allowed_hosts: `SandboxConfig.webhook_allowed_hosts`.

    Returns:
        True for an http(s) URL whose host is allowed.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and host in allowed_hosts


class SandboxState:
    """The whole mutable world of one sandbox (thread-safe).

    Args:
        config: the starting configuration.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.RLock()
        self._config = config
        self.campaign: SeededCampaign = seed_campaign(config.leads, config.seed)
        self.leads_by_id: dict[str, SandboxLead] = {lead.lead_id: lead for lead in self.leads}
        self._foreign = frozenset(self.campaign.foreign_lead_ids)
        self._contacts: dict[str, Contact] = {
            lead.lead_id: Contact.from_lead(lead) for lead in self.leads if lead.has_contact
        }
        self._rng = random.Random(f"lemlist-sandbox-timing-{config.seed}")
        self._fault_rng = random.Random(f"lemlist-sandbox-faults-{config.seed}")
        self._fate_rng = random.Random(f"lemlist-sandbox-fates-{config.seed}")
        self._enrichments: dict[str, Enrichment] = {}
        self._due: list[tuple[float, int, str]] = []
        self._due_seq = 0
        self._running: dict[str, str] = {}
        self._not_found: set[tuple[str, str, tuple[str | None, ...]]] = set()
        self._linkedin_done: set[tuple[str, str | None]] = set()
        self._credits = config.credits
        self._webhook_jobs: list[WebhookJob] = []
        self._accepted: dict[str, deque[float]] = {}
        self._reset_counters()
        self._seed_app_state(time.monotonic())

    # ----------------------------------------------------------------- setup / config

    @property
    def leads(self) -> tuple[SandboxLead, ...]:
        """The seeded leads, in campaign order."""
        return self.campaign.leads

    @property
    def config(self) -> SandboxConfig:
        """The current configuration."""
        with self._lock:
            return self._config

    def configure(self, **overrides: Any) -> SandboxConfig:
        """Change knobs at runtime (validated; `credits` resets the balance).

        Args:
            **overrides: `SandboxConfig` fields. `leads`, `seed`, `host` and `port` have no
                effect once the sandbox runs.

        Returns:
            The new configuration.
        """
        with self._lock:
            self._config = self._config.with_overrides(**overrides)
            if "credits" in overrides:
                self._credits = self._config.credits
            return self._config

    def _seed_app_state(self, now: float) -> None:
        """Create the pre-seeded not-found records and app-started enrichments."""
        for lead in self.leads:
            contact = self._contacts.get(lead.lead_id)
            if contact is None:
                continue
            if lead.kind is LeadKind.RECENTLY_NOT_FOUND:
                key = self._input_key(contact)
                self._not_found.add((contact.contact_id, "find_email", key))
                self._not_found.add((contact.contact_id, "find_phone", key))
            elif lead.kind is LeadKind.IN_PROGRESS:
                self._create_enrichment(
                    lead,
                    contact,
                    ("find_email",),
                    None,
                    now,
                    duration=self._config.app_enrichment_seconds,
                    from_app=True,
                )

    def _reset_counters(self) -> None:
        self._total_requests = 0
        self._by_route: dict[str, int] = {}
        self._count_429 = 0
        self._count_429_injected = 0
        self._faults: dict[str, int] = {}
        self._by_status: dict[int, int] = {}
        self._posts_by_lead: dict[str, int] = {}
        self._processed_by_lead: dict[str, int] = {}
        self._started_by_lead: dict[str, int] = {}
        self._credits_used = 0
        self._deliveries: list[WebhookDelivery] = []
        self._arrivals: dict[str, list[float]] = {}
        # Benchmark instrumentation: when lemlist first *served* a lead's final answer.
        self._first_result_by_enrichment: dict[str, tuple[float, str]] = {}
        self._first_result_by_lead: dict[str, tuple[float, str]] = {}

    def reset_stats(self) -> None:
        """Zero every statistic (the rate limiter, credits and enrichments are kept)."""
        with self._lock:
            self._reset_counters()

    # ----------------------------------------------------------------- auth / rate limit

    def is_valid_key(self, key: str) -> bool:
        """Whether `key` is one of the configured API keys."""
        with self._lock:
            return key in self._config.api_keys

    def admit(self, key: str) -> Admission:
        """Record the arrival of a request of `key` and apply the sliding-window limit.

        Args:
            key: a valid API key.

        Returns:
            The `Admission`; when not allowed the request must be answered 429.
        """
        with self._lock:
            now = time.monotonic()
            wall = time.time()
            cfg = self._config
            window = cfg.rate_window_seconds
            self._arrivals.setdefault(key, []).append(now)
            accepted = self._accepted.setdefault(key, deque())
            while accepted and accepted[0] <= now - window:
                accepted.popleft()
            allowed = len(accepted) < cfg.rate_limit
            if allowed:
                accepted.append(now)
            oldest = accepted[0] if accepted else now
            until_reset = max(oldest + window - now, 0.0)
            return Admission(
                allowed=allowed,
                limit=cfg.rate_limit,
                remaining=max(cfg.rate_limit - len(accepted), 0),
                reset_epoch=wall + until_reset,
                retry_after=max(1, math.ceil(until_reset)),
                arrival=now,
            )

    def revoke(self, key: str, arrival: float) -> None:
        """Un-count an admitted request (it was answered with an injected 429).

        Args:
            key: the request's API key.
            arrival: `Admission.arrival` of that request.
        """
        with self._lock:
            accepted = self._accepted.get(key)
            if accepted and arrival in accepted:
                accepted.remove(arrival)

    def decide_fault(self, route: str) -> FaultKind | None:
        """Draw the fault (if any) for one request on `route`.

        Args:
            route: the route name.

        Returns:
            The fault kind, or None for normal processing.
        """
        with self._lock:
            cfg = self._config
            if route not in cfg.fault_routes:
                return None
            rates: list[tuple[FaultKind, float]] = [
                ("429", cfg.fault_429_rate),
                ("5xx", cfg.fault_5xx_rate),
                ("drop", cfg.fault_drop_rate),
                ("malformed", cfg.fault_malformed_rate),
                ("slow", cfg.fault_slow_rate),
            ]
            chosen: FaultKind | None = None
            for kind, rate in rates:
                hit = self._fault_rng.random() < rate
                if hit and chosen is None:
                    chosen = kind
            if chosen is not None:
                self._faults[chosen] = self._faults.get(chosen, 0) + 1
            return chosen

    def draw_latency(self) -> float:
        """Draw the extra delay of one answer from `latency_seconds`."""
        with self._lock:
            low, high = self._config.latency_seconds
            return self._fault_rng.uniform(low, high) if high > 0 else 0.0

    # ----------------------------------------------------------------- statistics

    def record_request(self, route: str) -> None:
        """Count one received request on `route`."""
        with self._lock:
            self._total_requests += 1
            self._by_route[route] = self._by_route.get(route, 0) + 1

    def record_response(self, status: int, *, injected_429: bool = False) -> None:
        """Count one sent response by status."""
        with self._lock:
            self._by_status[status] = self._by_status.get(status, 0) + 1
            if status == 429:
                self._count_429 += 1
                if injected_429:
                    self._count_429_injected += 1

    def record_enrich_post(self, lead_id: str) -> None:
        """Count one authenticated enrich POST for `lead_id`."""
        with self._lock:
            self._posts_by_lead[lead_id] = self._posts_by_lead.get(lead_id, 0) + 1

    def record_enrich_processed(self, lead_id: str) -> None:
        """Count one enrich POST for `lead_id` that reached the enrich logic."""
        with self._lock:
            self._processed_by_lead[lead_id] = self._processed_by_lead.get(lead_id, 0) + 1

    def record_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Store the outcome of one webhook delivery."""
        with self._lock:
            self._deliveries.append(delivery)
            if delivery.ok:
                self.record_result_served(delivery.enrichment_id, "webhook")

    def record_result_served(self, enrichment_id: str, source: str) -> None:
        """Note (once) when a finished enrichment's result first reached the client.

        Benchmark instrumentation only: it changes no answer.

        Args:
            enrichment_id: the finished enrichment.
            source: `poll` (first 200 on `GET /enrich/{id}`) or `webhook` (first 2xx delivery).
        """
        with self._lock:
            now = time.monotonic()
            if enrichment_id in self._first_result_by_enrichment:
                return
            self._first_result_by_enrichment[enrichment_id] = (now, source)
            enrichment = self._enrichments.get(enrichment_id)
            if enrichment is not None and enrichment.lead_id not in self._first_result_by_lead:
                self._first_result_by_lead[enrichment.lead_id] = (now, source)

    def record_enrich_answer(self, lead_id: str, status: int) -> None:
        """Note (once) a lead whose enrich POST got a final answer (400/404/409: no enrichment).

        Benchmark instrumentation only: a 200 is not final (its result comes later).

        Args:
            lead_id: the path's lead id.
            status: the HTTP status decided by `start_enrichment`.
        """
        if status not in (400, 404, 409):
            return
        with self._lock:
            if lead_id not in self._first_result_by_lead:
                self._first_result_by_lead[lead_id] = (time.monotonic(), f"post_{status}")

    def benchmark_snapshot(self) -> dict[str, Any]:
        """Counters and per-lead result times as JSON-ready data (for `GET /_sandbox/stats`).

        Times are seconds relative to the first request of the first API key (`t0`), on the
        sandbox's monotonic clock, so they measure what lemlist saw, not what a client believes.

        Returns:
            A dict: totals, counts per route and status, 429s, the largest number of requests
            in any rate window, and `results`: lead id -> [seconds since t0, source].
        """
        with self._lock:
            self.complete_due()
            cfg = self._config
            times = self._arrivals.get(cfg.api_keys[0], [])
            t0 = times[0] if times else None
            base = t0 if t0 is not None else 0.0
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
                "rate_limit": cfg.rate_limit,
                "rate_window_seconds": cfg.rate_window_seconds,
                "first_request": 0.0 if t0 is not None else None,
                "last_request": round(times[-1] - base, 4) if times else None,
                "max_requests_in_window": max_in_window(times, cfg.rate_window_seconds),
                "arrivals_per_second": _per_second(times, base),
                "results": {
                    lead: [round(at - base, 4), source]
                    for lead, (at, source) in self._first_result_by_lead.items()
                },
            }

    def stats(self) -> SandboxStats:
        """Take a consistent snapshot of the statistics.

        Returns:
            A `SandboxStats` (completing due enrichments first, so credits are current).
        """
        with self._lock:
            self.complete_due()
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
                credits_remaining=self._credits,
                webhook_deliveries=list(self._deliveries),
                arrival_times={key: list(times) for key, times in self._arrivals.items()},
                default_key=self._config.api_keys[0],
            )

    # ----------------------------------------------------------------- enrich POST

    @staticmethod
    def _input_key(contact: Contact) -> tuple[str | None, ...]:
        return tuple(contact.enrichment_input().values())

    def start_enrichment(
        self, lead_id: str, flags: dict[str, bool], webhook_url: str | None, force: bool
    ) -> Reply:
        """Apply `POST /leads/{leadId}/enrich`.

        Args:
            lead_id: the path's lead id.
            flags: query flag name (`findEmail`…) → value.
            webhook_url: the `webhookUrl` query value, if given.
            force: the `force` flag.

        Returns:
            The `Reply` (200 `{"id": "enr_…"}` or the matching error).
        """
        with self._lock:
            now = time.monotonic()
            self.complete_due(now)
            if lead_id in self._foreign:
                return Reply(400, "Bad team", is_json=False)
            lead = self.leads_by_id.get(lead_id)
            if lead is None:
                return Reply(404, {"error": "Lead not found", "code": "LEAD_NOT_FOUND"})
            contact = self._contacts.get(lead_id)
            if contact is None:
                return Reply(
                    404, {"error": "Contact not found for this lead", "code": "CONTACT_NOT_FOUND"}
                )
            requested = [wf for flag, wf in WORKFLOW_FLAGS.items() if flags.get(flag)]
            if not requested:
                return Reply(400, MSG_NO_FLAG, is_json=False)
            if webhook_url is not None and not webhook_url_allowed(
                webhook_url, self._config.webhook_allowed_hosts
            ):
                return Reply(400, "Invalid webhookUrl", is_json=False)
            if contact.contact_id in self._running:
                return Reply(409, {"error": "lead is already being enriched"})
            workflows = self._workflows_to_run(contact, requested, force)
            if not workflows:
                return Reply(409, {"error": MSG_ALREADY_ENRICHED, "code": "ALREADY_ENRICHED"})
            low, high = self._config.enrichment_seconds
            enrichment = self._create_enrichment(
                lead,
                contact,
                tuple(workflows),
                webhook_url,
                now,
                duration=self._rng.uniform(low, high),
                from_app=False,
            )
            self._started_by_lead[lead_id] = self._started_by_lead.get(lead_id, 0) + 1
            return Reply(200, {"id": enrichment.enrichment_id})

    def _workflows_to_run(self, contact: Contact, requested: list[str], force: bool) -> list[str]:
        """Drop the requested workflows lemlist would skip."""
        key = self._input_key(contact)
        cid = contact.contact_id
        kept: list[str] = []
        for workflow in requested:
            if workflow in ("find_email", "find_phone"):
                if (cid, workflow, key) in self._not_found:
                    continue  # an earlier not-found with the same inputs: force does not help
                existing = contact.email if workflow == "find_email" else contact.phone
                if existing and not force:
                    continue
            elif workflow == "linkedin_enrichment":
                if (cid, contact.linkedin_url) in self._linkedin_done and not force:
                    continue
            elif workflow == "verify":
                if not contact.email and "find_email" not in kept:
                    continue  # nothing to verify
                if contact.email and contact.email_status is not None and not force:
                    continue
            kept.append(workflow)
        return kept

    def _create_enrichment(
        self,
        lead: SandboxLead,
        contact: Contact,
        workflows: tuple[str, ...],
        webhook_url: str | None,
        now: float,
        *,
        duration: float,
        from_app: bool,
    ) -> Enrichment:
        enrichment_id = make_id(self._rng, "enr")
        while enrichment_id in self._enrichments:
            enrichment_id = make_id(self._rng, "enr")
        cfg = self._config
        draws = [self._fate_rng.random() for _ in range(4)]
        enrichment = Enrichment(
            enrichment_id=enrichment_id,
            lead_id=lead.lead_id,
            contact_id=contact.contact_id,
            workflows=workflows,
            input=contact.enrichment_input(),
            started_at=now,
            due_at=now + duration,
            webhook_url=webhook_url,
            from_app=from_app,
            fails=not from_app and draws[0] < cfg.enrichment_unknown_status_rate,
            vanishes=not from_app and draws[1] < cfg.enrichment_vanish_rate,
            never_finishes=not from_app and draws[2] < cfg.enrichment_never_finish_rate,
            duplicate_webhook=not from_app and draws[3] < cfg.webhook_duplicate_rate,
        )
        self._enrichments[enrichment_id] = enrichment
        self._running[contact.contact_id] = enrichment_id
        if not enrichment.never_finishes:
            self._due_seq += 1
            heapq.heappush(self._due, (enrichment.due_at, self._due_seq, enrichment_id))
        return enrichment

    # ----------------------------------------------------------------- completion

    def next_due(self) -> float | None:
        """Monotonic time of the next enrichment to finish, or None."""
        with self._lock:
            return self._due[0][0] if self._due else None

    def complete_due(self, now: float | None = None) -> int:
        """Finish every enrichment whose duration has passed (idempotent, cheap).

        Args:
            now: monotonic time (default: now).

        Returns:
            How many enrichments were finished.
        """
        with self._lock:
            now = time.monotonic() if now is None else now
            finished = 0
            while self._due and self._due[0][0] <= now:
                _, _, enrichment_id = heapq.heappop(self._due)
                self._finish(self._enrichments[enrichment_id])
                finished += 1
            return finished

    def _finish(self, enrichment: Enrichment) -> None:
        """Compute the results of an enrichment, write them back and queue its webhook."""
        lead = self.leads_by_id[enrichment.lead_id]
        contact = self._contacts[enrichment.lead_id]
        self._running.pop(enrichment.contact_id, None)
        enrichment.finished = True
        hook_data: dict[str, Any] = {}
        if enrichment.fails:
            enrichment.status = "error"
        else:
            poll, hook_data, cost, apply = self._results(enrichment, lead, contact)
            if enrichment.from_app:
                cost = 0  # started (and billed) in the lemlist app, before the API session
            if cost > self._credits:
                enrichment.status = "error"  # out of credits: lemlist just stops
                hook_data = {}
            else:
                apply()
                self._credits -= cost
                self._credits_used += cost
                enrichment.status = "done"
                enrichment.poll_data = poll
        if enrichment.webhook_url is not None:
            event = "enrichmentDone" if enrichment.status == "done" else "enrichmentError"
            payload = {"data": [{"id": enrichment.enrichment_id, "data": hook_data}], "type": event}
            self._webhook_jobs.append(
                WebhookJob(
                    enrichment_id=enrichment.enrichment_id,
                    url=enrichment.webhook_url,
                    payload=payload,
                    copies=2 if enrichment.duplicate_webhook else 1,
                )
            )

    def _results(
        self, enrichment: Enrichment, lead: SandboxLead, contact: Contact
    ) -> tuple[dict[str, Any], dict[str, Any], int, Any]:
        """Results of a finished enrichment from the lead's hidden truth.

        Returns:
            (polling data, webhook data, credit cost, a callable writing the results back).
        """
        workflows = enrichment.workflows
        key = tuple(enrichment.input.values())
        cid = contact.contact_id
        poll: dict[str, Any] = {}
        hook: dict[str, Any] = {}
        cost = 0
        writes: list[tuple[str, Any]] = []
        marks: list[Any] = []
        email = contact.email
        status: str | None = contact.email_status
        if "find_email" in workflows:
            if lead.true_email:
                email, status = lead.true_email, lead.true_email_status
                writes += [("email", email), ("email_status", status)]
                hook["find_email"] = {"email": email, "status": status}
                poll["email"] = {"email": email, "notFound": False, "status": status}
                if status in FOUND_EMAIL_STATUSES:
                    cost += CREDIT_COSTS["find_email"]
            else:
                email, status = None, None
                marks.append((cid, "find_email", key))
                hook["find_email"] = {"email": None, "status": None, "notFound": True}
                poll["email"] = {"email": None, "notFound": True, "status": None}
        if "verify" in workflows:
            if email:
                status = lead.true_email_status or "risky"
                writes.append(("email_status", status))
                cost += CREDIT_COSTS["verify"]
                poll["email"] = {"email": email, "notFound": False, "status": status}
            else:
                poll.setdefault("email", {"email": None, "notFound": True, "status": None})
            hook["verify"] = {"status": status if email else None}
        if "linkedin_enrichment" in workflows:
            cost += CREDIT_COSTS["linkedin_enrichment"]
            marks.append((cid, contact.linkedin_url))
            profile = lead.linkedin_profile if contact.linkedin_url else None
            if profile is not None:
                hook["linkedin_enrichment"] = dict(profile)
                poll["linkedin"] = {**profile, "notFound": False}
            else:
                hook["linkedin_enrichment"] = {"notFound": True}
                poll["linkedin"] = {"notFound": True}
        if "find_phone" in workflows:
            if lead.true_phone:
                writes.append(("phone", lead.true_phone))
                hook["find_phone"] = {"phone": lead.true_phone}
                poll["phone"] = {"phone": lead.true_phone, "notFound": False}
                cost += CREDIT_COSTS["find_phone"]
            else:
                marks.append((cid, "find_phone", key))
                hook["find_phone"] = {"phone": None, "notFound": True}
                poll["phone"] = {"phone": None, "notFound": True}

        def apply() -> None:
            for attribute, value in writes:
                setattr(contact, attribute, value)
            for mark in marks:
                if len(mark) == 3:
                    self._not_found.add(mark)
                else:
                    self._linkedin_done.add(mark)

        return poll, hook, cost, apply

    def take_webhook_jobs(self) -> list[WebhookJob]:
        """Remove and return the webhooks waiting to be delivered."""
        with self._lock:
            jobs, self._webhook_jobs = self._webhook_jobs, []
            return jobs

    # ----------------------------------------------------------------- reads

    def get_enrichment(self, enrichment_id: str) -> Reply:
        """Apply `GET /enrich/{enrichId}`.

        Args:
            enrichment_id: the path's id.

        Returns:
            404 text, 202 in progress or 200 finished.
        """
        with self._lock:
            now = time.monotonic()
            self.complete_due(now)
            enrichment = self._enrichments.get(enrichment_id)
            if enrichment is None or (enrichment.vanishes and now >= enrichment.due_at):
                return Reply(404, "Enrichment not found", is_json=False)
            body: dict[str, Any] = {
                "enrichmentId": enrichment.enrichment_id,
                "enrichmentStatus": enrichment.status,
                "input": dict(enrichment.input),
                "data": {},
            }
            if not enrichment.finished:
                return Reply(202, body)
            body["data"] = enrichment.poll_data
            return Reply(200, body)

    def credits_body(self) -> dict[str, Any]:
        """The body of `GET /team/credits`."""
        with self._lock:
            self.complete_due()
            n = self._credits
            return {
                "credits": n,
                "details": {
                    "remaining": {
                        "total": n,
                        "freemium": 0,
                        "subscription": n,
                        "gifted": 0,
                        "paid": 0,
                    }
                },
            }

    def export_rows(self, wanted_states: list[str] | None) -> list[dict[str, Any]]:
        """Rows of `GET /campaigns/{id}/export/leads` for the seeded campaign.

        Args:
            wanted_states: the `state` values (`all` for every lead); None or empty → no rows.

        Returns:
            One row per matching lead with its current contact data.
        """
        with self._lock:
            self.complete_due()
            if not wanted_states:
                return []
            take_all = "all" in wanted_states
            rows: list[dict[str, Any]] = []
            for lead in self.leads:
                if not take_all and lead.last_state not in wanted_states:
                    continue
                contact = self._contacts.get(lead.lead_id) or Contact.from_lead(lead)
                rows.append(
                    {
                        "_id": lead.lead_id,
                        "email": contact.email,
                        "emailStatus": contact.email_status,
                        "firstName": contact.first_name,
                        "lastName": contact.last_name,
                        "phone": contact.phone,
                        "linkedinUrl": contact.linkedin_url,
                        "companyName": contact.company_name,
                        "companyDomain": contact.company_domain,
                        "jobTitle": contact.job_title,
                        "lastState": lead.last_state,
                        "status": lead.status,
                        "timezone": lead.timezone,
                        "picture": lead.picture,
                        "icebreaker": lead.icebreaker,
                    }
                )
            return rows

    def contact_of(self, lead_id: str) -> Contact | None:
        """A copy of the current contact of a lead (None when missing), for tests."""
        with self._lock:
            contact = self._contacts.get(lead_id)
            return None if contact is None else Contact(**vars(contact))

    def enrichment(self, enrichment_id: str) -> Enrichment | None:
        """The enrichment record (for tests and debugging), or None."""
        with self._lock:
            return self._enrichments.get(enrichment_id)


__all__ = [
    "Admission",
    "Contact",
    "Enrichment",
    "Reply",
    "SandboxState",
    "SandboxStats",
    "WebhookDelivery",
    "WebhookJob",
    "max_in_window",
    "strip_query",
    "webhook_url_allowed",
]
