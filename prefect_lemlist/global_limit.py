"""Opt-in sharing of one API key's budget across processes, through a Prefect global concurrency
limit (GCL).

The in-process `RequestBudget` cannot see other processes using the same key (parallel flow runs,
a worker with concurrency > 1). With a GCL name on the credentials block, the budget's capacity is
no longer a fixed 20: it is the number of slots this process holds of a GCL whose limit is 20
(lemlist's requests per window). Slots are taken in chunks (5) as leases, as many as the waiting
requests need and are free, and given back when they are no longer used: a chunk is released only
when the requests still counted in the 2 s window fit in the capacity left, so the slots another
process then takes are clean. Since every process keeps its own requests within the slots it
holds, with the same send-to-response-plus-window accounting, lemlist never sees more than 20 in
any window in total, and one busy process can use the whole budget while the others are idle.

Fairness without churn. A process that wants slots while it holds none (starved) holds one slot of
a companion limit, `<name>-waiting`. Then every process holding more than one chunk starts giving
one back (it stops using it and releases it once its requests have left the window), and the
others keep theirs as soon as the starved process has been served; while a process is starved,
processes that already hold slots take no free ones. A process that holds at least one chunk does
not count as starved, so a busy set of processes settles (e.g. 10/5/5 slots for three) instead of
passing chunks around: every hand-over leaves slots idle for a moment. Spare chunks go back after
half a window without use, the last one after two windows without any request (giving it back
makes the next request wait for slots from another process). With more processes than chunks (4),
the extra ones wait until another one's demand drops.

Why not a limit with slot decay: a decaying limit lets `limit + 2 x decay` through in 2 s, so it
must be sized like limit 1 / decay 9 per second, and then every request is one acquisition call to
the Prefect API (measured budget use 0.55-0.62 on a SQLite server, benchmarks/RESULTS.md §5);
decay also counts from the acquisition, not from lemlist's answer, so latency would need extra
margin. Here the limit has no decay: slots change hands only when shares change, and each process
applies the same send-to-response-plus-window rule inside the slots it holds.

A process that dies keeps its slots until their lease expires (60 s); a clean exit gives them back
after the last window has passed.

Create the limit once per key:

    python -m prefect_lemlist.global_limit lemlist-main
    # or: prefect gcl create lemlist-main --limit 20
    #     prefect gcl create lemlist-main-waiting --limit 1000
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextvars
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import concurrency
from prefect.context import SettingsContext
from prefect.exceptions import ObjectNotFound

if TYPE_CHECKING:
    from prefect_lemlist.ratelimit import RequestBudget

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


class GlobalShare:
    """Holds this process's share of a key's budget as leased slots of a global concurrency limit.

    A daemon thread with its own event loop acquires and releases chunks of slots, asked by the
    `RequestBudget` it serves (which stays the single place that decides when a request may go).

    Args:
        name: the GCL's name.
        budget: the budget whose capacity these slots are.
        chunk: slots taken or given back at a time.
    """

    def __init__(self, name: str, budget: RequestBudget, chunk: int = CHUNK) -> None:
        self.name = name
        self.chunk = chunk
        self._budget = budget
        self.waiting_name = waiting_limit_name(name)
        self._releases: list[asyncio.Event] = []
        self._holders: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._without_waiting_limit = False
        self.error: BaseException | None = None
        # The thread gets the caller's Prefect settings (API URL) and nothing else: copying the
        # whole context would tie the leases to the current task run, and Prefect releases a task
        # run's leases when it ends, while this process still counts on them.
        self._settings = SettingsContext.get()
        self._thread = threading.Thread(
            target=contextvars.Context().run,
            args=(self._run,),
            name=f"lemlist-gcl-{name}",
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
        waiting: asyncio.Event | None = None  # our lease on the "waiting" limit, while starved
        next_grow = next_fairness_check = 0.0
        try:
            await self._waiting_processes()  # warns once if the companion limit is missing
        except Exception as exc:  # API down: the loop below reports and retries
            self.error = exc
        while not self._stopping:
            try:
                now = time.monotonic()
                wanted = self._budget.capacity_wanted()
                if wanted and now >= next_grow:
                    if not await self._grow(wanted) and self._releases:
                        next_grow = now + _GROW_BACKOFF_SECONDS
                starved = bool(wanted) and not self._releases
                if starved and waiting is None and not self._without_waiting_limit:
                    waiting = await self._lease(self.waiting_name, 1)
                    if waiting is not None:
                        logger.debug("t=%.3f %s: starved, waiting", time.monotonic(), self.name)
                elif not starved and waiting is not None:
                    waiting.set()
                    waiting = None
                if len(self._releases) > 1 and now >= next_fairness_check:
                    # Another process holds no slot at all: give back one chunk (once our
                    # requests in the window fit in what is left), so nobody waits for a run.
                    # Several holders may start shedding for the same process: the others
                    # keep their chunk once it has been served.
                    starved_elsewhere = await self._waiting_processes() - (waiting is not None)
                    if starved_elsewhere <= 0 and self._budget.shedding:
                        self._budget.keep()
                        logger.debug("t=%.3f %s: keeping the chunk", time.monotonic(), self.name)
                    elif starved_elsewhere > 0 and self._budget.shed(self.chunk):
                        logger.debug("t=%.3f %s: shedding a chunk", time.monotonic(), self.name)
                    next_fairness_check = now + (
                        _SHEDDING_CHECK_SECONDS
                        if self._budget.shedding
                        else _FAIRNESS_CHECK_SECONDS
                    )
                while self._releases and self._budget.try_remove_capacity(self.chunk):
                    self._releases.pop().set()
                    logger.debug(
                        "t=%.3f %s: gave back %d slots, holding %d",
                        time.monotonic(),
                        self.name,
                        self.chunk,
                        self.chunk * len(self._releases),
                    )
            except Exception as exc:  # API down, limit deleted: report, keep trying
                self.error = exc
                logger.warning("global rate limit %r: %s", self.name, exc)
                await asyncio.sleep(1.0)
            await asyncio.sleep(_TICK_SECONDS)
        for event in [*self._releases, *([waiting] if waiting else [])]:
            event.set()
        await asyncio.sleep(0.5)  # let the holders hand their leases back

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
        self._budget.add_capacity(self.chunk * len(taken))
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
                "`python -m prefect_lemlist.global_limit %s`",
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
        while time.monotonic() < deadline and not self._budget.try_remove_capacity(None):
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


def main(argv: list[str] | None = None) -> int:
    """`python -m prefect_lemlist.global_limit NAME [--limit 20]`."""
    parser = argparse.ArgumentParser(description="Create the shared limit of a lemlist key.")
    parser.add_argument("name")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    args = parser.parse_args(argv)
    try:
        asyncio.run(ensure_global_rate_limit(args.name, limit=args.limit))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Global concurrency limit {args.name!r}: {args.limit} slots.")
    print(f"Set global_rate_limit={args.name!r} on the LemlistCredentials block to use it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
