"""`CreditWatch`: spots lemlist running out of credits when it accepts starts, then fails them.

lemlist documents no answer for "no credits left": some starts are refused (402, a 400 about
credits), others accepted and then ended with an error. The watch reads the credits after a
failed enrichment and halts the run below one more enrichment's price.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import LemlistError, LemlistOutOfCreditsError
from prefect_lemlist.pipeline.collect import Collected
from prefect_lemlist.pipeline.stop import StopReason, StopSignal
from prefect_lemlist.settings import lemlist_settings


class CreditWatch:
    """Spots lemlist running out of credits when it accepts starts, then fails them: after an
    enrichment ends with an error, the credits are read (at most every 5 s); below the price of
    one more enrichment, the run stops starting.

    Args:
        client: the run's client.
        stop: the run's stop signal.
        price: the most one enrichment of the run can cost.
    """

    def __init__(self, client: LemlistClient, stop: StopSignal, price: int) -> None:
        self._client = client
        self._stop = stop
        self._price = price
        self._every = lemlist_settings().credit_check_seconds
        self._last = -self._every
        self._check: asyncio.Task[None] | None = None

    def on_result(self, collected: Collected) -> None:
        """Collector hook: look at the credits after a failed enrichment."""
        enrichment = collected.enrichment
        if enrichment is None or enrichment.done or self._stop.stopped:
            return
        now = time.monotonic()
        if (self._check is None or self._check.done()) and now - self._last >= self._every:
            self._last = now
            self._check = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            credits = (await self._client.get_credits()).credits
        except LemlistError:
            return
        if credits < self._price:
            self._stop.stop(
                StopReason.OUT_OF_CREDITS,
                LemlistOutOfCreditsError(
                    f"lemlist ended enrichments with an error and the team has {credits:g} "
                    "credits left: it ran out of credits"
                ),
            )

    async def settle(self) -> None:
        """Wait for a check still running."""
        if self._check is not None:
            with contextlib.suppress(Exception):
                await self._check
