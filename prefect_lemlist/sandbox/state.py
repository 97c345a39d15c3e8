"""In-memory state of a sandbox: contacts, enrichments, credits, rate limiter and statistics.

Everything here is HTTP-agnostic and guarded by one re-entrant lock, so the server thread and
the caller's thread (`Sandbox.configure`, `Sandbox.stats`) can use it concurrently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import math
import os
import random
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
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
from prefect_lemlist.sandbox.people import (
    WORKFLOWS,
    PersonTruth,
    missing_input_error,
    normalize_inputs,
    person_key,
    person_truth,
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
MSG_NO_CREDITS_400 = "Not enough credits"
MSG_NO_CREDITS_402 = "Payment Required: not enough credits"

BULK_MAX_ITEMS = 500
"""Most items one `POST /v2/enrichments/bulk` body may hold."""

UNKNOWN_WEBHOOK_KEYS: dict[str, str] = {
    "find_email": "emailFinder",
    "verify": "emailVerifier",
    "linkedin_enrichment": "linkedinEnricher",
    "find_phone": "phoneFinder",
}
"""Webhook result keys of the `unknown_keys` body style."""

STATE_FILE_FORMAT = "lemlist-sandbox-state"
STATE_FILE_VERSION = 1


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
    """One enrichment (`enr_…`) and its decided fate.

    Attributes:
        enrichment_id: the `enr_…` id.
        lead_id: the lead enriched (None for `POST /enrich` and bulk enrichments).
        contact_id: the contact enriched (None for `POST /enrich` and bulk enrichments).
        workflows: the workflows run, in processing order.
        input: the `input` object `GET /enrich/{id}` shows.
        started_at: monotonic start time.
        due_at: monotonic time it finishes.
        webhook_url: where the result is POSTed, if anywhere.
        from_app: started in the lemlist app (pre-seeded, free).
        fails: ends with an unknown status (`error`).
        vanishes: `GET /enrich/{id}` answers 404 once it would be finished.
        never_finishes: stays in progress forever.
        duplicate_webhook: its webhook is delivered twice.
        finished: whether it has finished.
        status: `in-progress`, `done` or `error`.
        poll_data: the `data` object served by polling once finished.
        route: the route that started it (`enrich_post`, `enrich_data`, `bulk`, `app`).
        person_key: the person's identity when its results come from `person_truth`.
        person_inputs: the normalised inputs `person_truth` is derived from.
        metadata: the bulk item's metadata (echoed in the webhook when `has_metadata`).
        has_metadata: whether the bulk item carried a metadata.
        out_of_credits: accepted without credits (`accept_then_fail`): ends `error`.
    """

    enrichment_id: str
    lead_id: str | None
    contact_id: str | None
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
    route: str = "enrich_post"
    person_key: str | None = None
    person_inputs: dict[str, str] | None = None
    metadata: Any = None
    has_metadata: bool = False
    out_of_credits: bool = False


@dataclass(frozen=True)
class PersonLead:
    """A lead of a campaign made from people rows (`Sandbox.add_campaign_from_people`).

    Attributes:
        lead_id: `lea_…` id.
        contact_id: `ctc_…` id (shared by every lead of the same person).
        campaign_id: the campaign it belongs to.
        person_key: the person's identity (`person_key` of the row).
        inputs: the row's normalised inputs (what `person_truth` is derived from).
        person_id: the row's `person_id` column.
        last_state: `lastState` of the export.
        status: lead status.
        timezone: lead timezone.
    """

    lead_id: str
    contact_id: str
    campaign_id: str
    person_key: str
    inputs: dict[str, str]
    person_id: str
    last_state: str = "scanned"
    status: str = "running"
    timezone: str = "Europe/Paris"


@dataclass(frozen=True)
class PeopleCampaign:
    """A campaign created from people rows.

    Attributes:
        campaign_id: `cam_…` id.
        name: campaign name.
        lead_ids: its leads, in row order.
    """

    campaign_id: str
    name: str
    lead_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Outcome:
    """What an enrichment finds, whatever the source of truth (seeded lead or person)."""

    email: str | None
    email_status: str | None
    phone: str | None
    profile: dict[str, Any] | None
    verify_of: Callable[[str], str | None]


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


def iso_time(epoch: float) -> str:
    """Format an epoch time as ISO 8601 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).

    Args:
        epoch: seconds since the Unix epoch.

    Returns:
        The ISO string, `Z`-suffixed.
    """
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bulk_body_error(body: Any) -> str | None:
    """Validate a bulk body as a whole (every item), before anything starts.

    Checks, in order: the body is an array; not empty; at most 500 items; then each item in
    order: an object (else `WRONG_BODY_FORMAT`), `input` an object of string/null values
    (`WRONG_INPUT_FORMAT`), `metadata` absent or a string or object (`WRONG_METADATA_FORMAT`),
    `enrichmentRequests` a list of strings (`WRONG_ENRICHMENT_REQUEST_FORMAT`), not empty
    (`NO_WORKFLOW_REQUESTED`), only known workflow names (`UNAUTHORIZED_WORKFLOW_REQUESTED`).

    Args:
        body: the parsed JSON body.

    Returns:
        The error code of the first problem, or None when the body is acceptable.
    """
    if not isinstance(body, list):
        return "WRONG_BODY_FORMAT"
    if not body:
        return "NO_ENRICHMENTS_REQUESTED"
    if len(body) > BULK_MAX_ITEMS:
        return "TOO_MANY_ENRICHMENTS_REQUESTED"
    for item in body:
        if not isinstance(item, dict):
            return "WRONG_BODY_FORMAT"
        inputs = item.get("input")
        if not isinstance(inputs, dict) or any(
            value is not None and not isinstance(value, str) for value in inputs.values()
        ):
            return "WRONG_INPUT_FORMAT"
        if "metadata" in item and not isinstance(item["metadata"], (str, dict)):
            return "WRONG_METADATA_FORMAT"
        requests = item.get("enrichmentRequests")
        if not isinstance(requests, list) or not all(isinstance(r, str) for r in requests):
            return "WRONG_ENRICHMENT_REQUEST_FORMAT"
        if not requests:
            return "NO_WORKFLOW_REQUESTED"
        if any(name not in WORKFLOWS for name in requests):
            return "UNAUTHORIZED_WORKFLOW_REQUESTED"
    return None


def _not_found(workflow: str, value: Any) -> bool:
    """Whether a documented webhook result means "nothing found"."""
    if not isinstance(value, dict) or value.get("notFound"):
        return True
    if workflow == "find_email":
        return value.get("email") is None
    if workflow == "find_phone":
        return value.get("phone") is None
    if workflow == "verify":
        return value.get("status") is None
    return False


def styled_webhook_data(
    style: str, hook: dict[str, Any], poll: dict[str, Any], workflows: Sequence[str]
) -> dict[str, Any]:
    """The webhook item `data` of a done enrichment in one `webhook_body_style`.

    Args:
        style: a `SandboxConfig.webhook_body_style` value.
        hook: the documented webhook data (workflow name → result).
        poll: the polling `data` object.
        workflows: the workflows the enrichment ran.

    Returns:
        A new dict in the requested shape.
    """
    if style == "empty_data":
        return {}
    if style == "nulls":
        return {workflow: None for workflow in workflows}
    if style == "not_found_flags":
        return {
            wf: ({"notFound": True} if _not_found(wf, value) else value)
            for wf, value in hook.items()
        }
    if style == "unknown_keys":
        return {UNKNOWN_WEBHOOK_KEYS.get(wf, wf): value for wf, value in hook.items()}
    if style == "polling_keys":
        return json.loads(json.dumps(poll))
    return hook


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

    When `config.state_file` names an existing file, the world is loaded from it instead of
    being freshly seeded (see `save`).

    Args:
        config: the starting configuration.

    Raises:
        ValueError: the state file is unreadable or was written for another seed / lead count.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.RLock()
        self._config = config
        # Each sandbox is its own team unless told otherwise: clients keep per-team records
        # (the enrichment ledger), and two sandboxes must not share them by accident.
        self._own_team_id = make_id(random.SystemRandom(), "tea")
        self.campaign: SeededCampaign = seed_campaign(config.leads, config.seed)
        self.leads_by_id: dict[str, SandboxLead] = {lead.lead_id: lead for lead in self.leads}
        self._foreign = frozenset(self.campaign.foreign_lead_ids)
        self._contacts: dict[str, Contact] = {
            lead.lead_id: Contact.from_lead(lead) for lead in self.leads if lead.has_contact
        }
        self._leads_by_contact: dict[str, list[str]] = {
            lead.contact_id: [lead.lead_id] for lead in self.leads if lead.has_contact
        }
        self._rng = random.Random(f"lemlist-sandbox-timing-{config.seed}")
        self._fault_rng = random.Random(f"lemlist-sandbox-faults-{config.seed}")
        self._fate_rng = random.Random(f"lemlist-sandbox-fates-{config.seed}")
        self._people_rng = random.Random(f"lemlist-sandbox-people-ids-{config.seed}")
        self._enrichments: dict[str, Enrichment] = {}
        self._due: list[tuple[float, int, str]] = []
        self._due_seq = 0
        self._running: dict[str, str] = {}
        self._not_found: set[tuple[str, str, tuple[str | None, ...]]] = set()
        self._linkedin_done: set[tuple[str, str | None]] = set()
        self._credits = config.credits
        self._webhook_jobs: list[WebhookJob] = []
        self._accepted: dict[str, deque[float]] = {}
        self._person_leads: dict[str, PersonLead] = {}
        self._people_campaigns: dict[str, PeopleCampaign] = {}
        self._contact_by_person: dict[str, str] = {}
        self._lead_updated: dict[str, float] = {}
        self._key_requests: dict[str, int] = {}
        self._created_epoch = time.time()
        self._truths: dict[str, PersonTruth] = {}
        self._reset_counters()
        path = config.state_file
        if path is not None and Path(path).exists():
            self._load(Path(path))
        else:
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

    @property
    def team_id(self) -> str:
        """The team every API key belongs to (`config.team_id`, or a random one per sandbox)."""
        with self._lock:
            return self._config.team_id or self._own_team_id

    def configure(self, **overrides: Any) -> SandboxConfig:
        """Change knobs at runtime (validated; `credits` resets the balance).

        Saves the state file afterwards when `state_file` is set.

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
            if self._config.state_file is not None:
                self.save()
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
                    lead.lead_id,
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
        self._started_by_person: dict[str, int] = {}
        self._started_by_contact: dict[str, int] = {}
        self._started_by_route: dict[str, int] = {}
        self._bulk_items = 0
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
        """Whether `key` is one of the configured API keys (revocation not considered)."""
        with self._lock:
            return key in self._config.api_keys

    def authenticate(self, key: str) -> bool:
        """Check a request's API key and count its use (for `revoke_key_after_requests`).

        Args:
            key: the password of the request's Basic auth.

        Returns:
            False for an unknown key, or for the first key once it made
            `revoke_key_after_requests` authenticated requests (it is then revoked).
        """
        with self._lock:
            cfg = self._config
            if key not in cfg.api_keys:
                return False
            used = self._key_requests.get(key, 0)
            limit = cfg.revoke_key_after_requests
            if limit is not None and key == cfg.api_keys[0] and used >= limit:
                return False
            self._key_requests[key] = used + 1
            return True

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
            if (
                enrichment is not None
                and enrichment.lead_id is not None
                and enrichment.lead_id not in self._first_result_by_lead
            ):
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

    def _count_started(
        self,
        route: str,
        *,
        lead_id: str | None = None,
        contact_id: str | None = None,
        key: str | None = None,
    ) -> None:
        """Count one accepted enrichment in the statistics."""
        self._started_by_route[route] = self._started_by_route.get(route, 0) + 1
        if lead_id is not None:
            self._started_by_lead[lead_id] = self._started_by_lead.get(lead_id, 0) + 1
        if contact_id is not None:
            self._started_by_contact[contact_id] = self._started_by_contact.get(contact_id, 0) + 1
        if key is not None:
            self._started_by_person[key] = self._started_by_person.get(key, 0) + 1

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
                bulk_items=self._bulk_items,
                enrichments_started_by_person=dict(self._started_by_person),
                enrichments_started_by_contact=dict(self._started_by_contact),
                enrichments_started_by_route=dict(self._started_by_route),
            )

    # ----------------------------------------------------------------- people campaigns

    def add_campaign_from_people(
        self, rows: Sequence[Mapping[str, str]], name: str | None = None
    ) -> tuple[str, list[str]]:
        """Create a campaign whose leads are these people (one lead per row).

        Rows of the same `person_key` (in this call or an earlier one) share one contact, like
        lemlist; each row gets a new lead id. The leads' enrichments use `person_truth`.

        Args:
            rows: people rows (`generate_people` shape; `person_id` optional).
            name: campaign name (default `People campaign N`).

        Returns:
            (campaign id, lead ids in row order).
        """
        with self._lock:
            used = set(self.leads_by_id) | set(self._person_leads) | self._foreign
            campaign_id = make_id(self._people_rng, "cam")
            while campaign_id == self.campaign.campaign_id or campaign_id in self._people_campaigns:
                campaign_id = make_id(self._people_rng, "cam")
            now = time.time()
            lead_ids: list[str] = []
            for index, row in enumerate(rows):
                inputs = normalize_inputs(row)
                key = person_key(inputs)
                contact_id = self._contact_by_person.get(key)
                if contact_id is None:
                    contact_id = self._new_contact_id()
                    self._contact_by_person[key] = contact_id
                    contact = Contact(
                        contact_id=contact_id,
                        first_name=inputs.get("firstName"),
                        last_name=inputs.get("lastName"),
                        company_name=inputs.get("companyName"),
                        company_domain=inputs.get("companyDomain"),
                        job_title=inputs.get("jobTitle"),
                        linkedin_url=inputs.get("linkedinUrl"),
                        email=inputs.get("email"),
                        email_status=None,
                        phone=None,
                    )
                else:
                    contact = self._contact_by_id(contact_id)
                lead_id = make_id(self._people_rng, "lea")
                while lead_id in used:
                    lead_id = make_id(self._people_rng, "lea")
                used.add(lead_id)
                person_id = row.get("person_id")
                self._person_leads[lead_id] = PersonLead(
                    lead_id=lead_id,
                    contact_id=contact_id,
                    campaign_id=campaign_id,
                    person_key=key,
                    inputs=inputs,
                    person_id=person_id if isinstance(person_id, str) else str(index + 1),
                )
                self._contacts[lead_id] = contact
                self._leads_by_contact.setdefault(contact_id, []).append(lead_id)
                self._lead_updated[lead_id] = now
                lead_ids.append(lead_id)
            label = name or f"People campaign {len(self._people_campaigns) + 1}"
            self._people_campaigns[campaign_id] = PeopleCampaign(
                campaign_id=campaign_id, name=label, lead_ids=tuple(lead_ids)
            )
            return campaign_id, lead_ids

    def _new_contact_id(self) -> str:
        contact_id = make_id(self._people_rng, "ctc")
        while contact_id in self._leads_by_contact:
            contact_id = make_id(self._people_rng, "ctc")
        return contact_id

    def _contact_by_id(self, contact_id: str) -> Contact:
        lead_id = self._leads_by_contact[contact_id][0]
        return self._contacts[lead_id]

    def person_lead(self, lead_id: str) -> PersonLead | None:
        """The lead of a people campaign with this id, or None."""
        with self._lock:
            return self._person_leads.get(lead_id)

    @property
    def campaign_ids(self) -> list[str]:
        """Every campaign id: the seeded one first, then people campaigns in creation order."""
        with self._lock:
            return [self.campaign.campaign_id, *self._people_campaigns]

    def has_campaign(self, campaign_id: str) -> bool:
        """Whether the campaign exists in this sandbox."""
        with self._lock:
            return campaign_id == self.campaign.campaign_id or campaign_id in self._people_campaigns

    def _truth(self, inputs: Mapping[str, str]) -> PersonTruth:
        key = person_key(inputs)
        truth = self._truths.get(key)
        if truth is None:
            truth = person_truth(inputs, self._config.seed)
            self._truths[key] = truth
        return truth

    # ----------------------------------------------------------------- enrich POST

    @staticmethod
    def _input_key(contact: Contact) -> tuple[str | None, ...]:
        return tuple(contact.enrichment_input().values())

    def _credit_refusal(self) -> Reply | None:
        """The answer refusing an enrichment start for lack of credits (None: go on)."""
        if self._credits > 0:
            return None
        answer = self._config.out_of_credits_answer
        if answer == "400":
            return Reply(400, MSG_NO_CREDITS_400, is_json=False)
        if answer == "402":
            return Reply(402, MSG_NO_CREDITS_402, is_json=False)
        return None

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
            person = self._person_leads.get(lead_id)
            if lead_id not in self.leads_by_id and person is None:
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
            refusal = self._credit_refusal()
            if refusal is not None:
                return refusal
            low, high = self._config.enrichment_seconds
            enrichment = self._create_enrichment(
                lead_id,
                contact,
                tuple(workflows),
                webhook_url,
                now,
                duration=self._rng.uniform(low, high),
                from_app=False,
                person=person,
            )
            self._count_started(
                "enrich_post",
                lead_id=lead_id,
                contact_id=contact.contact_id,
                key=person.person_key if person is not None else None,
            )
            return Reply(200, {"id": enrichment.enrichment_id})

    def _workflows_to_run(
        self, contact: Contact, requested: Sequence[str], force: bool
    ) -> list[str]:
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
        lead_id: str,
        contact: Contact,
        workflows: tuple[str, ...],
        webhook_url: str | None,
        now: float,
        *,
        duration: float,
        from_app: bool,
        person: PersonLead | None = None,
    ) -> Enrichment:
        enrichment = self._new_enrichment(
            lead_id=lead_id,
            contact_id=contact.contact_id,
            workflows=workflows,
            inputs=contact.enrichment_input(),
            webhook_url=webhook_url,
            now=now,
            duration=duration,
            from_app=from_app,
            route="app" if from_app else "enrich_post",
            key=person.person_key if person is not None else None,
            person_inputs=dict(person.inputs) if person is not None else None,
        )
        self._running[contact.contact_id] = enrichment.enrichment_id
        return enrichment

    def _new_enrichment(
        self,
        *,
        lead_id: str | None,
        contact_id: str | None,
        workflows: tuple[str, ...],
        inputs: dict[str, str | None],
        webhook_url: str | None,
        now: float,
        duration: float,
        from_app: bool,
        route: str,
        key: str | None = None,
        person_inputs: dict[str, str] | None = None,
        metadata: Any = None,
        has_metadata: bool = False,
    ) -> Enrichment:
        """Draw an id and a fate, register the enrichment and schedule its end."""
        enrichment_id = make_id(self._rng, "enr")
        while enrichment_id in self._enrichments:
            enrichment_id = make_id(self._rng, "enr")
        cfg = self._config
        draws = [self._fate_rng.random() for _ in range(4)]
        enrichment = Enrichment(
            enrichment_id=enrichment_id,
            lead_id=lead_id,
            contact_id=contact_id,
            workflows=workflows,
            input=inputs,
            started_at=now,
            due_at=now + duration,
            webhook_url=webhook_url,
            from_app=from_app,
            fails=not from_app and draws[0] < cfg.enrichment_unknown_status_rate,
            vanishes=not from_app and draws[1] < cfg.enrichment_vanish_rate,
            never_finishes=not from_app and draws[2] < cfg.enrichment_never_finish_rate,
            duplicate_webhook=not from_app and draws[3] < cfg.webhook_duplicate_rate,
            route=route,
            person_key=key,
            person_inputs=person_inputs,
            metadata=metadata,
            has_metadata=has_metadata,
            out_of_credits=not from_app and self._credits <= 0,
        )
        self._enrichments[enrichment_id] = enrichment
        if not enrichment.never_finishes:
            self._due_seq += 1
            heapq.heappush(self._due, (enrichment.due_at, self._due_seq, enrichment_id))
        return enrichment

    # ----------------------------------------------------------------- contacts routes

    def start_data_enrichment(
        self,
        flags: Mapping[str, bool],
        raw_inputs: Mapping[str, str | None],
        webhook_url: str | None,
    ) -> Reply:
        """Apply `POST /enrich` (one person, no lead, no dedupe, always billable).

        Args:
            flags: query flag name (`findEmail`…) → value.
            raw_inputs: the person inputs from the query (`email`, `linkedinUrl`...).
            webhook_url: the `webhookUrl` query value, if given.

        Returns:
            200 `{"id": "enr_…"}`, 400 text (no flag, invalid webhookUrl, `Bad request` when a
            requested workflow lacks its inputs, `Not enough credits`) or 402.
        """
        with self._lock:
            now = time.monotonic()
            self.complete_due(now)
            requested = tuple(wf for flag, wf in WORKFLOW_FLAGS.items() if flags.get(flag))
            if not requested:
                return Reply(400, MSG_NO_FLAG, is_json=False)
            if webhook_url is not None and not webhook_url_allowed(
                webhook_url, self._config.webhook_allowed_hosts
            ):
                return Reply(400, "Invalid webhookUrl", is_json=False)
            inputs = normalize_inputs(raw_inputs)
            if missing_input_error(requested, inputs) is not None:
                return Reply(400, "Bad request", is_json=False)
            refusal = self._credit_refusal()
            if refusal is not None:
                return refusal
            enrichment = self._start_person_enrichment(
                "enrich_data", requested, inputs, webhook_url, now
            )
            return Reply(200, {"id": enrichment.enrichment_id})

    def _start_person_enrichment(
        self,
        route: str,
        workflows: Sequence[str],
        inputs: dict[str, str],
        webhook_url: str | None,
        now: float,
        *,
        metadata: Any = None,
        has_metadata: bool = False,
    ) -> Enrichment:
        key = person_key(inputs)
        low, high = self._config.enrichment_seconds
        ordered = tuple(wf for wf in WORKFLOW_FLAGS.values() if wf in set(workflows))
        enrichment = self._new_enrichment(
            lead_id=None,
            contact_id=None,
            workflows=ordered,
            inputs=dict(inputs),
            webhook_url=webhook_url,
            now=now,
            duration=self._rng.uniform(low, high),
            from_app=False,
            route=route,
            key=key,
            person_inputs=dict(inputs),
            metadata=metadata,
            has_metadata=has_metadata,
        )
        self._count_started(route, key=key)
        return enrichment

    def start_bulk(self, body: Any, webhook_url: str | None) -> Reply:
        """Apply `POST /v2/enrichments/bulk` to a parsed JSON body.

        Args:
            body: the parsed JSON body.
            webhook_url: the `webhookUrl` query value, if given.

        Returns:
            400 JSON `{"error": CODE}` for a whole-request problem (nothing started), 400 text
            `Invalid webhookUrl`, 400/402 when out of credits (per `out_of_credits_answer`), or
            200 with one answer per item in request order: `{"id": "enr_…"}` or
            `{"error": CODE}`, each with the item's `metadata` when it was sent.
        """
        with self._lock:
            now = time.monotonic()
            self.complete_due(now)
            code = bulk_body_error(body)
            if code is not None:
                return Reply(400, {"error": code})
            if webhook_url is not None and not webhook_url_allowed(
                webhook_url, self._config.webhook_allowed_hosts
            ):
                return Reply(400, "Invalid webhookUrl", is_json=False)
            prepared: list[tuple[dict[str, str], list[str], str | None, dict[str, Any]]] = []
            for item in body:
                inputs = normalize_inputs(item["input"])
                requests = list(dict.fromkeys(item["enrichmentRequests"]))
                answer: dict[str, Any] = {}
                if "metadata" in item:
                    answer["metadata"] = item["metadata"]
                prepared.append((inputs, requests, missing_input_error(requests, inputs), answer))
            if any(error is None for _, _, error, _ in prepared):
                refusal = self._credit_refusal()
                if refusal is not None:
                    return refusal
            answers: list[dict[str, Any]] = []
            for inputs, requests, error, echo in prepared:
                if error is not None:
                    answers.append({"error": error, **echo})
                    continue
                enrichment = self._start_person_enrichment(
                    "bulk",
                    requests,
                    inputs,
                    webhook_url,
                    now,
                    metadata=echo.get("metadata"),
                    has_metadata="metadata" in echo,
                )
                answers.append({"id": enrichment.enrichment_id, **echo})
            self._bulk_items += len(body)
            return Reply(200, answers)

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
                enrichment = self._enrichments[enrichment_id]
                if not enrichment.finished:
                    self._finish(enrichment)
                    finished += 1
            return finished

    def _finish(self, enrichment: Enrichment) -> None:
        """Compute the results of an enrichment, write them back and queue its webhook."""
        contact = self._contacts.get(enrichment.lead_id) if enrichment.lead_id else None
        if (
            enrichment.contact_id is not None
            and self._running.get(enrichment.contact_id) == enrichment.enrichment_id
        ):
            del self._running[enrichment.contact_id]
        enrichment.finished = True
        hook_data: dict[str, Any] = {}
        if enrichment.fails or enrichment.out_of_credits:
            enrichment.status = "error"
        else:
            outcome = self._outcome(enrichment, contact)
            poll, hook, cost, apply = self._results(enrichment, outcome, contact)
            if enrichment.from_app:
                cost = 0  # started (and billed) in the lemlist app, before the API session
            if cost > self._credits:
                enrichment.status = "error"  # out of credits: lemlist just stops
            else:
                apply()
                self._credits -= cost
                self._credits_used += cost
                enrichment.status = "done"
                enrichment.poll_data = poll
                hook_data = styled_webhook_data(
                    self._config.webhook_body_style, hook, poll, enrichment.workflows
                )
        if enrichment.webhook_url is not None:
            event = "enrichmentDone" if enrichment.status == "done" else "enrichmentError"
            item: dict[str, Any] = {"id": enrichment.enrichment_id}
            if enrichment.has_metadata:
                item["metadata"] = enrichment.metadata
            item["data"] = hook_data
            url = enrichment.webhook_url
            if self._config.webhook_strip_query:
                url = strip_query(url)
            self._webhook_jobs.append(
                WebhookJob(
                    enrichment_id=enrichment.enrichment_id,
                    url=url,
                    payload={"data": [item], "type": event},
                    copies=2 if enrichment.duplicate_webhook else 1,
                )
            )

    def _outcome(self, enrichment: Enrichment, contact: Contact | None) -> _Outcome:
        """The source of truth of an enrichment: the seeded lead, or the person's truth."""
        lead = self.leads_by_id.get(enrichment.lead_id) if enrichment.lead_id else None
        if lead is not None and enrichment.person_inputs is None:
            status = lead.true_email_status
            return _Outcome(
                email=lead.true_email,
                email_status=lead.true_email_status,
                phone=lead.true_phone,
                profile=lead.linkedin_profile if contact and contact.linkedin_url else None,
                verify_of=lambda _email: status or "risky",
            )
        truth = self._truth(enrichment.person_inputs or {})
        return _Outcome(
            email=truth.email,
            email_status=truth.email_status,
            phone=truth.phone,
            profile=truth.linkedin_profile,
            verify_of=truth.status_of,
        )

    def _results(
        self, enrichment: Enrichment, outcome: _Outcome, contact: Contact | None
    ) -> tuple[dict[str, Any], dict[str, Any], int, Callable[[], None]]:
        """Results of a finished enrichment from its source of truth.

        Returns:
            (polling data, webhook data, credit cost, a callable writing the results back).
        """
        workflows = enrichment.workflows
        key = tuple(enrichment.input.values())
        cid = contact.contact_id if contact is not None else None
        poll: dict[str, Any] = {}
        hook: dict[str, Any] = {}
        cost = 0
        writes: list[tuple[str, Any]] = []
        marks: list[Any] = []
        input_email = enrichment.input.get("email") if contact is None else None
        email = contact.email if contact is not None else input_email
        status: str | None = contact.email_status if contact is not None else None
        if "find_email" in workflows:
            if outcome.email:
                email, status = outcome.email, outcome.email_status
                writes += [("email", email), ("email_status", status)]
                hook["find_email"] = {"email": email, "status": status}
                poll["email"] = {"email": email, "notFound": False, "status": status}
                if status in FOUND_EMAIL_STATUSES:
                    cost += CREDIT_COSTS["find_email"]
            else:
                email, status = input_email, None  # a lead's email is replaced by "not found"
                if cid is not None:
                    marks.append((cid, "find_email", key))
                hook["find_email"] = {"email": None, "status": None, "notFound": True}
                poll["email"] = {"email": None, "notFound": True, "status": None}
        if "verify" in workflows:
            if email:
                status = outcome.verify_of(email)
                writes.append(("email_status", status))
                cost += CREDIT_COSTS["verify"]
                poll["email"] = {"email": email, "notFound": False, "status": status}
            else:
                poll.setdefault("email", {"email": None, "notFound": True, "status": None})
            hook["verify"] = {"status": status if email else None}
        if "linkedin_enrichment" in workflows:
            cost += self._config.linkedin_credits
            if contact is not None:
                marks.append((cid, contact.linkedin_url))
            profile = outcome.profile
            if profile is not None:
                hook["linkedin_enrichment"] = dict(profile)
                poll["linkedin"] = {**profile, "notFound": False}
            else:
                hook["linkedin_enrichment"] = {"notFound": True}
                poll["linkedin"] = {"notFound": True}
        if "find_phone" in workflows:
            if outcome.phone:
                writes.append(("phone", outcome.phone))
                hook["find_phone"] = {"phone": outcome.phone}
                poll["phone"] = {"phone": outcome.phone, "notFound": False}
                cost += CREDIT_COSTS["find_phone"]
            else:
                if cid is not None:
                    marks.append((cid, "find_phone", key))
                hook["find_phone"] = {"phone": None, "notFound": True}
                poll["phone"] = {"phone": None, "notFound": True}

        def apply() -> None:
            if contact is None:
                return
            for attribute, value in writes:
                setattr(contact, attribute, value)
            for mark in marks:
                if len(mark) == 3:
                    self._not_found.add(mark)
                else:
                    self._linkedin_done.add(mark)
            if writes:
                touched = time.time()
                for lead_id in self._leads_by_contact.get(contact.contact_id, ()):
                    self._lead_updated[lead_id] = touched

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

    def _user_ids(self) -> list[str]:
        seed = self._config.seed
        return [
            make_id(random.Random(f"lemlist-sandbox-user-{seed}-{index}"), "usr")
            for index in range(len(self._config.api_keys))
        ]

    def team_body(self, *, v2: bool = False) -> dict[str, Any]:
        """The body of `GET /team` (every API key of the sandbox belongs to this team).

        Args:
            v2: `version=v2` was asked (adds `users`).

        Returns:
            The team object.
        """
        with self._lock:
            users = self._user_ids()
            body: dict[str, Any] = {
                "_id": self.team_id,
                "name": "Sandbox team",
                "userIds": users,
                "createdBy": users[0],
                "createdAt": "2024-01-15T09:30:00.000Z",
                "hooks": [],
                "beta": [],
                "slackWebhook": {"url": "", "failCounter": 0},
                "invitedUsers": [],
                "agency": False,
                "pictureId": None,
                "customDomain": None,
            }
            if v2:
                body["users"] = [
                    {
                        "_id": user,
                        "email": f"user{index + 1}@sandbox.lemlist.invalid",
                        "name": f"Sandbox User {index + 1}",
                    }
                    for index, user in enumerate(users)
                ]
            return body

    def _lead_rows(self, campaign_id: str) -> list[tuple[str, Contact | None, dict[str, Any]]]:
        """(lead id, current contact, campaign fields) of every lead of a campaign."""
        rows: list[tuple[str, Contact | None, dict[str, Any]]] = []
        if campaign_id == self.campaign.campaign_id:
            for lead in self.leads:
                extra = {
                    "lastState": lead.last_state,
                    "status": lead.status,
                    "timezone": lead.timezone,
                    "picture": lead.picture,
                    "icebreaker": lead.icebreaker,
                }
                rows.append((lead.lead_id, self._contacts.get(lead.lead_id), extra))
            return rows
        people = self._people_campaigns.get(campaign_id)
        for lead_id in people.lead_ids if people else ():
            person = self._person_leads[lead_id]
            extra = {
                "lastState": person.last_state,
                "status": person.status,
                "timezone": person.timezone,
                "picture": None,
                "icebreaker": "",
            }
            rows.append((lead_id, self._contacts.get(lead_id), extra))
        return rows

    def leads_by_email(self, email: str, *, v2: bool = True) -> Reply:
        """Apply `GET /leads/{email}`: the leads whose contact email is `email`.

        Args:
            email: the path's email (compared case-insensitively, whitespace stripped).
            v2: `version=v2` was asked: an array, one item per lead (campaign order). Without
                it (v1), one flat object for the first matching lead.

        Returns:
            200 with the lead(s), or 404 text/plain `Lead not found`.
        """
        with self._lock:
            self.complete_due()
            wanted = email.strip().lower()
            found: list[dict[str, Any]] = []
            for campaign_id in self.campaign_ids:
                name, status = self._campaign_facts(campaign_id)
                for lead_id, contact, extra in self._lead_rows(campaign_id):
                    if contact is None or not contact.email or contact.email.lower() != wanted:
                        continue
                    updated = self._lead_updated.get(lead_id, self._created_epoch)
                    found.append(
                        {
                            "_id": lead_id,
                            "updatedAt": iso_time(updated),
                            "isPaused": extra["status"] == "paused",
                            "state": extra["lastState"],
                            "status": extra["status"],
                            "personalized": False,
                            "source": "api",
                            "contactId": contact.contact_id,
                            "variables": {
                                "firstName": contact.first_name,
                                "lastName": contact.last_name,
                                "companyName": contact.company_name,
                                "jobTitle": contact.job_title,
                                "companyDomain": contact.company_domain,
                                "email": contact.email,
                            },
                            "enrichment": {"emailStatus": contact.email_status},
                            "campaign": {"id": campaign_id, "name": name, "status": status},
                            "sendingUser": {},
                        }
                    )
            if not found:
                return Reply(404, "Lead not found", is_json=False)
            if v2:
                return Reply(200, found)
            first = found[0]
            return Reply(
                200,
                {
                    **first["variables"],
                    "_id": first["_id"],
                    "isPaused": first["isPaused"],
                    "campaignId": first["campaign"]["id"],
                    "contactId": first["contactId"],
                    "emailStatus": first["enrichment"]["emailStatus"],
                },
            )

    def _campaign_facts(self, campaign_id: str) -> tuple[str, str]:
        if campaign_id == self.campaign.campaign_id:
            return self.campaign.name, "running"
        return self._people_campaigns[campaign_id].name, "running"

    def export_rows(
        self, wanted_states: list[str] | None, campaign_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of `GET /campaigns/{id}/export/leads`.

        Args:
            wanted_states: the `state` values (`all` for every lead); None or empty → no rows.
            campaign_id: the campaign (default: the seeded one); unknown → no rows.

        Returns:
            One row per matching lead with its current contact data.
        """
        with self._lock:
            self.complete_due()
            if not wanted_states:
                return []
            take_all = "all" in wanted_states
            rows: list[dict[str, Any]] = []
            for lead_id, current, extra in self._lead_rows(
                campaign_id or self.campaign.campaign_id
            ):
                if not take_all and extra["lastState"] not in wanted_states:
                    continue
                contact = current or Contact.from_lead(self.leads_by_id[lead_id])
                rows.append(
                    {
                        "_id": lead_id,
                        "email": contact.email,
                        "emailStatus": contact.email_status,
                        "firstName": contact.first_name,
                        "lastName": contact.last_name,
                        "phone": contact.phone,
                        "linkedinUrl": contact.linkedin_url,
                        "companyName": contact.company_name,
                        "companyDomain": contact.company_domain,
                        "jobTitle": contact.job_title,
                        **extra,
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

    # ----------------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        """The mutable world as JSON-ready data (what `save` writes).

        Monotonic times are stored as wall-clock epoch seconds so they survive a restart.

        Returns:
            A dict (see `save`).
        """
        with self._lock:
            mono, wall = time.monotonic(), time.time()
            cfg = self._config
            contacts = {
                contact.contact_id: dataclasses.asdict(contact)
                for contact in self._contacts.values()
            }
            enrichments = []
            for enrichment in self._enrichments.values():
                record = dataclasses.asdict(enrichment)
                record["workflows"] = list(enrichment.workflows)
                record["started_at"] = wall + (enrichment.started_at - mono)
                record["due_at"] = wall + (enrichment.due_at - mono)
                enrichments.append(record)
            return {
                "format": STATE_FILE_FORMAT,
                "version": STATE_FILE_VERSION,
                "saved_at": wall,
                "seed": cfg.seed,
                "leads": cfg.leads,
                "api_keys": list(cfg.api_keys),
                "team_id": self.team_id,
                "key_requests": dict(self._key_requests),
                "credits": self._credits,
                "created_epoch": self._created_epoch,
                "contacts": contacts,
                "lead_contacts": {
                    lead_id: contact.contact_id for lead_id, contact in self._contacts.items()
                },
                "person_leads": [dataclasses.asdict(p) for p in self._person_leads.values()],
                "people_campaigns": [
                    {"campaign_id": c.campaign_id, "name": c.name, "lead_ids": list(c.lead_ids)}
                    for c in self._people_campaigns.values()
                ],
                "contact_by_person": dict(self._contact_by_person),
                "lead_updated": dict(self._lead_updated),
                "enrichments": enrichments,
                "running": dict(self._running),
                "not_found": [
                    [c, wf, list(key)] for c, wf, key in sorted(self._not_found, key=str)
                ],
                "linkedin_done": [list(mark) for mark in sorted(self._linkedin_done, key=str)],
                "due_seq": self._due_seq,
                "rng": {
                    "timing": _rng_state(self._rng),
                    "faults": _rng_state(self._fault_rng),
                    "fates": _rng_state(self._fate_rng),
                    "people": _rng_state(self._people_rng),
                },
            }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the mutable world to the state file atomically (temp file + `os.replace`).

        Args:
            path: where to write (default: `config.state_file`).

        Returns:
            The written path, or None when there is no state file.
        """
        with self._lock:
            target = path if path is not None else self._config.state_file
            if target is None:
                return None
            data = self.snapshot()
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return target

    def _load(self, path: Path) -> None:
        """Replace the freshly seeded world by the one saved in `path`."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the sandbox state file {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != STATE_FILE_FORMAT:
            raise ValueError(f"{path} is not a lemlist sandbox state file")
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"{path}: unsupported state file version {data.get('version')!r}")
        cfg = self._config
        if (data["seed"], data["leads"]) != (cfg.seed, cfg.leads):
            raise ValueError(
                f"{path} was saved by a sandbox with seed={data['seed']} leads={data['leads']}, "
                f"not seed={cfg.seed} leads={cfg.leads}"
            )
        mono, wall = time.monotonic(), time.time()
        self._config = cfg.with_overrides(api_keys=data["api_keys"])
        # the team is the account: a restarted sandbox is the same lemlist team (a configured
        # `team_id` still wins, like the keys and credits it was saved with)
        self._own_team_id = str(data.get("team_id") or self._own_team_id)
        self._key_requests = {str(k): int(v) for k, v in data["key_requests"].items()}
        self._credits = int(data["credits"])
        self._created_epoch = float(data["created_epoch"])
        contacts = {cid: Contact(**fields) for cid, fields in data["contacts"].items()}
        self._contacts = {lead_id: contacts[cid] for lead_id, cid in data["lead_contacts"].items()}
        self._leads_by_contact = {}
        for lead_id, cid in data["lead_contacts"].items():
            self._leads_by_contact.setdefault(cid, []).append(lead_id)
        self._person_leads = {
            record["lead_id"]: PersonLead(**record) for record in data["person_leads"]
        }
        self._people_campaigns = {
            record["campaign_id"]: PeopleCampaign(
                campaign_id=record["campaign_id"],
                name=record["name"],
                lead_ids=tuple(record["lead_ids"]),
            )
            for record in data["people_campaigns"]
        }
        self._contact_by_person = dict(data["contact_by_person"])
        self._lead_updated = {k: float(v) for k, v in data["lead_updated"].items()}
        self._enrichments = {}
        self._due = []
        for record in data["enrichments"]:
            record = dict(record)
            record["workflows"] = tuple(record["workflows"])
            record["started_at"] = mono + (float(record["started_at"]) - wall)
            record["due_at"] = mono + (float(record["due_at"]) - wall)
            enrichment = Enrichment(**record)
            self._enrichments[enrichment.enrichment_id] = enrichment
        self._due_seq = int(data["due_seq"])
        for enrichment in self._enrichments.values():
            if not enrichment.finished and not enrichment.never_finishes:
                self._due_seq += 1
                self._due.append((enrichment.due_at, self._due_seq, enrichment.enrichment_id))
        heapq.heapify(self._due)
        self._running = dict(data["running"])
        self._not_found = {(c, wf, tuple(key)) for c, wf, key in data["not_found"]}
        self._linkedin_done = {(c, url) for c, url in data["linkedin_done"]}
        rngs = data["rng"]
        _set_rng_state(self._rng, rngs["timing"])
        _set_rng_state(self._fault_rng, rngs["faults"])
        _set_rng_state(self._fate_rng, rngs["fates"])
        _set_rng_state(self._people_rng, rngs["people"])


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


__all__ = [
    "Admission",
    "Contact",
    "Enrichment",
    "PeopleCampaign",
    "PersonLead",
    "Reply",
    "SandboxState",
    "SandboxStats",
    "WebhookDelivery",
    "WebhookJob",
    "bulk_body_error",
    "iso_time",
    "max_in_window",
    "strip_query",
    "styled_webhook_data",
    "webhook_url_allowed",
]
