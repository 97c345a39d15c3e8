"""Choosing which leads to enrich: from a campaign export, an explicit list or a CSV file.

Nothing is dropped silently: every input row is either selected or reported as a
`RejectedInput` with its line number and the reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from prefect_lemlist.models import CampaignLead, EnrichmentFlags
from prefect_lemlist.validation import validate_id

LEAD_ID_COLUMNS = ("lead_id", "_id", "leadId", "id")


class RejectedInput(BaseModel):
    """An input row that was not enriched, and why.

    Attributes:
        line: 1-based line number in the CSV file (header is line 1), or the 1-based position in
            an explicit list.
        value: the raw value (shortened), for the report.
        reason: why it was skipped.
    """

    line: int
    value: str
    reason: str


class LeadSelection(BaseModel):
    """The outcome of selection: the lead ids to enrich and the inputs that were rejected."""

    lead_ids: list[str]
    rejected: list[RejectedInput] = []
    not_needed: int = 0


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


def select_campaign_leads(
    leads: Iterable[CampaignLead],
    flags: EnrichmentFlags,
    *,
    force: bool = False,
    already_started: set[str] | frozenset[str] = frozenset(),
) -> LeadSelection:
    """Keep the campaign leads that need the requested enrichment (all of them with `force`).

    Leads in `already_started` (an earlier run started their enrichment) are kept even when the
    export now shows the data, so a resumed run reports them again instead of losing them.
    Duplicate or malformed ids in the export are rejected with their position.
    """
    selected: list[str] = []
    rejected: list[RejectedInput] = []
    seen: set[str] = set()
    not_needed = 0
    for position, lead in enumerate(leads, start=1):
        reason = _id_problem(lead.lead_id, seen)
        if reason:
            rejected.append(RejectedInput(line=position, value=lead.lead_id[:80], reason=reason))
            continue
        seen.add(lead.lead_id)
        if force or lead.lead_id in already_started or needs_enrichment(lead, flags):
            selected.append(lead.lead_id)
        else:
            not_needed += 1
    return LeadSelection(lead_ids=selected, rejected=rejected, not_needed=not_needed)


def select_lead_ids(values: Iterable[object]) -> LeadSelection:
    """Validate an explicit list of lead ids; bad and duplicate ones are rejected by position."""
    selected: list[str] = []
    rejected: list[RejectedInput] = []
    seen: set[str] = set()
    for position, value in enumerate(values, start=1):
        text = value.strip() if isinstance(value, str) else value
        reason = _id_problem(text, seen)
        if reason:
            rejected.append(RejectedInput(line=position, value=str(value)[:80], reason=reason))
            continue
        seen.add(text)  # type: ignore[arg-type]
        selected.append(text)  # type: ignore[arg-type]
    return LeadSelection(lead_ids=selected, rejected=rejected)


def read_lead_ids_csv(path: str | Path) -> LeadSelection:
    """Read lead ids from a CSV file with a `lead_id` (or `_id`, `leadId`, `id`) column.

    Args:
        path: the CSV file (UTF-8, a header row first).

    Returns:
        The valid, de-duplicated ids in file order, and every other row with its line number.

    Raises:
        ValueError: the file cannot be read, is not UTF-8 text, or has no lead id column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"CSV file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"CSV path is a directory, not a file: {path}") from None
    except PermissionError:
        raise ValueError(f"CSV file is not readable (permission denied): {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"CSV file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise ValueError(f"CSV file cannot be read: {path} ({exc.strerror})") from None
    # newline="" keeps line breaks inside quoted fields, and only \r/\n end a line.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"CSV file is empty: {path}") from None
    except csv.Error as exc:
        raise ValueError(f"CSV file is not valid CSV: {path} ({exc})") from None
    names = [h.strip() for h in header]
    column = next((names.index(c) for c in LEAD_ID_COLUMNS if c in names), None)
    if column is None:
        raise ValueError(
            f"CSV file {path} has no lead id column: expected one of {', '.join(LEAD_ID_COLUMNS)}"
            f" in the header, found {', '.join(names[:10]) or 'nothing'}"
        )
    selected: list[str] = []
    rejected: list[RejectedInput] = []
    seen: set[str] = set()
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line += 1
            rejected.append(RejectedInput(line=line, value="", reason=f"unreadable row: {exc}"))
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not data
        value = row[column].strip() if column < len(row) else ""
        reason = _id_problem(value, seen)
        if reason:
            rejected.append(RejectedInput(line=line, value=value[:80], reason=reason))
            continue
        seen.add(value)
        selected.append(value)
    return LeadSelection(lead_ids=selected, rejected=rejected)


def _id_problem(value: object, seen: set[str]) -> str | None:
    if value is None or value == "":
        return "missing lead id"
    try:
        validate_id(value, "lead id")
    except ValueError as exc:
        return str(exc)
    if value in seen:
        return "duplicate lead id"
    return None
