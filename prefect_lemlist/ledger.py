"""The enrichment ledger: a durable record of which paid enrichments were started.

lemlist has no idempotency key and no endpoint listing a lead's enrichments, so the only way to
never pay twice for the same work after a crash is to remember, before and after each
`POST /leads/{id}/enrich`, what was sent. The ledger stores one Prefect result record per
(API key fingerprint, lead id, workflows) under Prefect's result storage (by default
`$PREFECT_HOME/storage`), through Prefect's own `ResultStore`:

- `starting` is written just before the POST;
- `started` (with the enrichment id) just after lemlist accepted it;
- `answered` when lemlist answered without starting anything: a 409 skip or a definitive 4xx
  (kept for `ANSWER_TTL`, so a re-run soon after reports the same answer without asking again);
- `none` when the POST failed without starting anything and may be tried again (5xx before any
  work, rate limit).

A later run that finds `started` reuses the enrichment id instead of POSTing, and one that finds
`answered` reuses the answer; one that finds `starting` knows a POST may have reached lemlist
without its answer being recorded (the process died, or the connection dropped) and refuses to send
it again. `force=True` bypasses all of it.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from prefect._internal.result_records import ResultRecord
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore, aget_default_result_storage
from prefect.types._datetime import now as prefect_now
from pydantic import BaseModel

from prefect_lemlist.exceptions import LemlistError
from prefect_lemlist.models import EnrichLeadResult, EnrichmentFlags

DEFAULT_LEDGER_DAYS = 30
ANSWER_TTL = timedelta(hours=24)


class LedgerEntry(BaseModel):
    """What the ledger knows about one (key, lead, workflows) enrichment.

    Attributes:
        state: `starting`, `started`, `answered` or `none` (see the module doc).
        result: the start result (`started`, or a 409 skip when `answered`).
        error: lemlist's refusal when `answered` with a 4xx.
        status_code: the HTTP status of that refusal.
        code: lemlist's error code of that refusal, if any.
    """

    state: Literal["starting", "started", "answered", "none"]
    result: EnrichLeadResult | None = None
    error: str | None = None
    status_code: int | None = None
    code: str | None = None


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

    def _local_path(self, store: ResultStore, key: str) -> Path | None:
        """The record's file when the storage is a local directory, else None."""
        storage = store.result_storage
        if isinstance(storage, LocalFileSystem) and store.result_storage_block_id is None:
            return Path(storage._resolve_path(key))
        return None

    def key(self, lead_id: str) -> str:
        """The record key of `lead_id`."""
        return enrichment_key(self.fingerprint, lead_id, self.flags)

    async def read(self, lead_id: str) -> LedgerEntry | None:
        """The stored entry of `lead_id`, or None when there is none (or it expired).

        A record that exists but cannot be read (damaged by a crash or by hand) is taken as
        `starting`: a POST may have been sent, so none is sent again without `force`.
        """
        store = await self._get_store()
        key = self.key(lead_id)
        path = self._local_path(store, key)
        if path is None:  # object storage: writes are atomic, Prefect's own reader is fine
            if not await store.aexists(key):
                return None
            entry = (await store.aread(key)).result
            return entry if isinstance(entry, LedgerEntry) else LedgerEntry(state="starting")
        try:
            content = await anyio.Path(path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = ResultRecord.deserialize(content)
        except Exception:
            return LedgerEntry(state="starting")
        expiration = record.metadata.expiration
        if expiration is not None and expiration <= prefect_now("UTC"):
            return None
        entry = record.result
        return entry if isinstance(entry, LedgerEntry) else LedgerEntry(state="starting")

    async def read_many(self, lead_ids: list[str]) -> dict[str, LedgerEntry]:
        """The stored entries of `lead_ids` (leads without one are left out)."""
        entries = {}
        for lead_id in lead_ids:
            entry = await self.read(lead_id)
            if entry is not None:
                entries[lead_id] = entry
        return entries

    async def write(self, lead_id: str, entry: LedgerEntry) -> None:
        """Store `entry` for `lead_id` (overwriting any earlier one).

        `answered` entries expire after `ANSWER_TTL`, the others after the ledger's expiration.
        """
        store = await self._get_store()
        ttl = min(ANSWER_TTL, self.expiration) if entry.state == "answered" else self.expiration
        key = self.key(lead_id)
        expiration = prefect_now("UTC") + ttl
        path = self._local_path(store, key)
        if path is None:
            await store.awrite(obj=entry, key=key, expiration=expiration)
            return
        record = store.create_result_record(entry, key=key, expiration=expiration)
        await anyio.to_thread.run_sync(_atomic_write_bytes, path, record.serialize())


def _atomic_write_bytes(path: Path, content: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content, never a mix.

    Prefect's `LocalFileSystem.write_path` truncates then writes; a `kill -9` in between would
    leave an empty record, i.e. forget that a POST was sent.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
