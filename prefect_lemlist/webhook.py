"""A small receiver for lemlist's per-request `webhookUrl` callbacks.

lemlist POSTs `{"data": [{"id": "enr_…", "data": {...}}], "type": "enrichmentDone"}` to the
`webhookUrl` given with each enrichment. lemlist signs nothing, so the URL carries an unguessable
token (`?token=…`) that is compared in constant time; a request without it changes nothing.
Bodies are size-limited, must be JSON, and may hold any number of results; duplicates and
unknown ids are ignored.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from prefect_lemlist.exceptions import LemlistResponseError
from prefect_lemlist.models import Enrichment

logger = logging.getLogger("prefect_lemlist.webhook")

WEBHOOK_PATH = "/lemlist/webhook"
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
    on_result: Callable[[Enrichment], asyncio.Future[bool] | bool],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stats: WebhookStats | None = None,
) -> Starlette:
    """The ASGI app that receives lemlist's webhook calls.

    Args:
        token: the secret expected in the `token` query parameter.
        on_result: called once per parsed result; returns (or resolves to) True when the result
            was new and recorded, False when it was ignored (duplicate or unknown id).
        max_body_bytes: larger bodies are refused with 413.
        stats: counters to update (a new object when None).

    Returns:
        A Starlette app with one route, `POST /lemlist/webhook`.
    """
    counters = stats if stats is not None else WebhookStats()

    async def receive(request: Request) -> PlainTextResponse | JSONResponse:
        counters.requests += 1
        given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            counters.unauthorized += 1
            return PlainTextResponse("Unauthorized", status_code=401)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            counters.too_large += 1
            return PlainTextResponse("Payload too large", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body_bytes:
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
            try:
                enrichment = Enrichment.from_webhook_item(item, event_type=event_type)
            except LemlistResponseError:
                counters.ignored += 1
                continue
            counters.results += 1
            outcome = on_result(enrichment)
            if isinstance(outcome, asyncio.Future):
                outcome = await outcome
            if outcome:
                accepted += 1
                counters.accepted += 1
            else:
                counters.ignored += 1
                logger.info(
                    "webhook result for %s ignored (duplicate or unknown)", enrichment.enrichment_id
                )
        return JSONResponse({"received": len(items), "accepted": accepted})

    async def wrong_method(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Method not allowed", status_code=405)

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route(WEBHOOK_PATH, wrong_method, methods=["GET", "PUT", "DELETE", "PATCH"]),
        ]
    )


def new_token() -> str:
    """A fresh unguessable token for the webhook URL (256 bits)."""
    return secrets.token_urlsafe(32)
