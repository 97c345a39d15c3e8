"""The request pipeline in front of every lemlist route: API key checks, the sliding rate
window (429s) and fault injection, in that order, before the route's own work.

One `LemlistMiddleware` per app. Its decisions are HTTP-agnostic (`RateWindow`,
`FaultInjector`); its `run` applies them to a Starlette request and renders the refusals.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.exceptions import (
    BadCredentials,
    EnrichFailed,
    InternalServerError,
    MethodNotAllowed,
    SandboxError,
    TooManyRequests,
    Unauthorized,
)
from prefect_lemlist.sandbox.responses import (
    Reply,
    error_reply,
    error_response,
    malformed_response,
    rate_headers,
)
from prefect_lemlist.sandbox.runtime import AppRuntime, ConnectionRegistry, DropConnectionResponse
from prefect_lemlist.sandbox.state import SandboxState

FaultKind = Literal["429", "5xx", "drop", "malformed", "slow"]
"""Faults the sandbox can inject, in the order they are drawn."""

Work = Callable[[Request], Reply | Response | Awaitable[Reply | Response]]
"""A route's own work: a `Reply` or a response (or an awaitable of one)."""


def parse_basic_auth(header: str | None) -> str | None:
    """Extract the API key (the password) from an HTTP Basic `Authorization` header.

    Args:
        header: the header value, if any.

    Returns:
        The password, or None when the header is missing or garbled.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if ":" not in decoded:
        return None
    return decoded.partition(":")[2]


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

    def headers(self) -> dict[str, str]:
        """The rate headers of the answer."""
        return rate_headers(self.limit, self.remaining, self.reset_epoch)


class RateWindow:
    """lemlist's sliding-window rate limit, per API key (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted: dict[str, deque[float]] = {}

    def admit(self, key: str, config: SandboxConfig, now: float) -> Admission:
        """Apply the sliding-window limit to a request of `key` arriving at `now`.

        Args:
            key: a valid API key.
            config: the current configuration (`rate_limit`, `rate_window_seconds`).
            now: the monotonic arrival time.

        Returns:
            The `Admission`; when not allowed the request must be answered 429.
        """
        wall = time.time()
        window = config.rate_window_seconds
        with self._lock:
            accepted = self._accepted.setdefault(key, deque())
            while accepted and accepted[0] <= now - window:
                accepted.popleft()
            allowed = len(accepted) < config.rate_limit
            if allowed:
                accepted.append(now)
            oldest = accepted[0] if accepted else now
            remaining = max(config.rate_limit - len(accepted), 0)
        until_reset = max(oldest + window - now, 0.0)
        return Admission(
            allowed=allowed,
            limit=config.rate_limit,
            remaining=remaining,
            reset_epoch=wall + until_reset,
            retry_after=max(1, math.ceil(until_reset)),
            arrival=now,
        )

    def revoke(self, key: str, arrival: float) -> None:
        """Un-count an admitted request (it was answered with an injected 429)."""
        with self._lock:
            accepted = self._accepted.get(key)
            if accepted and arrival in accepted:
                accepted.remove(arrival)


class FaultInjector:
    """Draws injected faults and latency from the sandbox's seeded fault RNG (thread-safe).

    Args:
        rng: the fault RNG (`Randomness.faults`).
    """

    def __init__(self, rng: random.Random) -> None:
        self._lock = threading.Lock()
        self._rng = rng

    def decide(self, route: str, config: SandboxConfig) -> FaultKind | None:
        """Draw the fault (if any) for one request on `route` (one draw per fault kind)."""
        if route not in config.fault_routes:
            return None
        rates: list[tuple[FaultKind, float]] = [
            ("429", config.fault_429_rate),
            ("5xx", config.fault_5xx_rate),
            ("drop", config.fault_drop_rate),
            ("malformed", config.fault_malformed_rate),
            ("slow", config.fault_slow_rate),
        ]
        with self._lock:
            hits = [kind for kind, rate in rates if self._rng.random() < rate]
        return hits[0] if hits else None

    def latency(self, config: SandboxConfig) -> float:
        """Draw the extra delay of one answer from `latency_seconds`."""
        low, high = config.latency_seconds
        if high <= 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(low, high)


class LemlistMiddleware:
    """Key checks, rate window and fault injection in front of every lemlist route.

    Args:
        state: the sandbox state (key checks, statistics, configuration).
        connections: the connection registry used by the drop fault.
        runtime: the app runtime (sleeps that end when the server stops).
    """

    def __init__(
        self, state: SandboxState, connections: ConnectionRegistry | None, runtime: AppRuntime
    ) -> None:
        self.state = state
        self.connections = connections
        self.runtime = runtime
        self.window = RateWindow()
        self.faults = FaultInjector(state.randomness.faults)

    def sent(self, response: Response, *, injected_429: bool = False) -> Response:
        """Count a response about to be sent, and return it."""
        self.state.recorder.response(response.status_code, injected_429=injected_429)
        return response

    def _authenticate(self, request: Request) -> str:
        """The request's API key. Raises `Unauthorized` / `BadCredentials`."""
        key = parse_basic_auth(request.headers.get("authorization"))
        if key is None:
            raise Unauthorized()
        if not self.state.authenticate(key):
            raise BadCredentials()
        return key

    async def _inject(
        self, fault: FaultKind | None, route: str, key: str, admission: Admission
    ) -> Response | None:
        """Apply a drawn fault: the faulty answer, or None to go on (after a slow sleep)."""
        cfg = self.state.config
        headers = admission.headers()
        if fault == "429":
            self.window.revoke(key, admission.arrival)
            headers.pop("Retry-After")
            if cfg.fault_retry_after is not None:
                headers["Retry-After"] = cfg.fault_retry_after
            return self.sent(error_response(TooManyRequests(), headers), injected_429=True)
        if fault == "5xx":
            error = EnrichFailed() if route == "enrich_post" else InternalServerError()
            return self.sent(error_response(error, headers))
        if fault == "drop":
            return DropConnectionResponse(self.connections)
        if fault == "malformed":
            response = malformed_response(cfg.fault_malformed_kind)
            response.headers.update(headers)
            return self.sent(response)
        if fault == "slow":
            await self.runtime.sleep(cfg.fault_slow_seconds)
        return None

    async def _admit(
        self, request: Request, method: str, key: str, lead_id: str | None
    ) -> Admission:
        """Record the arrival, apply the rate window and the latency (raises 429 / 405)."""
        state = self.state
        now = time.monotonic()
        state.recorder.arrival(key, now)
        admission = self.window.admit(key, state.config, now)
        if lead_id is not None and request.method == method:
            state.recorder.enrich_post(lead_id)
        await self.runtime.sleep(self.faults.latency(state.config))
        return admission

    async def run(
        self, request: Request, route: str, method: str, work: Work, lead_id: str | None = None
    ) -> Response:
        """Run the pipeline (auth, rate limit, latency, method, faults), then `work`.

        Args:
            request: the request.
            route: the route name (statistics, `fault_routes`).
            method: the route's HTTP method.
            work: the route's own work.
            lead_id: the lead of `POST /leads/{id}/enrich` (per-lead statistics).

        Returns:
            The response to send.
        """
        self.state.recorder.request(route)
        try:
            key = self._authenticate(request)
        except SandboxError as error:
            return self.sent(error_response(error))
        admission = await self._admit(request, method, key, lead_id)
        headers = admission.headers()
        if not admission.allowed:
            headers["Retry-After"] = str(admission.retry_after)
            return self.sent(error_response(TooManyRequests(), headers))
        if request.method != method:
            return self.sent(error_response(MethodNotAllowed(), headers))
        fault = self.faults.decide(route, self.state.config)
        if fault is not None:
            self.state.recorder.fault(fault)
        faulty = await self._inject(fault, route, key, admission)
        if faulty is not None:
            return faulty
        if lead_id is not None:
            self.state.recorder.enrich_processed(lead_id)
        response = await _perform(work, request)
        response.headers.update(headers)
        return self.sent(response)


async def _perform(work: Work, request: Request) -> Response:
    """Run a route's work; a typed error becomes its answer."""
    try:
        result = work(request)
        if inspect.isawaitable(result):
            result = await result
    except SandboxError as error:
        result = error_reply(error)
    return result.to_response() if isinstance(result, Reply) else result


__all__ = [
    "Admission",
    "FaultInjector",
    "FaultKind",
    "LemlistMiddleware",
    "RateWindow",
    "Work",
    "parse_basic_auth",
]
