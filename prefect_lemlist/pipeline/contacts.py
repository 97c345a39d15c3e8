"""The people of the contacts front door: rows of a file (or dicts from Python) as `Contact`s.

Column names are accepted in lemlist's camelCase and in snake_case. A row is rejected, with the
reason, when a value is malformed or when it lacks the inputs one of the requested workflows
needs (lemlist would answer `MISSING_INPUTS` / `MISSING_EMAIL` / `MISSING_LINKEDIN_URL`). Rows
describing the same person (same inputs once normalised) share one enrichment.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prefect_lemlist.api.models import CONTACT_FIELDS, Contact, EnrichmentFlags
from prefect_lemlist.pipeline.input_rules import missing_column_hint
from prefect_lemlist.pipeline.inputs import RawRow, Table, table_from_records
from prefect_lemlist.pipeline.worklist import Row, Source, Worklist

_ACCEPTED = {name for pair in CONTACT_FIELDS.items() for name in pair}


def contact_records(contacts: Iterable[Contact | dict[str, Any]]) -> Table:
    """Rows given from Python: `Contact`s or dicts (numbered from 1)."""
    records = [c.model_dump(exclude_none=True) if isinstance(c, Contact) else c for c in contacts]
    return table_from_records(records)


def contacts_worklist(
    table: Table, flags: EnrichmentFlags, source: Source | None = None
) -> Worklist:
    """Turn input rows into people to enrich.

    Args:
        table: the rows (from `read_table` or `contact_records`).
        flags: the requested workflows (decide which inputs a row needs).
        source: where the rows come from.

    Returns:
        The worklist: one row per input row; one item per distinct person.

    Raises:
        ValueError: no column the contacts flow can use.
    """
    if table.columns and not _ACCEPTED.intersection(table.columns):
        names = ", ".join(sorted(CONTACT_FIELDS))
        raise ValueError(
            f"the input has none of the columns {names} (or their camelCase forms); "
            f"found {', '.join(table.columns[:10])}"
        )
    worklist = Worklist(source or Source("contacts", "contacts"), list(table.columns))
    for raw in table.rows:
        row, contact = _contact_row(raw, flags)
        worklist.add(row, contact)
    hint = missing_column_hint(table.columns, flags)
    if hint and any(row.status == "rejected" for row in worklist.rows):
        worklist.hints.append(hint)
    return worklist


def file_source(path: str | Path) -> Source:
    """The `Source` of an input file."""
    path = Path(path)
    return Source(f"file {path}", path.stem)


def _contact_row(raw: RawRow, flags: EnrichmentFlags) -> tuple[Row, Contact | None]:
    row = Row(raw.line, raw.values, value=_shown(raw.values))
    if raw.error is not None:
        row.status, row.reason = "rejected", raw.error
        return row, None
    try:
        contact = Contact.model_validate(_usable(raw.values))
    except ValidationError as exc:
        row.status, row.reason = "rejected", _first_error(exc)
        return row, None
    missing = contact.missing_inputs(flags.workflows)
    if missing is not None:
        row.status = "rejected"
        row.reason = f"{missing.option} needs {missing.describe_inputs()} ({missing.missing_code})"
        return row, None
    row.key = contact.fingerprint(flags)
    return row, contact


def _usable(values: dict[str, Any]) -> dict[str, Any]:
    """The contact fields of a row (other columns are only carried through)."""
    return {
        name: value
        for name, value in values.items()
        if name in _ACCEPTED and not isinstance(value, (dict, list))
    }


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return message


def _shown(values: dict[str, Any]) -> str:
    """A short identification of a row for the rejection report."""
    for name in ("email", "linkedin_url", "linkedinUrl", "last_name", "lastName"):
        value = values.get(name)
        if value:
            return str(value)[:80]
    return ""
