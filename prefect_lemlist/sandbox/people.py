"""Seeded people (CRM-like rows, not lemlist leads) and their hidden, hash-derived truth.

A *person* is identified inside the sandbox by `person_key`: a stable string of its normalised
identity inputs. Everything lemlist would find about a person (`person_truth`) is derived from
that key and the sandbox seed only, so the same person gets the same outcome whichever route
enriches it (`POST /enrich`, `POST /v2/enrichments/bulk` or a lead of a people campaign).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prefect_lemlist.sandbox.data import (
    _COMPANIES,
    _FIRST_NAMES,
    _JOB_TITLES,
    _LAST_NAMES,
    _LOCATIONS,
    ID_ALPHABET,
)
from prefect_lemlist.sandbox.workflows import WORKFLOWS

PEOPLE_COLUMNS: tuple[str, ...] = (
    "person_id",
    "first_name",
    "last_name",
    "company_name",
    "company_domain",
    "linkedin_url",
    "email",
    "job_title",
    "owner",
)
"""Keys of a people row, in file order (CSV header)."""

ROW_TO_INPUT: dict[str, str] = {
    "email": "email",
    "linkedin_url": "linkedinUrl",
    "first_name": "firstName",
    "last_name": "lastName",
    "company_name": "companyName",
    "company_domain": "companyDomain",
    "job_title": "jobTitle",
}
"""People-row column → lemlist input key."""

INPUT_KEYS: tuple[str, ...] = (
    "email",
    "linkedinUrl",
    "firstName",
    "lastName",
    "companyName",
    "companyDomain",
    "jobTitle",
)
"""The lemlist input keys of `POST /enrich` and bulk items, in a fixed order."""

IDENTITY_KEYS: tuple[str, ...] = tuple(key for key in INPUT_KEYS if key != "jobTitle")
"""Input keys that make a person's identity (`jobTitle` is only a hint)."""

LOWERCASED_KEYS = frozenset({"email", "companyDomain", "linkedinUrl"})
"""Input keys compared case-insensitively (lower-cased by `normalize_inputs`)."""

REQUIRED_INPUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "find_email": (("linkedinUrl",), ("firstName", "lastName", "companyName", "companyDomain")),
    "find_phone": (("linkedinUrl",),),
    "verify": (("email",),),
    "linkedin_enrichment": (
        ("linkedinUrl",),
        ("email",),
        ("firstName", "lastName", "companyName"),
        ("firstName", "lastName", "companyDomain"),
    ),
}
"""Required inputs per workflow (API notes 7.2): any one group, every key of the group present.

The sandbox's own copy; the client package keeps its own.
"""

MISSING_INPUT_CODES: dict[str, str] = {
    "find_email": "MISSING_INPUTS",
    "verify": "MISSING_EMAIL",
    "linkedin_enrichment": "MISSING_INPUTS",
    "find_phone": "MISSING_LINKEDIN_URL",
}
"""Per-item bulk error code when a workflow lacks its required inputs."""

LINKEDIN_PREFIX = "https://www.linkedin.com/in/"
"""Prefix of a well-formed LinkedIn profile URL (after normalisation)."""

_OWNERS = ("alice.sales", "bruno.sdr", "camille.ae", "david.growth", "emma.bizdev", "")
_PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.fr", "proton.me")


# ------------------------------------------------------------------------------- inputs


def normalize_inputs(inputs: Mapping[str, str | None]) -> dict[str, str]:
    """Normalise lemlist inputs the way the sandbox compares people.

    Strips surrounding whitespace, drops empty values, lower-cases `email`, `companyDomain` and
    `linkedinUrl`, and drops a trailing `/` of `linkedinUrl`. Unknown keys are dropped. The
    snake_case columns of a people row (`first_name`...) are accepted too, so a row can be
    passed directly.

    Args:
        inputs: camelCase lemlist inputs (`email`, `linkedinUrl`, `firstName`, `lastName`,
            `companyName`, `companyDomain`, `jobTitle`) or a people row.

    Returns:
        The kept inputs, camelCase, in `INPUT_KEYS` order.
    """
    collected: dict[str, str] = {}
    for raw_key, raw_value in inputs.items():
        key = ROW_TO_INPUT.get(raw_key, raw_key)
        if key not in INPUT_KEYS or raw_value is None or not isinstance(raw_value, str):
            continue
        value = raw_value.strip()
        if key in LOWERCASED_KEYS:
            value = value.lower()
        if key == "linkedinUrl":
            value = value.rstrip("/")
        if value:
            collected[key] = value
    return {key: collected[key] for key in INPUT_KEYS if key in collected}


def person_key(inputs: Mapping[str, str | None]) -> str:
    """The stable identity of a person: its normalised identity inputs (all but `jobTitle`).

    Args:
        inputs: lemlist inputs or a people row (see `normalize_inputs`).

    Returns:
        A compact JSON object string with sorted keys, e.g.
        `{"companyDomain":"acme.io","firstName":"Ada",...}`.
    """
    normalized = normalize_inputs(inputs)
    identity = {key: normalized[key] for key in IDENTITY_KEYS if key in normalized}
    return json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_inputs(row: Mapping[str, str]) -> dict[str, str]:
    """The lemlist inputs of a people row (camelCase, values as written, empty ones dropped).

    Args:
        row: a people row (`generate_people` shape).

    Returns:
        camelCase inputs, un-normalised (send them as a client would).
    """
    return {
        ROW_TO_INPUT[column]: value
        for column, value in row.items()
        if column in ROW_TO_INPUT and isinstance(value, str) and value.strip()
    }


def inputs_allow(workflow: str, inputs: Mapping[str, str | None]) -> bool:
    """Whether the inputs satisfy a workflow's required inputs (`REQUIRED_INPUTS`).

    Args:
        workflow: `find_email`, `find_phone`, `verify` or `linkedin_enrichment`.
        inputs: lemlist inputs (normalised here).

    Returns:
        True when one of the workflow's input groups is complete.
    """
    normalized = normalize_inputs(inputs)
    groups = REQUIRED_INPUTS.get(workflow, ())
    return any(all(key in normalized for key in group) for group in groups)


def missing_input_error(workflows: Iterable[str], inputs: Mapping[str, str | None]) -> str | None:
    """The bulk per-item error code of the first requested workflow lacking its inputs.

    Workflows are checked in the order `find_email`, `verify`, `linkedin_enrichment`,
    `find_phone`, whatever the request order.

    Args:
        workflows: the requested workflow names.
        inputs: lemlist inputs.

    Returns:
        `MISSING_INPUTS`, `MISSING_EMAIL`, `MISSING_LINKEDIN_URL`, or None when all are fine.
    """
    wanted = set(workflows)
    for workflow in WORKFLOWS:
        if workflow in wanted and not inputs_allow(workflow, inputs):
            return MISSING_INPUT_CODES[workflow]
    return None


def valid_linkedin_url(url: str | None) -> bool:
    """Whether a (normalised) linkedinUrl is a well-formed profile URL.

    Args:
        url: the value, if any.

    Returns:
        True for `https://www.linkedin.com/in/<slug>` (or `http://`, or without `www.`).
    """
    if not url:
        return False
    lowered = url.strip().lower()
    for prefix in (LINKEDIN_PREFIX, "http://www.linkedin.com/in/", "https://linkedin.com/in/"):
        if lowered.startswith(prefix) and len(lowered) > len(prefix):
            return True
    return False


def valid_email(email: str | None) -> bool:
    """Whether an email looks like an address (`local@domain.tld`)."""
    if not email or email.count("@") != 1:
        return False
    local, _, domain = email.partition("@")
    return bool(local) and "." in domain and not domain.startswith(".")


# ------------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class PersonTruth:
    """What lemlist "knows" about one person, derived only from its key and the seed.

    Attributes:
        key: the `person_key` it was derived from.
        email: what `find_email` finds (None: not found, or the inputs do not allow it).
        email_status: deliverability of the found email (None when not found).
        verify_status: what `verify` says about an email given as input (None without one).
        phone: what `find_phone` finds (None: not found; needs a valid linkedinUrl).
        linkedin_profile: what `linkedin_enrichment` returns (None: not found). Do not mutate.
    """

    key: str
    email: str | None
    email_status: str | None
    verify_status: str | None
    phone: str | None
    linkedin_profile: dict[str, Any] | None = field(default=None, hash=False)

    def status_of(self, email: str | None) -> str | None:
        """The verification status of an email of this person.

        Args:
            email: the email to verify.

        Returns:
            `email_status` for the found email, else `verify_status` (None without email).
        """
        if not email:
            return None
        if self.email is not None and email.strip().lower() == self.email:
            return self.email_status
        if not valid_email(email):
            return "undeliverable"
        return self.verify_status or "risky"


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _profile(rng: random.Random, inputs: Mapping[str, str], digest: str) -> dict[str, Any]:
    """A LinkedIn profile shaped like section 5.5 of the API notes (trimmed)."""
    first = inputs.get("firstName") or rng.choice(_FIRST_NAMES)
    last = inputs.get("lastName") or rng.choice(_LAST_NAMES)
    company = rng.choice(_COMPANIES)
    for known in _COMPANIES:
        if inputs.get("companyDomain") == known[1] or inputs.get("companyName") == known[0]:
            company = known
    company_name = inputs.get("companyName") or company[0]
    company_domain = inputs.get("companyDomain") or company[1]
    industry = company[2]
    url = inputs.get("linkedinUrl")
    if not valid_linkedin_url(url):
        url = f"{LINKEDIN_PREFIX}{_slug(first)}-{_slug(last)}-{digest[:6]}"
    title = inputs.get("jobTitle") or rng.choice(_JOB_TITLES)
    location = rng.choice(_LOCATIONS)[0]
    company_url = f"https://www.linkedin.com/company/{_slug(company_name)}"
    start_year = rng.randint(2014, 2024)
    return {
        "linkedinUrl": url,
        "linkedinMemberId": int(digest[:8], 16),
        "linkedinClassicId": "ACoAA" + digest[8:20].upper(),
        "firstName": first,
        "lastName": last,
        "picture": f"https://img.sandbox.lemlist.invalid/{digest[:12]}.png",
        "locationName": location,
        "tagline": f"{title} at {company_name}",
        "industry": industry,
        "summary": f"{first} works on {industry.lower()} at {company_name}.",
        "languages": "English, French",
        "skills": "Sales, Negotiation, CRM",
        "occupation": f"{title} at {company_name}",
        "companyName": company_name,
        "companyLinkedinUrl": company_url,
        "companyDomain": company_domain,
        "companyId": int(digest[20:26], 16),
        "companyWebsite": f"https://{company_domain}",
        "companyIndustry": industry,
        "companySize": rng.choice(["2-10", "11-50", "51-200", "201-500", "501-1000"]),
        "positionGroups": [
            {
                "company": {
                    "name": company_name,
                    "domain": company_domain,
                    "linkedinUrl": company_url,
                    "industry": industry,
                },
                "date": {"start": {"month": rng.randint(1, 12), "year": start_year}, "end": {}},
                "profilePositions": [{"title": title, "companyName": company_name}],
            }
        ],
    }


def person_truth(inputs: Mapping[str, str | None], seed: int = 1) -> PersonTruth:
    """Derive the hidden truth of a person from `person_key(inputs)` and the seed only.

    Shares (approximate): `find_email` finds ~70% of the people whose inputs allow it (a valid
    linkedinUrl, or first + last name + company name + domain); `find_phone` finds ~40% of
    those with a valid linkedinUrl; `linkedin_enrichment` finds ~80% of those whose inputs
    allow it. A malformed linkedinUrl (not `https://www.linkedin.com/in/...`) finds nothing
    through LinkedIn; a malformed input email verifies `undeliverable`.

    Args:
        inputs: lemlist inputs or a people row (normalised here; `jobTitle` is ignored for the
            identity but used as a hint in the profile).
        seed: the sandbox seed.

    Returns:
        The `PersonTruth`; equal inputs (after normalisation) give an equal truth.
    """
    normalized = normalize_inputs(inputs)
    key = person_key(normalized)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    rng = random.Random(digest)
    # Draw every value in a fixed order, whatever the inputs, so outcomes are independent.
    draw_email, draw_phone, draw_profile = rng.random(), rng.random(), rng.random()
    found_status = rng.choices(["deliverable", "risky", "undeliverable"], [75, 17, 8])[0]
    given_status = rng.choices(["deliverable", "risky", "undeliverable"], [60, 25, 15])[0]
    fallback_domain = rng.choice(_COMPANIES)[1]
    phone_prefix = rng.choice(_LOCATIONS)[2]
    phone_digits = "".join(rng.choices(string.digits, k=max(11 - (len(phone_prefix) - 1), 7)))
    first, last = normalized.get("firstName"), normalized.get("lastName")
    domain = normalized.get("companyDomain")
    linkedin_ok = valid_linkedin_url(normalized.get("linkedinUrl"))
    names_ok = all(normalized.get(k) for k in ("firstName", "lastName", "companyName"))
    can_find_email = linkedin_ok or (names_ok and bool(domain))

    email: str | None = None
    email_status: str | None = None
    if can_find_email and draw_email < 0.70:
        if first and last and (domain or linkedin_ok):
            local = f"{_slug(first)}.{_slug(last)}" or "contact"
        else:
            handle = (normalized.get("linkedinUrl") or "").rsplit("/", 1)[-1]
            local = _slug(handle.split("-")[0]) or "contact"
        email = f"{local}@{domain or fallback_domain}"
        email_status = found_status
    given = normalized.get("email")
    verify_status = None
    if given:
        verify_status = given_status if valid_email(given) else "undeliverable"
    phone = phone_prefix + phone_digits if linkedin_ok and draw_phone < 0.40 else None
    profile = None
    profile_inputs_ok = linkedin_ok or (
        not normalized.get("linkedinUrl") and inputs_allow("linkedin_enrichment", normalized)
    )
    if profile_inputs_ok and draw_profile < 0.80:
        profile = _profile(random.Random(digest + ":profile"), normalized, digest)
    return PersonTruth(
        key=key,
        email=email,
        email_status=email_status,
        verify_status=verify_status,
        phone=phone,
        linkedin_profile=profile,
    )


# ------------------------------------------------------------------------------- people


def _base_person(rng: random.Random, person_id: str) -> dict[str, str]:
    """One fresh person with a random mix of inputs (see `generate_people`)."""
    first = rng.choice(_FIRST_NAMES)
    last = rng.choice(_LAST_NAMES)
    company = rng.choice(_COMPANIES)
    tag = "".join(rng.choices(ID_ALPHABET, k=4)).lower()
    has_linkedin = rng.random() < 0.45
    has_company = rng.random() < 0.60
    has_email = rng.random() < 0.25
    partial_company = rng.random() < 0.5
    personal = rng.random() < 0.3
    email_domain = rng.choice(_PERSONAL_DOMAINS) if personal or not has_company else company[1]
    row = {column: "" for column in PEOPLE_COLUMNS}
    row.update(
        person_id=person_id,
        first_name=first,
        last_name=last,
        job_title=rng.choice(_JOB_TITLES) if rng.random() < 0.7 else "",
        owner=rng.choice(_OWNERS),
    )
    if has_company:
        row.update(company_name=company[0], company_domain=company[1])
    elif partial_company:
        row["company_name"] = company[0]  # a company but no domain: not enough for find_email
    if has_linkedin:
        row["linkedin_url"] = f"{LINKEDIN_PREFIX}{_slug(first)}-{_slug(last)}-{tag}"
    if has_email:
        row["email"] = f"{_slug(first)}.{_slug(last)}{tag[:2]}@{email_domain}"
    return row


def _malform(rng: random.Random, row: dict[str, str]) -> None:
    """Give a row one malformed value: an email without `@` or a non-URL linkedinUrl."""
    slug = f"{_slug(row['first_name'])}{_slug(row['last_name'])}"
    if row["email"] or (not row["linkedin_url"] and rng.random() < 0.5):
        row["email"] = f"{slug}.{rng.choice(_PERSONAL_DOMAINS)}"  # no "@"
    else:
        row["linkedin_url"] = f"linkedin/{_slug(row['first_name'])}"


def _near_duplicate(
    rng: random.Random, source: Mapping[str, str], person_id: str
) -> dict[str, str]:
    """A copy of `source` differing only by case / surrounding whitespace of its inputs."""
    row = dict(source)
    row["person_id"] = person_id
    changed = False
    for column in ("email", "company_domain", "linkedin_url"):
        if row[column] and rng.random() < 0.7:
            row[column] = row[column].upper() if rng.random() < 0.5 else row[column].title()
            changed = True
    for column in ("first_name", "last_name", "company_name"):
        if row[column] and (rng.random() < 0.4 or not changed):
            row[column] = rng.choice([" ", "  ", "\t"]) + row[column] + rng.choice(["", " "])
            changed = True
    return row


def generate_people(n: int, seed: int = 1) -> list[dict[str, str]]:
    """Generate `n` deterministic people rows, as a CRM export would hold them.

    Each row has the keys of `PEOPLE_COLUMNS`; missing values are empty strings. Approximate
    shares: ~45% have a linkedin_url, ~60% name + company + domain, ~25% an email; some have
    only a name. Exact counts (rounded): 2% malformed values (an email without `@`, or a
    linkedin_url like `linkedin/john`), 3% exact duplicates of an earlier row (same
    person_id too, like a row exported twice), 2% near-duplicates of an earlier well-formed row
    differing only by case / surrounding whitespace (a new person_id; the same `person_key`).

    Args:
        n: number of rows (>= 0).
        seed: RNG seed; the same (n, seed) always gives the same rows.

    Returns:
        The rows, in order.

    Raises:
        ValueError: when `n` is negative.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"lemlist-sandbox-people-rows-{seed}")
    n_dup, n_near, n_bad = round(n * 0.03), round(n * 0.02), round(n * 0.02)
    kinds = ["dup"] * n_dup + ["near"] * n_near + ["bad"] * n_bad
    kinds += ["base"] * (n - len(kinds))
    rng.shuffle(kinds)
    if kinds and kinds[0] != "base" and "base" in kinds:  # the first row is a fresh person
        first_base = kinds.index("base")
        kinds[0], kinds[first_base] = kinds[first_base], kinds[0]
    rows: list[dict[str, str]] = []
    clean: list[int] = []  # indexes of fresh, well-formed rows (sources of duplicates)
    seen: set[str] = set()
    counter = 0
    for kind in kinds:
        if kind in ("dup", "near") and clean:
            source = rows[rng.choice(clean)]
            if kind == "dup":
                rows.append(dict(source))
                continue
            counter += 1
            rows.append(_near_duplicate(rng, source, f"p{counter:06d}"))
            continue
        counter += 1
        row = _base_person(rng, f"p{counter:06d}")
        for _ in range(50):  # two different fresh people never share an identity
            if person_key(row) not in seen:
                break
            row = _base_person(rng, f"p{counter:06d}")
        seen.add(person_key(row))
        if kind == "bad":
            _malform(rng, row)
        else:
            clean.append(len(rows))
        rows.append(row)
    return rows


PeopleFormat = Literal["csv", "jsonl"]
"""File formats of `write_people_file`."""


def write_people_file(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, str]],
    format: PeopleFormat = "csv",
) -> Path:
    """Write people rows to a CSV (header = `PEOPLE_COLUMNS`) or JSON Lines file.

    Args:
        path: where to write (parent directories are created).
        rows: rows shaped like `generate_people`'s.
        format: `csv` or `jsonl`.

    Returns:
        The written path.

    Raises:
        ValueError: for an unknown format.
    """
    if format not in ("csv", "jsonl"):
        raise ValueError(f"unknown people file format {format!r}; use 'csv' or 'jsonl'")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as handle:
        if format == "csv":
            writer = csv.DictWriter(handle, fieldnames=PEOPLE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({column: row.get(column, "") for column in PEOPLE_COLUMNS})
        else:
            for row in rows:
                record = {column: row.get(column, "") for column in PEOPLE_COLUMNS}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return target


__all__ = [
    "IDENTITY_KEYS",
    "INPUT_KEYS",
    "MISSING_INPUT_CODES",
    "PEOPLE_COLUMNS",
    "REQUIRED_INPUTS",
    "WORKFLOWS",
    "PersonTruth",
    "generate_people",
    "inputs_allow",
    "missing_input_error",
    "normalize_inputs",
    "person_key",
    "person_truth",
    "row_inputs",
    "valid_email",
    "valid_linkedin_url",
    "write_people_file",
]
