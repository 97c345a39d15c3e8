"""Configuration of the lemlist sandbox: every knob, validated, with safe defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_API_KEY = "sandbox-api-key"
"""The API key a sandbox accepts when `SandboxConfig.api_keys` is not given."""

RouteName = Literal["enrich_post", "enrich_get", "export", "credits"]
"""Names of the emulated lemlist routes (used by `fault_routes` and the request statistics)."""

ALL_ROUTES: frozenset[str] = frozenset({"enrich_post", "enrich_get", "export", "credits"})
"""Every route name a fault can be applied to."""

MalformedKind = Literal["html", "invalid_json", "wrong_shape", "empty", "huge"]
"""Kinds of malformed 200 answers the sandbox can inject."""


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
