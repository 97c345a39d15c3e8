"""Webhook delivery of a sandbox: the completion loop and a pool of keep-alive senders."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from prefect_lemlist.sandbox.models import WebhookDelivery, WebhookJob
from prefect_lemlist.sandbox.rules import strip_query, webhook_url_allowed
from prefect_lemlist.sandbox.state import SandboxState

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.05
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_DELAY_SECONDS = 1.0


class PlainPoster:
    """Keep-alive HTTP/1.1 POSTs over asyncio streams, for webhooks to `http://` URLs.

    The sandbox may have to deliver 100,000 webhooks in a few minutes (benchmarks); a full HTTP
    client costs milliseconds of CPU per request, this a few tens of microseconds. One poster per
    delivery worker: one connection per receiver, reused, reopened once when it went stale.
    """

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def post(self, url: str, payload: Any, timeout: float) -> int:
        """POST `payload` as JSON to `url`; returns the status code.

        Raises:
            OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError: the
                exchange failed (the caller records the error's name).
        """
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(payload).encode()
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for attempt in (1, 2):
            reader, writer = await self._connection(host, port, timeout)
            try:
                writer.write(request)
                await writer.drain()
                return await asyncio.wait_for(self._response(reader, (host, port)), timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                self._close((host, port))
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _connection(self, host: str, port: int, timeout: float) -> tuple[Any, Any]:
        key = (host, port)
        if key not in self._connections:
            self._connections[key] = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout
            )
        return self._connections[key]

    async def _response(self, reader: Any, key: tuple[str, int]) -> int:
        status_line = await reader.readline()
        if not status_line:
            raise asyncio.IncompleteReadError(b"", None)
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "connection" and "close" in value.lower():
                close = True
        await reader.readexactly(length)
        if close:
            self._close(key)
        return status

    def _close(self, key: tuple[str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection[1].close()

    def close(self) -> None:
        """Close every connection."""
        for key in list(self._connections):
            self._close(key)


async def _post_once(
    client: httpx.AsyncClient, poster: PlainPoster | None, url: str, payload: Any
) -> tuple[int | None, str | None]:
    """One delivery attempt: (status, None) or (None, the error's name)."""
    try:
        if poster is not None and url.startswith("http://"):
            return await poster.post(url, payload, WEBHOOK_TIMEOUT_SECONDS), None
        answer = await client.post(url, json=payload)
        return answer.status_code, None
    except (httpx.HTTPError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        return None, type(exc).__name__
    except ValueError:  # an unreadable status line
        return None, "ProtocolError"


async def deliver_webhook(
    client: httpx.AsyncClient,
    state: SandboxState,
    job: WebhookJob,
    poster: PlainPoster | None = None,
) -> None:
    """POST one finished enrichment to its webhook URL (up to 3 attempts, 1 s apart).

    Args:
        client: the HTTP client (5 s timeout), for `https://` URLs (and all without `poster`).
        state: where each delivery's outcome is recorded.
        job: what to send, and how many copies.
        poster: a keep-alive poster for `http://` URLs.
    """
    for _ in range(job.copies):
        status: int | None = None
        error: str | None = None
        ok = False
        attempts = 0
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            attempts = attempt
            if not webhook_url_allowed(job.url, state.config.webhook_allowed_hosts):
                error = "host not allowed"
                break
            status, error = await _post_once(client, poster, job.url, job.payload)
            ok = status is not None and 200 <= status < 300
            if ok:
                break
            if attempt < WEBHOOK_ATTEMPTS:
                await asyncio.sleep(WEBHOOK_RETRY_DELAY_SECONDS)
        state.record_webhook_delivery(
            WebhookDelivery(
                enrichment_id=job.enrichment_id,
                url=strip_query(job.url),
                status_code=status,
                attempts=attempts,
                ok=ok,
                error=error,
                delivered_at=time.time(),
            )
        )


WEBHOOK_SENDERS = 32
"""Webhooks delivered at once. A fixed pool of senders draining a queue: one task per webhook on
one HTTP client makes the connection pool rescan every waiting request whenever a connection
frees up, which grows quadratically with the queue (tens of thousands of due webhooks)."""


async def completion_loop(state: SandboxState, client: httpx.AsyncClient) -> None:
    """Finish due enrichments and queue their webhooks, every `TICK_SECONDS`, forever; a pool of
    `WEBHOOK_SENDERS` workers delivers them.

    Args:
        state: the sandbox state.
        client: the HTTP client for webhooks.
    """
    queue: asyncio.Queue[WebhookJob] = asyncio.Queue()
    senders = [
        asyncio.create_task(_send_webhooks(queue, client, state)) for _ in range(WEBHOOK_SENDERS)
    ]
    try:
        while True:
            try:
                state.complete_due()
                for job in state.take_webhook_jobs():
                    queue.put_nowait(job)
            except Exception:  # never let the loop die
                logger.exception("sandbox completion loop failed")
            await asyncio.sleep(TICK_SECONDS)
    finally:
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)


async def _send_webhooks(
    queue: asyncio.Queue[WebhookJob], client: httpx.AsyncClient, state: SandboxState
) -> None:
    """One delivery worker: deliver queued webhooks, one at a time, forever."""
    poster = PlainPoster()
    try:
        while True:
            job = await queue.get()
            try:
                await deliver_webhook(client, state, job, poster)
            except Exception:  # a failed delivery is recorded by deliver_webhook; never die
                logger.exception("sandbox webhook delivery failed")
    finally:
        poster.close()


__all__ = [
    "TICK_SECONDS",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_SENDERS",
    "WEBHOOK_TIMEOUT_SECONDS",
    "PlainPoster",
    "completion_loop",
    "deliver_webhook",
]
