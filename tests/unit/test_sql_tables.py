"""`prefect_lemlist.sql` on real SQLite files (and DuckDB files): the writer's merge rule,
batches and errors, the reader's streaming, and `resolve_engine`'s errors. No Prefect server.

PostgreSQL runs the same checks in tests/sandbox/test_sql_postgres.py.
"""

from __future__ import annotations

import socket
import sqlite3
import traceback

import pytest
import sqlalchemy as sa
from _sql_cases import (
    COLUMNS,
    check_added_column,
    check_create_and_upsert_twice,
    check_null_statuses,
    check_protection,
    check_read_rows,
    found,
    stored,
    upsert,
)

import prefect_lemlist
from prefect_lemlist.api.exceptions import DatabaseTargetError, LemlistError
from prefect_lemlist.sql import (
    ColumnSpec,
    describe_target,
    read_query,
    resolve_engine,
    upsert_rows,
)
from prefect_lemlist.sql.tables import index_name


@pytest.fixture(params=["sqlite", "duckdb"])
def engine(request, tmp_path):
    """A new database file of each dialect that needs no server."""
    suffix = "db" if request.param == "sqlite" else "duckdb"
    engine = resolve_engine(f"{request.param}:///{tmp_path}/results.{suffix}")
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = resolve_engine(f"sqlite:///{tmp_path}/results.db")
    yield engine
    engine.dispose()


def test_create_and_upsert_twice(engine):
    check_create_and_upsert_twice(engine, "enriched")


def test_protection_rule(engine):
    check_protection(engine, "enriched")


def test_null_statuses(engine):
    check_null_statuses(engine, "enriched")


def test_added_column(engine):
    check_added_column(engine, "enriched")


def test_read_rows(engine):
    check_read_rows(engine, "enriched")


def test_json_and_timestamps_round_trip(sqlite_engine):
    upsert(sqlite_engine, "enriched", [found("a")])
    with read_query(sqlite_engine, "SELECT raw FROM enriched") as rows:
        (row,) = rows
    assert row["raw"] == '{"email": {"email": "ada@acme.com"}}'  # JSON text on SQLite
    with sqlite_engine.connect() as conn:
        run_at = conn.exec_driver_sql("SELECT run_at FROM enriched").scalar_one()
    assert run_at == "2025-03-01 12:00:00.000000"  # stored as UTC


def test_batches_and_the_bind_limit(sqlite_engine):
    rows = [found(f"l{i:05d}") for i in range(2500)]
    result = upsert(sqlite_engine, "enriched", rows, batch_size=1000)
    assert (result.inserted, result.updated, result.batches) == (2500, 0, 3)
    assert result.rows == 2500
    # 40 columns: 32766 // 40 = 819 rows per statement at most, whatever batch_size says
    wide = [ColumnSpec("lead_id"), ColumnSpec("status")] + [ColumnSpec(f"c{i}") for i in range(38)]
    result = upsert_rows(
        sqlite_engine,
        "wide",
        ({"lead_id": str(i), "status": "done"} for i in range(1000)),
        columns=wide,
        key=["lead_id"],
        protected=["status"],
        batch_size=5000,
    )
    assert (result.inserted, result.batches) == (1000, 2)


def test_a_repeated_key_starts_a_new_batch(sqlite_engine):
    rows = [found("a", "first@acme.com"), found("b"), found("a", "second@acme.com")]
    result = upsert(sqlite_engine, "enriched", rows)
    assert (result.inserted, result.updated, result.batches) == (2, 1, 2)
    assert stored(sqlite_engine, "enriched")[0]["found_email"] == "second@acme.com"


def test_a_refused_batch_rolls_back_only_itself(engine):
    """A real CHECK constraint refuses row 1,500: batch 1 stays, batch 2 is rolled back whole,
    batch 3 is never written."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE enriched (lead_id TEXT, status TEXT, "
            "found_email TEXT CHECK (found_email NOT LIKE 'bad%'))"
        )
    rows = [
        {"lead_id": f"l{i:05d}", "status": "done", "found_email": "bad@x" if i == 1500 else "ok"}
        for i in range(2500)
    ]
    with pytest.raises(DatabaseTargetError) as caught:
        upsert_rows(
            engine,
            "enriched",
            rows,
            columns=[ColumnSpec("lead_id"), ColumnSpec("status"), ColumnSpec("found_email")],
            key=["lead_id"],
            protected=["status", "found_email"],
        )
    message = str(caught.value)
    assert "batch 2" in message and "1000 rows of earlier batches are saved" in message
    assert "\n" not in message
    with engine.connect() as conn:
        count, last = conn.exec_driver_sql("SELECT count(*), max(lead_id) FROM enriched").one()
    assert (count, last) == (1000, "l00999")


def test_existing_duplicates_refuse_the_merge_key(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE enriched (lead_id TEXT, status TEXT)")
        conn.exec_driver_sql("INSERT INTO enriched VALUES ('a', 'done'), ('a', 'not_found')")
    with pytest.raises(DatabaseTargetError, match="several rows with the same key"):
        upsert(engine, "enriched", [found("a")])


def test_an_existing_table_keeps_its_other_columns(sqlite_engine):
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE enriched (lead_id TEXT, owner TEXT)")
        conn.exec_driver_sql("INSERT INTO enriched VALUES ('a', 'sales')")
    result = upsert(sqlite_engine, "enriched", [found("a"), found("b")])
    assert (result.inserted, result.updated) == (1, 1)
    rows = stored(sqlite_engine, "enriched")
    assert [row["owner"] for row in rows] == ["sales", None]
    assert rows[0]["found_email"] == "ada@acme.com"


@pytest.mark.parametrize("name", ["drop table x;--", "a.b.c", "1abc", "", "lead-results", "a b"])
def test_bad_table_names(sqlite_engine, name):
    with pytest.raises(DatabaseTargetError, match="not a valid table name"):
        upsert(sqlite_engine, name, [found("a")])


def test_schema_prefixed_table(sqlite_engine):
    result = upsert(sqlite_engine, "main.enriched", [found("a")])
    assert (result.inserted, result.table) == (1, "main.enriched")
    assert len(stored(sqlite_engine, "enriched")) == 1


def test_rows_and_columns_that_do_not_fit(sqlite_engine):
    with pytest.raises(DatabaseTargetError, match="row 2 has no value for the merge key"):
        upsert(sqlite_engine, "enriched", [found("a"), {"status": "done"}])
    with pytest.raises(DatabaseTargetError, match="'nope' not in the columns"):
        upsert(sqlite_engine, "enriched", [found("a")], key=["nope"])
    with pytest.raises(DatabaseTargetError, match="status column 'state'"):
        upsert(sqlite_engine, "enriched", [found("a")], status_column="state")
    with pytest.raises(DatabaseTargetError, match="batch_size"):
        upsert(sqlite_engine, "enriched", [found("a")], batch_size=0)


def test_index_names_are_deterministic_and_short():
    assert index_name("enriched", ["lead_id"]) == "uq_enriched_lead_id"
    long = index_name("t" * 60, ["campaign_id", "lead_id"])
    assert len(long) <= 63 and long == index_name("t" * 60, ["campaign_id", "lead_id"])
    assert long != index_name("t" * 60, ["lead_id", "campaign_id"])


def test_unsupported_dialects():
    # a URL whose driver is not installed
    with pytest.raises(DatabaseTargetError) as caught:
        resolve_engine("mysql://user:s3cr3t@127.0.0.1/crm")
    assert "mysql" in str(caught.value) and "s3cr3t" not in str(caught.value)
    with pytest.raises(DatabaseTargetError, match="not a SQLAlchemy dialect"):
        resolve_engine("nosuchdb://host/db")
    # a real MySQL dialect object (a mock engine needs no driver): the writer names the supported
    mysql = sa.create_mock_engine("mysql://", executor=lambda *a, **k: None)
    with pytest.raises(DatabaseTargetError, match="sqlite, postgresql, duckdb"):
        upsert(mysql, "enriched", [found("a")])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_password_is_never_shown(caplog):
    port = _closed_port()
    url = f"postgresql+psycopg://enricher:s3cr3t@127.0.0.1:{port}/crm"
    with pytest.raises(DatabaseTargetError) as caught:
        resolve_engine(url)
    error = caught.value
    shown = " ".join(
        [
            str(error),
            repr(error),
            str(error.hint),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            caplog.text,
        ]
    )
    assert "cannot connect to postgresql+psycopg://enricher:***@127.0.0.1" in str(error)
    assert "s3cr3t" not in shown
    assert isinstance(error, ValueError) and isinstance(error, LemlistError)
    assert prefect_lemlist.DatabaseTargetError is DatabaseTargetError
    assert describe_target(url) == f"postgresql+psycopg://enricher:***@127.0.0.1:{port}/crm"
    assert describe_target("crm-db") == "block crm-db"


def test_a_password_quoted_by_the_driver_is_masked(tmp_path):
    """A driver that quotes the URL's password in its own error: masked in ours."""
    from prefect_lemlist.sql.engines import first_line

    url = sa.make_url("postgresql+psycopg://u:p%40ss%2Fw0rd@h/db")
    assert url.password == "p@ss/w0rd"
    error = RuntimeError("auth failed for u with p@ss/w0rd (p%40ss%2Fw0rd)\nmore")
    assert first_line(error, url) == "auth failed for u with *** (***)"


def test_an_unreachable_sqlite_file():
    with pytest.raises(DatabaseTargetError, match="cannot connect to sqlite:///"):
        resolve_engine("sqlite:////no/such/directory/results.db")


def test_reader_streams_from_sqlite(tmp_path):
    """10,000 rows read 100 at a time: when the first row arrives, SQLite has computed only
    about a chunk of rows (a counting SQL function proves it), not the whole result."""
    engine = resolve_engine(f"sqlite:///{tmp_path}/results.db")
    calls = []

    @sa.event.listens_for(engine, "connect")
    def _count(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.create_function("tick", 1, lambda n: calls.append(n) or n)

    engine.dispose()  # reconnect with the function
    upsert_rows(
        engine,
        "numbers",
        ({"n": i, "status": "done"} for i in range(10_000)),
        columns=[ColumnSpec("n", "integer"), ColumnSpec("status")],
        key=["n"],
        protected=[],
    )
    rows = read_query(engine, "SELECT tick(n) AS v FROM numbers", chunk_size=100)
    first = next(rows)
    assert rows.columns == ["v"] and first == {"v": 0}
    assert len(calls) <= 200, len(calls)
    assert sum(1 for _ in rows) == 9_999
    assert len(calls) == 10_000 and rows.closed
    engine.dispose()


def test_reader_errors(sqlite_engine):
    for query in ("UPDATE enriched SET status = 'x'", "enriched", "", "-- nothing\n"):
        with pytest.raises(DatabaseTargetError, match="must be one SELECT"):
            read_query(sqlite_engine, query)
    with pytest.raises(DatabaseTargetError) as caught:
        read_query(sqlite_engine, "SELECT * FROM no_such_table")
    assert str(caught.value) == "the input query failed: no such table: no_such_table"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # colons and percent signs are plain text (no bind parameters)
    query = "/* x */ SELECT '10:30' AS at, 'a%' AS pct;"
    with read_query(sqlite_engine, query) as rows:
        assert list(rows) == [{"at": "10:30", "pct": "a%"}]


def test_closing_early_gives_the_connection_back(sqlite_engine):
    upsert(sqlite_engine, "enriched", [found(f"l{i}") for i in range(50)])
    pool = sqlite_engine.pool
    with read_query(sqlite_engine, "SELECT * FROM enriched", chunk_size=5) as rows:
        next(rows)
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0 and rows.closed
    assert list(rows) == []


def test_sqlite_columns_match_the_specs(sqlite_engine):
    upsert(sqlite_engine, "enriched", [found("a")])
    with sqlite_engine.connect() as conn:
        types = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA table_info(enriched)")}
    assert types == {
        "lead_id": "TEXT",
        "email": "TEXT",
        "status": "TEXT",
        "found_email": "TEXT",
        "credits": "BIGINT",
        "score": "DOUBLE",
        "run_at": "DATETIME",
        "raw": "JSON",
    }
    assert [c.name for c in COLUMNS] == list(types)


def test_the_public_names_are_documented_with_examples():
    import inspect
    import re

    import prefect_lemlist.sql as package

    for name in package.__all__:
        value = getattr(package, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert inspect.getdoc(value), name
    for function in (resolve_engine, describe_target, upsert_rows, read_query):
        doc = inspect.getdoc(function)
        for section in ("Args:", "Returns:"):
            assert section in doc, (function.__name__, section)
        (example,) = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
        compile(inspect.cleandoc(example), function.__name__, "exec")
