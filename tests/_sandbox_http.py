"""Small helpers for tests that talk to the sandbox with a plain `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def wait_done(c: httpx.Client, enrichment_id: str, timeout: float = 6.0) -> httpx.Response:
    """`GET /enrich/{id}` until it is no longer 202 (or `timeout` seconds passed)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = c.get(f"/enrich/{enrichment_id}")
        if answer.status_code != 202 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def eventually(predicate: Callable[[], bool], timeout: float = 6.0) -> bool:
    """Whether `predicate` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def credits(c: httpx.Client) -> int:
    """The team's credits."""
    return c.get("/team/credits").json()["credits"]
