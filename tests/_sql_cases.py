"""The `prefect_lemlist.sql` checks every database must pass, shared by the SQLite and DuckDB
tests (tests/unit/test_sql_tables.py) and the PostgreSQL ones (tests/sandbox/test_sql_postgres.py).

Each function takes a connected engine and a fresh table name, and asserts on what the database
holds afterwards (read back with plain SQL, not through the code under test).
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from prefect_lemlist.sql import ColumnSpec, read_query, upsert_rows

COLUMNS = [
    ColumnSpec("lead_id"),
    ColumnSpec("email"),
    ColumnSpec("status"),
    ColumnSpec("found_email"),
    ColumnSpec("credits", "integer"),
    ColumnSpec("score", "number"),
    ColumnSpec("run_at", "timestamp"),
    ColumnSpec("raw", "json"),
]
PROTECTED = ["status", "found_email", "credits", "raw"]
RUN_1 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
RUN_2 = datetime(2025, 3, 2, 12, 0, tzinfo=timezone.utc)


def stored(engine: sa.Engine, table: str, order: str = "lead_id") -> list[dict[str, object]]:
    """Every row of the table, as dicts, in key order."""
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}"))
        return [dict(row._mapping) for row in result]


def upsert(engine: sa.Engine, table: str, rows: list[dict[str, object]], **options: object):
    """`upsert_rows` with this module's columns, key and protected columns."""
    options.setdefault("columns", COLUMNS)
    options.setdefault("key", ["lead_id"])
    options.setdefault("protected", PROTECTED)
    return upsert_rows(engine, table, rows, **options)


def found(lead: str, email: str = "ada@acme.com", run_at: datetime = RUN_1) -> dict[str, object]:
    """A result row whose email was found."""
    return {
        "lead_id": lead,
        "email": None,
        "status": "done",
        "found_email": email,
        "credits": 5,
        "score": 0.9,
        "run_at": run_at,
        "raw": {"email": {"email": email}},
    }


def not_found(lead: str, run_at: datetime = RUN_2, email: str | None = None) -> dict[str, object]:
    """A result row whose enrichment found nothing."""
    return {
        "lead_id": lead,
        "email": email,
        "status": "not_found",
        "found_email": None,
        "credits": 0,
        "run_at": run_at,
        "raw": {"email": {"notFound": True}},
    }


def check_create_and_upsert_twice(engine: sa.Engine, table: str) -> None:
    """A new table; the same rows twice: same row count, the second time all updates."""
    rows = [found(f"l{i}", f"p{i}@acme.com") for i in range(5)]
    first = upsert(engine, table, rows)
    assert (first.inserted, first.updated, first.batches) == (5, 0, 1)
    changed = [{**row, "score": 0.1, "run_at": RUN_2} for row in rows]
    second = upsert(engine, table, changed)
    assert (second.inserted, second.updated) == (0, 5)
    after = stored(engine, table)
    assert len(after) == 5
    assert {row["score"] for row in after} == {0.1}
    assert [row["found_email"] for row in after] == [f"p{i}@acme.com" for i in range(5)]


def check_protection(engine: sa.Engine, table: str) -> None:
    """done then not_found keeps the found values (but takes the input columns and run_at);
    not_found then done replaces; overwrite=True replaces even a found row."""
    upsert(engine, table, [found("kept"), not_found("replaced", run_at=RUN_1)])
    result = upsert(
        engine,
        table,
        [not_found("kept", email="typed@input.com"), found("replaced", "new@acme.com", RUN_2)],
    )
    assert (result.inserted, result.updated) == (0, 2)
    kept, replaced = stored(engine, table)
    assert kept["status"] == "done" and kept["found_email"] == "ada@acme.com"
    assert kept["credits"] == 5
    assert kept["email"] == "typed@input.com"  # not protected: the input column follows the run
    assert _utc(kept["run_at"]) == RUN_2
    assert replaced["status"] == "done" and replaced["found_email"] == "new@acme.com"
    upsert(engine, table, [not_found("kept")], overwrite=True)
    kept, _ = stored(engine, table)
    assert kept["status"] == "not_found" and kept["found_email"] is None and kept["credits"] == 0


def check_null_statuses(engine: sa.Engine, table: str) -> None:
    """A NULL stored status is replaced; a NULL incoming status over done keeps done."""
    upsert(engine, table, [{"lead_id": "a", "status": None}, found("b")])
    upsert(engine, table, [found("a"), {"lead_id": "b", "status": None, "found_email": None}])
    a, b = stored(engine, table)
    assert a["status"] == "done" and a["found_email"] == "ada@acme.com"
    assert b["status"] == "done" and b["found_email"] == "ada@acme.com"


def check_added_column(engine: sa.Engine, table: str) -> None:
    """A later run with a new input column adds it; a column left out is left alone."""
    upsert(engine, table, [found("a")])
    more = [*COLUMNS[:3], ColumnSpec("company"), ColumnSpec("seats", "integer")]
    result = upsert(
        engine,
        table,
        [{"lead_id": "a", "status": "done", "company": "Acme", "seats": 12}],
        columns=more,
        protected=["status"],
    )
    assert (result.inserted, result.updated) == (0, 1)
    (row,) = stored(engine, table)
    assert row["company"] == "Acme" and row["seats"] == 12
    assert row["found_email"] == "ada@acme.com"  # not in this run's columns: untouched


def check_read_rows(engine: sa.Engine, table: str, count: int = 100) -> None:
    """The reader returns every row with its columns, in chunks smaller than the result."""
    upsert(engine, table, [found(f"l{i:04d}", f"p{i}@acme.com") for i in range(count)])
    query = f"SELECT lead_id, found_email, credits FROM {table} ORDER BY lead_id"
    with read_query(engine, query, chunk_size=7) as rows:
        assert rows.columns == ["lead_id", "found_email", "credits"]
        got = list(rows)
    assert rows.closed
    assert len(got) == count
    assert got[0] == {"lead_id": "l0000", "found_email": "p0@acme.com", "credits": 5}
    assert got[-1]["lead_id"] == f"l{count - 1:04d}"


def _utc(value: object) -> datetime:
    """A stored timestamp as an aware UTC datetime (drivers differ in what they return)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
