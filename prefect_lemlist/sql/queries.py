"""The reader: input rows from a SQL query, streamed.

`read_query` runs one SELECT (or WITH / VALUES / TABLE) query on its own connection with
`stream_results=True` and `yield_per=chunk_size`: PostgreSQL reads it through a server-side
cursor, SQLite and DuckDB step through it, and nothing fetches the whole result at once. The
rows come as `dict[str, object]` with the database's own Python values (Decimal, datetime, UUID
stay as they are; the caller converts). The connection is closed when the rows are exhausted,
when the `QueryRows` is closed, or when its `with` block ends.

The query is sent to the driver as written (no bind parameters, so `:` and `%` in it are plain
text). The check that it starts with SELECT / WITH / VALUES / TABLE guards against mistakes (a
table name, an UPDATE), not against a hostile query: use a database user that may only read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import SQLAlchemyError

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.sql.engines import first_line

_COMMENTS = re.compile(r"(--[^\n]*\n?|/\*.*?\*/|\s+)", re.DOTALL)
_READING = ("select", "with", "values", "table")


QUERY_HINT = (
    "run the query in the database's own client first; its columns are the input's "
    "(email, linkedin_url, first_name, … or lead_id)"
)


def _first_word(query: str) -> str:
    rest = query
    while True:
        match = _COMMENTS.match(rest)
        if match is None or not match.group(0):
            break
        rest = rest[match.end() :]
    rest = rest.lstrip("(")
    word = re.match(r"[A-Za-z]+", rest)
    return word.group(0).lower() if word else ""


def check_query(query: str) -> str:
    """Check that a query reads: its first word (after comments and parentheses) is SELECT,
    WITH, VALUES or TABLE.

    Args:
        query: the SQL text.

    Returns:
        The query without surrounding whitespace and trailing semicolons.

    Raises:
        DatabaseTargetError: an empty query, or one that starts with another word.
    """
    text = query.strip().rstrip(";").strip() if isinstance(query, str) else ""
    word = _first_word(text)
    if word not in _READING:
        shown = f"it starts with {word.upper()!r}" if word else "it is empty"
        raise DatabaseTargetError(
            f"the input query must be one SELECT (or WITH) query, and {shown}",
            hint="write e.g. SELECT lead_id, email FROM leads WHERE email IS NULL",
        )
    return text


class QueryRows:
    """The rows of a running query: iterate once, as `dict[str, object]`, streamed.

    Attributes:
        columns: the result's column names, in order.

    Closes its connection when exhausted, on `close()`, or at the end of a `with` block.

    Example:
        ```python
        with read_query(engine, "SELECT lead_id, email FROM leads", chunk_size=500) as rows:
            print(rows.columns)  # ['lead_id', 'email']
            for row in rows:
                ...
        ```
    """

    def __init__(self, connection: Connection, result: CursorResult[object]) -> None:
        self._connection: Connection | None = connection
        self._result = result
        self.columns: list[str] = list(result.keys())
        self._rows: Iterator[Any] = iter(result)

    def __iter__(self) -> Iterator[dict[str, object]]:
        return self

    def __next__(self) -> dict[str, object]:
        if self._connection is None:
            raise StopIteration
        try:
            row = next(self._rows)
        except StopIteration:
            self.close()
            raise
        except SQLAlchemyError as exc:
            message = (
                f"reading the input query failed: {first_line(exc, self._connection.engine.url)}"
            )
            self.close()
            raise DatabaseTargetError(message, hint=QUERY_HINT) from None
        return dict(zip(self.columns, row, strict=True))

    @property
    def closed(self) -> bool:
        """True once the connection is closed (exhausted, closed, or left its `with`)."""
        return self._connection is None

    def close(self) -> None:
        """Stop reading and give the connection back (a server-side cursor is closed)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            self._result.close()
        finally:
            connection.close()

    def __enter__(self) -> QueryRows:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_query(engine: Engine, query: str, *, chunk_size: int = 1000) -> QueryRows:
    """Run a query and stream its rows.

    Args:
        engine: the database (`resolve_engine`).
        query: one SELECT / WITH / VALUES / TABLE query, sent as written.
        chunk_size: rows fetched from the database at a time (the server-side cursor's batch
            on PostgreSQL).

    Returns:
        The running query's rows (`QueryRows`): `.columns`, then iterate; use it in a `with`
        block, or exhaust it, to close its connection.

    Raises:
        DatabaseTargetError: the query is not a reading query, or the database refused it
            (its one-line message is quoted, the password masked).

    Example:
        ```python
        from prefect_lemlist.sql import read_query, resolve_engine

        engine = resolve_engine("postgresql+psycopg://reader@db/crm")
        with read_query(engine, "SELECT id AS lead_id FROM leads", chunk_size=1000) as rows:
            for row in rows:
                print(row["lead_id"])
        ```
    """
    text = check_query(query)
    if chunk_size < 1:
        raise DatabaseTargetError(f"chunk_size must be at least 1, not {chunk_size}")
    connection = engine.connect()
    try:
        streaming = connection.execution_options(
            stream_results=True, yield_per=chunk_size, max_row_buffer=chunk_size, no_parameters=True
        )
        # SQLAlchemy ignores yield_per for textual statements (its buffer would start at 1
        # row and grow): set it on the result
        result = streaming.exec_driver_sql(text).yield_per(chunk_size)
    except SQLAlchemyError as exc:
        connection.close()
        raise DatabaseTargetError(
            f"the input query failed: {first_line(exc, engine.url)}", hint=QUERY_HINT
        ) from None
    except BaseException:
        connection.close()
        raise
    return QueryRows(connection, result)
