"""Writing a run's rows: CSV, JSON Lines and (optionally) Parquet, plus the rejected inputs.

Every input row is written exactly once, in input order: its input columns (a column whose name
is also a result column is carried as `input_<name>`), then `enrichment_id`, `status`, the
requested workflows' result columns, `error` and `note`. Files are written to a temporary file
and renamed into place, so a crash never leaves half an export; default names never overwrite
an earlier export.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.inputs import cell
from prefect_lemlist.pipeline.outcomes import Outcome, result_columns
from prefect_lemlist.pipeline.worklist import Worklist

OUTCOME_COLUMNS = ("enrichment_id", "status")
TRAILING_COLUMNS = ("error", "note")


class ExportError(ValueError):
    """An export cannot be written (e.g. Parquet without pyarrow)."""


def export_columns(worklist: Worklist, flags: EnrichmentFlags) -> list[str]:
    """The export's columns, in order."""
    results = [*OUTCOME_COLUMNS, *result_columns(flags), *TRAILING_COLUMNS]
    taken = set(results)
    return [f"input_{c}" if c in taken else c for c in worklist.columns] + results


def table_columns(columns: list[str]) -> list[str]:
    """The columns of the results table a person reads (the Prefect UI's artifact): `status`,
    then the found values and the workflows' statuses, then the rest in export order (the input
    columns, `enrichment_id`, `error`, `note`). The export files keep `export_columns`' order."""
    if "status" not in columns:
        return columns
    after = columns[columns.index("status") + 1 :]
    found = [column for column in after if column not in TRAILING_COLUMNS]
    first = ["status", *found]
    return first + [column for column in columns if column not in first]


def export_rows(
    worklist: Worklist, outcomes: Mapping[str, Outcome], flags: EnrichmentFlags
) -> Iterator[dict[str, str | None]]:
    """One dict per input row (values are text or None), in input order.

    Args:
        worklist: the run's rows.
        outcomes: item key -> its outcome (every item of the worklist).
        flags: the requested workflows (the result columns).
    """
    columns = export_columns(worklist, flags)
    context_names = columns[: len(worklist.columns)]
    first = worklist.first_rows()
    for row in worklist.rows:
        outcome = outcomes.get(row.key) if row.key is not None else None
        if outcome is None:
            status = row.status or "failed"
            error = row.reason or ("no result was recorded (bug)" if row.key else None)
            outcome = Outcome(status=status, error=error)  # type: ignore[arg-type]
        if row.note:
            outcome = outcome.with_note(row.note)
        if row.key is not None and first.get(row.key, row.line) != row.line:
            outcome = outcome.with_note(f"same as line {first[row.key]}: enriched once")
        values: dict[str, str | None] = {
            name: (cell(row.context.get(source)) or None)
            for name, source in zip(context_names, worklist.columns, strict=True)
        }
        values.update(_outcome_values(outcome, flags))
        yield values


def row_statuses(worklist: Worklist, outcomes: Mapping[str, Outcome]) -> Iterator[str]:
    """The status of every row, in order (what `export_rows` writes in `status`)."""
    for row in worklist.rows:
        outcome = outcomes.get(row.key) if row.key is not None else None
        yield outcome.status if outcome is not None else (row.status or "failed")


def _outcome_values(outcome: Outcome, flags: EnrichmentFlags) -> dict[str, str | None]:
    data = outcome.model_dump()
    values = {name: data.get(name) for name in (*OUTCOME_COLUMNS, *TRAILING_COLUMNS)}
    status_columns = {spec.status_column for spec in flags.specs}
    for column in result_columns(flags):
        values[column] = (
            outcome.workflows.get(column) if column in status_columns else data.get(column)
        )
    return values


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
    """`<stem>.rejected.csv`: line, value and reason of every rejected row (None when none)."""
    rejected = worklist.rejected
    if not rejected:
        return None
    path = stem.with_name(f"{stem.name}.rejected.csv")
    stem.parent.mkdir(parents=True, exist_ok=True)

    def write(handle: IO[str]) -> None:
        writer = csv.writer(handle)
        writer.writerow(["line", "value", "reason"])
        for item in rejected:
            writer.writerow([item.line, item.value, item.reason])

    _atomic_write(path, write)
    return path


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})

    _atomic_write(path, write)


def _write_jsonl(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        for row in rows:
            handle.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")

    _atomic_write(path, write)


def _write_parquet(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    materialized = list(rows)
    table = pa.table(
        {c: pa.array([row.get(c) for row in materialized], type=pa.string()) for c in columns}
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
