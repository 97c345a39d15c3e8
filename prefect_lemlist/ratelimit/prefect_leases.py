"""Sharing one API key's budget between processes: a capacity leased from a Prefect global
concurrency limit (GCL).

`LeasedCapacity` is the `Capacity` of a `RequestBudget` whose key is used by several processes:
the slots this process may use are the slots it holds, as leases, of a GCL whose limit is the
key's 20. A `LeaseKeeper` (a daemon thread with its own event loop, started by the first request
that waits) takes and gives back chunks of slots. The protocol and its fairness rules are in
`docs/architecture.md` ("Several processes, one key").

Create the limit once per key: `prefect-lemlist global-limit NAME` (or `prefect gcl create NAME
--limit 20` and `prefect gcl create NAME-waiting --limit 1000`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import threading
import time
from typing import TYPE_CHECKING

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import concurrency
from prefect.context import SettingsContext
from prefect.exceptions import ObjectNotFound

if TYPE_CHECKING:
    from prefect_lemlist.ratelimit.budget import RequestBudget

logger = logging.getLogger("prefect_lemlist.global_limit")

DEFAULT_LIMIT = 20
CHUNK = 5
LEASE_SECONDS = 60.0
_TICK_SECONDS = 0.05
# One attempt to take slots (no retry on 423) may still hang on a slow API: bound it.
_ACQUIRE_TIMEOUT_SECONDS = 10.0
# After a failed attempt to take more slots, a process that holds some waits this long before
# reading the limit again (one that holds none tries at every tick).
_GROW_BACKOFF_SECONDS = 0.2
_FAIRNESS_CHECK_SECONDS = 1.0
_SHEDDING_CHECK_SECONDS = 0.2
WAITING_LIMIT_SLOTS = 1000


def waiting_limit_name(name: str) -> str:
    """The companion limit where starved processes hold one slot each, so holders can yield."""
    return f"{name}-waiting"


class LeasedCapacity:
    """The slots of a key's budget this process holds from the global limit `name`.

    Args:
        name: the GCL's name.
        chunk: slots taken or given back at a time.
        autostart: start the `LeaseKeeper` at the first request (off in unit tests, which drive
            the capacity by hand).
    """

    def __init__(self, name: str, chunk: int = CHUNK, *, autostart: bool = True) -> None:
        self.name = name
        self.chunk = chunk
        self._autostart = autostart
        self._budget: RequestBudget | None = None
        self._held = 0
        self._shed_to: int | None = None  # capacity being given back: no new slots above it
        self._spare_since: float | None = None
        self._keeper: LeaseKeeper | None = None
        self._start_lock = threading.Lock()

    @property
    def budget(self) -> RequestBudget:
        """The budget this capacity serves."""
        if self._budget is None:
            raise RuntimeError("the capacity is not bound to a budget")
        return self._budget

    def bind(self, budget: RequestBudget) -> None:
        """Serve `budget` (its lock guards this capacity's state too)."""
        self._budget = budget

    def slots(self, limit: int) -> int:
        """The slots held (or kept while giving some back), at most `limit`."""
        return min(limit, self._held if self._shed_to is None else self._shed_to)

    def demand(self) -> None:
        """Start the lease keeper at the first request."""
        if self._keeper is not None or not self._autostart:
            return
        with self._start_lock:
            if self._keeper is None:
                self._keeper = LeaseKeeper(self)

    @property
    def held(self) -> int:
        """Slots held from the global limit."""
        return self._held

    def wanted(self) -> int:
        """How many requests wait only because this process holds too few global slots."""
        budget = self.budget
        with budget.lock:
            now = time.monotonic()
            if self._shed_to is not None or not budget.queued() or budget.paused(now):
                return 0
            if budget.counted(now) < self._held or self._held >= budget.limit:
                return 0
            return min(budget.queued(), budget.limit - self._held)

    def add(self, slots: int) -> None:
        """Slots newly held from the global limit."""
        with self.budget.lock:
            self._held += slots

    def shed(self, slots: int) -> bool:
        """Start giving back `slots`: no new request may use them from now on.

        Returns:
            Whether it started (False: already shedding, or too little held).
        """
        with self.budget.lock:
            if self._shed_to is None and self._held > slots:
                self._shed_to = self._held - slots
                return True
            return False

    def keep(self) -> None:
        """Stop giving back the slots being shed (the process that wanted them was served)."""
        with self.budget.lock:
            self._shed_to = None

    @property
    def shedding(self) -> bool:
        """Whether slots are being given back (their requests are draining from the window)."""
        return self._shed_to is not None

    def try_give_back(self, slots: int | None) -> bool:
        """Give up `slots` if no request waits and the requests still counted in the window fit
        in what remains, and that has been so for a while (so that a short lull does not give
        away slots that are needed again at once). `None`: give up all of it now, if nothing is
        counted in the window any more.

        Returns:
            Whether it did.
        """
        budget = self.budget
        with budget.lock:
            now = time.monotonic()
            used = budget.counted(now)
            if slots is None:
                if used or budget.queued():
                    return False
                self._held, self._shed_to = 0, None
                return True
            if self._shed_to is not None:  # shedding: only the window has to drain
                if used > self._shed_to:
                    return False
                self._held, self._shed_to = self._shed_to, None
                return True
            return self._give_back_spare(slots, used, now)

    def _give_back_spare(self, slots: int, used: int, now: float) -> bool:
        """Give back `slots` unused for long enough (caller holds the budget's lock)."""
        budget = self.budget
        if budget.queued() or slots <= 0 or used > self._held - slots:
            self._spare_since = None
            return False
        if self._spare_since is None:
            self._spare_since = now
        # Spare for long enough: half a window for a chunk above the last one (every chunk
        # still spare then goes back at once); two windows for the last one, since giving it
        # back makes this process's next request wait for slots from another process.
        spare_for = budget.window_seconds * (2.0 if self._held <= slots else 0.5)
        if now - self._spare_since < spare_for:
            return False
        self._held -= slots
        return True

    def close(self) -> None:
        """Give every slot back once the last requests have left the window; stop the keeper."""
        if self._keeper is not None:
            self._keeper.close()


class LeaseKeeper:
    """Takes and gives back the leases of a `LeasedCapacity`, in a daemon thread with its own
    event loop (started by the capacity at its first request).

    Args:
        capacity: the capacity whose slots these leases are.
    """

    def __init__(self, capacity: LeasedCapacity) -> None:
        self.name = capacity.name
        self.chunk = capacity.chunk
        self._capacity = capacity
        self._budget = capacity.budget
        self.waiting_name = waiting_limit_name(self.name)
        self._releases: list[asyncio.Event] = []
        self._holders: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._without_waiting_limit = False
        self._waiting: asyncio.Event | None = None
        self._next_grow = self._next_fairness_check = 0.0
        self.error: BaseException | None = None
        # The thread gets the caller's Prefect settings (API URL) and nothing else: copying the
        # whole context would tie the leases to the current task run, and Prefect releases a task
        # run's leases when it ends, while this process still counts on them.
        self._settings = SettingsContext.get()
        self._thread = threading.Thread(
            target=contextvars.Context().run,
            args=(self._run,),
            name=f"lemlist-gcl-{self.name}",
            daemon=True,
        )
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        settings = self._settings
        if settings is None:
            asyncio.run(self._keep())
            return
        with SettingsContext(profile=settings.profile, settings=settings.settings):
            asyncio.run(self._keep())

    async def _keep(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._waiting_processes()  # warns once if the companion limit is missing
        except Exception as exc:  # API down: the loop below reports and retries
            self.error = exc
        while not self._stopping:
            try:
                await self._tick(time.monotonic())
            except Exception as exc:  # API down, limit deleted: report, keep trying
                self.error = exc
                logger.warning("global rate limit %r: %s", self.name, exc)
                await asyncio.sleep(1.0)
            await asyncio.sleep(_TICK_SECONDS)
        for event in [*self._releases, *([self._waiting] if self._waiting else [])]:
            event.set()
        await asyncio.sleep(0.5)  # let the holders hand their leases back

    async def _tick(self, now: float) -> None:
        """One round: grow when requests wait, say when starved, be fair, give spare back."""
        wanted = self._capacity.wanted()
        if wanted and now >= self._next_grow:
            if not await self._grow(wanted) and self._releases:
                self._next_grow = now + _GROW_BACKOFF_SECONDS
        await self._signal_starved(bool(wanted) and not self._releases)
        if len(self._releases) > 1 and now >= self._next_fairness_check:
            await self._share_with_starved(now)
        while self._releases and self._capacity.try_give_back(self.chunk):
            self._releases.pop().set()
            logger.debug(
                "t=%.3f %s: gave back %d slots, holding %d",
                time.monotonic(),
                self.name,
                self.chunk,
                self.chunk * len(self._releases),
            )

    async def _signal_starved(self, starved: bool) -> None:
        """Hold one slot of the companion limit while this process holds none and wants some."""
        if starved and self._waiting is None and not self._without_waiting_limit:
            self._waiting = await self._lease(self.waiting_name, 1)
            if self._waiting is not None:
                logger.debug("t=%.3f %s: starved, waiting", time.monotonic(), self.name)
        elif not starved and self._waiting is not None:
            self._waiting.set()
            self._waiting = None

    async def _share_with_starved(self, now: float) -> None:
        """Another process holds no slot at all: give back one chunk (once our requests in the
        window fit in what is left), so nobody waits for a run. Several holders may start
        shedding for the same process: the others keep their chunk once it has been served."""
        starved_elsewhere = await self._waiting_processes() - (self._waiting is not None)
        if starved_elsewhere <= 0 and self._capacity.shedding:
            self._capacity.keep()
            logger.debug("t=%.3f %s: keeping the chunk", time.monotonic(), self.name)
        elif starved_elsewhere > 0 and self._capacity.shed(self.chunk):
            logger.debug("t=%.3f %s: shedding a chunk", time.monotonic(), self.name)
        self._next_fairness_check = now + (
            _SHEDDING_CHECK_SECONDS if self._capacity.shedding else _FAIRNESS_CHECK_SECONDS
        )

    async def _grow(self, wanted: int) -> int:
        """Take as many free chunks as `wanted` requests need; returns how many were taken."""
        held = len(self._releases)
        room = self._budget.limit // self.chunk - held
        if held and await self._waiting_processes() > 0:
            return 0  # free slots go to the processes that hold none
        free_chunks = await self._free_slots() // self.chunk
        chunks = min(-(-wanted // self.chunk), free_chunks, room)
        if chunks <= 0:
            return 0
        leases = await asyncio.gather(*(self._lease(self.name, self.chunk) for _ in range(chunks)))
        taken = [release for release in leases if release is not None]
        self._releases.extend(taken)
        if not taken:
            return 0
        self._capacity.add(self.chunk * len(taken))
        logger.debug(
            "t=%.3f %s: took %d slots, holding %d",
            time.monotonic(),
            self.name,
            self.chunk * len(taken),
            self.chunk * len(self._releases),
        )
        return len(taken)

    async def _free_slots(self) -> int:
        """Slots of the limit nobody holds (a read: cheaper for the server than a refused
        acquisition, which it records)."""
        async with get_client() as client:
            limit = await client.read_global_concurrency_limit_by_name(self.name)
        return limit.limit - limit.active_slots

    async def _waiting_processes(self) -> int:
        """Processes starved of slots (0 when the companion limit does not exist: then nobody
        can say it waits, and the fairness rules are off; one warning says so)."""
        if self._without_waiting_limit:
            return 0
        try:
            async with get_client() as client:
                limit = await client.read_global_concurrency_limit_by_name(self.waiting_name)
        except ObjectNotFound:
            self._without_waiting_limit = True
            logger.warning(
                "global rate limit %r: the companion limit %r does not exist, so processes "
                "without slots cannot ask others to give some back; create both with "
                "`prefect-lemlist global-limit %s`",
                self.name,
                self.waiting_name,
                self.name,
            )
            return 0
        return limit.active_slots

    async def _lease(self, name: str, slots: int) -> asyncio.Event | None:
        """Take `slots` of limit `name` as a lease held until the returned event is set;
        None when they are not free now (one attempt: the caller decides when to try again)."""
        acquired: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        release = asyncio.Event()

        async def hold() -> None:
            try:
                async with concurrency(
                    name,
                    occupy=slots,
                    max_retries=0,
                    timeout_seconds=_ACQUIRE_TIMEOUT_SECONDS,
                    lease_duration=LEASE_SECONDS,
                    strict=True,
                ):
                    acquired.set_result(True)
                    await release.wait()
            except Exception as exc:  # taken by another process, missing limit, API down
                if not _is_locked(exc):
                    self.error = exc
                    logger.warning("global rate limit %r: %s", name, exc)
                if not acquired.done():
                    acquired.set_result(False)

        self._holders.add(asyncio.get_running_loop().create_task(hold()))
        return release if await acquired else None

    def close(self) -> None:
        """Give every slot back once the last requests have left the window; stop the thread."""
        if self._stopping:
            return
        deadline = time.monotonic() + self._budget.window_seconds + 1.0
        while time.monotonic() < deadline and not self._capacity.try_give_back(None):
            time.sleep(0.05)
        self._stopping = True
        self._thread.join(5.0)


def _is_locked(exc: BaseException) -> bool:
    """Whether an acquisition failed only because the slots are held (HTTP 423 Locked; Prefect
    wraps the HTTP error in a `ConcurrencySlotAcquisitionError`)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423


async def ensure_global_rate_limit(name: str, *, limit: int = DEFAULT_LIMIT) -> None:
    """Create (or update) the global concurrency limit shared by every process using one key,
    and its companion `<name>-waiting` limit (where starved processes signal that they wait).

    Args:
        name: the limit's name, also set as `global_rate_limit` on the credentials block.
        limit: lemlist's requests per window for the key (20).

    Raises:
        ValueError: a limit below one chunk of slots.
    """
    if limit < CHUNK:
        raise ValueError(f"the limit must be at least {CHUNK} (slots are taken {CHUNK} at a time)")
    async with get_client() as client:
        await client.upsert_global_concurrency_limit_by_name(name, limit=limit)
        await client.upsert_global_concurrency_limit_by_name(
            waiting_limit_name(name), limit=WAITING_LIMIT_SLOTS
        )
