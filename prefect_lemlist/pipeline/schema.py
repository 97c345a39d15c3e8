"""The output schema: the fixed columns of every export file and database table.

`ResultRow` is the one definition (docs/schema.md documents it; a test keeps the two equal).
Every run of every door writes the same fixed columns whatever workflows it asked (a workflow
not asked leaves its columns empty), then the input's own columns: an input column whose name
(camelCase contact names read as snake_case) is a fixed column is carried as `input_<name>`,
so a result never hides an input and an input never hides a result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from prefect_lemlist.api.models import CONTACT_FIELDS

ColumnKind = Literal["text", "integer", "number", "timestamp", "json"]
"""How a column is typed in a database table (files hold text)."""

INPUT_PREFIX = "input_"
_CAMEL_TO_SNAKE = {camel: snake for snake, camel in CONTACT_FIELDS.items()}
_CAMEL_TO_SNAKE.update({"leadId": "lead_id", "emailStatus": "email_status"})


class ResultRow(BaseModel):
    """One row of a run's results: the fixed columns, in export order.

    Attributes:
        status: what happened to the row (see docs/schema.md for every value).
        email: the email lemlist found or verified, else the one the lead or row already had.
        email_status: its deliverability (`deliverable`, `risky`, `undeliverable`).
        phone: the phone number found.
        linkedin_url, linkedin_headline, linkedin_company: the LinkedIn profile found.
        email_domain_matches: whether the email's domain is the row's company domain (empty
            without an email or a company domain): a found email on another domain is a
            known false positive of email finders.
        find_email_status, verify_status, linkedin_status, find_phone_status: each
            workflow's own result (`found`, `not_found`, `not_run`, `unknown`); empty when the
            workflow was not asked.
        error: why the row failed, was refused, or is not final.
        note: anything else worth knowing (e.g. the result comes from an earlier run).
        lead_id: the lemlist lead (every lead door, including leads found by email).
        person_key: the person's key (people door): the same person gives the same key.
        campaign_id: the lead's campaign, when known.
        enrichment_id: lemlist's enrichment (`enr_…`), when one was started.
        enriched_at: when lemlist's result was collected (UTC).
        credits_charged: credits this result costs by lemlist's published prices (empty when
            not final).
        workflows: the workflows asked, `+`-joined (part of the merge key).
        record_key: the row's merge key in a database table: the `key` column's value when
            one is given, else `lead_id` / `person_key`, else a digest of the row's inputs.
        input_line: the row's line in the input file (CSV: the header is line 1), or its
            position in a list or query result.
        run_at: when the run started (UTC).
        raw_result: lemlist's result body as JSON.
    """

    status: str
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    linkedin_url: str | None = None
    linkedin_headline: str | None = None
    linkedin_company: str | None = None
    email_domain_matches: bool | None = None
    find_email_status: str | None = None
    verify_status: str | None = None
    linkedin_status: str | None = None
    find_phone_status: str | None = None
    error: str | None = None
    note: str | None = None
    lead_id: str | None = None
    person_key: str | None = None
    campaign_id: str | None = None
    enrichment_id: str | None = None
    enriched_at: datetime | None = None
    credits_charged: float | None = None
    workflows: str
    record_key: str
    input_line: int
    run_at: datetime
    raw_result: dict[str, Any] | None = Field(default=None)


RESULT_COLUMNS: tuple[str, ...] = tuple(ResultRow.model_fields)
"""The fixed columns, in export order."""
KEY_COLUMNS: tuple[str, ...] = ("record_key", "workflows")
"""The merge key of a database table."""
PROTECTED_COLUMNS: tuple[str, ...] = tuple(
    name
    for name in RESULT_COLUMNS
    if name not in ("error", "note", "workflows", "record_key", "input_line", "run_at")
)
"""Columns a later non-`done` row never overwrites in a table where the row was `done`."""
STATUS_COLUMNS: tuple[str, ...] = (
    "find_email_status",
    "verify_status",
    "linkedin_status",
    "find_phone_status",
)


_COLUMN_KINDS: dict[str, ColumnKind] = {
    "enriched_at": "timestamp",
    "run_at": "timestamp",
    "credits_charged": "number",
    "input_line": "integer",
    "raw_result": "json",
}


def column_kind(name: str) -> ColumnKind:
    """The database type of a column: fixed columns by their type, input columns text."""
    return _COLUMN_KINDS.get(name, "text")


def input_column_names(columns: Iterable[str]) -> dict[str, str]:
    """Input column -> its name in the results (one rule for every door).

    lemlist's camelCase contact names are read as snake_case (`linkedinUrl` -> `linkedin_url`)
    unless the input also has the snake_case column; a name that is a fixed column is then
    prefixed `input_`. Names are never repeated: a second column mapping to a taken name keeps
    its own name under the prefix.

    Example:
        >>> input_column_names(["email", "linkedinUrl", "crm_id"])
        {'email': 'input_email', 'linkedinUrl': 'input_linkedin_url', 'crm_id': 'crm_id'}
    """
    columns = list(columns)
    present = set(columns)
    names: dict[str, str] = {}
    taken = set(RESULT_COLUMNS)
    for column in columns:
        snake = snake_case_name(column)
        if snake != column and snake in present:
            snake = column
        name = f"{INPUT_PREFIX}{snake}" if snake in RESULT_COLUMNS else snake
        if name in taken:
            name = f"{INPUT_PREFIX}{column}"
        taken.add(name)
        names[column] = name
    return names


def snake_case_name(column: str) -> str:
    """A column's snake_case name when it is one of lemlist's camelCase contact names
    (`linkedinUrl` -> `linkedin_url`), else the name itself."""
    return _CAMEL_TO_SNAKE.get(column, column)


def input_digest(values: Mapping[str, Any]) -> str:
    """A stable key for a row that has no lead or person: a digest of its input values."""
    text = json.dumps({str(k): _plain(v) for k, v in values.items()}, sort_keys=True)
    return "input:" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


_WWW = re.compile(r"^(?:https?://)?(?:www\.)?")


def email_domain_matches(email: str | None, company_domain: str | None) -> bool | None:
    """Whether an email belongs to a company's domain (or one of its subdomains).

    Returns:
        None when either is missing or the email has no domain.

    Example:
        >>> email_domain_matches("ada@mail.acme.io", "https://www.acme.io/")
        True
    """
    if not email or not company_domain or "@" not in email:
        return None
    domain = _WWW.sub("", company_domain.strip().lower()).split("/")[0]
    found = email.rsplit("@", 1)[1].strip().lower()
    if not domain or not found:
        return None
    return found == domain or found.endswith("." + domain)


__all__ = [
    "INPUT_PREFIX",
    "KEY_COLUMNS",
    "PROTECTED_COLUMNS",
    "RESULT_COLUMNS",
    "STATUS_COLUMNS",
    "ColumnKind",
    "ResultRow",
    "column_kind",
    "email_domain_matches",
    "input_column_names",
    "input_digest",
    "snake_case_name",
]
