"""The writer: result rows into a database table, merged on a key (`INSERT ... ON CONFLICT`).

`upsert_rows` creates the table when it is missing, adds the columns a later run brings, makes
sure a UNIQUE index holds the merge key, then writes the rows in batches, one transaction per
batch, with the dialect's `INSERT ... ON CONFLICT (key) DO UPDATE` (SQLite, PostgreSQL, DuckDB).

The merge rule protects what was found: when the stored row's status is `found_status` (say
`done`, an email was found) and the incoming row's is anything else (a later run that found
nothing, failed, or was skipped), the stored values of the `protected` columns are kept; every
other column (the input's own columns, `run_at`) always takes the incoming value. With
`overwrite=True` every column takes the incoming value.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.sql.engines import SUPPORTED_DIALECTS, first_line

ColumnKind = Literal["text", "integer", "number", "timestamp", "json"]
"""A column's type: TEXT, BIGINT, DOUBLE PRECISION, TIMESTAMP WITH TIME ZONE, or JSON (JSON on
SQLite and PostgreSQL; elsewhere TEXT holding `json.dumps` of the value)."""

SQLITE_MAX_BINDS = 32766
"""SQLite's default limit of bound parameters per statement; a batch never binds more."""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE_NAME = re.compile(rf"^(?:(?P<schema>{_NAME})\.)?(?P<table>{_NAME})$")
_KINDS: tuple[str, ...] = ("text", "integer", "number", "timestamp", "json")
_PREPARE_ATTEMPTS = 3


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the result table.

    Attributes:
        name: the column's name (any text; it is quoted where needed).
        kind: its type (`ColumnKind`), `text` by default.
    """

    name: str
    kind: ColumnKind = "text"


@dataclass(frozen=True)
class UpsertResult:
    """What `upsert_rows` wrote.

    Attributes:
        inserted: rows whose key was new.
        updated: rows whose key was already in the table (merged by the protection rule).
        batches: statements (transactions) it took.
        table: the table, as given (`schema.name` or `name`).
    """

    inserted: int
    updated: int
    batches: int
    table: str

    @property
    def rows(self) -> int:
        """Every row written: `inserted + updated`."""
        return self.inserted + self.updated


class _JsonText(sa.types.TypeDecorator[Any]):
    """JSON kept as TEXT (`json.dumps`) on dialects without a JSON type SQLAlchemy knows."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, default=str)


class _UtcTimestamp(sa.types.TypeDecorator[datetime]):
    """SQLite's timestamps: stored as UTC text (SQLite keeps no offset), read back as UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def sql_type(kind: ColumnKind, dialect: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type of a column kind on a dialect.

    Args:
        kind: `text`, `integer`, `number`, `timestamp` or `json`.
        dialect: the dialect's name (`sqlite`, `postgresql`, `duckdb`).

    Returns:
        Text, BigInteger, Double, DateTime(timezone=True) (UTC text on SQLite), or JSON (SQL NULL
        for None) on SQLite and PostgreSQL, TEXT with `json.dumps` elsewhere.
    """
    if kind == "integer":
        return sa.BigInteger()
    if kind == "number":
        return sa.Double()  # FLOAT is 4 bytes on DuckDB
    if kind == "timestamp":
        return _UtcTimestamp() if dialect == "sqlite" else sa.DateTime(timezone=True)
    if kind == "json":
        return sa.JSON(none_as_null=True) if dialect in ("sqlite", "postgresql") else _JsonText()
    return sa.Text()


def split_table_name(table: str) -> tuple[str | None, str]:
    """`schema.name` or `name`, checked: letters, digits and underscores only.

    Args:
        table: the table name as given.

    Returns:
        (schema or None, name).

    Raises:
        DatabaseTargetError: any other character, or more than one dot.
    """
    match = _TABLE_NAME.match(table) if isinstance(table, str) else None
    if match is None:
        raise DatabaseTargetError(
            f"{table!r} is not a valid table name: use letters, digits and underscores, "
            "optionally prefixed by a schema (crm.enriched_leads)"
        )
    return match.group("schema"), match.group("table")


def index_name(table: str, key: Sequence[str]) -> str:
    """The merge key's UNIQUE index name: deterministic, at most 63 characters (PostgreSQL's).

    Args:
        table: the table's name without its schema.
        key: the key columns.

    Returns:
        `uq_<table>_<key columns>`, shortened with a hash of the full name when too long.
    """
    name = f"uq_{table}_{'_'.join(key)}"
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if safe == name and len(name) <= 63:
        return name
    digest = f"{zlib.crc32(name.encode()):08x}"
    return f"{safe[:50]}_{digest}"


def _check_columns(
    columns: Sequence[ColumnSpec], key: Sequence[str], protected: Sequence[str], status: str
) -> None:
    names = [column.name for column in columns]
    problems = []
    if not key:
        problems.append("the merge key names no column")
    if len(set(names)) != len(names):
        problems.append("a column is listed twice")
    problems += [
        f"column {c.name!r} has unknown kind {c.kind!r}" for c in columns if c.kind not in _KINDS
    ]
    missing = [name for name in [*key, *protected] if name not in names]
    if missing:
        problems.append(f"{', '.join(map(repr, dict.fromkeys(missing)))} not in the columns")
    if protected and status not in names:
        problems.append(f"the status column {status!r} is not in the columns")
    if any(c.kind == "json" for c in columns if c.name in key):
        problems.append("a key column cannot be json")
    if problems:
        raise DatabaseTargetError(f"cannot merge these rows: {'; '.join(problems)}")


def _table(schema: str | None, name: str, columns: Sequence[ColumnSpec], dialect: str) -> sa.Table:
    # always quoted: duckdb-engine does not quote DuckDB's own reserved words (`at`, ...)
    metadata = sa.MetaData(schema=schema)
    table_columns = [sa.Column(c.name, sql_type(c.kind, dialect), quote=True) for c in columns]
    return sa.Table(name, metadata, *table_columns, quote=True, quote_schema=True)


def _add_missing_columns(conn: Connection, table: sa.Table) -> None:
    # the result's keys, not the inspector: duckdb-engine's get_columns reads pg_catalog views
    # that DuckDB 2 no longer has
    existing = set(conn.execute(sa.select(sa.text("*")).select_from(table).limit(0)).keys())
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name in existing:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} "
            f"ADD COLUMN {preparer.format_column(column)} {kind}"
        )


def _has_duplicates(conn: Connection, table: sa.Table, key: Sequence[str]) -> bool:
    columns = [table.c[name] for name in key]
    query = (
        sa.select(sa.literal(1))
        .select_from(table)
        .where(sa.and_(*(c.is_not(None) for c in columns)))
        .group_by(*columns)
        .having(sa.func.count() > 1)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def _prepare_once(conn: Connection, table: sa.Table, key: Sequence[str]) -> None:
    if conn.dialect.name == "postgresql":  # one DDL writer per table at a time, across sessions
        lock = zlib.crc32(f"prefect-lemlist:{table.fullname}".encode())
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
    if sa.inspect(conn).has_table(table.name, schema=table.schema):
        _add_missing_columns(conn, table)
    else:
        conn.execute(CreateTable(table, if_not_exists=True))
    index = sa.Index(index_name(table.name, key), *(table.c[name] for name in key), unique=True)
    conn.execute(CreateIndex(index, if_not_exists=True))


def prepare_table(engine: Engine, table: sa.Table, key: Sequence[str]) -> None:
    """Create the table (or add its missing columns) and the merge key's UNIQUE index.

    Concurrent writers are fine: PostgreSQL serialises this step with an advisory lock, and on
    the other dialects a writer that loses a race (the table or column was created meanwhile)
    looks again and goes on.

    Args:
        engine: the database.
        table: the table with the columns to have (others it has are left alone).
        key: the merge key's columns.

    Raises:
        DatabaseTargetError: the table already holds rows that share a key, or the database
            refused the DDL.
    """
    for attempt in range(1, _PREPARE_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                _prepare_once(conn, table, key)
            return
        except SQLAlchemyError as exc:
            if isinstance(exc, IntegrityError) and _duplicates(engine, table, key):
                raise DatabaseTargetError(
                    f"cannot add the merge key ({', '.join(key)}) to {table.fullname}: it already "
                    "holds several rows with the same key",
                    hint="remove the duplicate rows, or write to a new table",
                ) from exc
            if attempt == _PREPARE_ATTEMPTS:
                raise DatabaseTargetError(
                    f"cannot create or extend the table {table.fullname}: "
                    f"{first_line(exc, engine.url)}"
                ) from exc


def _duplicates(engine: Engine, table: sa.Table, key: Sequence[str]) -> bool:
    try:
        with engine.connect() as conn:
            return _has_duplicates(conn, table, key)
    except SQLAlchemyError:
        return False


def upsert_statement(
    table: sa.Table,
    dialect: str,
    *,
    key: Sequence[str],
    protected: Sequence[str],
    overwrite: bool,
    status_column: str,
    found_status: str,
) -> Any:
    """The dialect's `INSERT ... ON CONFLICT (key) DO UPDATE` with the protection rule.

    Args:
        table: the target table (its columns are the ones written).
        dialect: `sqlite`, `postgresql` or `duckdb` (PostgreSQL's syntax).
        key: the conflict target (the UNIQUE index's columns).
        protected: columns kept when the stored row was found and the incoming row was not.
        overwrite: True to take every incoming value.
        status_column: the column holding the status.
        found_status: the status that means found.

    Returns:
        The insert statement, to execute with a list of parameter dicts.
    """
    insert = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
    new = insert.excluded
    keep = sa.and_(
        table.c[status_column] == found_status,
        new[status_column].is_distinct_from(found_status),
    )
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.name in key:
            continue
        incoming: sa.ColumnElement[Any] = new[column.name]
        if not overwrite and column.name in protected:
            incoming = sa.case((keep, column), else_=incoming)
        values[column.name] = incoming
    targets = [table.c[name] for name in key]
    if not values:  # every column is the key: nothing to update
        return insert.on_conflict_do_nothing(index_elements=targets)
    return insert.on_conflict_do_update(index_elements=targets, set_=values)


def _batches(
    rows: Iterable[Mapping[str, object]], names: Sequence[str], key: Sequence[str], size: int
) -> Iterator[list[dict[str, object]]]:
    """Rows as parameter dicts, `size` at a time; a key seen again starts a new batch (one
    statement cannot touch a row twice on PostgreSQL, and order must decide)."""
    batch: list[dict[str, object]] = []
    seen: set[tuple[object, ...]] = set()
    for number, row in enumerate(rows, 1):
        params = {name: row.get(name) for name in names}
        row_key = tuple(params[name] for name in key)
        if any(value is None for value in row_key):
            raise DatabaseTargetError(
                f"row {number} has no value for the merge key ({', '.join(key)})"
            )
        if len(batch) >= size or row_key in seen:
            yield batch
            batch, seen = [], set()
        batch.append(params)
        seen.add(row_key)
    if batch:
        yield batch


def _count_existing(
    conn: Connection, table: sa.Table, key: Sequence[str], batch: list[dict[str, object]]
) -> int:
    if len(key) == 1:
        condition = table.c[key[0]].in_([params[key[0]] for params in batch])
    else:
        columns = sa.tuple_(*(table.c[name] for name in key))
        condition = columns.in_([tuple(params[name] for name in key) for params in batch])
    query = sa.select(sa.func.count()).select_from(table).where(condition)
    return int(conn.execute(query).scalar_one())


def _write_batch(
    conn: Connection,
    statement: Any,
    table: sa.Table,
    key: Sequence[str],
    batch: list[dict[str, object]],
) -> int:
    """Write one batch; returns how many of its rows were new."""
    existing = _count_existing(conn, table, key, batch)
    if conn.dialect.name == "duckdb":  # one multi-row INSERT: DuckDB's executemany is per row
        conn.execute(statement.values(batch))
    else:  # the driver's executemany: sqlite3's C loop, psycopg's pipeline
        conn.execute(statement, batch)
    return len(batch) - existing


def upsert_rows(
    engine: Engine,
    table: str,
    rows: Iterable[Mapping[str, object]],
    *,
    columns: Sequence[ColumnSpec],
    key: Sequence[str],
    protected: Sequence[str],
    overwrite: bool = False,
    status_column: str = "status",
    found_status: str = "done",
    batch_size: int = 1000,
) -> UpsertResult:
    """Merge rows into a table on a key, creating or extending the table first.

    Args:
        engine: a SQLite, PostgreSQL or DuckDB engine (`resolve_engine`).
        table: `name` or `schema.name` (letters, digits, underscores).
        rows: mappings of column name to a Python value (str, int, float, bool, datetime,
            dict/list for json, None); a column a row lacks is NULL, keys not in `columns` are
            ignored. Read lazily, one batch at a time.
        columns: every column to write, in table order; an existing table gains the ones it
            lacks, and keeps the columns not listed here untouched.
        key: the merge key (a UNIQUE index on these columns is created when missing). Every row
            needs a value for each.
        protected: columns whose stored values are kept when the stored row's `status_column`
            is `found_status` and the incoming row's is not (include the status column itself).
        overwrite: True: every column takes the incoming value.
        status_column: the column the protection rule reads.
        found_status: the status value that protects a row.
        batch_size: rows per statement and transaction (capped so that rows x columns stays
            under SQLite's 32,766 bound parameters).

    Returns:
        How many rows were inserted and updated, and in how many batches.

    Raises:
        DatabaseTargetError: an unsupported dialect, a bad table name, columns that do not fit
            (key or protected columns not listed), a table whose rows already duplicate the key,
            a row without a key value, or a batch the database refused. Batches before the
            failing one are committed; the failing one is rolled back whole; later rows are not
            written.

    Example:
        ```python
        from prefect_lemlist.sql import ColumnSpec, resolve_engine, upsert_rows

        engine = resolve_engine("sqlite:///results.db")
        result = upsert_rows(
            engine,
            "enriched_leads",
            [{"lead_id": "l1", "status": "done", "email": "ada@example.com"}],
            columns=[ColumnSpec("lead_id"), ColumnSpec("status"), ColumnSpec("email")],
            key=["lead_id"],
            protected=["status", "email"],
        )
        print(result.inserted, result.updated)  # 1 0
        ```
    """
    dialect = engine.dialect.name
    if dialect not in SUPPORTED_DIALECTS:
        raise DatabaseTargetError(
            f"cannot merge rows into a {dialect} database: supported are "
            f"{', '.join(SUPPORTED_DIALECTS)} (INSERT ... ON CONFLICT DO UPDATE)"
        )
    if batch_size < 1:
        raise DatabaseTargetError(f"batch_size must be at least 1, not {batch_size}")
    schema, name = split_table_name(table)
    _check_columns(columns, key, protected, status_column)
    target = _table(schema, name, columns, dialect)
    prepare_table(engine, target, key)
    statement = upsert_statement(
        target,
        dialect,
        key=key,
        protected=protected,
        overwrite=overwrite,
        status_column=status_column,
        found_status=found_status,
    )
    size = max(1, min(batch_size, SQLITE_MAX_BINDS // max(1, len(columns))))
    names = [column.name for column in columns]
    inserted = updated = batches = 0
    for batch in _batches(rows, names, key, size):
        try:
            with engine.begin() as conn:
                new = _write_batch(conn, statement, target, key, batch)
        except SQLAlchemyError as exc:
            raise DatabaseTargetError(
                f"batch {batches + 1} ({len(batch)} rows) into {table} was refused and rolled "
                f"back ({inserted + updated} rows of earlier batches are saved): "
                f"{first_line(exc, engine.url)}"
            ) from exc
        inserted += new
        updated += len(batch) - new
        batches += 1
    return UpsertResult(inserted=inserted, updated=updated, batches=batches, table=table)
