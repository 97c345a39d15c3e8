"""The per-key request budget: at most `limit` requests in any `window` seconds, as lemlist sees it.

How many of the key's slots this process may use comes from a `Capacity`: all of them
(`FixedCapacity`), or the share it holds of a Prefect global concurrency limit
(`prefect_leases.LeasedCapacity`). The accounting rule is in `docs/architecture.md`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

LEMLIST_RATE_LIMIT = 20
LEMLIST_RATE_WINDOW_SECONDS = 2.0
# Added to the window to absorb scheduling noise between our clock and the server's.
SAFETY_MARGIN_SECONDS = 0.05
# How often a waiter re-checks when every slot is held by a request still in flight.
_IN_FLIGHT_POLL_SECONDS = 0.01


class Capacity(Protocol):
    """How many of a key's slots this process may use: the protocol `RequestBudget` reads."""

    def bind(self, budget: RequestBudget) -> None:
        """Called once by the budget that uses this capacity."""

    def slots(self, limit: int) -> int:
        """Slots this process may use now, at most `limit` (called with the budget's lock)."""

    def demand(self) -> None:
        """A request wants a slot (called without the lock; may start background work)."""

    def close(self) -> None:
        """Give back whatever is held; stop background work."""


class FixedCapacity:
    """The whole limit, always: the process is the key's only user."""

    def bind(self, budget: RequestBudget) -> None:
        """Nothing to remember."""

    def slots(self, limit: int) -> int:
        """All of them."""
        return limit

    def demand(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to give back."""


class RequestBudget:
    """A sliding-window budget that counts a request from its send until `window` after its end.

    Thread-safe and event-loop agnostic: waiters sleep with `asyncio.sleep` on their own loop and
    take slots in FIFO order.

    Args:
        limit: requests allowed in any window.
        window_seconds: the window's length.
        margin_seconds: extra time each finished request keeps its slot.
        capacity: the share of `limit` this process may use (default: all of it).

    Attributes:
        requests_granted: slots handed out since the budget was made (every key user of the
            process; a run counts its own requests on its client).
        lock: guards the window; a `Capacity` takes it to read the window consistently.
    """

    def __init__(
        self,
        limit: int = LEMLIST_RATE_LIMIT,
        window_seconds: float = LEMLIST_RATE_WINDOW_SECONDS,
        margin_seconds: float = SAFETY_MARGIN_SECONDS,
        capacity: Capacity | None = None,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a request budget needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self._hold = window_seconds + margin_seconds
        self.lock = threading.RLock()
        self._finished: deque[float] = deque()  # monotonic end times, oldest first
        self._in_flight = 0
        self._paused_until = 0.0
        self._tickets = itertools.count()
        self._queue: deque[int] = deque()
        self.requests_granted = 0
        self.capacity: Capacity = FixedCapacity()
        self.use_capacity(capacity or FixedCapacity())

    def use_capacity(self, capacity: Capacity) -> None:
        """Take this process's share of the limit from `capacity` from now on."""
        with self.lock:
            self.capacity = capacity
            capacity.bind(self)

    # ------------------------------------------------------------------ window (lock held)

    def counted(self, now: float) -> int:
        """Requests in flight or still in their window (call with `lock` held)."""
        while self._finished and self._finished[0] + self._hold <= now:
            self._finished.popleft()
        return self._in_flight + len(self._finished)

    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._queue)

    def paused(self, now: float) -> bool:
        """Whether a 429 pause is running."""
        return now < self._paused_until

    def _wait_time(self, now: float) -> float:
        """Seconds until a slot may be free (0 when one is free now). Caller holds the lock."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.counted(now) < self.capacity.slots(self.limit):
            return 0.0
        if self._finished:
            return max(self._finished[0] + self._hold - now, 0.001)
        return _IN_FLIGHT_POLL_SECONDS

    # ------------------------------------------------------------------ slots

    async def acquire(self) -> None:
        """Wait for a slot and take it. Pair every call with exactly one `release()`."""
        ticket = next(self._tickets)
        with self.lock:
            self._queue.append(ticket)
        self.capacity.demand()
        try:
            while True:
                with self.lock:
                    wait = self._wait_time(time.monotonic())
                    if wait == 0.0 and self._queue[0] == ticket:
                        self._queue.popleft()
                        self._in_flight += 1
                        self.requests_granted += 1
                        return
                    if wait == 0.0:  # a slot is free but an earlier waiter goes first
                        wait = 0.001
                await asyncio.sleep(wait)
        except BaseException:
            with self.lock:
                if ticket in self._queue:
                    self._queue.remove(ticket)
            raise

    def release(self) -> None:
        """Give back a slot: it stays counted for one more window from now."""
        with self.lock:
            self._in_flight -= 1
            self._finished.append(time.monotonic())

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of a request: `async with budget.slot(): send()`."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def pause(self, seconds: float) -> None:
        """Stop handing out slots for `seconds` (after a 429), for every caller of this key."""
        with self.lock:
            self._paused_until = max(self._paused_until, time.monotonic() + max(seconds, 0.0))

    def tighten(self, limit: int, window_seconds: float) -> None:
        """Lower the limit and/or lengthen the window (never loosen them)."""
        with self.lock:
            margin = self._hold - self.window_seconds
            self.limit = min(self.limit, limit)
            self.window_seconds = max(self.window_seconds, window_seconds)
            self._hold = self.window_seconds + margin

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight
