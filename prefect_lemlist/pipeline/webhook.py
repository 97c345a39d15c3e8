"""The ASGI app that receives lemlist's per-request `webhookUrl` callbacks.

lemlist POSTs `{"data": [{"id": "enr_…", "data": {...}}], "type": "enrichmentDone"}` to the
`webhookUrl` given with each enrichment. lemlist signs nothing, so the URL carries an unguessable
token, in its path (`/lemlist/<token>`: nothing confirms lemlist keeps a webhook URL's query
string) or, as before, in the query string (`/lemlist/webhook?token=…`); it is compared in
constant time and a request without it changes nothing. Bodies are size-limited, must be JSON, and
may hold any number of results; duplicates and unknown ids are ignored.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from prefect_lemlist.api.exceptions import LemlistResponseError
from prefect_lemlist.api.models import Enrichment

logger = logging.getLogger("prefect_lemlist.webhook")

WEBHOOK_PATH = "/lemlist/webhook"
"""The query-string form's path (`?token=…`)."""
WEBHOOK_PREFIX = "/lemlist/"
"""The path form: `/lemlist/<token>`."""
DEFAULT_MAX_BODY_BYTES = 1_000_000


@dataclass
class WebhookStats:
    """What the receiver saw: accepted results and each kind of refusal."""

    requests: int = 0
    results: int = 0
    accepted: int = 0
    ignored: int = 0
    unauthorized: int = 0
    too_large: int = 0
    bad_body: int = 0


def create_webhook_app(
    token: str,
    on_result: Callable[[Enrichment], Any],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stats: WebhookStats | None = None,
) -> Starlette:
    """The ASGI app that receives lemlist's webhook calls.

    Args:
        token: the secret expected in the path (`/lemlist/<token>`) or the `token` query
            parameter of `/lemlist/webhook`.
        on_result: called once per parsed result; returns (or resolves to) True when the result
            was new and recorded, False when it was ignored (duplicate or unknown id).
        max_body_bytes: larger bodies are refused with 413.
        stats: counters to update (a new object when None).

    Returns:
        A Starlette app with two routes: `POST /lemlist/<token>`, `POST /lemlist/webhook`.
    """
    counters = stats if stats is not None else WebhookStats()

    async def receive(request: Request) -> PlainTextResponse | JSONResponse:
        counters.requests += 1
        given = request.path_params.get("token") or request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            counters.unauthorized += 1
            return PlainTextResponse("Unauthorized", status_code=401)
        body = await _read_limited(request, max_body_bytes)
        if body is None:
            counters.too_large += 1
            return PlainTextResponse("Payload too large", status_code=413)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            counters.bad_body += 1
            return PlainTextResponse("Body must be JSON", status_code=400)
        items = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            counters.bad_body += 1
            return PlainTextResponse("Expected a JSON object with a 'data' list", status_code=400)
        event_type = payload.get("type") if isinstance(payload.get("type"), str) else None
        accepted = 0
        for item in items:
            accepted += await _deliver(item, event_type, on_result, counters)
        return JSONResponse({"received": len(items), "accepted": accepted})

    async def wrong_method(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Method not allowed", status_code=405)

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route(WEBHOOK_PATH, wrong_method, methods=["GET", "PUT", "DELETE", "PATCH"]),
            Route(WEBHOOK_PREFIX + "{token}", receive, methods=["POST"]),
            Route(WEBHOOK_PREFIX + "{token}", wrong_method, methods=["GET", "PUT", "DELETE"]),
        ]
    )


async def _read_limited(request: Request, max_body_bytes: int) -> bytes | None:
    """The body, or None when it is (or says it will be) larger than `max_body_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_body_bytes:
            return None
    return bytes(body)


async def _deliver(
    item: Any,
    event_type: str | None,
    on_result: Callable[[Enrichment], Any],
    counters: WebhookStats,
) -> int:
    """Parse one item and hand it in; returns 1 when it was accepted."""
    try:
        enrichment = Enrichment.from_webhook_item(item, event_type=event_type)
    except LemlistResponseError:
        counters.ignored += 1
        return 0
    counters.results += 1
    outcome = on_result(enrichment)
    if inspect.isawaitable(outcome):
        outcome = await outcome
    if outcome:
        counters.accepted += 1
        return 1
    counters.ignored += 1
    logger.info("webhook result for %s ignored (duplicate or unknown)", enrichment.enrichment_id)
    return 0


def new_token() -> str:
    """A fresh unguessable token for the webhook URL (256 bits)."""
    return secrets.token_urlsafe(32)
