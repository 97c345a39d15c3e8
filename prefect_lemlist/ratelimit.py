"""The per-key request budget: at most `limit` requests in any `window` seconds, as lemlist sees it.

lemlist allows 20 requests per 2 s per API key across every route. The server counts a request
when it *arrives*, which is some time between our send and the response's arrival. So a request
occupies a slot from the moment it is sent until `window` seconds after its response came back
(or it failed). With that rule, for any server-side window holding k of our requests, the last of
them was sent while the other k-1 still occupied slots, so k <= limit whatever the latency and
its jitter.

One `RequestBudget` exists per API key (and base URL) in the process, shared by every client,
task and flow, whatever thread or event loop they run in (`budget_for`). A 429 pauses the whole
budget for `Retry-After` so that every caller backs off together.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect_lemlist.global_limit import GlobalShare

LEMLIST_RATE_LIMIT = 20
LEMLIST_RATE_WINDOW_SECONDS = 2.0
# Added to the window to absorb scheduling noise between our clock and the server's.
SAFETY_MARGIN_SECONDS = 0.05
# How often a waiter re-checks when every slot is held by a request still in flight.
_IN_FLIGHT_POLL_SECONDS = 0.01


class RequestBudget:
    """A sliding-window budget that counts a request from its send until `window` after its end.

    `requests_granted` counts every slot handed out (one per HTTP request sent).

    Thread-safe and event-loop agnostic: waiters sleep with `asyncio.sleep` on their own loop and
    take slots in FIFO order.

    Args:
        limit: requests allowed in any window.
        window_seconds: the window's length.
        margin_seconds: extra time each finished request keeps its slot.
    """

    def __init__(
        self,
        limit: int = LEMLIST_RATE_LIMIT,
        window_seconds: float = LEMLIST_RATE_WINDOW_SECONDS,
        margin_seconds: float = SAFETY_MARGIN_SECONDS,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a request budget needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self._hold = window_seconds + margin_seconds
        self._lock = threading.Lock()
        self._finished: deque[float] = deque()  # monotonic end times, oldest first
        self._in_flight = 0
        self._paused_until = 0.0
        self._tickets = itertools.count()
        self._queue: deque[int] = deque()
        self.requests_granted = 0
        # With a global share (see `global_limit`), capacity is the slots this process holds.
        self._capacity: int | None = None
        self._share: GlobalShare | None = None
        self._spare_since: float | None = None
        self._shed_to: int | None = None  # capacity being given back: no new slots above it

    def _effective_limit(self) -> int:
        if self._capacity is None:
            return self.limit
        if self._shed_to is not None:
            return min(self.limit, self._shed_to)
        return min(self.limit, self._capacity)

    def _purge(self, now: float) -> None:
        while self._finished and self._finished[0] + self._hold <= now:
            self._finished.popleft()

    def _wait_time(self, now: float) -> float:
        """Seconds until a slot may be free (0 when one is free now). Caller holds the lock."""
        if now < self._paused_until:
            return self._paused_until - now
        self._purge(now)
        if self._in_flight + len(self._finished) < self._effective_limit():
            return 0.0
        if self._finished:
            return max(self._finished[0] + self._hold - now, 0.001)
        return _IN_FLIGHT_POLL_SECONDS

    async def acquire(self) -> None:
        """Wait for a slot and take it. Pair every call with exactly one `release()`."""
        ticket = next(self._tickets)
        with self._lock:
            self._queue.append(ticket)
        try:
            while True:
                with self._lock:
                    now = time.monotonic()
                    wait = self._wait_time(now)
                    if wait == 0.0 and self._queue[0] == ticket:
                        self._queue.popleft()
                        self._in_flight += 1
                        self.requests_granted += 1
                        return
                    if wait == 0.0:  # a slot is free but an earlier waiter goes first
                        wait = 0.001
                await asyncio.sleep(wait)
        except BaseException:
            with self._lock:
                if ticket in self._queue:
                    self._queue.remove(ticket)
            raise

    def release(self) -> None:
        """Give back a slot: it stays counted for one more window from now."""
        with self._lock:
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
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + max(seconds, 0.0))

    def tighten(self, limit: int, window_seconds: float) -> None:
        """Lower the limit and/or lengthen the window (never loosen them)."""
        with self._lock:
            margin = self._hold - self.window_seconds
            self.limit = min(self.limit, limit)
            self.window_seconds = max(self.window_seconds, window_seconds)
            self._hold = self.window_seconds + margin

    def share_globally(self, limit_name: str) -> None:
        """Take this budget's capacity from the Prefect global concurrency limit `limit_name`."""
        with self._lock:
            if self._share is not None:
                return
            self._capacity = 0
        self._share = GlobalShare(limit_name, self)

    def capacity_wanted(self) -> int:
        """How many requests wait only because this process holds too few global slots."""
        with self._lock:
            now = time.monotonic()
            if self._capacity is None or self._shed_to is not None:
                return 0
            if not self._queue or now < self._paused_until:
                return 0
            self._purge(now)
            used = self._in_flight + len(self._finished)
            if used < self._capacity or self._capacity >= self.limit:
                return 0
            return min(len(self._queue), self.limit - self._capacity)

    def add_capacity(self, slots: int) -> None:
        """Slots newly held from the global limit."""
        with self._lock:
            self._capacity = (self._capacity or 0) + slots

    def shed(self, slots: int) -> bool:
        """Start giving back `slots` of capacity: no new request may use them from now on.
        Returns whether it started (False: already shedding, or too little capacity)."""
        with self._lock:
            if self._capacity is not None and self._shed_to is None and self._capacity > slots:
                self._shed_to = self._capacity - slots
                return True
            return False

    def keep(self) -> None:
        """Stop giving back the capacity being shed (the process that wanted it was served)."""
        with self._lock:
            self._shed_to = None

    @property
    def shedding(self) -> bool:
        """Whether capacity is being given back (its requests are draining from the window)."""
        return self._shed_to is not None

    def try_remove_capacity(self, slots: int | None) -> bool:
        """Give up `slots` of capacity if no request waits and the requests still counted in
        the window fit in what remains, and that has been so for a while (so that a short lull
        does not give away slots that are needed again at once). `None`: give up all of it
        now, if nothing is counted in the window any more. Returns whether it did."""
        with self._lock:
            if self._capacity is None:
                return False
            now = time.monotonic()
            self._purge(now)
            used = self._in_flight + len(self._finished)
            if slots is None:
                if used or self._queue:
                    return False
                self._capacity, self._shed_to = 0, None
                return True
            if self._shed_to is not None:  # shedding: only the window has to drain
                if used > self._shed_to:
                    return False
                self._capacity, self._shed_to = self._shed_to, None
                return True
            if self._queue or slots <= 0 or used > self._capacity - slots:
                self._spare_since = None
                return False
            if self._spare_since is None:
                self._spare_since = now
            # Spare for long enough: half a window for a chunk above the last one (every chunk
            # still spare then goes back at once); two windows for the last one, since giving it
            # back makes this process's next request wait for slots from another process.
            spare_for = self.window_seconds * (2.0 if self._capacity <= slots else 0.5)
            if now - self._spare_since < spare_for:
                return False
            self._capacity -= slots
            return True

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight


_registry: dict[str, RequestBudget] = {}
_registry_lock = threading.Lock()


def budget_for(
    key_fingerprint: str,
    limit: int = LEMLIST_RATE_LIMIT,
    window_seconds: float = LEMLIST_RATE_WINDOW_SECONDS,
    global_rate_limit: str | None = None,
) -> RequestBudget:
    """The process-wide budget of one API key (by fingerprint, never by the key itself).

    Every client of the same key shares it. When callers ask for different limits, the budget
    keeps the strictest (smallest limit, longest window) so none of them can overrun lemlist.

    Args:
        key_fingerprint: `credentials_fingerprint(...)` of the key and base URL.
        limit: requests allowed per window for this key.
        window_seconds: the window's length.
        global_rate_limit: a Prefect global concurrency limit to share the budget with other
            processes (see `prefect_lemlist.global_limit`).

    Returns:
        The same `RequestBudget` object for every caller with the same fingerprint.
    """
    with _registry_lock:
        budget = _registry.get(key_fingerprint)
        if budget is None:
            budget = _registry[key_fingerprint] = RequestBudget(limit, window_seconds)
        elif limit < budget.limit or window_seconds > budget.window_seconds:
            budget.tighten(limit, window_seconds)
    if global_rate_limit:
        budget.share_globally(global_rate_limit)
    return budget
