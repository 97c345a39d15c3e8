"""Campaigns, leads and contacts of a sandbox: the seeded campaign and the people campaigns.

Not thread-safe: the backend calls it under its lock.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Container, Mapping, Sequence
from typing import Any

from prefect_lemlist.sandbox.data import SandboxLead, SeededCampaign, make_id, seed_campaign
from prefect_lemlist.sandbox.exceptions import BadTeam, ContactNotFound, LeadNotFound
from prefect_lemlist.sandbox.models import (
    Contact,
    LeadMatch,
    LeadRow,
    LeadView,
    PeopleCampaign,
    PersonLead,
)
from prefect_lemlist.sandbox.people import PersonTruth, normalize_inputs, person_key, person_truth


def _seeded_fields(lead: SandboxLead) -> dict[str, Any]:
    return {
        "lastState": lead.last_state,
        "status": lead.status,
        "timezone": lead.timezone,
        "picture": lead.picture,
        "icebreaker": lead.icebreaker,
    }


def _person_fields(person: PersonLead) -> dict[str, Any]:
    return {
        "lastState": person.last_state,
        "status": person.status,
        "timezone": person.timezone,
        "picture": None,
        "icebreaker": "",
    }


class Directory:
    """Every campaign, lead and contact of one sandbox.

    Args:
        leads: size of the seeded campaign.
        seed: `SandboxConfig.seed`.
        rng: the RNG drawing people campaign, lead and contact ids.
    """

    def __init__(self, leads: int, seed: int, rng: random.Random) -> None:
        self._seed = seed
        self._rng = rng
        self.campaign: SeededCampaign = seed_campaign(leads, seed)
        self.leads_by_id: dict[str, SandboxLead] = {lead.lead_id: lead for lead in self.leads}
        self._foreign = frozenset(self.campaign.foreign_lead_ids)
        self._contacts: dict[str, Contact] = {
            lead.lead_id: Contact.from_lead(lead) for lead in self.leads if lead.has_contact
        }
        self._leads_by_contact: dict[str, list[str]] = {
            lead.contact_id: [lead.lead_id] for lead in self.leads if lead.has_contact
        }
        self._person_leads: dict[str, PersonLead] = {}
        self._people_campaigns: dict[str, PeopleCampaign] = {}
        self._contact_by_person: dict[str, str] = {}
        self._lead_updated: dict[str, float] = {}
        self._truths: dict[str, PersonTruth] = {}

    @property
    def leads(self) -> tuple[SandboxLead, ...]:
        """The seeded leads, in campaign order."""
        return self.campaign.leads

    @property
    def campaign_ids(self) -> list[str]:
        """Every campaign id: the seeded one first, then people campaigns in creation order."""
        return [self.campaign.campaign_id, *self._people_campaigns]

    def has_campaign(self, campaign_id: str) -> bool:
        """Whether the campaign exists in this sandbox."""
        return campaign_id == self.campaign.campaign_id or campaign_id in self._people_campaigns

    def contact(self, lead_id: str) -> Contact | None:
        """The live contact of a lead, or None."""
        return self._contacts.get(lead_id)

    def person_lead(self, lead_id: str) -> PersonLead | None:
        """The lead of a people campaign with this id, or None."""
        return self._person_leads.get(lead_id)

    def seeded_lead(self, lead_id: str | None) -> SandboxLead | None:
        """The seeded lead with this id, or None."""
        return self.leads_by_id.get(lead_id) if lead_id else None

    def enrichable(self, lead_id: str) -> tuple[Contact, PersonLead | None]:
        """The contact (and person) a `POST /leads/{id}/enrich` would enrich.

        Raises:
            BadTeam: the lead belongs to another team.
            LeadNotFound: no such lead.
            ContactNotFound: the lead has no contact.
        """
        if lead_id in self._foreign:
            raise BadTeam()
        person = self._person_leads.get(lead_id)
        if lead_id not in self.leads_by_id and person is None:
            raise LeadNotFound()
        contact = self._contacts.get(lead_id)
        if contact is None:
            raise ContactNotFound()
        return contact, person

    def truth(self, inputs: Mapping[str, str]) -> PersonTruth:
        """`person_truth` of these inputs (cached per person)."""
        key = person_key(inputs)
        truth = self._truths.get(key)
        if truth is None:
            truth = person_truth(inputs, self._seed)
            self._truths[key] = truth
        return truth

    def write_back(self, contact: Contact, writes: Sequence[tuple[str, Any]]) -> None:
        """Write enrichment results to a contact and touch every lead sharing it."""
        for attribute, value in writes:
            setattr(contact, attribute, value)
        if writes:
            touched = time.time()
            for lead_id in self._leads_by_contact.get(contact.contact_id, ()):
                self._lead_updated[lead_id] = touched

    # ------------------------------------------------------------------ people campaigns

    def _fresh_id(self, prefix: str, taken: Container[str]) -> str:
        new_id = make_id(self._rng, prefix)
        while new_id in taken:
            new_id = make_id(self._rng, prefix)
        return new_id

    def _person_contact(self, inputs: dict[str, str]) -> Contact:
        """The contact of a person (shared by every lead of the same `person_key`)."""
        key = person_key(inputs)
        contact_id = self._contact_by_person.get(key)
        if contact_id is not None:
            return self._contacts[self._leads_by_contact[contact_id][0]]
        contact_id = self._fresh_id("ctc", self._leads_by_contact)
        self._contact_by_person[key] = contact_id
        return Contact.from_inputs(contact_id, inputs)

    def add_campaign_from_people(
        self, rows: Sequence[Mapping[str, str]], name: str | None = None
    ) -> tuple[str, list[str]]:
        """Create a campaign whose leads are these people (one lead per row).

        Rows of the same `person_key` (in this call or an earlier one) share one contact, like
        lemlist; each row gets a new lead id. The leads' enrichments use `person_truth`.

        Args:
            rows: people rows (`generate_people` shape; `person_id` optional).
            name: campaign name (default `People campaign N`).

        Returns:
            (campaign id, lead ids in row order).
        """
        used = set(self.leads_by_id) | set(self._person_leads) | self._foreign
        campaign_id = self._fresh_id("cam", {self.campaign.campaign_id, *self._people_campaigns})
        now = time.time()
        lead_ids: list[str] = []
        for index, row in enumerate(rows):
            inputs = normalize_inputs(row)
            contact = self._person_contact(inputs)
            lead_id = self._fresh_id("lea", used)
            used.add(lead_id)
            person_id = row.get("person_id")
            self._person_leads[lead_id] = PersonLead(
                lead_id=lead_id,
                contact_id=contact.contact_id,
                campaign_id=campaign_id,
                person_key=person_key(inputs),
                inputs=inputs,
                person_id=person_id if isinstance(person_id, str) else str(index + 1),
            )
            self._contacts[lead_id] = contact
            self._leads_by_contact.setdefault(contact.contact_id, []).append(lead_id)
            self._lead_updated[lead_id] = now
            lead_ids.append(lead_id)
        label = name or f"People campaign {len(self._people_campaigns) + 1}"
        self._people_campaigns[campaign_id] = PeopleCampaign(
            campaign_id=campaign_id, name=label, lead_ids=tuple(lead_ids)
        )
        return campaign_id, lead_ids

    # ------------------------------------------------------------------ reads

    def lead_rows(self, campaign_id: str) -> list[LeadRow]:
        """Every lead of a campaign with its current contact and campaign fields."""
        if campaign_id == self.campaign.campaign_id:
            return [
                LeadRow(lead.lead_id, self._contacts.get(lead.lead_id), _seeded_fields(lead))
                for lead in self.leads
            ]
        people = self._people_campaigns.get(campaign_id)
        return [
            LeadRow(
                lead_id, self._contacts.get(lead_id), _person_fields(self._person_leads[lead_id])
            )
            for lead_id in (people.lead_ids if people else ())
        ]

    def export_rows(self, campaign_id: str, wanted_states: list[str]) -> list[LeadView]:
        """The leads of a campaign whose `lastState` is wanted (`all`: every lead).

        Leads without a contact show their seeded (visible) data.
        """
        take_all = "all" in wanted_states
        rows: list[LeadView] = []
        for row in self.lead_rows(campaign_id):
            if not take_all and row.campaign_fields["lastState"] not in wanted_states:
                continue
            contact = row.contact or Contact.from_lead(self.leads_by_id[row.lead_id])
            rows.append(LeadView(row.lead_id, contact, row.campaign_fields))
        return rows

    def _campaign_name(self, campaign_id: str) -> str:
        if campaign_id == self.campaign.campaign_id:
            return self.campaign.name
        return self._people_campaigns[campaign_id].name

    def leads_by_email(self, email: str, created_epoch: float) -> list[LeadMatch]:
        """The leads whose contact email is `email` (case-insensitive), in campaign order."""
        wanted = email.strip().lower()
        found: list[LeadMatch] = []
        for campaign_id in self.campaign_ids:
            name = self._campaign_name(campaign_id)
            for row in self.lead_rows(campaign_id):
                contact = row.contact
                if contact is None or not contact.email or contact.email.lower() != wanted:
                    continue
                updated = self._lead_updated.get(row.lead_id, created_epoch)
                view = LeadView(row.lead_id, contact, row.campaign_fields)
                found.append(LeadMatch(view, campaign_id, name, "running", updated))
        return found

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """Contacts, people campaigns and update times as JSON-ready data."""
        return {
            "contacts": {c.contact_id: dataclasses.asdict(c) for c in self._contacts.values()},
            "lead_contacts": {lead: c.contact_id for lead, c in self._contacts.items()},
            "person_leads": [dataclasses.asdict(p) for p in self._person_leads.values()],
            "people_campaigns": [
                {"campaign_id": c.campaign_id, "name": c.name, "lead_ids": list(c.lead_ids)}
                for c in self._people_campaigns.values()
            ],
            "contact_by_person": dict(self._contact_by_person),
            "lead_updated": dict(self._lead_updated),
        }

    def from_state(self, data: dict[str, Any]) -> None:
        """Restore what `to_state` saved."""
        contacts = {cid: Contact(**fields) for cid, fields in data["contacts"].items()}
        self._contacts = {lead: contacts[cid] for lead, cid in data["lead_contacts"].items()}
        self._leads_by_contact = {}
        for lead_id, cid in data["lead_contacts"].items():
            self._leads_by_contact.setdefault(cid, []).append(lead_id)
        self._person_leads = {
            record["lead_id"]: PersonLead(**record) for record in data["person_leads"]
        }
        self._people_campaigns = {
            record["campaign_id"]: PeopleCampaign(
                campaign_id=record["campaign_id"],
                name=record["name"],
                lead_ids=tuple(record["lead_ids"]),
            )
            for record in data["people_campaigns"]
        }
        self._contact_by_person = dict(data["contact_by_person"])
        self._lead_updated = {k: float(v) for k, v in data["lead_updated"].items()}


__all__ = ["Directory"]
