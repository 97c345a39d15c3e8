"""What every flow does around its pipeline: end as Cancelled (not Crashed) after a Ctrl-C."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

from prefect.blocks.core import Block
from prefect.states import Cancelled, State

from prefect_lemlist.pipeline.inputs import Table, read_sql
from prefect_lemlist.pipeline.worklist import Source

T = TypeVar("T")

INTERRUPTED = (
    "Interrupted: re-run the same command to resume (nothing already started is started again)"
)
CANCEL_IS_INTERRUPT: ContextVar[bool] = ContextVar("lemlist_cancel_is_interrupt", default=False)
"""Set by the CLI: there, the only thing that cancels a flow run is Ctrl-C. Elsewhere (a
timeout or a task group in a user's code) a cancellation stays a cancellation."""


async def interruptible(work: Awaitable[T]) -> T | State:
    """Await the flow's work; under the CLI, a Ctrl-C ends the run `Cancelled` with a hint."""
    try:
        return await work
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not CANCEL_IS_INTERRUPT.get() or task is None:
            raise
        if sys.version_info >= (3, 11):  # 3.10 has no cancellation count to undo
            task.uncancel()
        return Cancelled(message=INTERRUPTED)


async def sql_input(
    query: str, source: str | Block | None, destination: str | Block | None
) -> tuple[Table, Source]:
    """The rows of a SQL query (streamed, in a worker thread) and their `Source`.

    Args:
        query: the `select …`.
        source: the database to read (a SQLAlchemy URL, a `SqlAlchemyConnector` block or its
            name); None reads the destination database.
        destination: the run's destination database (`options.destination.target`).

    Raises:
        ValueError: no database to read.
        DatabaseTargetError: the database cannot be reached or the query fails.
    """
    from prefect_lemlist.sql import describe_target  # SQLAlchemy only when asked

    database = source if source is not None else destination
    if database is None:
        raise ValueError(
            "sql_query needs a database: give sql_source (a SQLAlchemy URL or a "
            "SqlAlchemyConnector block) or options.destination.target"
        )
    table = await asyncio.to_thread(read_sql, database, query)
    label = f"query on {describe_target(database)} ({len(table.rows)} rows)"
    return table, Source(label, "sql-query")
