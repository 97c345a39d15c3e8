"""Reading input files (CSV or JSON Lines) into rows with their line numbers.

Both front doors read files through here: lead ids / emails for the lead flows, people for the
contacts flow. A file that cannot be read at all is a `ValueError` with one clear sentence; a
row that cannot be read is returned as such, with its line, and never stops the others.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RawRow:
    """One input row.

    Attributes:
        line: 1-based line number in the file (CSV: the header is line 1), or the 1-based
            position in a list given from Python.
        values: column -> value (strings for CSV; JSON values for JSON Lines).
        error: why the row could not be read (then `values` is empty).
    """

    line: int
    values: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Table:
    """A read input: its columns (in file order) and its rows."""

    columns: list[str]
    rows: list[RawRow]


def read_table(path: str | Path) -> Table:
    """Read a CSV (`.csv`, or anything else) or JSON Lines (`.jsonl`, `.ndjson`) file.

    Args:
        path: the file (UTF-8; CSV with a header row).

    Returns:
        The columns and the rows; blank lines are skipped.

    Raises:
        ValueError: the file is missing, unreadable, not UTF-8, empty or has no header.
    """
    path = Path(path)
    text = _read_text(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _jsonl(text, path)
    return _csv(text, path)


def read_sql(source: Any, query: str, *, chunk_size: int = 1000) -> Table:
    """The rows of a SQL query, streamed from the database in chunks (never fetched whole).

    Args:
        source: a SQLAlchemy URL, the name of a saved `SqlAlchemyConnector` block, or the block.
        query: a `select …` whose columns are the input columns.
        chunk_size: rows fetched per round trip.

    Returns:
        The columns and rows (numbered from 1 in result order; values other than text, numbers
        and booleans as text).

    Raises:
        DatabaseTargetError: the database cannot be reached or the query fails.
    """
    from prefect_lemlist.sql import read_query, resolve_engine  # SQLAlchemy only when asked

    engine = resolve_engine(source)
    try:
        with read_query(engine, query, chunk_size=chunk_size) as result:
            rows = [
                RawRow(position, {name: _sql_value(value) for name, value in record.items()})
                for position, record in enumerate(result, start=1)
            ]
            return Table(list(result.columns), rows)
    finally:
        engine.dispose()


def _sql_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def table_from_records(records: list[dict[str, Any]]) -> Table:
    """Rows given from Python (a list of dicts), numbered from 1."""
    columns: dict[str, None] = {}
    rows = []
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            rows.append(RawRow(position, {}, f"not a mapping ({type(record).__name__})"))
            continue
        columns.update(dict.fromkeys(map(str, record)))
        rows.append(RawRow(position, {str(k): v for k, v in record.items()}))
    return Table(list(columns), rows)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"input path is a directory, not a file: {path}") from None
    except PermissionError:
        raise ValueError(f"input file is not readable (permission denied): {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"input file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise ValueError(f"input file cannot be read: {path} ({exc.strerror})") from None


def _csv(text: str, path: Path) -> Table:
    # newline="" keeps line breaks inside quoted fields, and only \r/\n end a line.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"input file is empty: {path}") from None
    except csv.Error as exc:
        raise ValueError(f"input file is not valid CSV: {path} ({exc})") from None
    columns = [name.strip() for name in header]
    if not any(columns):
        raise ValueError(f"input file has no header row: {path}")
    return Table(columns, list(_csv_rows(reader, columns)))


def _csv_rows(reader: Any, columns: list[str]) -> Iterator[RawRow]:
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line += 1
            yield RawRow(line, {}, f"unreadable row: {exc}")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not data
        values: dict[str, str] = {}
        for index, name in enumerate(columns):  # a repeated column name: the first one counts
            if name and name not in values:
                values[name] = row[index] if index < len(row) else ""
        yield RawRow(line, values)


def _jsonl(text: str, path: Path) -> Table:
    columns: dict[str, None] = {}
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:  # a JSONDecodeError, or e.g. an integer too long to convert
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            rows.append(RawRow(line, {}, f"not valid JSON ({reason})"))
            continue
        if not isinstance(record, dict):
            rows.append(RawRow(line, {}, f"not a JSON object ({type(record).__name__})"))
            continue
        columns.update(dict.fromkeys(map(str, record)))
        rows.append(RawRow(line, {str(k): v for k, v in record.items()}))
    if not rows:
        raise ValueError(f"input file is empty: {path}")
    return Table(list(columns), rows)


def cell(value: Any) -> str:
    """A value as export text (None and blanks as empty)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
