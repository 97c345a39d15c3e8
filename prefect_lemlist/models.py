"""Pydantic models at the edges of the lemlist API: what goes in, what comes back.

Parsing is defensive: lemlist's bodies differ between polling and webhooks and are only
partly documented, so a parser accepts every documented spelling and raises
`LemlistResponseError` (never a raw `KeyError`/`ValidationError`) when a body is unusable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_lemlist.exceptions import LemlistResponseError

IN_PROGRESS = "in-progress"
DONE = "done"

SkipReason = Literal["ALREADY_ENRICHED", "IN_PROGRESS"]


class EnrichmentFlags(BaseModel):
    """Which enrichment workflows to run for a lead (at least one must be set).

    Attributes:
        find_email: find an email address (and verify it).
        verify_email: verify the lead's existing email address.
        linkedin_enrichment: enrich the LinkedIn profile.
        find_phone: find a phone number.
    """

    model_config = ConfigDict(frozen=True)

    find_email: bool = Field(default=False, description="Find an email address (and verify it).")
    verify_email: bool = Field(default=False, description="Verify the lead's existing email.")
    linkedin_enrichment: bool = Field(default=False, description="Enrich the LinkedIn profile.")
    find_phone: bool = Field(default=False, description="Find a phone number.")

    @property
    def workflows(self) -> list[str]:
        """lemlist's workflow names for the flags that are set, e.g. `["find_email"]`."""
        names = {
            "find_email": self.find_email,
            "verify": self.verify_email,
            "linkedin_enrichment": self.linkedin_enrichment,
            "find_phone": self.find_phone,
        }
        return [name for name, wanted in names.items() if wanted]

    def require_any(self) -> EnrichmentFlags:
        """Return self, or raise `ValueError` when no workflow is requested."""
        if not self.workflows:
            raise ValueError(
                "No enrichment requested: set at least one of find_email, verify_email, "
                "linkedin_enrichment or find_phone."
            )
        return self

    def query_params(self) -> dict[str, str]:
        """The query parameters lemlist expects: each requested flag as a lowercase `true`."""
        params = {
            "findEmail": self.find_email,
            "verifyEmail": self.verify_email,
            "linkedinEnrichment": self.linkedin_enrichment,
            "findPhone": self.find_phone,
        }
        return {name: "true" for name, wanted in params.items() if wanted}

    def label(self) -> str:
        """A short stable text for the requested workflows, e.g. `find_email+find_phone`."""
        return "+".join(self.workflows) or "none"


class EnrichLeadResult(BaseModel):
    """What `POST /leads/{leadId}/enrich` decided for one lead.

    Attributes:
        lead_id: the lead that was asked about.
        enrichment_id: the `enr_…` id to collect the result with, or None when skipped.
        skipped: True when lemlist started nothing (409).
        skip_reason: `ALREADY_ENRICHED` (the contact has the data or was recently enriched) or
            `IN_PROGRESS` (another enrichment of the same contact is running), else None.
    """

    lead_id: str
    enrichment_id: str | None = None
    skipped: bool = False
    skip_reason: SkipReason | None = None


class Enrichment(BaseModel):
    """The state or result of one enrichment, from polling or from a webhook.

    Attributes:
        enrichment_id: the `enr_…` id.
        status: lemlist's `enrichmentStatus` as given (`in-progress`, `done`, or anything else
            lemlist says; anything but those two means it ended with an error).
        done: True when the status is `done`.
        email: the email found (or verified), if any.
        email_status: deliverability (`deliverable`, `risky`, `undeliverable`), if known.
        phone: the phone number found, if any.
        linkedin: the LinkedIn profile data, if any.
        raw: the full body lemlist sent, for fields not projected here.
    """

    enrichment_id: str
    status: str
    done: bool
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    linkedin: dict[str, Any] | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def in_progress(self) -> bool:
        """True while lemlist is still working on it."""
        return self.status == IN_PROGRESS

    @property
    def found_anything(self) -> bool:
        """True when the enrichment produced any data (email, status, phone or profile)."""
        return any(
            v is not None for v in (self.email, self.email_status, self.phone, self.linkedin)
        )

    @classmethod
    def from_polling(cls, body: Any, *, http_status: int | None = None) -> Enrichment:
        """Parse a `GET /enrich/{id}` body.

        Args:
            body: the decoded JSON body.
            http_status: 202 means in progress even when the body says nothing.

        Returns:
            The parsed enrichment.

        Raises:
            LemlistResponseError: the body is not an enrichment object.
        """
        if not isinstance(body, dict):
            raise LemlistResponseError(
                f"expected an enrichment object, got {type(body).__name__}",
                status_code=http_status,
            )
        enrichment_id = body.get("enrichmentId") or body.get("id")
        status = body.get("enrichmentStatus")
        if status is None and http_status == 202:
            status = IN_PROGRESS
        if not isinstance(enrichment_id, str) or not isinstance(status, str):
            raise LemlistResponseError(
                "expected an enrichment object with 'enrichmentId' and 'enrichmentStatus', got "
                f"keys {sorted(map(str, body))[:10]}",
                status_code=http_status,
            )
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        email_obj = _obj(data.get("email"))
        phone_obj = _obj(data.get("phone"))
        linkedin_obj = _obj(
            data.get("linkedin")
            or data.get("linkedin_enrichment")
            or data.get("linkedinEnrichment")
        )
        return cls(
            enrichment_id=enrichment_id,
            status=status,
            done=status == DONE,
            email=None if email_obj.get("notFound") is True else _str(email_obj.get("email")),
            email_status=_str(email_obj.get("status")),
            phone=None if phone_obj.get("notFound") is True else _str(phone_obj.get("phone")),
            linkedin=_profile(linkedin_obj),
            raw=body,
        )

    @classmethod
    def from_webhook_item(cls, item: Any, *, event_type: str | None = None) -> Enrichment:
        """Parse one element of a webhook payload's `data` array.

        Args:
            item: `{"id": "enr_…", "data": {"find_email": …, "verify": …, …}}`.
            event_type: the payload's `type`; `enrichmentError` marks a failed enrichment.

        Returns:
            The parsed enrichment (status `done`, or `error` for `enrichmentError`).

        Raises:
            LemlistResponseError: the item is not an enrichment result.
        """
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise LemlistResponseError("expected a webhook item with an 'id' string")
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        find_email = _obj(data.get("find_email"))
        verify = _obj(data.get("verify"))
        find_phone = _obj(data.get("find_phone"))
        linkedin_obj = _obj(data.get("linkedin_enrichment") or data.get("linkedin"))
        status = "error" if event_type == "enrichmentError" else DONE
        return cls(
            enrichment_id=item["id"],
            status=status,
            done=status == DONE,
            email=None if find_email.get("notFound") is True else _str(find_email.get("email")),
            email_status=_str(find_email.get("status")) or _str(verify.get("status")),
            phone=None if find_phone.get("notFound") is True else _str(find_phone.get("phone")),
            linkedin=_profile(linkedin_obj),
            raw=item,
        )


class CampaignLead(BaseModel):
    """One row of `GET /campaigns/{id}/export/leads` (the fields that decide enrichment).

    Unknown columns (custom variables) are kept as extra fields.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    lead_id: str = Field(alias="_id")
    email: str | None = None
    email_status: str | None = Field(default=None, alias="emailStatus")
    phone: str | None = None
    linkedin_url: str | None = Field(default=None, alias="linkedinUrl")
    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")
    company_name: str | None = Field(default=None, alias="companyName")
    company_domain: str | None = Field(default=None, alias="companyDomain")
    last_state: str | None = Field(default=None, alias="lastState")


class Credits(BaseModel):
    """The team's credit balance from `GET /team/credits`.

    Attributes:
        credits: credits left for the whole team.
        details: lemlist's breakdown (`remaining.total`, `subscription`, `gifted`, …).
    """

    credits: float
    details: dict[str, Any] = Field(default_factory=dict)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _profile(value: dict[str, Any]) -> dict[str, Any] | None:
    if not value or value.get("notFound") is True:
        return None
    return {k: v for k, v in value.items() if k != "notFound"}
