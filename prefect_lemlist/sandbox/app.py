"""The Starlette app of the sandbox: lemlist's routes.

Each route parses its request, calls the backend (through `SandboxState`) and renders the
domain result with `responses`; the `LemlistMiddleware` pipeline (keys, rate window, faults)
runs in front of every route, and the lifespan runs the webhook completion loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from prefect_lemlist.sandbox import responses
from prefect_lemlist.sandbox.exceptions import BulkRequestError, SandboxError
from prefect_lemlist.sandbox.middleware import LemlistMiddleware, parse_basic_auth
from prefect_lemlist.sandbox.people import INPUT_KEYS
from prefect_lemlist.sandbox.responses import LEMLIST_APP_PAGE, Reply, js_date_string
from prefect_lemlist.sandbox.runtime import AppRuntime, ConnectionRegistry, DropConnectionResponse
from prefect_lemlist.sandbox.state import SandboxState
from prefect_lemlist.sandbox.webhooks import WEBHOOK_TIMEOUT_SECONDS, completion_loop
from prefect_lemlist.sandbox.workflows import WORKFLOW_QUERY_FLAGS

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() == "true"


def _flags(request: Request) -> dict[str, bool]:
    return {flag: _flag(request, flag) for flag in WORKFLOW_QUERY_FLAGS}


def _v2(request: Request) -> bool:
    return request.query_params.get("version", "").strip().lower() == "v2"


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
        self.backend = state.backend
        self.middleware = LemlistMiddleware(state, connections, runtime)

    async def enrich_lead(self, request: Request) -> Response:
        """`POST /leads/{leadId}/enrich`."""
        lead_id = request.path_params["lead_id"]

        def work(req: Request) -> Reply:
            try:
                enrichment = self.backend.start_lead_enrichment(
                    lead_id, _flags(req), req.query_params.get("webhookUrl"), _flag(req, "force")
                )
                reply = responses.enrichment_started(enrichment)
            except SandboxError as error:
                reply = responses.error_reply(error)
            self.state.recorder.enrich_answer(lead_id, reply.status)
            return reply

        return await self.middleware.run(request, "enrich_post", "POST", work, lead_id=lead_id)

    async def get_enrichment(self, request: Request) -> Response:
        """`GET /enrich/{enrichId}`."""
        enrichment_id = request.path_params["enrich_id"]

        def work(_: Request) -> Reply:
            reply = responses.enrichment_status(self.backend.get_enrichment(enrichment_id))
            if reply.status == 200:
                self.state.record_result_served(enrichment_id, "poll")
            return reply

        return await self.middleware.run(request, "enrich_get", "GET", work)

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
        self.state.recorder.request("catch_all")
        return self.middleware.sent(responses.not_found_page(status))

    async def _export(self, request: Request) -> Response:
        campaign_id = request.path_params["campaign_id"]

        def work(req: Request) -> Response:
            self.backend.require_campaign(campaign_id)
            raw = req.query_params.get("state")
            states = [s.strip() for s in raw.split(",") if s.strip()] if raw else []
            rows = [
                responses.export_row(row) for row in self.backend.export_rows(states, campaign_id)
            ]
            as_json = req.query_params.get("format", "").strip().lower() == "json"
            return responses.export_response(rows, as_json=as_json)

        return await self.middleware.run(request, "export", "GET", work)

    async def enrich_data(self, request: Request) -> Response:
        """`POST /enrich`: enrich one person given by query inputs (not a lead)."""

        def work(req: Request) -> Reply:
            params = req.query_params
            enrichment = self.backend.start_data_enrichment(
                _flags(req),
                {key: params[key] for key in INPUT_KEYS if key in params},
                params.get("webhookUrl"),
            )
            return responses.enrichment_started(enrichment)

        return await self.middleware.run(request, "enrich_data", "POST", work)

    async def bulk_enrich(self, request: Request) -> Response:
        """`POST /v2/enrichments/bulk`: up to 500 enrichments in one request."""

        async def work(req: Request) -> Reply:
            try:
                body = json.loads(await req.body())
            except ValueError as exc:
                raise BulkRequestError("WRONG_BODY_FORMAT") from exc
            answers = self.backend.start_bulk(body, req.query_params.get("webhookUrl"))
            return responses.bulk_answers(answers)

        return await self.middleware.run(request, "bulk", "POST", work)

    async def team(self, request: Request) -> Response:
        """`GET /team`: the team every API key of the sandbox belongs to."""

        def work(req: Request) -> Reply:
            account = self.state.account
            with self.backend.lock:
                body = responses.team_body(account.team_id, account.user_ids(), v2=_v2(req))
            return Reply(200, body)

        return await self.middleware.run(request, "team", "GET", work)

    async def lead_by_email(self, request: Request) -> Response:
        """`GET /leads/{email}` (`version=v2`: one item per campaign the email is in)."""
        email = request.path_params["email"]

        def work(req: Request) -> Reply:
            return responses.leads_by_email(self.backend.leads_by_email(email), v2=_v2(req))

        return await self.middleware.run(request, "lead_by_email", "GET", work)

    async def team_credits(self, request: Request) -> Response:
        """`GET /team/credits`."""

        def work(_: Request) -> Reply:
            return Reply(200, responses.credits_body(self.backend.credits()))

        return await self.middleware.run(request, "credits", "GET", work)

    async def catch_all(self, request: Request) -> Response:
        """Any unknown path: lemlist answers 200 with its web app's HTML."""
        self.state.recorder.request("catch_all")
        return self.middleware.sent(responses.app_page())


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


__all__ = [
    "ADMIN_STATS_PATH",
    "ALL_METHODS",
    "LEMLIST_APP_PAGE",
    "AppRuntime",
    "ConnectionRegistry",
    "DropConnectionResponse",
    "SandboxEndpoints",
    "add_admin_routes",
    "create_app",
    "js_date_string",
    "parse_basic_auth",
]
