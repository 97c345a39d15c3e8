"""Domain objects of the sandbox: contacts, leads of people campaigns, enrichments, webhooks.

Plain data (no HTTP, no locking). `EnrichmentStore` keeps every enrichment and serialises them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prefect_lemlist.sandbox.data import SandboxLead
from prefect_lemlist.sandbox.persistence import TimeBase


@dataclass
class Contact:
    """The current (mutable) data lemlist holds on a lead's contact."""

    contact_id: str
    first_name: str | None
    last_name: str | None
    company_name: str | None
    company_domain: str | None
    job_title: str | None
    linkedin_url: str | None
    email: str | None
    email_status: str | None
    phone: str | None

    @classmethod
    def from_lead(cls, lead: SandboxLead) -> Contact:
        """Build the starting contact of a seeded lead.

        Args:
            lead: the seeded lead.

        Returns:
            A new `Contact` with the lead's visible data.
        """
        return cls(
            contact_id=lead.contact_id,
            first_name=lead.first_name,
            last_name=lead.last_name,
            company_name=lead.company_name,
            company_domain=lead.company_domain,
            job_title=lead.job_title,
            linkedin_url=lead.linkedin_url,
            email=lead.email,
            email_status=lead.email_status,
            phone=lead.phone,
        )

    @classmethod
    def from_inputs(cls, contact_id: str, inputs: dict[str, str]) -> Contact:
        """Build the contact of a person added from normalised lemlist inputs.

        Args:
            contact_id: the new `ctc_…` id.
            inputs: normalised inputs (`normalize_inputs`).

        Returns:
            A new `Contact` without email status nor phone.
        """
        return cls(
            contact_id=contact_id,
            first_name=inputs.get("firstName"),
            last_name=inputs.get("lastName"),
            company_name=inputs.get("companyName"),
            company_domain=inputs.get("companyDomain"),
            job_title=inputs.get("jobTitle"),
            linkedin_url=inputs.get("linkedinUrl"),
            email=inputs.get("email"),
            email_status=None,
            phone=None,
        )

    def enrichment_input(self) -> dict[str, str | None]:
        """Return the `input` object lemlist shows for an enrichment of this contact."""
        return {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "linkedinUrl": self.linkedin_url,
            "companyName": self.company_name,
            "companyDomain": self.company_domain,
        }

    def input_key(self) -> tuple[str | None, ...]:
        """The identity of this contact's inputs (a not-found is remembered per inputs)."""
        return tuple(self.enrichment_input().values())

    def copy(self) -> Contact:
        """An independent copy."""
        return Contact(**vars(self))


@dataclass
class Enrichment:
    """One enrichment (`enr_…`) and its decided fate.

    Attributes:
        enrichment_id: the `enr_…` id.
        lead_id: the lead enriched (None for `POST /enrich` and bulk enrichments).
        contact_id: the contact enriched (None for `POST /enrich` and bulk enrichments).
        workflows: the workflows run, in processing order.
        input: the `input` object `GET /enrich/{id}` shows.
        started_at: monotonic start time.
        due_at: monotonic time it finishes.
        webhook_url: where the result is POSTed, if anywhere.
        from_app: started in the lemlist app (pre-seeded, free).
        fails: ends with an unknown status (`error`).
        vanishes: `GET /enrich/{id}` answers 404 once it would be finished.
        never_finishes: stays in progress forever.
        duplicate_webhook: its webhook is delivered twice.
        finished: whether it has finished.
        status: `in-progress`, `done` or `error`.
        poll_data: the `data` object served by polling once finished.
        route: the route that started it (`enrich_post`, `enrich_data`, `bulk`, `app`).
        person_key: the person's identity when its results come from `person_truth`.
        person_inputs: the normalised inputs `person_truth` is derived from.
        metadata: the bulk item's metadata (echoed in the webhook when `has_metadata`).
        has_metadata: whether the bulk item carried a metadata.
        out_of_credits: accepted without credits (`accept_then_fail`): ends `error`.
    """

    enrichment_id: str
    lead_id: str | None
    contact_id: str | None
    workflows: tuple[str, ...]
    input: dict[str, str | None]
    started_at: float
    due_at: float
    webhook_url: str | None = None
    from_app: bool = False
    fails: bool = False
    vanishes: bool = False
    never_finishes: bool = False
    duplicate_webhook: bool = False
    finished: bool = False
    status: str = "in-progress"
    poll_data: dict[str, Any] = field(default_factory=dict)
    route: str = "enrich_post"
    person_key: str | None = None
    person_inputs: dict[str, str] | None = None
    metadata: Any = None
    has_metadata: bool = False
    out_of_credits: bool = False

    def to_record(self, clock: TimeBase) -> dict[str, Any]:
        """This enrichment as JSON-ready data (times as epoch seconds)."""
        record = dataclasses.asdict(self)
        record["workflows"] = list(self.workflows)
        record["started_at"] = clock.to_wall(self.started_at)
        record["due_at"] = clock.to_wall(self.due_at)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], clock: TimeBase) -> Enrichment:
        """Rebuild an enrichment saved by `to_record`."""
        fields = dict(record)
        fields["workflows"] = tuple(fields["workflows"])
        fields["started_at"] = clock.to_mono(fields["started_at"])
        fields["due_at"] = clock.to_mono(fields["due_at"])
        return cls(**fields)


@dataclass(frozen=True)
class PendingEnrichment:
    """What a new enrichment is made of, before it gets an id, a fate and a schedule.

    Attributes:
        route: the route starting it (`enrich_post`, `enrich_data`, `bulk`, `app`).
        workflows: the workflows to run, in processing order.
        inputs: the `input` object `GET /enrich/{id}` shows.
        webhook_url: where its result is POSTed, if anywhere.
        duration: seconds until it finishes.
        lead_id: the lead enriched, if any.
        contact_id: the contact enriched, if any.
        person_key: the person's identity, when `person_truth` decides its results.
        person_inputs: the normalised inputs of that person.
        metadata: the bulk item's metadata.
        has_metadata: whether the bulk item carried a metadata.
    """

    route: str
    workflows: tuple[str, ...]
    inputs: dict[str, str | None]
    webhook_url: str | None
    duration: float
    lead_id: str | None = None
    contact_id: str | None = None
    person_key: str | None = None
    person_inputs: dict[str, str] | None = None
    metadata: Any = None
    has_metadata: bool = False

    @property
    def from_app(self) -> bool:
        """Started in the lemlist app (pre-seeded, free, no random fate)."""
        return self.route == "app"


class EnrichmentStore:
    """Every enrichment of the sandbox by id (serialised as a list of records)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Enrichment] = {}

    def __contains__(self, enrichment_id: object) -> bool:
        return enrichment_id in self._by_id

    def __iter__(self) -> Iterator[Enrichment]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def by_id(self) -> dict[str, Enrichment]:
        """The live id → enrichment mapping (advanced use and tests)."""
        return self._by_id

    def get(self, enrichment_id: str) -> Enrichment | None:
        """The enrichment with this id, or None."""
        return self._by_id.get(enrichment_id)

    def add(self, enrichment: Enrichment) -> None:
        """Register a new enrichment."""
        self._by_id[enrichment.enrichment_id] = enrichment

    def to_state(self) -> list[dict[str, Any]]:
        """Every enrichment as a record (`Enrichment.to_record`), times as epoch seconds."""
        clock = TimeBase.now()
        return [enrichment.to_record(clock) for enrichment in self._by_id.values()]

    def from_state(self, data: list[dict[str, Any]]) -> None:
        """Replace every enrichment by saved records."""
        clock = TimeBase.now()
        records = (Enrichment.from_record(record, clock) for record in data)
        self._by_id = {enrichment.enrichment_id: enrichment for enrichment in records}


@dataclass(frozen=True)
class PersonLead:
    """A lead of a campaign made from people rows (`Sandbox.add_campaign_from_people`).

    Attributes:
        lead_id: `lea_…` id.
        contact_id: `ctc_…` id (shared by every lead of the same person).
        campaign_id: the campaign it belongs to.
        person_key: the person's identity (`person_key` of the row).
        inputs: the row's normalised inputs (what `person_truth` is derived from).
        person_id: the row's `person_id` column.
        last_state: `lastState` of the export.
        status: lead status.
        timezone: lead timezone.
    """

    lead_id: str
    contact_id: str
    campaign_id: str
    person_key: str
    inputs: dict[str, str]
    person_id: str
    last_state: str = "scanned"
    status: str = "running"
    timezone: str = "Europe/Paris"


@dataclass(frozen=True)
class PeopleCampaign:
    """A campaign created from people rows.

    Attributes:
        campaign_id: `cam_…` id.
        name: campaign name.
        lead_ids: its leads, in row order.
    """

    campaign_id: str
    name: str
    lead_ids: tuple[str, ...]


@dataclass(frozen=True)
class LeadRow:
    """One lead of a campaign as the export and `GET /leads/{email}` see it.

    Attributes:
        lead_id: the lead.
        contact: its current contact (None when it has none).
        campaign_fields: `lastState`, `status`, `timezone`, `picture`, `icebreaker`.
    """

    lead_id: str
    contact: Contact | None
    campaign_fields: dict[str, Any]


@dataclass(frozen=True)
class LeadView:
    """One lead with a contact, as the export and `GET /leads/{email}` render it.

    Attributes:
        lead_id: the lead.
        contact: its current contact (or, in the export, its seeded visible data).
        campaign_fields: `lastState`, `status`, `timezone`, `picture`, `icebreaker`.
    """

    lead_id: str
    contact: Contact
    campaign_fields: dict[str, Any]


@dataclass(frozen=True)
class LeadMatch:
    """A lead found by `GET /leads/{email}`.

    Attributes:
        view: the lead and its contact.
        campaign_id: its campaign.
        campaign_name: that campaign's name.
        campaign_status: that campaign's status.
        updated_at: epoch seconds of the lead's last change.
    """

    view: LeadView
    campaign_id: str
    campaign_name: str
    campaign_status: str
    updated_at: float


@dataclass(frozen=True)
class BulkItemAnswer:
    """The answer to one bulk item: an enrichment id or a per-item error code.

    Attributes:
        enrichment_id: the started enrichment, or None.
        error: the per-item error code, or None.
        echo: `{"metadata": …}` when the item carried one, else empty.
    """

    enrichment_id: str | None
    error: str | None
    echo: dict[str, Any]


@dataclass(frozen=True)
class WebhookJob:
    """A webhook POST the server loop must deliver.

    Attributes:
        enrichment_id: the finished enrichment.
        url: target URL (with its query string).
        payload: the JSON body.
        copies: how many times to deliver it (2 when duplicated).
    """

    enrichment_id: str
    url: str
    payload: dict[str, Any]
    copies: int = 1


@dataclass(frozen=True)
class WebhookDelivery:
    """The outcome of one webhook delivery (after up to 3 attempts).

    Attributes:
        enrichment_id: the enrichment it reported.
        url: the target URL without its query string (which may hold a secret).
        status_code: the receiver's last HTTP status, None if never answered.
        attempts: number of attempts made.
        ok: whether a 2xx was received.
        error: last transport error, if any.
        delivered_at: wall-clock time (epoch seconds) of the last attempt.
    """

    enrichment_id: str
    url: str
    status_code: int | None
    attempts: int
    ok: bool
    error: str | None
    delivered_at: float


__all__ = [
    "BulkItemAnswer",
    "Contact",
    "Enrichment",
    "EnrichmentStore",
    "LeadMatch",
    "LeadRow",
    "LeadView",
    "PendingEnrichment",
    "PeopleCampaign",
    "PersonLead",
    "WebhookDelivery",
    "WebhookJob",
]
