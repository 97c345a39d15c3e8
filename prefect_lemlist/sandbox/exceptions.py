"""Typed errors of the sandbox: each carries lemlist's HTTP status, error code and message.

Backend methods raise them instead of building answers; `responses.error_reply` renders them.
A `json_body` error is sent as `{"error": message, "code": code}` (the code only when lemlist
sends one), the others as `text/plain` message.
"""

from __future__ import annotations

from typing import ClassVar


class SandboxError(Exception):
    """An error answer of the emulated lemlist API.

    Attributes:
        status: HTTP status.
        code: lemlist's error code (`LEAD_NOT_FOUND`…), None when lemlist sends none.
        message: the error message (JSON `error`, or the whole text/plain body).
        json_body: whether the body is JSON (else text/plain).
        code_in_body: whether a JSON body carries the `code` key.

    Args:
        message: replaces the class's default message.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str | None] = None
    default_message: ClassVar[str] = "Bad request"
    json_body: ClassVar[bool] = False
    code_in_body: ClassVar[bool] = True

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)


class BadRequest(SandboxError):
    """400 text `Bad request` (a `POST /enrich` workflow lacks its inputs)."""


class BadTeam(SandboxError):
    """400 text `Bad team`: the lead belongs to another team."""

    default_message = "Bad team"


class LeadNotFound(SandboxError):
    """404 `LEAD_NOT_FOUND`: no lead with this id."""

    status = 404
    code = "LEAD_NOT_FOUND"
    default_message = "Lead not found"
    json_body = True


class ContactNotFound(SandboxError):
    """404 `CONTACT_NOT_FOUND`: the lead has no contact."""

    status = 404
    code = "CONTACT_NOT_FOUND"
    default_message = "Contact not found for this lead"
    json_body = True


class LeadEmailNotFound(SandboxError):
    """404 text `Lead not found` of `GET /leads/{email}`."""

    status = 404
    default_message = "Lead not found"


class NoEnrichmentRequested(SandboxError):
    """400 text: no workflow flag was set."""

    default_message = (
        "No enrichment requested (findEmail, findPhone, linkedinEnrichment or verifyEmail required)"
    )


class InvalidWebhookUrl(SandboxError):
    """400 text `Invalid webhookUrl`."""

    default_message = "Invalid webhookUrl"


class EnrichmentInProgress(SandboxError):
    """409 without code: the lead's contact is already being enriched."""

    status = 409
    default_message = "lead is already being enriched"
    json_body = True


class AlreadyEnriched(SandboxError):
    """409 `ALREADY_ENRICHED`: every requested workflow would be skipped."""

    status = 409
    code = "ALREADY_ENRICHED"
    default_message = (
        "Enrichment skipped: contact already has the requested data or was recently enriched"
    )
    json_body = True


class NotEnoughCredits(SandboxError):
    """400 text `Not enough credits` (`out_of_credits_answer="400"`)."""

    default_message = "Not enough credits"


class PaymentRequired(NotEnoughCredits):
    """402 text (`out_of_credits_answer="402"`)."""

    status = 402
    default_message = "Payment Required: not enough credits"


class BulkRequestError(SandboxError):
    """400 JSON `{"error": CODE}`: a bulk body refused as a whole (nothing started).

    Args:
        code: lemlist's code (`WRONG_BODY_FORMAT`, `TOO_MANY_ENRICHMENTS_REQUESTED`…).
    """

    json_body = True
    code_in_body = False

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.bulk_code = code


class EnrichmentNotFound(SandboxError):
    """404 text `Enrichment not found` of `GET /enrich/{id}`."""

    status = 404
    default_message = "Enrichment not found"


class CampaignNotFound(SandboxError):
    """404 text `Campaign not found` of the campaign export."""

    status = 404
    default_message = "Campaign not found"


class Unauthorized(SandboxError):
    """401 text `Unauthorized`: no (readable) Basic auth header."""

    status = 401
    default_message = "Unauthorized"


class BadCredentials(SandboxError):
    """401 text: an unknown (or revoked) API key."""

    status = 401
    default_message = "The authentication you supplied is incorrect"


class TooManyRequests(SandboxError):
    """429 text `Too Many Requests` (rate window, or injected)."""

    status = 429
    default_message = "Too Many Requests"


class MethodNotAllowed(SandboxError):
    """405 text `Method not allowed`."""

    status = 405
    default_message = "Method not allowed"


class InternalServerError(SandboxError):
    """500 text `Internal Server Error` (injected)."""

    status = 500
    default_message = "Internal Server Error"


class EnrichFailed(SandboxError):
    """500 JSON `{"error": "Failed to enrich lead"}` (injected on `POST /leads/{id}/enrich`)."""

    status = 500
    default_message = "Failed to enrich lead"
    json_body = True


__all__ = [
    "AlreadyEnriched",
    "BadCredentials",
    "BadRequest",
    "BadTeam",
    "BulkRequestError",
    "CampaignNotFound",
    "ContactNotFound",
    "EnrichFailed",
    "EnrichmentInProgress",
    "EnrichmentNotFound",
    "InternalServerError",
    "InvalidWebhookUrl",
    "LeadEmailNotFound",
    "LeadNotFound",
    "MethodNotAllowed",
    "NoEnrichmentRequested",
    "NotEnoughCredits",
    "PaymentRequired",
    "SandboxError",
    "TooManyRequests",
    "Unauthorized",
]
