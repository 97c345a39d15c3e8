"""Writing a run's rows: CSV, JSON Lines and (optionally) Parquet, plus the rejected inputs.

Every input row is written exactly once, in input order, in the schema of
`prefect_lemlist.pipeline.schema` (docs/schema.md): the fixed columns, the input's own columns
(renamed by `input_column_names`), and `raw_result` last. Files are written to a temporary file
and renamed into place, so a crash never leaves half an export; default names never overwrite
an earlier export.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.input_rules import known_values
from prefect_lemlist.pipeline.inputs import cell
from prefect_lemlist.pipeline.outcomes import Outcome, credits_by_price
from prefect_lemlist.pipeline.schema import (
    RESULT_COLUMNS,
    STATUS_COLUMNS,
    email_domain_matches,
    input_column_names,
    input_digest,
)
from prefect_lemlist.pipeline.worklist import Row, Worklist

TRAILING_COLUMNS = ("raw_result",)
_FOUND = ("email", "email_status", "phone", "linkedin_url", "linkedin_headline", "linkedin_company")
_DOMAIN_COLUMNS = ("company_domain", "companyDomain")
_EXPORT_MODE = 0o644  # like any file a person writes (mkstemp's default is 0600)


class ExportError(ValueError):
    """An export cannot be written (e.g. Parquet without pyarrow)."""


@dataclass(frozen=True)
class ExportContext:
    """What every row of one run's results shares.

    Attributes:
        flags: the requested workflows.
        people: True for the people door (items are people, not leads).
        run_at: when the run started (UTC).
        key_column: an input column whose value is the rows' merge key (`record_key`).
    """

    flags: EnrichmentFlags
    people: bool = False
    run_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    key_column: str | None = None

    @property
    def workflows(self) -> str:
        """The requested workflows, `+`-joined."""
        return "+".join(w.value for w in self.flags.workflows)


def export_columns(worklist: Worklist) -> list[str]:
    """The export's columns, in order: the fixed ones, the input's, then `raw_result`."""
    fixed = [c for c in RESULT_COLUMNS if c not in TRAILING_COLUMNS]
    return fixed + list(input_column_names(worklist.columns).values()) + list(TRAILING_COLUMNS)


def table_columns(columns: list[str]) -> list[str]:
    """The columns of the results table a person reads (the Prefect UI's artifact): the
    export's order (status and the found values first) without the raw result."""
    return [column for column in columns if column not in TRAILING_COLUMNS]


def export_rows(
    worklist: Worklist, outcomes: Mapping[str, Outcome], context: ExportContext
) -> Iterator[dict[str, Any]]:
    """One dict per input row, in input order, in the output schema (typed values: datetimes,
    numbers, booleans, the raw result as a dict; None when empty).

    Args:
        worklist: the run's rows.
        outcomes: item key -> its outcome (every item of the worklist).
        context: what the rows share (workflows, door, run time, merge key column).
    """
    names = input_column_names(worklist.columns)
    columns = export_columns(worklist)
    first = worklist.first_rows()
    for row in worklist.rows:
        outcome = _row_outcome(row, outcomes, first)
        values = _result_values(row, outcome, worklist, context)
        values.update({names[c]: _input_value(row.context.get(c)) for c in worklist.columns})
        yield {column: values.get(column) for column in columns}


def text_row(values: Mapping[str, Any]) -> dict[str, str | None]:
    """A row as text (files, artifacts): None stays None, the rest through `cell`."""
    return {name: (None if value is None else cell(value)) for name, value in values.items()}


def row_statuses(worklist: Worklist, outcomes: Mapping[str, Outcome]) -> Iterator[str]:
    """The status of every row, in order (what `export_rows` writes in `status`)."""
    for row in worklist.rows:
        outcome = outcomes.get(row.key) if row.key is not None else None
        yield outcome.status if outcome is not None else (row.status or "failed")


def _row_outcome(row: Row, outcomes: Mapping[str, Outcome], first: dict[str, int]) -> Outcome:
    outcome = outcomes.get(row.key) if row.key is not None else None
    if outcome is None:
        status = row.status or "failed"
        error = row.reason or ("no result was recorded (bug)" if row.key else None)
        outcome = Outcome(status=status, error=error)  # type: ignore[arg-type]
    if row.note:
        outcome = outcome.with_note(row.note)
    if row.key is not None and first.get(row.key, row.line) != row.line:
        outcome = outcome.with_note(f"same as line {first[row.key]}: enriched once")
    return outcome


def _result_values(
    row: Row, outcome: Outcome, worklist: Worklist, context: ExportContext
) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(outcome, name) for name in _FOUND}
    known = known_values(row)
    if not values["email"] and known.get("email"):  # what the lead or row already had
        values["email"] = known["email"]
        values["email_status"] = values["email_status"] or known.get("email_status")
    requested = {spec.status_column for spec in context.flags.specs}
    values.update({c: outcome.workflows.get(c) for c in STATUS_COLUMNS if c in requested})
    values["email_domain_matches"] = email_domain_matches(values["email"], _domain(row))
    item = row.key or row.lead.get("key")
    values.update(
        status=outcome.status,
        error=outcome.error,
        note=outcome.note,
        lead_id=None if context.people else item,
        person_key=item if context.people else None,
        campaign_id=row.lead.get("campaign_id") or worklist.source.campaign_id,
        enrichment_id=outcome.enrichment_id,
        enriched_at=outcome.enriched_at,
        credits_charged=credits_by_price(outcome, context.flags),
        workflows=context.workflows,
        record_key=_record_key(row, context),
        input_line=row.line,
        run_at=context.run_at,
        raw_result=json.loads(outcome.raw) if outcome.raw else None,
    )
    return values


def _record_key(row: Row, context: ExportContext) -> str:
    if context.key_column is not None:
        value = row.context.get(context.key_column)
        if value not in (None, ""):
            return cell(value)
    item = row.key or row.lead.get("key")
    return str(item) if item else input_digest(row.context)


def _domain(row: Row) -> str | None:
    for name in _DOMAIN_COLUMNS:
        value = row.context.get(name) or row.lead.get(name)
        if value:
            return str(value)
    return None


def _input_value(value: Any) -> str | None:
    return cell(value) or None


def output_stem(output_dir: str | Path, name: str | None, default_name: str) -> Path:
    """The export's path without extension: `name`, or `<default_name>-<UTC timestamp>` made
    unique (`-2`, `-3`, …) so that a default name never overwrites an earlier export."""
    directory = Path(output_dir).expanduser().resolve()
    if name:
        return directory / name
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = directory / f"{default_name}-{stamp}"
    candidate, n = stem, 1
    while any(candidate.parent.glob(f"{candidate.name}.*")):  # any format, or .rejected.csv
        n += 1
        candidate = stem.with_name(f"{stem.name}-{n}")
    return candidate


def write_exports(
    rows: Iterable[dict[str, str | None]],
    columns: list[str],
    stem: Path,
    formats: Iterable[str],
) -> dict[str, Path]:
    """Write the rows in every requested format, atomically.

    Returns:
        format -> absolute path.

    Raises:
        ExportError: Parquet was asked for without pyarrow installed.
        OSError: the directory cannot be created or written.
    """
    formats = list(dict.fromkeys(formats))
    if "parquet" in formats:
        _require_pyarrow()
    stem.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows) if len(formats) > 1 else rows
    written: dict[str, Path] = {}
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        _WRITERS[fmt](path, columns, rows)
        written[fmt] = path
    return written


def write_rejected(worklist: Worklist, stem: Path) -> Path | None:
    """`<stem>.rejected.csv`: the line, the reason and the row's own columns (its keys) of
    every rejected row (None when none)."""
    rows = [row for row in worklist.rows if row.status == "rejected"]
    if not rows:
        return None
    path = stem.with_name(f"{stem.name}.rejected.csv")
    stem.parent.mkdir(parents=True, exist_ok=True)
    names = input_column_names(worklist.columns)
    columns = ["line", "reason", *names.values()]

    def write(handle: IO[str]) -> None:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            inputs = [cell(row.context.get(c)) for c in names]
            writer.writerow([row.line, row.reason or "", *inputs])

    _atomic_write(path, write)
    return path


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else cell(v) for k, v in row.items()})

    _atomic_write(path, write)


def _write_jsonl(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        for row in rows:
            record = {c: _json_value(row.get(c)) for c in columns}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    _atomic_write(path, write)


def _write_parquet(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    materialized = list(rows)
    table = pa.table(
        {
            c: pa.array([_parquet_text(row.get(c)) for row in materialized], type=pa.string())
            for c in columns
        }
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, _EXPORT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _parquet_text(value: Any) -> str | None:
    return None if value is None else cell(value)


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ExportError(
            "Parquet output needs pyarrow: pip install 'prefect-lemlist[parquet]'"
        ) from None


_WRITERS: dict[str, Callable[[Path, list[str], Iterable[dict[str, Any]]], None]] = {
    "csv": _write_csv,
    "jsonl": _write_jsonl,
    "parquet": _write_parquet,
}


def _atomic_write(path: Path, writer: Callable[[IO[str]], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer(handle)
        os.chmod(tmp, _EXPORT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
