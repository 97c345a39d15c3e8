"""Tests of the per-key `RequestBudget`: the sliding window, pauses, cancellation, the registry."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from prefect_lemlist.ratelimit import FixedCapacity, LeasedCapacity, RequestBudget, budget_for

# Generous upper bound on any single wait below, so a broken budget fails instead of hanging.
HANG_GUARD_SECONDS = 10.0


def max_in_window(times: list[float], window: float) -> int:
    """The most entries of `times` that fall in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_max_in_window_helper():
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.1, 0.2, 1.0, 1.05], 0.5) == 3
    assert max_in_window([0.0, 0.5, 1.0], 0.5) == 1
    assert max_in_window([0.0] * 7, 0.5) == 7


async def test_concurrent_requests_never_exceed_limit_per_window():
    limit, window = 5, 0.5
    budget = RequestBudget(limit=limit, window_seconds=window)
    rng = random.Random(1234)
    latencies = [rng.uniform(0.0, 0.05) for _ in range(60)]
    arrivals: list[float] = []

    async def server(latency: float) -> None:
        arrivals.append(time.monotonic())  # when the "server" counts the request
        await asyncio.sleep(latency)

    async def request(index: int) -> int:
        async with budget.slot():
            await server(latencies[index])
        return index

    done = await asyncio.wait_for(asyncio.gather(*(request(i) for i in range(60))), timeout=30.0)
    assert sorted(done) == list(range(60))
    assert len(arrivals) == 60
    assert max_in_window(arrivals, window) <= limit
    assert budget.in_flight == 0


async def test_slots_are_released_when_the_request_fails():
    budget = RequestBudget(limit=2, window_seconds=0.05)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            async with budget.slot():
                raise RuntimeError("request failed")
    assert budget.in_flight == 0
    await asyncio.wait_for(budget.acquire(), timeout=HANG_GUARD_SECONDS)
    budget.release()


async def test_pause_delays_the_next_acquisition_until_it_ends():
    budget = RequestBudget(limit=10, window_seconds=0.1)
    async with budget.slot():
        pass  # the budget works before the pause
    before_pause = time.monotonic()
    budget.pause(0.3)
    await asyncio.wait_for(budget.acquire(), timeout=HANG_GUARD_SECONDS)
    acquired_at = time.monotonic()
    budget.release()
    assert acquired_at >= before_pause + 0.3


async def test_shorter_pause_does_not_cut_a_longer_one():
    budget = RequestBudget(limit=10, window_seconds=0.1)
    before_pause = time.monotonic()
    budget.pause(0.4)
    budget.pause(0.05)
    budget.pause(-5)
    await asyncio.wait_for(budget.acquire(), timeout=HANG_GUARD_SECONDS)
    acquired_at = time.monotonic()
    budget.release()
    assert acquired_at >= before_pause + 0.4


async def test_pause_holds_back_waiters_already_queued():
    budget = RequestBudget(limit=10, window_seconds=0.1)
    events: list[tuple[str, float]] = []

    async def waiter(name: str) -> None:
        async with budget.slot():
            events.append((name, time.monotonic()))

    pause_started = time.monotonic()
    budget.pause(0.3)
    await asyncio.wait_for(
        asyncio.gather(waiter("a"), waiter("b"), waiter("c")), timeout=HANG_GUARD_SECONDS
    )
    assert [name for name, _ in events] == ["a", "b", "c"]  # FIFO
    assert all(moment >= pause_started + 0.3 for _, moment in events)


async def test_cancelled_waiter_does_not_block_the_others():
    budget = RequestBudget(limit=1, window_seconds=0.1)
    order: list[str] = []
    await budget.acquire()  # hold the only slot so everyone below has to wait

    async def waiter(name: str) -> None:
        async with budget.slot():
            order.append(name)

    first = asyncio.create_task(waiter("first"))
    await asyncio.sleep(0.02)  # let "first" take the head of the queue
    others = [asyncio.create_task(waiter(name)) for name in ("second", "third")]
    await asyncio.sleep(0.02)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    budget.release()
    await asyncio.wait_for(asyncio.gather(*others), timeout=HANG_GUARD_SECONDS)
    assert order == ["second", "third"]
    assert budget.in_flight == 0
    # The budget still hands out slots afterwards.
    await asyncio.wait_for(budget.acquire(), timeout=HANG_GUARD_SECONDS)
    budget.release()


async def test_cancelled_head_waiter_with_free_slot_does_not_block():
    budget = RequestBudget(limit=2, window_seconds=0.1)
    budget.pause(0.1)
    head = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.01)
    tail = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.01)
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head
    await asyncio.wait_for(tail, timeout=HANG_GUARD_SECONDS)
    assert budget.in_flight == 1
    budget.release()


def test_invalid_budget_arguments():
    with pytest.raises(ValueError):
        RequestBudget(limit=0)
    with pytest.raises(ValueError):
        RequestBudget(window_seconds=0)


def test_budget_for_returns_the_same_object_per_fingerprint():
    fingerprint = f"fp-{uuid.uuid4().hex}"
    first = budget_for(fingerprint, 20, 2.0)
    assert budget_for(fingerprint, 20, 2.0) is first
    assert budget_for(f"fp-{uuid.uuid4().hex}", 20, 2.0) is not first


def test_budget_for_keeps_the_stricter_limit():
    fingerprint = f"fp-{uuid.uuid4().hex}"
    budget = budget_for(fingerprint, 20, 2.0)
    assert budget_for(fingerprint, 10, 1.0) is budget
    assert (budget.limit, budget.window_seconds) == (10, 2.0)
    assert budget_for(fingerprint, 30, 5.0) is budget
    assert (budget.limit, budget.window_seconds) == (10, 5.0)
    assert budget_for(fingerprint, 50, 0.5) is budget
    assert (budget.limit, budget.window_seconds) == (10, 5.0)


async def test_tightened_budget_enforces_the_new_limit():
    fingerprint = f"fp-{uuid.uuid4().hex}"
    budget = budget_for(fingerprint, 3, 0.3)
    budget_for(fingerprint, 2, 0.3)
    arrivals: list[float] = []

    async def request() -> None:
        async with budget.slot():
            arrivals.append(time.monotonic())

    await asyncio.wait_for(
        asyncio.gather(*(request() for _ in range(6))), timeout=HANG_GUARD_SECONDS
    )
    assert len(arrivals) == 6
    assert max_in_window(arrivals, 0.3) <= 2


# --- capacity held from a global limit (the protocol `LeaseKeeper` drives) ----------------------


def leased_budget(window: float = 0.2, **kwargs) -> tuple[RequestBudget, LeasedCapacity]:
    """A budget whose capacity is leased, driven by hand (no keeper thread, no Prefect API)."""
    capacity = LeasedCapacity("unit-test", autostart=False)
    return RequestBudget(limit=20, window_seconds=window, capacity=capacity, **kwargs), capacity


def test_a_budget_uses_the_whole_limit_by_default_and_the_lease_only_when_shared():
    assert isinstance(RequestBudget().capacity, FixedCapacity)
    fingerprint = f"fp-{uuid.uuid4().hex}"
    plain = budget_for(fingerprint, 20, 2.0)
    assert isinstance(plain.capacity, FixedCapacity)
    shared = budget_for(fingerprint, 20, 2.0, global_rate_limit="lemlist-unit")
    assert shared is plain and isinstance(shared.capacity, LeasedCapacity)
    assert shared.capacity._keeper is None  # nothing started before the first request


async def test_requests_wait_for_capacity_and_report_what_they_want():
    budget, capacity = leased_budget(margin_seconds=0.0)  # shared, holding nothing yet
    waiters = [asyncio.create_task(budget.acquire()) for _ in range(7)]
    await asyncio.sleep(0.05)
    assert budget.requests_granted == 0
    assert capacity.wanted() == 7
    capacity.add(5)
    await asyncio.sleep(0.05)
    assert budget.requests_granted == 5
    assert capacity.wanted() == 2  # the two still queued
    capacity.add(5)
    await asyncio.wait_for(asyncio.gather(*waiters), HANG_GUARD_SECONDS)
    for _ in waiters:
        budget.release()
    assert capacity.wanted() == 0


async def test_shed_capacity_is_not_used_and_goes_back_once_the_window_drains():
    window = 0.2
    budget, capacity = leased_budget(window, margin_seconds=0.0)
    capacity.add(10)
    for _ in range(8):
        async with budget.slot():
            pass
    assert capacity.shed(5)
    assert not capacity.shed(5)  # already shedding
    assert capacity.shedding
    # 8 requests are still counted: the 5 slots cannot go back yet, and a new request must wait
    # until fewer than 5 (the capacity being kept) are counted, although 10 are still held.
    assert not capacity.try_give_back(5)
    late = asyncio.create_task(budget.acquire())
    await asyncio.sleep(window / 4)
    assert not late.done()
    await asyncio.wait_for(late, HANG_GUARD_SECONDS)
    budget.release()
    assert capacity.try_give_back(5)  # drained to 1 <= 5: given back
    assert not capacity.shedding


def test_keep_cancels_a_shed():
    _, capacity = leased_budget()
    capacity.add(10)
    assert capacity.shed(5)
    capacity.keep()
    assert not capacity.shedding
    assert not capacity.shed(10)  # never below one chunk's worth of capacity: 10 > 10 fails


async def test_spare_chunks_go_back_after_half_a_window_and_the_last_after_two():
    window = 0.2
    _, capacity = leased_budget(window, margin_seconds=0.0)
    capacity.add(10)
    assert not capacity.try_give_back(5)  # spare from now on, but not yet for long
    await asyncio.sleep(window / 2 + 0.02)
    assert capacity.try_give_back(5)
    assert not capacity.try_give_back(5)  # the last chunk: two windows
    await asyncio.sleep(window)
    assert not capacity.try_give_back(5)
    await asyncio.sleep(window + 0.05)
    assert capacity.try_give_back(5)


async def test_a_request_in_the_window_resets_the_spare_clock():
    window = 0.2
    budget, capacity = leased_budget(window, margin_seconds=0.0)
    capacity.add(5)
    assert not capacity.try_give_back(5)
    await asyncio.sleep(window * 1.5)
    async with budget.slot():
        assert not capacity.try_give_back(5)  # in use: the clock starts again
    await asyncio.sleep(window * 1.5)
    assert not capacity.try_give_back(5)  # spare again only since the window drained


def test_locked_acquisitions_are_told_apart_from_errors():
    import httpx
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    from prefect_lemlist.ratelimit.prefect_leases import _is_locked

    def wrapped(status: int) -> Exception:
        response = httpx.Response(status, request=httpx.Request("POST", "http://prefect/api"))
        try:
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                raise ConcurrencySlotAcquisitionError("cannot acquire") from exc
        except ConcurrencySlotAcquisitionError as outer:
            return outer
        raise AssertionError("no error raised")

    assert _is_locked(wrapped(423))
    assert not _is_locked(wrapped(404))
    assert not _is_locked(RuntimeError("API down"))
