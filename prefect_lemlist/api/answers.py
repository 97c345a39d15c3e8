"""Reading lemlist's answers: JSON bodies checked against what each endpoint documents, error
texts and codes, and the exception (with its delivery verdict) for a refused request.

lemlist's answers are mixed: JSON, plain text, and its web app's HTML page for a path the API
does not have (with a 200). Every function here turns one of them into a value or a typed error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from prefect_lemlist.api.exceptions import (
    LemlistError,
    LemlistNotFoundError,
    LemlistResponseError,
    error_for_status,
)
from prefect_lemlist.api.models import BulkItemResult, CampaignLead, EnrichLeadResult
from prefect_lemlist.api.validation import LeadId

MAX_ERROR_TEXT = 300


def enrichment_id_of(response: httpx.Response, what: str) -> str:
    body = json_body(response, what)
    enrichment_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(enrichment_id, str) or not enrichment_id:
        raise LemlistResponseError(
            f"{what} answered 200 without an enrichment 'id'",
            status_code=response.status_code,
            delivery="maybe_sent",
        )
    return enrichment_id


def skipped_result(lead_id: LeadId, response: httpx.Response) -> EnrichLeadResult:
    """Turn one of lemlist's two 409s into a skipped result (or raise for an unknown one)."""
    body = safe_json(response)
    code = body.get("code") if isinstance(body, dict) else None
    if code == "ALREADY_ENRICHED":
        return EnrichLeadResult(lead_id=lead_id, skipped=True, skip_reason="ALREADY_ENRICHED")
    if code is None:
        return EnrichLeadResult(lead_id=lead_id, skipped=True, skip_reason="IN_PROGRESS")
    raise LemlistError(
        f"POST /leads/{{leadId}}/enrich answered 409 with an unknown code: {error_text(response)}",
        status_code=409,
        code=str(code),
    )


def bulk_results(body: Any, metadata: Sequence[Any] | None, count: int) -> list[BulkItemResult]:
    """Match a bulk answer to the request by position (and echoed metadata, when sent)."""
    what = "POST /v2/enrichments/bulk"
    if not isinstance(body, list) or len(body) != count:
        size = len(body) if isinstance(body, list) else type(body).__name__
        raise LemlistResponseError(
            f"{what} answered {size} items for {count} sent", delivery="maybe_sent"
        )
    results = []
    for index, item in enumerate(body):
        item = item if isinstance(item, dict) else {}
        if metadata is not None and "metadata" in item and item["metadata"] != metadata[index]:
            raise LemlistResponseError(
                f"{what}: answer {index} echoes another item's metadata; answers cannot be "
                "matched to contacts",
                delivery="maybe_sent",
            )
        enrichment_id = item.get("id") if isinstance(item.get("id"), str) else None
        error = item.get("error") if isinstance(item.get("error"), str) else None
        if enrichment_id is None and error is None:
            error = "UNREADABLE_ANSWER"
        results.append(
            BulkItemResult(
                index=index, enrichment_id=enrichment_id, error=error, metadata=item.get("metadata")
            )
        )
    return results


def campaign_rows(rows: Any) -> list[CampaignLead]:
    if not isinstance(rows, list):
        raise LemlistResponseError(
            f"the campaign export is not a list of leads (got {type(rows).__name__})"
        )
    leads: list[CampaignLead] = []
    for index, row in enumerate(rows):
        try:
            leads.append(CampaignLead.model_validate(row))
        except ValidationError as exc:
            raise LemlistResponseError(
                f"row {index} of the campaign export is not a lead: "
                f"{exc.errors()[0].get('msg', 'invalid')}"
            ) from None
    return leads


CAMPAIGN_NOT_FOUND_HINT = (
    "check the campaign id (cam_…, the end of the campaign's URL in lemlist) and that this "
    "API key belongs to the campaign's team"
)


def add_campaign_hint(exc: LemlistError) -> None:
    """lemlist's "Campaign not found": say what to check (unless the error has its own hint)."""
    if isinstance(exc, LemlistNotFoundError) and exc.hint is None:
        exc.hint = CAMPAIGN_NOT_FOUND_HINT


def route_missing(exc: LemlistError) -> bool:
    """Whether an error says the route itself is missing (lemlist's web page, or a 404 that is
    not lemlist's "Campaign not found"), rather than the campaign."""
    if isinstance(exc, LemlistResponseError):
        return "html" in (exc.content_type or "")
    return "campaign" not in exc.message.lower().rsplit(":", 1)[-1]


def safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def json_body(response: httpx.Response, what: str) -> Any:
    """The decoded JSON body, or `LemlistResponseError` saying what came instead."""
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type.lower():
        hint = (
            " (lemlist answers unknown paths with its web app: check base_url)"
            if "html" in content_type.lower()
            else ""
        )
        # lemlist's web app answering a path the API does not have did nothing; any other
        # unusable 2xx may follow work done
        is_html = "html" in content_type.lower()
        error = LemlistResponseError(
            f"{what} answered {response.status_code} with "
            f"{content_type or 'no content type'} instead of JSON{hint}",
            status_code=response.status_code,
            delivery="answered" if is_html else "maybe_sent",
        )
        error.content_type = content_type
        raise error
    try:
        return response.json()
    except ValueError:
        size = len(response.content)
        raise LemlistResponseError(
            f"{what} answered {response.status_code} with a body that is not valid JSON "
            f"({size} bytes)",
            status_code=response.status_code,
            delivery="maybe_sent",
        ) from None


def error_text(response: httpx.Response) -> str:
    """lemlist's own error text: the JSON `error` field or the plain-text body, shortened."""
    body = safe_json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
    elif "html" in response.headers.get("content-type", "").lower():
        text = "an HTML page"
    else:
        text = response.text.strip() or response.reason_phrase or "no error text"
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def error_code(response: httpx.Response) -> str | None:
    body = safe_json(response)
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, str):
        return code
    error = body.get("error")  # bulk whole-request errors: {"error": "WRONG_BODY_FORMAT"}
    return error if isinstance(error, str) and error.isupper() and " " not in error else None


def error_from_response(response: httpx.Response, label: str) -> LemlistError:
    """Map a non-accepted status to the matching exception, quoting lemlist's text."""
    status = response.status_code
    message = f"{label} failed with HTTP {status}: {error_text(response)}"
    return error_for_status(status, message, code=error_code(response))
