"""Pydantic models at the edges of the lemlist API: what goes in, what comes back.

Parsing is defensive: lemlist's bodies differ between polling and webhooks and are only partly
documented, so a parser accepts every documented spelling (the keys come from the workflow table)
and raises `LemlistResponseError` (never a raw `KeyError`/`ValidationError`) when a body is
unusable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from prefect_lemlist.api.exceptions import LemlistResponseError
from prefect_lemlist.api.validation import EnrichmentId, LeadId
from prefect_lemlist.api.workflows import WORKFLOWS, Workflow, WorkflowSpec

IN_PROGRESS = "in-progress"
DONE = "done"

SkipReason = Literal["ALREADY_ENRICHED", "IN_PROGRESS"]
WorkflowResult = Literal["found", "not_found"]


class EnrichmentFlags(BaseModel):
    """Which enrichment workflows to run (at least one must be set to start anything).

    Attributes:
        find_email: find an email address (and verify it).
        verify_email: verify the existing email address.
        linkedin_enrichment: enrich the LinkedIn profile.
        find_phone: find a phone number.
    """

    model_config = ConfigDict(frozen=True)

    find_email: bool = Field(default=False, description="Find an email address (and verify it).")
    verify_email: bool = Field(default=False, description="Verify the existing email.")
    linkedin_enrichment: bool = Field(default=False, description="Enrich the LinkedIn profile.")
    find_phone: bool = Field(default=False, description="Find a phone number.")

    @classmethod
    def of(cls, workflows: Iterable[Workflow | str]) -> EnrichmentFlags:
        """The flags asking for exactly `workflows` (lemlist names or `Workflow`s)."""
        wanted = {Workflow(w) for w in workflows}
        return cls(**{WORKFLOWS[w].option: True for w in wanted})

    @property
    def workflows(self) -> list[Workflow]:
        """The requested workflows, in lemlist's order (`Workflow` compares equal to its name)."""
        return [w for w, spec in WORKFLOWS.items() if getattr(self, spec.option)]

    @property
    def specs(self) -> list[WorkflowSpec]:
        """The table rows of the requested workflows."""
        return [WORKFLOWS[w] for w in self.workflows]

    def require_any(self) -> EnrichmentFlags:
        """Return self, or raise `ValueError` when no workflow is requested."""
        if not self.workflows:
            names = ", ".join(spec.option for spec in WORKFLOWS.values())
            raise ValueError(f"No enrichment requested: set at least one of {names}.")
        return self

    def query_params(self) -> dict[str, str]:
        """The query flags lemlist expects: each requested one as a lowercase `true`."""
        return {spec.query_flag: "true" for spec in self.specs}

    def label(self) -> str:
        """A short stable text for the requested workflows, e.g. `find_email+find_phone`."""
        return "+".join(w.value for w in self.workflows) or "none"

    def max_credits_each(self) -> int:
        """The most one enrichment with these workflows can cost (upper-bound prices)."""
        return sum(spec.max_credits for spec in self.specs)


class EnrichLeadResult(BaseModel):
    """What `POST /leads/{leadId}/enrich` decided for one lead.

    Attributes:
        lead_id: the lead that was asked about.
        enrichment_id: the `enr_…` id to collect the result with, or None when skipped.
        skipped: True when lemlist started nothing (409).
        skip_reason: `ALREADY_ENRICHED` (the contact has the data or was recently enriched) or
            `IN_PROGRESS` (another enrichment of the same contact is running), else None.
    """

    lead_id: LeadId
    enrichment_id: str | None = None
    skipped: bool = False
    skip_reason: SkipReason | None = None


class EnrichmentStart(BaseModel):
    """An enrichment lemlist accepted for a person (`POST /enrich`).

    Attributes:
        enrichment_id: the `enr_…` id to collect the result with.
    """

    enrichment_id: str


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
        results: per workflow, `found` or `not_found` when the body says so; a workflow the
            body says nothing recognisable about is absent.
        metadata: the `metadata` lemlist echoed (bulk enrichments), if any.
        raw: the full body lemlist sent, for fields not projected here.
    """

    enrichment_id: str
    status: str
    done: bool
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    linkedin: dict[str, Any] | None = None
    results: dict[Workflow, WorkflowResult] = Field(default_factory=dict)
    metadata: Any = None
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

    def covers(self, workflows: Iterable[Workflow]) -> bool:
        """Whether the body said something recognisable about every one of `workflows`.

        A failed enrichment (an end status other than `done`) covers everything: there is no
        result to look for.
        """
        return not self.done or all(w in self.results for w in workflows)

    @classmethod
    def from_polling(cls, body: Any, *, http_status: int | None = None) -> Enrichment:
        """Parse a `GET /enrich/{id}` body.

        Polling is authoritative: a workflow object without a value counts as not found.

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
        data = _obj(body.get("data"))
        parsed = _parse_data(data, lambda spec: spec.poll_keys, authoritative=True)
        return cls(
            enrichment_id=enrichment_id,
            status=status,
            done=status == DONE,
            raw=body,
            **parsed,
        )

    @classmethod
    def from_webhook_item(cls, item: Any, *, event_type: str | None = None) -> Enrichment:
        """Parse one element of a webhook payload's `data` array.

        Webhook bodies are documented only for found results, so a workflow is taken as
        `not_found` only when its object says `notFound: true`; anything else without a value
        leaves the workflow out of `results` (the collector then confirms it by polling).
        Polling-style keys (`email`, `phone`, `linkedin`) are read too.

        Args:
            item: `{"id": "enr_…", "data": {"find_email": …, "verify": …, …}, "metadata": …}`.
            event_type: the payload's `type`; `enrichmentError` marks a failed enrichment.

        Returns:
            The parsed enrichment (status `done`, or `error` for `enrichmentError`).

        Raises:
            LemlistResponseError: the item is not an enrichment result.
        """
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise LemlistResponseError("expected a webhook item with an 'id' string")
        data = _obj(item.get("data"))
        parsed = _parse_data(
            data, lambda spec: (*spec.webhook_keys, *spec.poll_keys), authoritative=False
        )
        status = "error" if event_type == "enrichmentError" else DONE
        return cls(
            enrichment_id=item["id"],
            status=status,
            done=status == DONE,
            metadata=item.get("metadata"),
            raw=item,
            **parsed,
        )


def _parse_data(data: Mapping[str, Any], keys_of: Any, *, authoritative: bool) -> dict[str, Any]:
    """Project a `data` object onto the model's fields, workflow by workflow (see the table)."""
    results: dict[Workflow, WorkflowResult] = {}
    fields: dict[str, Any] = {"email": None, "email_status": None, "phone": None, "linkedin": None}
    for workflow, spec in WORKFLOWS.items():
        present = [key for key in keys_of(spec) if key in data]
        if not present:
            continue
        obj = _obj(data[present[0]])
        found, values = _workflow_values(workflow, obj)
        for name, value in values.items():
            fields[name] = fields[name] or value
        if found:
            results[workflow] = "found"
        elif obj.get("notFound") is True or (authoritative and data[present[0]] is not None):
            results[workflow] = "not_found"
    return {**fields, "results": results}


def _workflow_values(workflow: Workflow, obj: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether one workflow object holds a result, and the model fields it fills."""
    not_found = obj.get("notFound") is True
    if workflow is Workflow.FIND_EMAIL:
        email = None if not_found else _str(obj.get("email"))
        return email is not None, {"email": email, "email_status": _str(obj.get("status"))}
    if workflow is Workflow.VERIFY:
        status = _str(obj.get("status"))
        email = None if not_found else _str(obj.get("email"))
        return status is not None, {"email_status": status, "email": email}
    if workflow is Workflow.FIND_PHONE:
        phone = None if not_found else _str(obj.get("phone"))
        return phone is not None, {"phone": phone}
    profile = _profile(obj)
    return profile is not None, {"linkedin": profile}


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
    job_title: str | None = Field(default=None, alias="jobTitle")
    last_state: str | None = Field(default=None, alias="lastState")


class Credits(BaseModel):
    """The team's credit balance from `GET /team/credits`.

    Attributes:
        credits: credits left for the whole team.
        details: lemlist's breakdown (`remaining.total`, `subscription`, `gifted`, …).
    """

    credits: float
    details: dict[str, Any] = Field(default_factory=dict)


class Team(BaseModel):
    """The team an API key belongs to (`GET /team`).

    Attributes:
        team_id: lemlist's team id (`tea_…`): the same for every key of the team.
        name: the team's name.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    team_id: str = Field(alias="_id", min_length=1)
    name: str | None = None


class LeadByEmail(BaseModel):
    """One lead of a person, from `GET /leads/{email}?version=v2` (one per campaign).

    Attributes:
        lead_id: the lead (`lea_…`).
        campaign_id: its campaign, when lemlist says.
        campaign_name: the campaign's name, when lemlist says.
        updated_at: lemlist's `updatedAt` (ISO text), used to pick the most recent lead.
        email: the lead's email, as lemlist has it.
        email_status: its deliverability status, when lemlist has one.
    """

    model_config = ConfigDict(extra="ignore")

    lead_id: LeadId
    campaign_id: str | None = None
    campaign_name: str | None = None
    updated_at: str | None = None
    email: str | None = None
    email_status: str | None = None

    @classmethod
    def from_body(cls, item: Any) -> LeadByEmail:
        """Parse one item of the list.

        Raises:
            LemlistResponseError: the item has no usable `_id`.
        """
        if not isinstance(item, dict):
            raise LemlistResponseError("GET /leads/{email}: an item is not an object")
        campaign = _obj(item.get("campaign"))
        try:
            return cls(
                lead_id=LeadId(item.get("_id")),
                campaign_id=_str(campaign.get("id")) or _str(item.get("campaignId")),
                campaign_name=_str(campaign.get("name")),
                updated_at=_str(item.get("updatedAt")),
                email=_str(_obj(item.get("variables")).get("email")) or _str(item.get("email")),
                email_status=_str(_obj(item.get("enrichment")).get("emailStatus"))
                or _str(item.get("emailStatus")),
            )
        except ValueError:
            raise LemlistResponseError("GET /leads/{email}: an item has no valid '_id'") from None


# ----------------------------------------------------------------------------- contacts

CONTACT_FIELDS: Mapping[str, str] = {
    "email": "email",
    "linkedin_url": "linkedinUrl",
    "first_name": "firstName",
    "last_name": "lastName",
    "company_name": "companyName",
    "company_domain": "companyDomain",
    "job_title": "jobTitle",
}
"""A contact's fields (snake_case) and lemlist's names for them (camelCase)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
_IDENTITY = tuple(name for name in CONTACT_FIELDS if name != "job_title")


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, CONTACT_FIELDS[name])


class Contact(BaseModel):
    """A person to enrich who need not be a lemlist lead (for `POST /enrich` and bulk).

    Every field is optional; blank strings count as missing. Field names are accepted in
    snake_case and in lemlist's camelCase (`linkedin_url` or `linkedinUrl`). Values are checked:
    an email needs one `@` and a dot in its domain, a LinkedIn URL must be an http(s) URL on
    linkedin.com, a company domain loses any `https://`, `www.` and path.

    Attributes:
        email: the person's email.
        linkedin_url: their LinkedIn profile URL.
        first_name: their first name.
        last_name: their last name.
        company_name: their company's name.
        company_domain: their company's domain (`acme.com`).
        job_title: their job title (a hint that improves lemlist's find rate).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    email: str | None = Field(default=None, validation_alias=_alias("email"))
    linkedin_url: str | None = Field(default=None, validation_alias=_alias("linkedin_url"))
    first_name: str | None = Field(default=None, validation_alias=_alias("first_name"))
    last_name: str | None = Field(default=None, validation_alias=_alias("last_name"))
    company_name: str | None = Field(default=None, validation_alias=_alias("company_name"))
    company_domain: str | None = Field(default=None, validation_alias=_alias("company_domain"))
    job_title: str | None = Field(default=None, validation_alias=_alias("job_title"))

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = " ".join(value.split())
            return value or None
        return value

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"email {value[:80]!r} is not an email address")
        return value

    @field_validator("linkedin_url")
    @classmethod
    def _check_linkedin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        lowered = value.lower()
        host = re.sub(r"^https?://", "", lowered).split("/", 1)[0]
        if not lowered.startswith(("http://", "https://")) or not (
            host == "linkedin.com" or host.endswith(".linkedin.com")
        ):
            raise ValueError(f"linkedin_url {value[:80]!r} is not a linkedin.com URL")
        return value

    @field_validator("company_domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = re.sub(r"^[a-z]+://", "", value.lower()).split("/", 1)[0].removeprefix("www.")
        if not _DOMAIN.match(domain):
            raise ValueError(f"company_domain {value[:80]!r} is not a domain name")
        return domain

    def present(self) -> list[str]:
        """The names of the fields that have a value."""
        return [name for name in CONTACT_FIELDS if getattr(self, name) is not None]

    def missing_inputs(self, workflows: Iterable[Workflow]) -> WorkflowSpec | None:
        """The first of `workflows` whose required inputs this contact lacks, or None."""
        present = self.present()
        for workflow in workflows:
            spec = WORKFLOWS[Workflow(workflow)]
            if spec.missing_inputs(present):
                return spec
        return None

    def lemlist_input(self) -> dict[str, str]:
        """The contact as lemlist's `input` object / query parameters (camelCase, no blanks)."""
        return {
            CONTACT_FIELDS[name]: value
            for name in CONTACT_FIELDS
            if (value := getattr(self, name)) is not None
        }

    def identity(self) -> tuple[str, ...]:
        """The normalised inputs that make two contacts the same person (case, spaces and a
        LinkedIn URL's trailing slash do not count; the job title is only a hint)."""
        values = []
        for name in _IDENTITY:
            value = getattr(self, name) or ""
            value = value.casefold()
            if name == "linkedin_url":
                value = re.sub(r"^https?://(www\.)?", "", value).rstrip("/")
            values.append(value)
        return tuple(values)

    def fingerprint(self, flags: EnrichmentFlags) -> str:
        """A one-way key of this person and the workflows (the ledger's and dedupe's key)."""
        text = "\x1f".join((*self.identity(), flags.label()))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class BulkItemResult(BaseModel):
    """lemlist's answer for one contact of a bulk request, or the reason it was not sent.

    Attributes:
        index: the contact's position in the request.
        enrichment_id: the started enrichment, or None.
        error: lemlist's per-item code (`MISSING_INPUTS`, `MISSING_EMAIL`,
            `MISSING_LINKEDIN_URL`), or the same code found locally, or None.
        sent: False when the contact was refused locally and never sent.
        metadata: what lemlist echoed for it.
    """

    index: int
    enrichment_id: str | None = None
    error: str | None = None
    sent: bool = True
    metadata: Any = None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _profile(value: Mapping[str, Any]) -> dict[str, Any] | None:
    if not value or value.get("notFound") is True:
        return None
    profile = {k: v for k, v in value.items() if k != "notFound"}
    return profile if any(v not in (None, "", [], {}) for v in profile.values()) else None


__all__ = [
    "CONTACT_FIELDS",
    "BulkItemResult",
    "CampaignLead",
    "Contact",
    "Credits",
    "EnrichLeadResult",
    "Enrichment",
    "EnrichmentFlags",
    "EnrichmentId",
    "EnrichmentStart",
    "LeadByEmail",
    "Team",
]
