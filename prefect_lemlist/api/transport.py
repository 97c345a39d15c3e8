"""Sending one logical request to lemlist: the rate slot, 429 waits, retries, the delivery
verdict and the error for a refused request. `LemlistClient` builds the requests (`Call`s);
`RequestSender` sends them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from prefect_lemlist.api.answers import error_from_response
from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistRateLimitError,
    LemlistServerError,
    LemlistUnreachableError,
)
from prefect_lemlist.api.headers import retry_after_seconds
from prefect_lemlist.ratelimit import RequestBudget

logger = logging.getLogger("prefect_lemlist.client")

SendHook = Callable[[], Awaitable[None]]
"""Awaited right before a request leaves, inside its rate slot (the ledger's claim)."""

# Transport errors raised before any byte of the request was written (no connection, DNS, TLS
# handshake, no free connection in the pool): the request cannot have reached lemlist.
_NOT_SENT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass
class Call:
    """One logical request: what to send and how to treat failures."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    starts_paid_work: bool = False
    accept: frozenset[int] = frozenset({200})
    before_send: SendHook | None = None

    @property
    def label(self) -> str:
        return f"{self.method} /{self.path}"


class RetryPolicy(Protocol):
    """What a sender needs to know to retry (the client's own settings)."""

    host: str
    max_attempts: int
    max_rate_limit_wait_seconds: float
    backoff_base_seconds: float
    backoff_max_seconds: float


class RequestSender:
    """Sends `Call`s through one key's rate budget, with 429 waits and retries.

    After a 401/403 it sends nothing more: every later call raises the same `LemlistAuthError`
    at once (`delivery="not_sent"`).

    Args:
        budget: the key's request budget.
        policy: the retry settings (read at each attempt, so a caller may tune them).

    Attributes:
        http: the open `httpx.AsyncClient` (set by the client's `async with`).
        requests_sent: HTTP requests sent (429s and failures included).
        requests_by_route: the same, per `METHOD /first-path-segment`.
        refusal: the 401/403 that stopped it, or None.
    """

    def __init__(self, budget: RequestBudget, policy: RetryPolicy) -> None:
        self.budget = budget
        self.policy = policy
        self.http: httpx.AsyncClient | None = None
        self.requests_sent = 0
        self.requests_by_route: Counter[str] = Counter()
        self.refusal: LemlistAuthError | None = None

    async def send(self, call: Call) -> httpx.Response:
        """Send one logical request through the budget, with 429 handling and retries.

        Returns:
            The response, its body read, with a status in `call.accept`.

        Raises:
            LemlistError: mapped from the final status or transport failure.
        """
        attempt = 0
        rate_limit_waited = 0.0
        while True:
            attempt += 1
            response = await self._send_once(call)
            if isinstance(response, httpx.TransportError):
                await self._after_transport_failure(call, response, attempt)
                continue
            status = response.status_code
            if status == 429:
                rate_limit_waited += await self._wait_after_429(call, response, rate_limit_waited)
                attempt -= 1  # rate-limit waits do not use up the error-retry attempts
                continue
            if status >= 500:
                await self._after_server_error(call, response, attempt)
                continue
            if status in call.accept:
                return response
            error = error_from_response(response, call.label)
            if isinstance(error, LemlistAuthError):
                self.refusal = error
            raise error

    async def _send_once(self, call: Call) -> httpx.Response | httpx.TransportError:
        """One HTTP exchange inside a rate slot; a transport failure is returned, not raised."""
        if self.http is None:
            raise RuntimeError("use the client inside `async with`")
        async with self.budget.slot():
            if self.refusal is not None:  # refused while this request waited for its slot
                raise self.refusal.copy_with(delivery="not_sent")
            if call.before_send is not None:
                await call.before_send()
            self.requests_sent += 1
            self.requests_by_route[f"{call.method} /{call.path.split('/')[0]}"] += 1
            started = time.monotonic()
            try:
                response = await self.http.request(
                    call.method, call.path, params=call.params, json=call.json
                )
            except httpx.TransportError as exc:
                logger.debug(
                    "%s failed after %.2fs: %r", call.label, time.monotonic() - started, exc
                )
                return exc
        logger.debug("%s -> %s", call.label, response.status_code)
        return response

    async def _after_transport_failure(
        self, call: Call, failure: httpx.TransportError, attempt: int
    ) -> None:
        """Back off before the next attempt, or raise when none is allowed."""
        reason = f"{type(failure).__name__}: {_transport_text(failure)}"
        if call.starts_paid_work and not isinstance(failure, _NOT_SENT_ERRORS):
            raise LemlistServerError(
                f"{call.label} to {self.policy.host} failed with {reason} after the request was "
                "sent: lemlist may have started the enrichment, so it is not sent again (that "
                "could bill twice)",
                retryable=False,
                delivery="maybe_sent",
            ) from None
        if attempt >= self.policy.max_attempts:
            raise _unreachable(call, failure, reason, attempt, self.policy.host)
        await self._backoff(attempt, call.label, reason)

    async def _wait_after_429(self, call: Call, response: httpx.Response, waited: float) -> float:
        """Pause the key's budget for `Retry-After`; returns the wait, or raises when the
        request has waited too long in total."""
        wait = retry_after_seconds(
            response.headers.get("retry-after"), response.headers.get("x-ratelimit-reset")
        )
        if waited + wait > self.policy.max_rate_limit_wait_seconds:
            raise LemlistRateLimitError(
                f"{call.label}: lemlist kept answering 429 Too Many Requests after waiting "
                f"{waited:.1f}s in total",
                status_code=429,
            )
        logger.warning("%s: rate limited (429), waiting %.1fs", call.label, wait)
        self.budget.pause(wait)
        return wait

    async def _after_server_error(self, call: Call, response: httpx.Response, attempt: int) -> None:
        """Back off before the next attempt, or raise (at once when work may have been done)."""
        error = error_from_response(response, call.label)
        if call.starts_paid_work and error.delivery == "maybe_sent":
            raise error.copy_with(
                f"{error.message}: lemlist may have started the enrichment before this answer, "
                "so it is not sent again (that could bill twice)",
                retryable=False,
            )
        if attempt >= self.policy.max_attempts:
            raise error
        await self._backoff(attempt, call.label, f"HTTP {response.status_code}")

    async def _backoff(self, attempt: int, label: str, reason: str) -> None:
        ceiling = min(
            self.policy.backoff_max_seconds, self.policy.backoff_base_seconds * 2 ** (attempt - 1)
        )
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        logger.warning(
            "%s: %s (attempt %d of %d), retrying in %.2fs",
            label,
            reason,
            attempt,
            self.policy.max_attempts,
            delay,
        )
        await asyncio.sleep(delay)


def _unreachable(
    call: Call, failure: httpx.TransportError, reason: str, attempts: int, host: str
) -> LemlistServerError:
    """The error after the last attempt. Nothing listening (or no route, no name, no TLS) is
    not retried by Prefect's task retries either: they would only multiply the client's own
    attempts; a GET that kept timing out after it was sent may be asked again later."""
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(failure, _NOT_SENT_ERRORS):
        return LemlistUnreachableError(
            f"could not connect to lemlist at {host}: {reason} ({tries}); {call.label} was not sent"
        )
    return LemlistServerError(
        f"{call.label} to {host} failed after {tries}: {reason}", delivery="maybe_sent"
    )


def _transport_text(failure: httpx.TransportError) -> str:
    text = " ".join(str(failure).split())
    return text[:200] or "no details"
