"""The seeded campaign of the sandbox: deterministic leads with visible data and hidden truth."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

ID_ALPHABET = string.ascii_letters + string.digits
"""Characters of lemlist ids after the prefix (`<prefix>_<17 mixed-case alphanumerics>`)."""


def make_id(rng: random.Random, prefix: str) -> str:
    """Draw a lemlist-style id.

    Args:
        rng: the random source.
        prefix: `lea`, `cam`, `enr`, `ctc`...

    Returns:
        `prefix + "_" + 17 alphanumerics`.
    """
    return prefix + "_" + "".join(rng.choices(ID_ALPHABET, k=17))


class LeadKind(str, Enum):
    """What kind of lead this is, which decides how enrichment requests on it turn out."""

    EMAIL_VERIFIED = "email_verified"
    """Has an email with a deliverability status."""
    EMAIL_UNVERIFIED = "email_unverified"
    """Has an email without status; `verifyEmail` reveals the hidden status."""
    FINDABLE = "findable"
    """No email, but `findEmail` finds one (linkedinUrl or name + company + domain)."""
    NOT_FINDABLE = "not_findable"
    """No email and too little data: every finder returns not-found."""
    MISSING_CONTACT = "missing_contact"
    """The lead exists but its contact is gone: 404 CONTACT_NOT_FOUND."""
    RECENTLY_NOT_FOUND = "recently_not_found"
    """A recent `findEmail` returned not-found: 409 ALREADY_ENRICHED, even with force."""
    IN_PROGRESS = "in_progress"
    """An enrichment started in the lemlist app is running: 409 in progress."""


KIND_SHARES: dict[LeadKind, float] = {
    LeadKind.EMAIL_VERIFIED: 0.30,
    LeadKind.EMAIL_UNVERIFIED: 0.10,
    LeadKind.FINDABLE: 0.35,
    LeadKind.NOT_FINDABLE: 0.12,
    LeadKind.MISSING_CONTACT: 0.04,
    LeadKind.RECENTLY_NOT_FOUND: 0.04,
    LeadKind.IN_PROGRESS: 0.05,
}
"""Approximate proportions of each kind in the campaign."""


@dataclass(frozen=True)
class SandboxLead:
    """One seeded lead: what lemlist shows (at start) plus the hidden ground truth.

    Attributes:
        lead_id: `lea_…` id.
        contact_id: `ctc_…` id of the contact behind the lead.
        kind: the `LeadKind` that decides enrichment outcomes.
        first_name, last_name, company_name, company_domain, job_title, linkedin_url,
        email, email_status, phone: the contact data lemlist knows at start (None if missing).
        last_state, status, timezone, picture, icebreaker: campaign fields of the export.
        true_email: what `findEmail` finds (None: not found).
        true_email_status: the deliverability a verification reveals for the email.
        true_phone: what `findPhone` finds (None: not found).
        linkedin_profile: what `linkedinEnrichment` returns (None: not found). Do not mutate.
    """

    lead_id: str
    contact_id: str
    kind: LeadKind
    first_name: str | None
    last_name: str | None
    company_name: str | None
    company_domain: str | None
    job_title: str | None
    linkedin_url: str | None
    email: str | None
    email_status: str | None
    phone: str | None
    last_state: str
    status: str
    timezone: str
    picture: str | None
    icebreaker: str
    true_email: str | None = None
    true_email_status: str | None = None
    true_phone: str | None = None
    linkedin_profile: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def has_contact(self) -> bool:
        """Whether the lead's contact exists (False only for `MISSING_CONTACT`)."""
        return self.kind is not LeadKind.MISSING_CONTACT


@dataclass(frozen=True)
class SeededCampaign:
    """The campaign a sandbox serves.

    Attributes:
        campaign_id: `cam_…` id.
        name: campaign name.
        leads: the leads, in campaign order.
        foreign_lead_ids: lead ids that belong to another team (400 `Bad team`).
    """

    campaign_id: str
    name: str
    leads: tuple[SandboxLead, ...]
    foreign_lead_ids: tuple[str, ...]


_FIRST_NAMES = (
    "Alice",
    "Bruno",
    "Camille",
    "David",
    "Emma",
    "Farid",
    "Gabriel",
    "Hannah",
    "Ines",
    "Jonas",
    "Karim",
    "Lea",
    "Manon",
    "Nathan",
    "Olivia",
    "Paul",
    "Quentin",
    "Rosa",
    "Sofia",
    "Thomas",
    "Ugo",
    "Valentina",
    "William",
    "Xavier",
    "Yasmine",
    "Zoe",
    "Maya",
    "Lucas",
    "Chloe",
    "Hugo",
    "Amelia",
    "Noah",
    "Elena",
    "Marco",
    "Priya",
    "Kenji",
    "Sara",
    "Tomasz",
    "Aisha",
    "Diego",
)
_LAST_NAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "Rossi",
    "Schmidt",
    "Novak",
    "Kowalski",
    "Silva",
    "Johnson",
    "Smith",
    "Brown",
    "Nguyen",
    "Tanaka",
    "Patel",
    "Muller",
    "Fischer",
    "Jansen",
    "Costa",
    "Lopez",
    "Meyer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
)
_COMPANIES = (
    ("Acme Analytics", "acme-analytics.io", "Software Development"),
    ("Blue Harbor Logistics", "blueharbor.com", "Transportation"),
    ("Cobalt Health", "cobalthealth.co", "Hospitals and Health Care"),
    ("Driftwood Studio", "driftwood.studio", "Design Services"),
    ("Evergreen Energy", "evergreen-energy.com", "Renewable Energy"),
    ("Foxglove Finance", "foxglove.finance", "Financial Services"),
    ("Granite Robotics", "graniterobotics.ai", "Automation Machinery"),
    ("Helios Solar", "heliossolar.de", "Renewable Energy"),
    ("Indigo Retail", "indigoretail.fr", "Retail"),
    ("Juniper Cloud", "junipercloud.dev", "IT Services"),
    ("Kestrel Security", "kestrelsec.com", "Computer and Network Security"),
    ("Lumen Education", "lumen.education", "E-Learning"),
    ("Maple Foods", "maplefoods.ca", "Food and Beverage"),
    ("Nimbus Data", "nimbusdata.io", "Data Infrastructure"),
    ("Orchid Biotech", "orchidbio.com", "Biotechnology"),
    ("Pioneer Legal", "pioneerlegal.co.uk", "Legal Services"),
    ("Quartz Media", "quartzmedia.net", "Media Production"),
    ("Redwood Capital", "redwoodcap.com", "Venture Capital"),
    ("Sierra Travel", "sierratravel.es", "Travel Arrangements"),
    ("Tidal Marketing", "tidalmarketing.agency", "Marketing Services"),
)
_JOB_TITLES = (
    "CEO",
    "CTO",
    "Head of Sales",
    "VP Marketing",
    "Growth Manager",
    "Account Executive",
    "Sales Development Representative",
    "Head of Operations",
    "Product Manager",
    "Founder",
    "Chief Revenue Officer",
    "Marketing Director",
    "Customer Success Lead",
    "Data Engineer",
)
_LOCATIONS = (
    ("Paris, Ile-de-France, France", "Europe/Paris", "+336"),
    ("Lyon, Auvergne-Rhone-Alpes, France", "Europe/Paris", "+337"),
    ("Berlin, Germany", "Europe/Berlin", "+49151"),
    ("London, England, United Kingdom", "Europe/London", "+447"),
    ("Madrid, Spain", "Europe/Madrid", "+346"),
    ("New York, New York, United States", "America/New_York", "+1212"),
    ("San Francisco, California, United States", "America/Los_Angeles", "+1415"),
    ("Montreal, Quebec, Canada", "America/Toronto", "+1514"),
)
_STATES = (
    ("scanned", 0.45),
    ("contacted", 0.25),
    ("imported", 0.08),
    ("reviewed", 0.06),
    ("interested", 0.06),
    ("notInterested", 0.05),
    ("emailsBounced", 0.03),
    ("paused", 0.02),
)
_LEAD_STATUSES = ("running", "running", "running", "paused", "done", "review")
_ICEBREAKERS = (
    "Loved your recent post about scaling outbound.",
    "Congrats on the new funding round!",
    "Saw you are hiring SDRs, exciting times.",
    "Your talk at SaaStr was great.",
)


def kind_counts(total: int) -> dict[LeadKind, int]:
    """Split `total` leads over the kinds by `KIND_SHARES` (largest remainder).

    With at least as many leads as kinds, every kind gets at least one lead.

    Args:
        total: number of leads.

    Returns:
        Count per kind, summing to `total`.
    """
    raw = {kind: share * total for kind, share in KIND_SHARES.items()}
    counts = {kind: int(value) for kind, value in raw.items()}
    leftover = total - sum(counts.values())
    by_remainder = sorted(raw, key=lambda kind: raw[kind] - counts[kind], reverse=True)
    for kind in by_remainder[:leftover]:
        counts[kind] += 1
    if total >= len(KIND_SHARES):
        for kind in KIND_SHARES:
            if counts[kind] == 0:
                donor = max(counts, key=lambda k: counts[k])
                counts[donor] -= 1
                counts[kind] = 1
    return counts


def _ascii_slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _phone(rng: random.Random, prefix: str) -> str:
    digits = 11 - (len(prefix) - 1)
    return prefix + "".join(rng.choices(string.digits, k=max(digits, 7)))


def _weighted_state(rng: random.Random) -> str:
    states = [state for state, _ in _STATES]
    weights = [weight for _, weight in _STATES]
    return rng.choices(states, weights=weights, k=1)[0]


def _linkedin_profile(
    rng: random.Random,
    *,
    url: str,
    first: str,
    last: str,
    company: tuple[str, str, str],
    job_title: str,
    location: str,
) -> dict[str, Any]:
    """Build a small profile with the fields of lemlist's `linkedin_enrichment` sample."""
    name, domain, industry = company
    previous = rng.choice([c for c in _COMPANIES if c[0] != name])
    start_year = rng.randint(2015, 2023)
    company_url = f"https://www.linkedin.com/company/{_ascii_slug(name)}"
    return {
        "linkedinUrl": url,
        "firstName": first,
        "lastName": last,
        "companyName": name,
        "companyDomain": domain,
        "companyLinkedinUrl": company_url,
        "companyIndustry": industry,
        "occupation": f"{job_title} at {name}",
        "industry": industry,
        "locationName": location,
        "positionGroups": [
            {
                "company": {
                    "name": name,
                    "domain": domain,
                    "linkedinUrl": company_url,
                    "industry": industry,
                },
                "date": {"start": {"month": rng.randint(1, 12), "year": start_year}, "end": {}},
                "profilePositions": [{"title": job_title, "companyName": name}],
            },
            {
                "company": {
                    "name": previous[0],
                    "domain": previous[1],
                    "linkedinUrl": f"https://www.linkedin.com/company/{_ascii_slug(previous[0])}",
                    "industry": previous[2],
                },
                "date": {
                    "start": {"month": rng.randint(1, 12), "year": start_year - 3},
                    "end": {"month": rng.randint(1, 12), "year": start_year},
                },
                "profilePositions": [
                    {"title": rng.choice(_JOB_TITLES), "companyName": previous[0]}
                ],
            },
        ],
    }


@dataclass
class _LeadFacts:
    """The kind-dependent data of a lead being drawn (visible and hidden)."""

    has_linkedin: bool
    company_name: str | None
    company_domain: str | None
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    true_email: str | None = None
    true_status: str | None = None
    true_phone: str | None = None


def _verified_facts(rng: random.Random, facts: _LeadFacts, address: str, prefix: str) -> None:
    facts.email = facts.true_email = address
    facts.email_status = facts.true_status = rng.choices(
        ["deliverable", "risky", "undeliverable"], weights=[70, 20, 10], k=1
    )[0]
    if rng.random() < 0.3:
        facts.phone = facts.true_phone = _phone(rng, prefix)
    elif facts.has_linkedin and rng.random() < 0.5:
        facts.true_phone = _phone(rng, prefix)


def _unverified_facts(rng: random.Random, facts: _LeadFacts, address: str) -> None:
    facts.email = facts.true_email = address
    facts.true_status = rng.choices(
        ["deliverable", "risky", "undeliverable"], weights=[60, 25, 15], k=1
    )[0]


def _findable_facts(rng: random.Random, facts: _LeadFacts, address: str, prefix: str) -> None:
    facts.true_email = address
    facts.true_status = rng.choices(["deliverable", "risky"], weights=[80, 20], k=1)[0]
    if facts.has_linkedin and rng.random() < 0.5:
        facts.true_phone = _phone(rng, prefix)


def _not_findable_facts(rng: random.Random, facts: _LeadFacts) -> None:
    facts.has_linkedin = False
    facts.company_domain = None
    if rng.random() < 0.5:
        facts.company_name = None


def _draw_kind_facts(
    rng: random.Random, kind: LeadKind, facts: _LeadFacts, address: str, prefix: str
) -> None:
    """Draw what a lead of this kind knows and hides (RNG draws in a fixed order)."""
    if kind is LeadKind.EMAIL_VERIFIED:
        _verified_facts(rng, facts, address, prefix)
    elif kind is LeadKind.EMAIL_UNVERIFIED:
        _unverified_facts(rng, facts, address)
    elif kind in (LeadKind.FINDABLE, LeadKind.IN_PROGRESS):
        _findable_facts(rng, facts, address, prefix)
    elif kind is LeadKind.NOT_FINDABLE:
        _not_findable_facts(rng, facts)
    elif kind is LeadKind.MISSING_CONTACT:
        facts.email = address if rng.random() < 0.5 else None
    # RECENTLY_NOT_FOUND: the inputs look fine, but lemlist already searched and found nothing


def _make_lead(rng: random.Random, kind: LeadKind, used_ids: set[str]) -> SandboxLead:
    """Draw one lead of the given kind."""
    lead_id = make_id(rng, "lea")
    while lead_id in used_ids:
        lead_id = make_id(rng, "lea")
    used_ids.add(lead_id)
    first = rng.choice(_FIRST_NAMES)
    last = rng.choice(_LAST_NAMES)
    company = rng.choice(_COMPANIES)
    location, timezone, phone_prefix = rng.choice(_LOCATIONS)
    job_title = rng.choice(_JOB_TITLES)
    slug = f"{_ascii_slug(first)}-{_ascii_slug(last)}-{''.join(rng.choices(ID_ALPHABET, k=4))}"
    url = f"https://www.linkedin.com/in/{slug.lower()}"
    address = f"{_ascii_slug(first)}.{_ascii_slug(last)}@{company[1]}"
    picture = f"https://img.sandbox.lemlist.invalid/{slug}.png" if rng.random() < 0.5 else None

    facts = _LeadFacts(
        has_linkedin=rng.random() < 0.6, company_name=company[0], company_domain=company[1]
    )
    _draw_kind_facts(rng, kind, facts, address, phone_prefix)
    has_linkedin = facts.has_linkedin

    linkedin_url = url if has_linkedin else None
    profile = None
    if linkedin_url is not None:
        profile = _linkedin_profile(
            rng,
            url=linkedin_url,
            first=first,
            last=last,
            company=company,
            job_title=job_title,
            location=location,
        )
    return SandboxLead(
        lead_id=lead_id,
        contact_id=make_id(rng, "ctc"),
        kind=kind,
        first_name=first,
        last_name=last,
        company_name=facts.company_name,
        company_domain=facts.company_domain,
        job_title=job_title,
        linkedin_url=linkedin_url,
        email=facts.email,
        email_status=facts.email_status,
        phone=facts.phone,
        last_state=_weighted_state(rng),
        status="scanning" if kind is LeadKind.IN_PROGRESS else rng.choice(_LEAD_STATUSES),
        timezone=timezone,
        picture=picture,
        icebreaker=rng.choice(_ICEBREAKERS) if rng.random() < 0.3 else "",
        true_email=facts.true_email,
        true_email_status=facts.true_status,
        true_phone=facts.true_phone,
        linkedin_profile=profile,
    )


def seed_campaign(leads: int, seed: int) -> SeededCampaign:
    """Build the deterministic campaign of a sandbox.

    Args:
        leads: number of leads.
        seed: RNG seed; the same (leads, seed) always gives the same campaign.

    Returns:
        The `SeededCampaign`, with 3 foreign lead ids.
    """
    rng = random.Random(f"lemlist-sandbox-data-{seed}")
    campaign_id = make_id(rng, "cam")
    kinds = [kind for kind, count in kind_counts(leads).items() for _ in range(count)]
    rng.shuffle(kinds)
    used: set[str] = set()
    seeded = tuple(_make_lead(rng, kind, used) for kind in kinds)
    foreign: list[str] = []
    while len(foreign) < 3:
        candidate = make_id(rng, "lea")
        if candidate not in used:
            used.add(candidate)
            foreign.append(candidate)
    return SeededCampaign(
        campaign_id=campaign_id,
        name=f"Sandbox outbound (seed {seed})",
        leads=seeded,
        foreign_lead_ids=tuple(foreign),
    )
