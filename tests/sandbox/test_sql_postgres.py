"""`prefect_lemlist.sql` on a real PostgreSQL (the session's throw-away cluster, `postgres_url`):
the same merge, protection, added-column and read checks as SQLite and DuckDB, a server-side
cursor for the reader, a schema-qualified table, and two writers at once. No Prefect server.
"""

from __future__ import annotations

import threading
from itertools import count

import pytest
import sqlalchemy as sa
from _sql_cases import (
    check_added_column,
    check_create_and_upsert_twice,
    check_null_statuses,
    check_protection,
    check_read_rows,
    found,
    not_found,
    stored,
    upsert,
)

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.sql import ColumnSpec, read_query, resolve_engine, upsert_rows

_tables = count(1)


@pytest.fixture(scope="module")
def engine(postgres_url):
    engine = resolve_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def table():
    """A table name no other test of the session uses."""
    return f"enriched_{next(_tables)}"


def test_create_and_upsert_twice(engine, table):
    check_create_and_upsert_twice(engine, table)


def test_protection_rule(engine, table):
    check_protection(engine, table)


def test_null_statuses(engine, table):
    check_null_statuses(engine, table)


def test_added_column(engine, table):
    check_added_column(engine, table)


def test_read_100_rows(engine, table):
    check_read_rows(engine, table, count=100)


def test_native_types_and_the_unique_index(engine, table):
    upsert(engine, table, [found("a")])
    with engine.connect() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = :t"
                ),
                {"t": table},
            ).all()
        )
        indexes = conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"),
            {"t": table},
        ).all()
        raw = conn.execute(sa.text(f"SELECT raw -> 'email' ->> 'email' FROM {table}")).scalar()
    assert types["credits"] == "bigint" and types["score"] == "double precision"
    assert types["run_at"] == "timestamp with time zone" and types["raw"] == "json"
    assert indexes == [(f"uq_{table}_lead_id", pytest.approx(indexes[0][1]))]
    assert "CREATE UNIQUE INDEX" in indexes[0][1] and "(lead_id)" in indexes[0][1]
    assert raw == "ada@acme.com"


def test_schema_qualified_table(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS crm")
    upsert(engine, "crm.enriched", [found("a"), not_found("b")])
    result = upsert(engine, "crm.enriched", [not_found("a"), found("b")])
    assert (result.inserted, result.updated) == (0, 2)
    a, b = stored(engine, "crm.enriched")
    assert a["status"] == "done" and b["status"] == "done"


def test_a_refused_batch_rolls_back_only_itself(engine, table):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (lead_id TEXT, status TEXT, "
                "found_email TEXT CHECK (found_email NOT LIKE 'bad%'))"
            )
        )
    rows = [
        {"lead_id": f"l{i:05d}", "status": "done", "found_email": "bad@x" if i == 1500 else "ok"}
        for i in range(2500)
    ]
    with pytest.raises(DatabaseTargetError, match=r"batch 2 .* violates check constraint"):
        upsert_rows(
            engine,
            table,
            rows,
            columns=[ColumnSpec("lead_id"), ColumnSpec("status"), ColumnSpec("found_email")],
            key=["lead_id"],
            protected=["status", "found_email"],
        )
    assert len(stored(engine, table)) == 1000


def test_the_reader_uses_a_server_side_cursor(engine, table):
    """10,000 rows, 100 at a time: a sequence ticks once per row computed, so after the first
    row the server has computed one chunk, not the result; another session sees the cursor's
    FETCH in pg_stat_activity."""
    upsert_rows(
        engine,
        table,
        ({"n": i, "status": "done"} for i in range(10_000)),
        columns=[ColumnSpec("n", "integer"), ColumnSpec("status")],
        key=["n"],
        protected=[],
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SEQUENCE {table}_ticks")
    query = f"SELECT n, nextval('{table}_ticks') AS tick FROM {table} ORDER BY n"
    with read_query(engine, query, chunk_size=100) as rows, engine.connect() as watcher:
        # SQLAlchemy fetches 1 row to start the result, then `chunk_size` rows at a time
        first, second = next(rows), next(rows)
        ticks = watcher.exec_driver_sql(f"SELECT last_value FROM {table}_ticks").scalar()
        statements = watcher.execute(
            sa.text(
                "SELECT query FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        assert any(q.startswith("FETCH FORWARD 100 FROM") for q in statements)
        assert first == {"n": 0, "tick": 1} and second == {"n": 1, "tick": 2}
        assert ticks <= 102, ticks
        rest = sum(1 for _ in rows)
    assert rest == 9_998
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT last_value FROM {table}_ticks").scalar() == 10_000


def test_reader_errors_name_the_database_reason(engine):
    with pytest.raises(DatabaseTargetError) as caught:
        read_query(engine, "SELECT * FROM no_such_table")
    assert str(caught.value).startswith('the input query failed: relation "no_such_table"')
    assert "\n" not in str(caught.value)
    assert engine.pool.checkedout() == 0


def test_reader_sends_the_query_as_written(engine):
    query = "SELECT '10:30' AS at, 'a%' AS pct, 5 % 3 AS mod"
    with read_query(engine, query) as rows:
        assert list(rows) == [{"at": "10:30", "pct": "a%", "mod": 2}]


def test_two_writers_at_once(engine, table):
    """Two threads merge disjoint and overlapping keys into one new table (both also race to
    create it): one row per key, and the rows both wrote hold one writer's whole row."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(start: int, stop: int, email: str) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                rows = [found(f"l{i:04d}", email) for i in range(start, stop)]
                upsert(engine, table, rows, batch_size=50)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(0, 600, "a@acme.com")),
        threading.Thread(target=write, args=(300, 900, "b@acme.com")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    rows = stored(engine, table)
    assert len(rows) == 900 == len({row["lead_id"] for row in rows})
    emails = {row["lead_id"]: row["found_email"] for row in rows}
    assert all(emails[f"l{i:04d}"] == "a@acme.com" for i in range(300))
    assert all(emails[f"l{i:04d}"] == "b@acme.com" for i in range(600, 900))
    assert {emails[f"l{i:04d}"] for i in range(300, 600)} <= {"a@acme.com", "b@acme.com"}
