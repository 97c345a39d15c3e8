"""Choosing which leads to enrich: a campaign export, a list of ids or emails, or a file.

Nothing is dropped silently: every input row is enriched, shares the result of an earlier row for
the same lead, or is reported with its line number and the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from pathlib import Path

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.models import CampaignLead, Contact, EnrichmentFlags, LeadByEmail
from prefect_lemlist.api.validation import LeadId
from prefect_lemlist.pipeline.input_rules import looks_like_lead_ids
from prefect_lemlist.pipeline.inputs import Table
from prefect_lemlist.pipeline.worklist import Row, Source, Worklist

LEAD_ID_COLUMNS = ("lead_id", "_id", "leadId", "id")
NAMED_LEAD_ID_COLUMNS = ("lead_id", "leadId")
"""Columns that say they hold lead ids; `_id` and `id` (a CRM's own ids, often) are read as
lead ids only when their values look like ones, or when there is no email column."""
EMAIL_COLUMNS = ("email", "Email", "emailAddress")
CAMPAIGN_COLUMNS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "company_name": "company_name",
    "company_domain": "company_domain",
    "job_title": "job_title",
    "email": "email",
    "email_status": "email_status",
    "phone": "phone",
    "linkedin_url": "linkedin_url",
}
"""Campaign export fields carried into the export (column -> `CampaignLead` attribute; the
lead id and campaign id are fixed columns of the results)."""
_EMAIL_LOOKUPS_AT_ONCE = 20


def needs_enrichment(lead: CampaignLead, flags: EnrichmentFlags) -> bool:
    """True when at least one requested workflow still has something to do for this lead.

    find_email: no email yet; verify_email: an email without a deliverability status;
    find_phone: no phone yet; linkedin_enrichment: always (the export does not tell whether the
    profile was enriched before; lemlist skips it for free if so).
    """
    return (
        (flags.find_email and not lead.email)
        or (flags.verify_email and bool(lead.email) and not lead.email_status)
        or (flags.find_phone and not lead.phone)
        or flags.linkedin_enrichment
    )


def campaign_worklist(
    campaign_id: str,
    state: str,
    leads: Iterable[CampaignLead],
    flags: EnrichmentFlags,
    *,
    force: bool = False,
    started_before: Collection[str] = frozenset(),
    only: Collection[str] | None = None,
) -> Worklist:
    """The campaign leads that need the requested enrichment (all of them with `force`).

    Leads in `started_before` (an earlier run started or answered them) are kept even when the
    export now shows the data, so a resumed run reports them instead of losing them. Malformed or
    duplicate ids in the export are rejected with their position.

    Args:
        campaign_id: the campaign.
        state: the state filter the export used (for the report).
        leads: the export's rows.
        flags: the requested workflows.
        force: keep every lead.
        started_before: lead ids an earlier run already worked on.
        only: when given, keep only these lead ids (a trial on chosen leads).
    """
    leads = list(leads)
    source = Source(
        f"campaign {campaign_id} (state={state}, {len(leads)} leads)", campaign_id, "campaign"
    )
    worklist = Worklist(source, list(CAMPAIGN_COLUMNS))
    wanted = set(only) if only is not None else None
    seen: set[str] = set()
    exported = {lead.lead_id for lead in leads}
    for position, lead in enumerate(leads, start=1):
        if wanted is not None and lead.lead_id not in wanted:
            continue
        context = {column: getattr(lead, attr) for column, attr in CAMPAIGN_COLUMNS.items()}
        row = Row(position, context, value=lead.lead_id)
        row.lead = {"key": lead.lead_id, "email": lead.email, "email_status": lead.email_status}
        reason = _id_problem(lead.lead_id)
        if reason or lead.lead_id in seen:
            row.status, row.reason = "rejected", reason or "duplicate lead id in the export"
            worklist.add(row)
            continue
        seen.add(lead.lead_id)
        if force or lead.lead_id in started_before or needs_enrichment(lead, flags):
            row.key = LeadId(lead.lead_id)
            worklist.add(row)
        else:
            worklist.not_needed += 1
    for position, lead_id in enumerate(only or (), start=1):
        if lead_id not in exported:  # a chosen lead the export does not have: say so
            reason = f"not a lead of campaign {campaign_id} with state={state}"
            row = Row(position, {}, status="rejected", reason=reason, value=lead_id)
            row.lead = {"key": lead_id}
            worklist.add(row)
    return worklist


def lead_ids_worklist(values: Iterable[object], source: Source | None = None) -> Worklist:
    """Lead ids given from Python: bad ones are rejected by position, repeats share a result."""
    values = list(values)
    worklist = Worklist(source or Source(f"{len(values)} lead ids", "leads"), ["lead_id"])
    for position, value in enumerate(values, start=1):
        text = value.strip() if isinstance(value, str) else value
        worklist.add(_id_row(position, {"lead_id": value}, text))
    return worklist


def emails_worklist(values: Iterable[object]) -> Worklist:
    """Emails given from Python: each is looked up in lemlist (`resolve_emails`) before the run."""
    values = list(values)
    worklist = Worklist(Source(f"{len(values)} emails", "emails"), ["email"])
    for position, value in enumerate(values, start=1):
        worklist.add(_email_row(position, {"email": value}, value))
    return worklist


def lead_file_worklist(table: Table, path: str | Path, id_column: str | None = None) -> Worklist:
    """The rows of a lead file (see `lead_table_worklist`)."""
    path = Path(path)
    return lead_table_worklist(table, Source(f"file {path}", path.stem), id_column)


def lead_table_worklist(table: Table, source: Source, id_column: str | None = None) -> Worklist:
    """The rows of a lead file or query: by its lead id column or, when it has none, by its `email`
    column (each email looked up in lemlist); every other column is carried into the export.

    A column is read as lemlist lead ids when `id_column` names it, when it is `lead_id` or
    `leadId`, or when it is `_id` or `id` and its values look like lead ids (`lea_…`) or there
    is no email column: a CRM's own `id` column never hides the `email` column.

    Args:
        table: the rows.
        source: where they come from (a file, a query).
        id_column: the column of lead ids, when the user names it.

    Raises:
        ValueError: `id_column` is not a column; or the rows have neither lead ids nor an
            email column.
    """
    id_column = _lead_id_column(table, source, id_column)
    email_column = next((c for c in EMAIL_COLUMNS if c in table.columns), None)
    if id_column is None and email_column is None:
        found = ", ".join(table.columns[:10]) or "nothing"
        raise ValueError(
            f"{source.label} has no lead id column (lead_id, or _id / id holding lea_… values; "
            f"or name it with --id-column) and no email column; found {found}"
        )
    worklist = Worklist(source, list(table.columns))
    for raw in table.rows:
        if raw.error is not None:
            worklist.add(Row(raw.line, raw.values, status="rejected", reason=raw.error))
        elif id_column is not None:
            worklist.add(
                _id_row(raw.line, raw.values, str(raw.values.get(id_column) or "").strip())
            )
        else:
            assert email_column is not None  # no id column: there is an email one (checked above)
            worklist.add(_email_row(raw.line, raw.values, raw.values.get(email_column)))
    return worklist


def _lead_id_column(table: Table, source: Source, named: str | None) -> str | None:
    """The column of lead ids: the one named, else a known name whose values look like ids."""
    if named is not None:
        if named not in table.columns:
            found = ", ".join(table.columns[:10]) or "nothing"
            raise ValueError(f"{source.label} has no column {named!r}; found {found}")
        return named
    has_email = any(c in table.columns for c in EMAIL_COLUMNS)
    for column in LEAD_ID_COLUMNS:
        if column not in table.columns:
            continue
        values = (row.values.get(column) for row in table.rows)
        if column in NAMED_LEAD_ID_COLUMNS or not has_email or looks_like_lead_ids(values):
            return column
    return None


def _id_row(line: int, context: dict, value: object) -> Row:
    row = Row(line, context, value=str(value)[:80])
    reason = _id_problem(value)
    if reason:
        row.status, row.reason = "rejected", reason
    else:
        row.key = LeadId(value)
    return row


def _email_row(line: int, context: dict, value: object) -> Row:
    text = str(value).strip() if value is not None else ""
    row = Row(line, context, value=text)
    if not text:
        row.status, row.reason = "rejected", "missing lead id and email"
        return row
    try:
        Contact(email=text)
    except ValueError:
        row.status, row.reason = "rejected", f"email {text[:80]!r} is not an email address"
        return row
    row.status = "lookup"  # resolved by `resolve_emails`
    return row


async def resolve_emails(worklist: Worklist, client: LemlistClient) -> int:
    """Find the lead of every row given by email: one `GET /leads/{email}` per distinct email.

    An email that is a lead in several campaigns is enriched once through its most recently
    updated lead (lemlist enriches the contact, which all its leads share); the row's note lists
    the others. An email lemlist does not know is reported `not_in_lemlist` and costs nothing.

    Returns:
        How many emails were looked up.
    """
    pending = [row for row in worklist.rows if row.status == "lookup"]
    emails = sorted({row.value.casefold() for row in pending})
    semaphore = asyncio.Semaphore(_EMAIL_LOOKUPS_AT_ONCE)

    async def look_up(email: str) -> tuple[str, list[LeadByEmail]]:
        async with semaphore:
            return email, await client.get_leads_by_email(email)

    found = dict(await asyncio.gather(*(look_up(email) for email in emails)))
    for row in pending:
        _apply_lookup(worklist, row, found[row.value.casefold()])
    return len(emails)


def _apply_lookup(worklist: Worklist, row: Row, leads: list[LeadByEmail]) -> None:
    if not leads:
        row.status, row.reason = "not_in_lemlist", f"no lemlist lead has the email {row.value}"
        return
    ordered = sorted(leads, key=lambda lead: lead.updated_at or "", reverse=True)
    chosen = ordered[0]
    row.status, row.key = None, chosen.lead_id
    row.lead = {
        "campaign_id": chosen.campaign_id,
        "email": chosen.email or row.value,
        "email_status": chosen.email_status,
    }
    note = f"lead {chosen.lead_id} found by email"
    if len(ordered) > 1:
        others = ", ".join(lead.lead_id for lead in ordered[1:5])
        note += f" (most recently updated of {len(ordered)}; also {others})"
    row.note = note
    if chosen.lead_id not in worklist.items:
        worklist.items[chosen.lead_id] = chosen.lead_id


def _id_problem(value: object) -> str | None:
    if value is None or value == "":
        return "missing lead id"
    try:
        LeadId(value)
    except ValueError as exc:
        return str(exc)
    return None
