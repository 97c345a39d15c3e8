"""Keeping every API key under lemlist's 20 requests per 2 s: one `RequestBudget` per key and
process, whose capacity is fixed or leased from a Prefect global concurrency limit."""

from __future__ import annotations

import threading

from prefect_lemlist.ratelimit.budget import (
    LEMLIST_RATE_LIMIT,
    LEMLIST_RATE_WINDOW_SECONDS,
    Capacity,
    FixedCapacity,
    RequestBudget,
)
from prefect_lemlist.ratelimit.prefect_leases import LeasedCapacity

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
            processes; its leases are taken from the first request on.

    Returns:
        The same `RequestBudget` object for every caller with the same fingerprint.
    """
    with _registry_lock:
        budget = _registry.get(key_fingerprint)
        if budget is None:
            budget = _registry[key_fingerprint] = RequestBudget(limit, window_seconds)
        elif limit < budget.limit or window_seconds > budget.window_seconds:
            budget.tighten(limit, window_seconds)
        if global_rate_limit and not isinstance(budget.capacity, LeasedCapacity):
            budget.use_capacity(LeasedCapacity(global_rate_limit))
    return budget


__all__ = [
    "LEMLIST_RATE_LIMIT",
    "LEMLIST_RATE_WINDOW_SECONDS",
    "Capacity",
    "FixedCapacity",
    "LeasedCapacity",
    "RequestBudget",
    "budget_for",
]
