"""What every flow does around its pipeline: end as Cancelled (not Crashed) after a Ctrl-C."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

from prefect.states import Cancelled, State

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
