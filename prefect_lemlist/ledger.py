"""The enrichment ledger: a durable record of which paid enrichments were started.

lemlist has no idempotency key and no endpoint listing a lead's enrichments, so the only way to
never pay twice for the same work after a crash is to remember, before and after each
`POST /leads/{id}/enrich`, what was sent. The ledger stores one Prefect result record per
(API key fingerprint, lead id, workflows) under Prefect's result storage (by default
`$PREFECT_HOME/storage`), through Prefect's own `ResultStore`:

- `starting` is written just before the POST;
- `started` (with the enrichment id) just after lemlist accepted it;
- `none` when the POST provably started nothing (a 4xx, a 409 skip, a 500 before any work).

A later run that finds `started` reuses the enrichment id instead of POSTing; one that finds
`starting` knows a POST may have reached lemlist without its answer being recorded (the process
died, or the connection dropped) and refuses to send it again unless `force=True`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from prefect.results import ResultStore, aget_default_result_storage
from prefect.types._datetime import now as prefect_now
from pydantic import BaseModel

from prefect_lemlist.exceptions import LemlistError
from prefect_lemlist.models import EnrichLeadResult, EnrichmentFlags

DEFAULT_LEDGER_DAYS = 30


class LedgerEntry(BaseModel):
    """What the ledger knows about one (key, lead, workflows) enrichment."""

    state: Literal["starting", "started", "none"]
    result: EnrichLeadResult | None = None


class EnrichmentInterruptedError(LemlistError):
    """An earlier run sent this enrichment but never recorded lemlist's answer.

    lemlist may have started (and billed) it; its id is unknown. Sending it again could bill twice,
    so prefect-lemlist does not, unless asked with `force=True`.
    """


def enrichment_key(fingerprint: str, lead_id: str, flags: EnrichmentFlags) -> str:
    """The ledger (and cache) key of one enrichment: key fingerprint, lead id and workflows.

    Args:
        fingerprint: `LemlistCredentials.fingerprint()` (never the key itself).
        lead_id: a validated lead id (no `/`).
        flags: the requested workflows.

    Returns:
        A key safe to use as a file name.
    """
    return f"lemlist-enrich-{fingerprint}-{lead_id}-{flags.label()}"


class EnrichmentLedger:
    """Durable per-lead records of started enrichments for one API key and set of workflows.

    Args:
        fingerprint: the credentials' fingerprint.
        flags: the workflows this ledger is about.
        expiration_days: how long a record prevents a new POST (after that, lemlist's own
            409 `ALREADY_ENRICHED` is the only guard).
    """

    def __init__(
        self,
        fingerprint: str,
        flags: EnrichmentFlags,
        expiration_days: float = DEFAULT_LEDGER_DAYS,
    ) -> None:
        self.fingerprint = fingerprint
        self.flags = flags
        self.expiration = timedelta(days=expiration_days)
        self._store: ResultStore | None = None

    async def _get_store(self) -> ResultStore:
        if self._store is None:
            self._store = ResultStore(
                result_storage=await aget_default_result_storage(),
                cache_result_in_memory=False,
            )
        return self._store

    def key(self, lead_id: str) -> str:
        """The record key of `lead_id`."""
        return enrichment_key(self.fingerprint, lead_id, self.flags)

    async def read(self, lead_id: str) -> LedgerEntry | None:
        """The stored entry of `lead_id`, or None when there is none (or it expired)."""
        store = await self._get_store()
        key = self.key(lead_id)
        if not await store.aexists(key):
            return None
        record = await store.aread(key)
        entry = record.result
        return entry if isinstance(entry, LedgerEntry) else None

    async def started_lead_ids(self, lead_ids: list[str]) -> set[str]:
        """The leads among `lead_ids` whose enrichment an earlier run sent (started or starting)."""
        found = set()
        for lead_id in lead_ids:
            entry = await self.read(lead_id)
            if entry is not None and entry.state in ("started", "starting"):
                found.add(lead_id)
        return found

    async def write(self, lead_id: str, entry: LedgerEntry) -> None:
        """Store `entry` for `lead_id` (overwriting any earlier one)."""
        store = await self._get_store()
        await store.awrite(
            obj=entry, key=self.key(lead_id), expiration=prefect_now("UTC") + self.expiration
        )
