"""Configuration of the lemlist sandbox: every knob, validated, with safe defaults."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_API_KEY = "sandbox-api-key"
"""The API key a sandbox accepts when `SandboxConfig.api_keys` is not given."""

RouteName = Literal[
    "enrich_post",
    "enrich_get",
    "export",
    "credits",
    "enrich_data",
    "bulk",
    "team",
    "lead_by_email",
]
"""Names of the emulated lemlist routes (used by `fault_routes` and the request statistics)."""

ALL_ROUTES: frozenset[str] = frozenset(get_args(RouteName))
"""Every route name a fault can be applied to."""

MalformedKind = Literal["html", "invalid_json", "wrong_shape", "empty", "huge"]
"""Kinds of malformed 200 answers the sandbox can inject."""

WebhookBodyStyle = Literal[
    "documented", "empty_data", "nulls", "not_found_flags", "unknown_keys", "polling_keys"
]
"""Shapes of the per-enrichment `data` object of webhook bodies (`webhook_body_style`)."""

OutOfCreditsAnswer = Literal["400", "402", "accept_then_fail"]
"""How an enrichment start is answered once the team has no credits left."""

ExportRoute = Literal["v1", "v2", "both"]
"""Which campaign-export paths exist (`export_route`)."""


def _default_api_keys() -> list[str]:
    return [DEFAULT_API_KEY]


def _default_fault_routes() -> set[str]:
    return set(ALL_ROUTES)


def _default_webhook_hosts() -> set[str]:
    return {"127.0.0.1", "localhost", "::1"}


class SandboxConfig(BaseModel):
    """Every setting of a lemlist sandbox.

    Rates are probabilities in [0, 1], decided per request (faults) or once per enrichment
    (enrichment fates) with RNGs seeded from `seed`, so a run is reproducible for a given
    sequence of requests. Ranges are `(min, max)` tuples for a uniform draw.

    Attributes:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free port.
        leads: number of leads in the seeded campaign.
        seed: seed of the data, timing and fault RNGs.
        api_keys: accepted API keys; the first one is `Sandbox.api_key`.
        rate_limit: accepted requests per key per window (lemlist: 20).
        rate_window_seconds: length of the sliding rate-limit window (lemlist: 2 s).
        enrichment_seconds: (min, max) duration of an API-started enrichment.
        app_enrichment_seconds: duration of the pre-seeded enrichments "started in the app".
        latency_seconds: (min, max) extra delay before every answer.
        credits: team credits at start (setting it at runtime resets the balance).
        fault_5xx_rate: chance of a 500 with no work done.
        fault_drop_rate: chance of closing the connection without any HTTP response.
        fault_slow_rate: chance of waiting `fault_slow_seconds` before processing normally.
        fault_slow_seconds: delay of a slow answer.
        fault_429_rate: chance of an injected 429 (beyond the real rate limiter).
        fault_retry_after: `Retry-After` value of injected 429s, sent as-is (None: no header).
        fault_malformed_rate: chance of a malformed 200 with no work done.
        fault_malformed_kind: which malformed body to send.
        fault_routes: routes the faults apply to.
        enrichment_unknown_status_rate: chance a finished enrichment ends `error`, not `done`.
        enrichment_vanish_rate: chance `GET /enrich/{id}` answers 404 once it would be finished.
        enrichment_never_finish_rate: chance an enrichment stays in progress forever.
        webhook_duplicate_rate: chance a webhook is delivered twice.
        webhook_allowed_hosts: the only hosts the sandbox ever POSTs webhooks to.
        team_id: the team (`tea_…`) every API key belongs to (`GET /team`); None: a random
            team per sandbox, kept in `state_file` (a restarted sandbox is the same team, as
            lemlist is; clients keep per-team records).
        linkedin_credits: credits charged per `linkedin_enrichment` (lemlist help: 1, older: 2).
        webhook_body_style: shape of each webhook item's `data` (polling never changes):
            `documented` (default; `find_email`, `verify`, `find_phone`, `linkedin_enrichment`
            keys as in the API notes), `empty_data` (`{}`), `nulls` (each requested workflow
            key with value null), `not_found_flags` (not-found results as `{"notFound": true}`
            only, found ones as documented), `unknown_keys` (results under keys a client cannot
            know: `emailFinder`, `emailVerifier`, `linkedinEnricher`, `phoneFinder`),
            `polling_keys` (the polling `data` object: `email`, `phone`, `linkedin`).
        webhook_strip_query: drop the query string of the webhookUrl when calling it (like a
            proxy that loses it). Default False.
        out_of_credits_answer: how an enrichment start (lead route, `POST /enrich`, bulk) is
            answered once the team's credits are <= 0: `400` (default; 400 text/plain
            `Not enough credits`), `402` (402 text `Payment Required: not enough credits`),
            `accept_then_fail` (200 with an id; the enrichment ends `error` with an
            `enrichmentError` webhook, nothing charged). For bulk, 400/402 refuse the whole
            request. An enrichment costing more than what is left still ends `error` when it
            finishes, whatever this knob.
        revoke_key_after_requests: after this many authenticated requests of the first API key
            (counted since the sandbox started, or across restarts with `state_file`), that
            key answers 401 `The authentication you supplied is incorrect` everywhere; other
            keys keep working. None (default): never.
        export_route: which export path exists: `v1` (default;
            `/campaigns/{id}/export/leads` only), `v2` (`/v2/campaigns/{id}/export/leads` only)
            or `both`. A missing path answers like an unknown path.
        export_v1_missing_status: status of the v1 export path when it does not exist: 200
            (default; lemlist's HTML app page, like any unknown path) or e.g. 404 (text/plain
            `Not Found`).
        state_file: JSON file holding the mutable world (contacts, enrichments with their fate
            and due time, running map, not-found and LinkedIn marks, credits, added campaigns,
            API keys and key usage, the team id, RNG positions). Loaded at start when it exists
            (its API keys and credits then win over `api_keys` and `credits`), saved atomically on
            `Sandbox.stop()` and after `Sandbox.configure`. None (default): in memory only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    leads: int = Field(default=200, ge=0, le=100_000)
    seed: int = 1
    api_keys: list[str] = Field(default_factory=_default_api_keys, min_length=1)
    rate_limit: int = Field(default=20, ge=1)
    rate_window_seconds: float = Field(default=2.0, gt=0)
    enrichment_seconds: tuple[float, float] = (1.0, 4.0)
    app_enrichment_seconds: float = Field(default=60.0, ge=0)
    latency_seconds: tuple[float, float] = (0.0, 0.0)
    credits: int = Field(default=100_000, ge=0)
    fault_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    fault_drop_rate: float = Field(default=0.0, ge=0, le=1)
    fault_slow_rate: float = Field(default=0.0, ge=0, le=1)
    fault_slow_seconds: float = Field(default=30.0, ge=0)
    fault_429_rate: float = Field(default=0.0, ge=0, le=1)
    fault_retry_after: str | None = "1"
    fault_malformed_rate: float = Field(default=0.0, ge=0, le=1)
    fault_malformed_kind: MalformedKind = "html"
    fault_routes: set[str] = Field(default_factory=_default_fault_routes)
    enrichment_unknown_status_rate: float = Field(default=0.0, ge=0, le=1)
    enrichment_vanish_rate: float = Field(default=0.0, ge=0, le=1)
    enrichment_never_finish_rate: float = Field(default=0.0, ge=0, le=1)
    webhook_duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    webhook_allowed_hosts: set[str] = Field(default_factory=_default_webhook_hosts)
    team_id: str | None = Field(default=None, min_length=1)
    linkedin_credits: int = Field(default=1, ge=0)
    webhook_body_style: WebhookBodyStyle = "documented"
    webhook_strip_query: bool = False
    out_of_credits_answer: OutOfCreditsAnswer = "400"
    revoke_key_after_requests: int | None = Field(default=None, ge=0)
    export_route: ExportRoute = "v1"
    export_v1_missing_status: int = Field(default=200, ge=200, le=599)
    state_file: str | None = Field(default=None, min_length=1)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_empty(cls, keys: list[str]) -> list[str]:
        if any(not key for key in keys):
            raise ValueError("API keys must be non-empty strings")
        return keys

    @field_validator("enrichment_seconds", "latency_seconds")
    @classmethod
    def _valid_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low < 0 or high < low:
            raise ValueError("a range must be (min, max) with 0 <= min <= max")
        return value

    @field_validator("fault_routes")
    @classmethod
    def _known_routes(cls, routes: set[str]) -> set[str]:
        unknown = set(routes) - ALL_ROUTES
        if unknown:
            raise ValueError(f"unknown route names {sorted(unknown)}; known: {sorted(ALL_ROUTES)}")
        return set(routes)

    @field_validator("export_v1_missing_status")
    @classmethod
    def _missing_status(cls, status: int) -> int:
        if status != 200 and not 400 <= status <= 599:
            raise ValueError("export_v1_missing_status must be 200 or a 4xx/5xx status")
        return status

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _lower_hosts(cls, hosts: set[str]) -> set[str]:
        return {host.lower().strip("[]") for host in hosts}

    @model_validator(mode="after")
    def _no_duplicate_keys(self) -> SandboxConfig:
        if len(set(self.api_keys)) != len(self.api_keys):
            raise ValueError("api_keys contains duplicates")
        return self

    def with_overrides(self, **overrides: Any) -> SandboxConfig:
        """Return a validated copy with some fields replaced.

        Args:
            **overrides: field names and their new values.

        Returns:
            A new `SandboxConfig`; raises `pydantic.ValidationError` on a bad value or name.
        """
        return SandboxConfig.model_validate({**self.model_dump(), **overrides})
