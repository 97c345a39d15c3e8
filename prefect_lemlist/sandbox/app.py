"""The Starlette app of the sandbox: lemlist's routes, auth, rate limit, faults and webhooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import csv
import functools
import inspect
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from prefect_lemlist.sandbox.people import INPUT_KEYS
from prefect_lemlist.sandbox.state import (
    Admission,
    Reply,
    SandboxState,
    WebhookDelivery,
    WebhookJob,
    strip_query,
    webhook_url_allowed,
)

logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TICK_SECONDS = 0.05
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_DELAY_SECONDS = 1.0

LEMLIST_APP_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lemlist - Cold outreach platform</title>
<link rel="icon" href="/favicon.ico">
</head>
<body>
<noscript>You need to enable JavaScript to run this app.</noscript>
<div id="root"></div>
<script src="/static/js/main.js"></script>
</body>
</html>
"""
"""What lemlist serves for unknown paths (its web app), also used for malformed answers."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def js_date_string(epoch: float) -> str:
    """Format a time like JavaScript's `Date.toString()` in UTC.

    Args:
        epoch: seconds since the Unix epoch.

    Returns:
        e.g. `Thu Nov 26 2026 04:47:28 GMT+0000 (Coordinated Universal Time)`.
    """
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return (
        f"{_DAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} {moment.year} "
        f"{moment:%H:%M:%S} GMT+0000 (Coordinated Universal Time)"
    )


@functools.lru_cache(maxsize=1)
def huge_json_body() -> bytes:
    """A valid JSON object of about 5 MB (a big padding field)."""
    return b'{"id": null, "padding": "' + b"x" * 5_000_000 + b'"}'


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


class ConnectionRegistry:
    """Maps a client address to its TCP transport, so a request can kill its own connection.

    The sandbox's uvicorn protocol registers every connection here; the `drop` fault looks the
    transport up by the request's `scope["client"]` and closes it without any HTTP response.
    All methods run on the server's event loop thread.
    """

    def __init__(self) -> None:
        self._transports: dict[tuple[str, int], asyncio.BaseTransport] = {}

    def register(self, client: tuple[str, int] | None, transport: asyncio.BaseTransport) -> None:
        """Remember the transport of a new connection from `client`."""
        if client is not None:
            self._transports[(client[0], client[1])] = transport

    def unregister(self, client: tuple[str, int] | None, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection (only if it is still the registered one)."""
        if client is not None and self._transports.get((client[0], client[1])) is transport:
            del self._transports[(client[0], client[1])]

    def close(self, scope: Scope) -> bool:
        """Close the connection a request arrived on.

        Args:
            scope: the request's ASGI scope.

        Returns:
            True if a transport was found and closed.
        """
        client = scope.get("client")
        if not client:
            return False
        transport = self._transports.get((client[0], client[1]))
        if transport is None:
            return False
        transport.close()
        return True


class DropConnectionResponse(Response):
    """A "response" that closes the TCP connection without sending anything.

    Args:
        connections: the server's `ConnectionRegistry` (None when served by another server).
    """

    def __init__(self, connections: ConnectionRegistry | None) -> None:
        super().__init__(status_code=200)
        self._connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Close the connection, then wait until the server notices the disconnect."""
        if self._connections is not None and self._connections.close(scope):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_wait_disconnect(receive), timeout=2.0)
            return
        # Fallback without access to the transport: promise a body that never comes. The
        # server then aborts the connection and the client sees an incomplete message.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class AppRuntime:
    """Loop-side handles of a running app: the stop signal for slow answers.

    `request_stop` may be called from any thread.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    def request_stop(self) -> None:
        """Wake every sleeping slow/latency answer so the server can shut down promptly."""
        loop, stopping = self.loop, self.stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the server is stopping."""
        if seconds <= 0:
            return
        if self.stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)


def _reply_response(reply: Reply) -> Response:
    if reply.is_json:
        return JSONResponse(reply.body, status_code=reply.status)
    return PlainTextResponse(str(reply.body), status_code=reply.status)


def _malformed_response(kind: str) -> Response:
    if kind == "html":
        return Response(LEMLIST_APP_PAGE, media_type="text/html")
    body = {"invalid_json": b'{"id": ', "wrong_shape": b'{"unexpected": true}', "empty": b""}
    if kind == "huge":
        return Response(huge_json_body(), media_type="application/json")
    return Response(body[kind], media_type="application/json")


def _rate_headers(admission: Admission) -> dict[str, str]:
    return {
        "Retry-After": "2",
        "X-RateLimit-Limit": str(admission.limit),
        "X-RateLimit-Remaining": str(admission.remaining),
        "X-RateLimit-Reset": js_date_string(admission.reset_epoch),
    }


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() == "true"


WORKFLOW_QUERY_FLAGS = ("findEmail", "verifyEmail", "linkedinEnrichment", "findPhone")
"""Query flags of the enrich routes."""

Work = Callable[[Request], Reply | Response | Awaitable[Reply | Response]]


class SandboxEndpoints:
    """The request handlers of one sandbox app.

    Args:
        state: the sandbox state.
        connections: the connection registry used by the drop fault.
        runtime: the app runtime (stop signal).
    """

    def __init__(
        self, state: SandboxState, connections: ConnectionRegistry | None, runtime: AppRuntime
    ) -> None:
        self.state = state
        self.connections = connections
        self.runtime = runtime

    async def _handle(
        self, request: Request, route: str, method: str, work: Work, lead_id: str | None = None
    ) -> Response:
        """Run the common pipeline (auth, rate limit, latency, method, faults) then `work`."""
        state = self.state
        state.record_request(route)
        key = parse_basic_auth(request.headers.get("authorization"))
        if key is None:
            return self._sent(PlainTextResponse("Unauthorized", status_code=401))
        if not state.authenticate(key):
            return self._sent(
                PlainTextResponse("The authentication you supplied is incorrect", status_code=401)
            )
        admission = state.admit(key)
        if lead_id is not None and request.method == method:
            state.record_enrich_post(lead_id)
        await self.runtime.sleep(state.draw_latency())
        headers = _rate_headers(admission)
        if not admission.allowed:
            headers["Retry-After"] = str(admission.retry_after)
            return self._sent(PlainTextResponse("Too Many Requests", 429, headers=headers))
        if request.method != method:
            return self._sent(PlainTextResponse("Method not allowed", 405, headers=headers))
        fault = state.decide_fault(route)
        if fault == "429":
            state.revoke(key, admission.arrival)
            retry_after = state.config.fault_retry_after
            headers.pop("Retry-After")
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            return self._sent(
                PlainTextResponse("Too Many Requests", 429, headers=headers), injected_429=True
            )
        if fault == "5xx":
            if route == "enrich_post":
                response: Response = JSONResponse({"error": "Failed to enrich lead"}, 500)
            else:
                response = PlainTextResponse("Internal Server Error", 500)
            response.headers.update(headers)
            return self._sent(response)
        if fault == "drop":
            return DropConnectionResponse(self.connections)
        if fault == "malformed":
            response = _malformed_response(state.config.fault_malformed_kind)
            response.headers.update(headers)
            return self._sent(response)
        if fault == "slow":
            await self.runtime.sleep(state.config.fault_slow_seconds)
        if lead_id is not None:
            state.record_enrich_processed(lead_id)
        result = work(request)
        if inspect.isawaitable(result):
            result = await result
        response = _reply_response(result) if isinstance(result, Reply) else result
        response.headers.update(headers)
        return self._sent(response)

    def _sent(self, response: Response, *, injected_429: bool = False) -> Response:
        self.state.record_response(response.status_code, injected_429=injected_429)
        return response

    # ------------------------------------------------------------------ routes

    async def enrich_lead(self, request: Request) -> Response:
        """`POST /leads/{leadId}/enrich`."""
        lead_id = request.path_params["lead_id"]

        def work(req: Request) -> Reply:
            reply = self.state.start_enrichment(
                lead_id,
                {
                    flag: _flag(req, flag)
                    for flag in ("findEmail", "verifyEmail", "linkedinEnrichment", "findPhone")
                },
                req.query_params.get("webhookUrl"),
                _flag(req, "force"),
            )
            self.state.record_enrich_answer(lead_id, reply.status)
            return reply

        return await self._handle(request, "enrich_post", "POST", work, lead_id=lead_id)

    async def get_enrichment(self, request: Request) -> Response:
        """`GET /enrich/{enrichId}`."""
        enrichment_id = request.path_params["enrich_id"]

        def work(_: Request) -> Reply:
            reply = self.state.get_enrichment(enrichment_id)
            if reply.status == 200:
                self.state.record_result_served(enrichment_id, "poll")
            return reply

        return await self._handle(request, "enrich_get", "GET", work)

    async def export_leads(self, request: Request) -> Response:
        """`GET /campaigns/{campaignId}/export/leads` (the v1 path; see `export_route`)."""
        cfg = self.state.config
        if cfg.export_route == "v2":
            return self._missing_route(cfg.export_v1_missing_status)
        return await self._export(request)

    async def export_leads_v2(self, request: Request) -> Response:
        """`GET /v2/campaigns/{campaignId}/export/leads` (only with `export_route` v2/both)."""
        if self.state.config.export_route == "v1":
            return self._missing_route(200)
        return await self._export(request)

    def _missing_route(self, status: int) -> Response:
        """Answer a path that does not exist: lemlist's HTML app page, or a plain error."""
        self.state.record_request("catch_all")
        if status == 200:
            return self._sent(Response(LEMLIST_APP_PAGE, media_type="text/html"))
        return self._sent(PlainTextResponse("Not Found", status_code=status))

    async def _export(self, request: Request) -> Response:
        campaign_id = request.path_params["campaign_id"]

        def work(req: Request) -> Reply | Response:
            if not self.state.has_campaign(campaign_id):
                return Reply(404, "Campaign not found", is_json=False)
            raw = req.query_params.get("state")
            states = [s.strip() for s in raw.split(",") if s.strip()] if raw else []
            rows = self.state.export_rows(states, campaign_id)
            if req.query_params.get("format", "").strip().lower() == "json":
                return JSONResponse(rows)
            return Response(_rows_to_csv(rows), media_type="text/csv")

        return await self._handle(request, "export", "GET", work)

    async def enrich_data(self, request: Request) -> Response:
        """`POST /enrich`: enrich one person given by query inputs (not a lead)."""

        def work(req: Request) -> Reply:
            params = req.query_params
            return self.state.start_data_enrichment(
                {flag: _flag(req, flag) for flag in WORKFLOW_QUERY_FLAGS},
                {key: params[key] for key in INPUT_KEYS if key in params},
                params.get("webhookUrl"),
            )

        return await self._handle(request, "enrich_data", "POST", work)

    async def bulk_enrich(self, request: Request) -> Response:
        """`POST /v2/enrichments/bulk`: up to 500 enrichments in one request."""

        async def work(req: Request) -> Reply:
            raw = await req.body()
            try:
                body = json.loads(raw)
            except ValueError:
                return Reply(400, {"error": "WRONG_BODY_FORMAT"})
            return self.state.start_bulk(body, req.query_params.get("webhookUrl"))

        return await self._handle(request, "bulk", "POST", work)

    async def team(self, request: Request) -> Response:
        """`GET /team`: the team every API key of the sandbox belongs to."""

        def work(req: Request) -> Reply:
            v2 = req.query_params.get("version", "").strip().lower() == "v2"
            return Reply(200, self.state.team_body(v2=v2))

        return await self._handle(request, "team", "GET", work)

    async def lead_by_email(self, request: Request) -> Response:
        """`GET /leads/{email}` (`version=v2`: one item per campaign the email is in)."""
        email = request.path_params["email"]

        def work(req: Request) -> Reply:
            v2 = req.query_params.get("version", "").strip().lower() == "v2"
            return self.state.leads_by_email(email, v2=v2)

        return await self._handle(request, "lead_by_email", "GET", work)

    async def team_credits(self, request: Request) -> Response:
        """`GET /team/credits`."""
        return await self._handle(
            request, "credits", "GET", lambda _: Reply(200, self.state.credits_body())
        )

    async def catch_all(self, request: Request) -> Response:
        """Any unknown path: lemlist answers 200 with its web app's HTML."""
        self.state.record_request("catch_all")
        return self._sent(Response(LEMLIST_APP_PAGE, media_type="text/html"))


EXPORT_COLUMNS = (
    "_id",
    "email",
    "emailStatus",
    "firstName",
    "lastName",
    "phone",
    "linkedinUrl",
    "companyName",
    "companyDomain",
    "jobTitle",
    "lastState",
    "status",
    "timezone",
    "picture",
    "icebreaker",
)
"""Columns of the campaign export (JSON keys and CSV header)."""


def _rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(col) is None else row[col] for col in EXPORT_COLUMNS])
    return buffer.getvalue()


# ---------------------------------------------------------------------- background work


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


ADMIN_STATS_PATH = "/_sandbox/stats"
"""Path of the optional admin route (not a lemlist route; see `add_admin_routes`)."""


def add_admin_routes(app: Starlette) -> None:
    """Serve `GET /_sandbox/stats` (JSON counters and per-lead result times) on a sandbox app.

    For benchmarks against a sandbox in another process. Unauthenticated, not rate-limited and
    not counted in the statistics; off unless asked for (CLI `--admin`), so the lemlist routes and
    the catch-all behave exactly as without it.

    Args:
        app: an app made by `create_app` (before the server starts).
    """
    state: SandboxState = app.state.sandbox_state

    async def stats(_: Request) -> Response:
        return JSONResponse(state.benchmark_snapshot())

    app.router.routes.insert(0, Route(ADMIN_STATS_PATH, stats, methods=["GET"]))


def create_app(
    state: SandboxState,
    *,
    connections: ConnectionRegistry | None = None,
    runtime: AppRuntime | None = None,
) -> Starlette:
    """Build the sandbox's ASGI app.

    Routes are served both at the root and under `/api` (like `https://api.lemlist.com/api`).

    Args:
        state: the sandbox state to serve.
        connections: registry filled by the server's protocol (needed for a clean `drop`).
        runtime: the runtime handle (created when not given; available as `app.state.runtime`).

    Returns:
        The Starlette app; its lifespan runs the completion/webhook loop.
    """
    runtime = runtime or AppRuntime()
    endpoints = SandboxEndpoints(state, connections, runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        runtime.loop = asyncio.get_running_loop()
        runtime.stopping = asyncio.Event()
        async with httpx.AsyncClient(
            # many deliveries fall due at once: they wait for one of 64 connections (no pool
            # timeout) instead of failing; each delivery still times out after 5 s
            timeout=httpx.Timeout(WEBHOOK_TIMEOUT_SECONDS, pool=None),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            trust_env=False,
            follow_redirects=False,
        ) as client:
            task = asyncio.create_task(completion_loop(state, client))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
        ("/leads/{lead_id}/enrich", endpoints.enrich_lead),
        ("/enrich/{enrich_id}", endpoints.get_enrichment),
        ("/enrich", endpoints.enrich_data),
        ("/v2/enrichments/bulk", endpoints.bulk_enrich),
        ("/campaigns/{campaign_id}/export/leads", endpoints.export_leads),
        ("/v2/campaigns/{campaign_id}/export/leads", endpoints.export_leads_v2),
        ("/team/credits", endpoints.team_credits),
        ("/team", endpoints.team),
        ("/leads/{email}", endpoints.lead_by_email),
    ]
    routes = [
        Route(prefix + path + slash, handler, methods=ALL_METHODS)
        for prefix in ("", "/api")
        for path, handler in handlers
        for slash in ("", "/")
    ]
    routes.append(Route("/{path:path}", endpoints.catch_all, methods=ALL_METHODS))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.sandbox_state = state
    return app
