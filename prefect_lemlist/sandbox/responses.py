"""Every HTTP answer of the sandbox, rendered from domain results and from typed errors.

Bodies (JSON or text) are built here and nowhere else: enrichment starts and reads, team,
credits, leads, exports, bulk answers, webhook payloads, errors, faults and rate headers.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from prefect_lemlist.sandbox.exceptions import SandboxError
from prefect_lemlist.sandbox.models import (
    BulkItemAnswer,
    Enrichment,
    LeadMatch,
    LeadView,
    WebhookJob,
)
from prefect_lemlist.sandbox.rules import strip_query
from prefect_lemlist.sandbox.workflows import UNKNOWN_WEBHOOK_KEYS

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

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status plus a JSON or plain-text body.

    Attributes:
        status: HTTP status code.
        body: JSON-serialisable value (when `is_json`) or text.
        is_json: whether `body` is sent as application/json.
    """

    status: int
    body: Any
    is_json: bool = True

    def to_response(self) -> Response:
        """The Starlette response sending this reply."""
        if self.is_json:
            return JSONResponse(self.body, status_code=self.status)
        return PlainTextResponse(str(self.body), status_code=self.status)


def error_reply(error: SandboxError) -> Reply:
    """The answer lemlist sends for a typed error.

    Args:
        error: the raised error.

    Returns:
        JSON `{"error": message[, "code": code]}` or a text/plain message.
    """
    if not error.json_body:
        return Reply(error.status, error.message, is_json=False)
    body: dict[str, Any] = {"error": error.message}
    if error.code is not None and error.code_in_body:
        body["code"] = error.code
    return Reply(error.status, body)


def iso_time(epoch: float) -> str:
    """Format an epoch time as ISO 8601 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).

    Args:
        epoch: seconds since the Unix epoch.

    Returns:
        The ISO string, `Z`-suffixed.
    """
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


# ---------------------------------------------------------------------- enrichments


def enrichment_started(enrichment: Enrichment) -> Reply:
    """200 `{"id": "enr_…"}`."""
    return Reply(200, {"id": enrichment.enrichment_id})


def enrichment_status(enrichment: Enrichment) -> Reply:
    """`GET /enrich/{id}`: 202 while in progress, 200 with its `data` once finished."""
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


def bulk_answers(answers: Sequence[BulkItemAnswer]) -> Reply:
    """200 with one answer per bulk item: `{"id": …}` or `{"error": CODE}` (+ metadata)."""
    body: list[dict[str, Any]] = []
    for answer in answers:
        if answer.error is not None:
            body.append({"error": answer.error, **answer.echo})
        else:
            body.append({"id": answer.enrichment_id, **answer.echo})
    return Reply(200, body)


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


def webhook_job(enrichment: Enrichment, data: dict[str, Any], strip: bool) -> WebhookJob | None:
    """The webhook POST reporting a finished enrichment (None without `webhook_url`).

    Args:
        enrichment: the finished enrichment.
        data: the item's `data` (`styled_webhook_data`; empty for an error).
        strip: `config.webhook_strip_query`.

    Returns:
        The job, or None.
    """
    if enrichment.webhook_url is None:
        return None
    event = "enrichmentDone" if enrichment.status == "done" else "enrichmentError"
    item: dict[str, Any] = {"id": enrichment.enrichment_id}
    if enrichment.has_metadata:
        item["metadata"] = enrichment.metadata
    item["data"] = data
    url = strip_query(enrichment.webhook_url) if strip else enrichment.webhook_url
    return WebhookJob(
        enrichment_id=enrichment.enrichment_id,
        url=url,
        payload={"data": [item], "type": event},
        copies=2 if enrichment.duplicate_webhook else 1,
    )


# ---------------------------------------------------------------------- team and leads


def credits_body(credits: int) -> dict[str, Any]:
    """The body of `GET /team/credits`."""
    return {
        "credits": credits,
        "details": {
            "remaining": {
                "total": credits,
                "freemium": 0,
                "subscription": credits,
                "gifted": 0,
                "paid": 0,
            }
        },
    }


def team_body(team_id: str, users: list[str], *, v2: bool) -> dict[str, Any]:
    """The body of `GET /team` (`v2` adds `users`)."""
    body: dict[str, Any] = {
        "_id": team_id,
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


def _lead_item(match: LeadMatch) -> dict[str, Any]:
    contact = match.view.contact
    fields = match.view.campaign_fields
    return {
        "_id": match.view.lead_id,
        "updatedAt": iso_time(match.updated_at),
        "isPaused": fields["status"] == "paused",
        "state": fields["lastState"],
        "status": fields["status"],
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
        "campaign": {
            "id": match.campaign_id,
            "name": match.campaign_name,
            "status": match.campaign_status,
        },
        "sendingUser": {},
    }


def leads_by_email(matches: Sequence[LeadMatch], *, v2: bool) -> Reply:
    """`GET /leads/{email}`: v2 an array (one item per lead), v1 the first lead, flat."""
    found = [_lead_item(match) for match in matches]
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


def export_row(row: LeadView) -> dict[str, Any]:
    """One row of the campaign export (JSON object)."""
    contact = row.contact
    return {
        "_id": row.lead_id,
        "email": contact.email,
        "emailStatus": contact.email_status,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "phone": contact.phone,
        "linkedinUrl": contact.linkedin_url,
        "companyName": contact.company_name,
        "companyDomain": contact.company_domain,
        "jobTitle": contact.job_title,
        **row.campaign_fields,
    }


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """The export rows as CSV text (header `EXPORT_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(col) is None else row[col] for col in EXPORT_COLUMNS])
    return buffer.getvalue()


def export_response(rows: list[dict[str, Any]], *, as_json: bool) -> Response:
    """The export as JSON (`format=json`) or CSV."""
    if as_json:
        return JSONResponse(rows)
    return Response(rows_to_csv(rows), media_type="text/csv")


# ---------------------------------------------------------------------- pages and faults


def app_page() -> Response:
    """lemlist's web app page (unknown paths)."""
    return Response(LEMLIST_APP_PAGE, media_type="text/html")


def not_found_page(status: int) -> Response:
    """A missing route: lemlist's app page for 200, else a plain `Not Found`."""
    if status == 200:
        return app_page()
    return PlainTextResponse("Not Found", status_code=status)


@functools.lru_cache(maxsize=1)
def huge_json_body() -> bytes:
    """A valid JSON object of about 5 MB (a big padding field)."""
    return b'{"id": null, "padding": "' + b"x" * 5_000_000 + b'"}'


def malformed_response(kind: str) -> Response:
    """An injected malformed 200 (`fault_malformed_kind`)."""
    if kind == "html":
        return app_page()
    if kind == "huge":
        return Response(huge_json_body(), media_type="application/json")
    body = {"invalid_json": b'{"id": ', "wrong_shape": b'{"unexpected": true}', "empty": b""}
    return Response(body[kind], media_type="application/json")


def rate_headers(limit: int, remaining: int, reset_epoch: float) -> dict[str, str]:
    """The `X-RateLimit-*` headers (and the default `Retry-After`) of an admitted request."""
    return {
        "Retry-After": "2",
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": js_date_string(reset_epoch),
    }


def error_response(error: SandboxError, headers: dict[str, str] | None = None) -> Response:
    """The Starlette response of a typed error, with extra headers."""
    response = error_reply(error).to_response()
    if headers:
        response.headers.update(headers)
    return response


__all__ = [
    "EXPORT_COLUMNS",
    "LEMLIST_APP_PAGE",
    "Reply",
    "app_page",
    "bulk_answers",
    "credits_body",
    "enrichment_started",
    "enrichment_status",
    "error_reply",
    "error_response",
    "export_response",
    "export_row",
    "huge_json_body",
    "iso_time",
    "js_date_string",
    "leads_by_email",
    "malformed_response",
    "not_found_page",
    "rate_headers",
    "rows_to_csv",
    "styled_webhook_data",
    "team_body",
    "webhook_job",
]
