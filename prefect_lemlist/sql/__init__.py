"""Results into a database table, input rows from a SQL query: SQLite, PostgreSQL, DuckDB.

- `resolve_engine(target)`: a SQLAlchemy URL or a saved prefect-sqlalchemy `SqlAlchemyConnector`
  block (by name, or the block itself) to a connected `sqlalchemy.Engine`;
  `describe_target(target)` shows it without its password.
- `upsert_rows(engine, table, rows, columns=..., key=..., protected=...)`: create or extend the
  table, then merge the rows on `key` (`INSERT ... ON CONFLICT DO UPDATE`) in batches, keeping a
  found row's `protected` values when a later row did not find; returns an `UpsertResult`.
- `read_query(engine, query, chunk_size=...)`: a query's rows, streamed (`QueryRows`).

Every failure is a `DatabaseTargetError` (from `prefect_lemlist.api.exceptions`): one sentence,
no password. PostgreSQL needs the `postgres` extra, DuckDB the `duckdb` extra, a block name the
`sql` extra; SQLite needs nothing.
"""

from __future__ import annotations

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.sql.engines import SUPPORTED_DIALECTS, describe_target, resolve_engine
from prefect_lemlist.sql.queries import QueryRows, read_query
from prefect_lemlist.sql.tables import ColumnKind, ColumnSpec, UpsertResult, upsert_rows

__all__ = [
    "SUPPORTED_DIALECTS",
    "ColumnKind",
    "ColumnSpec",
    "DatabaseTargetError",
    "QueryRows",
    "UpsertResult",
    "describe_target",
    "read_query",
    "resolve_engine",
    "upsert_rows",
]
