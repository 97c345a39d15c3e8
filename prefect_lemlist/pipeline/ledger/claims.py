"""Claims: the async context around one start request (one lead, or one bulk request).

`sending()` is awaited right before the request leaves (inside its rate slot) and writes the
`starting` record exclusively: a record nobody wrote is created once; a record a recall read
(dead or expired) is taken over through a marker named after *that version*, so of two runs
that read the same dead record, one sends. When the context ends, the claim records lemlist's
answer, or what a failure leaves behind, read from the error's delivery verdict alone
(`after_failure`).
"""

from __future__ import annotations

from collections.abc import Mapping

from prefect_lemlist.api.exceptions import ClaimedElsewhereError, LemlistError
from prefect_lemlist.pipeline.ledger.records import (
    Item,
    LedgerState,
    Record,
    RecordedAnswer,
    encode,
    new_item,
    this_process,
)
from prefect_lemlist.pipeline.ledger.storage import LedgerStorage


async def write_claim(
    storage: LedgerStorage, name: str, record: Record, *, replace: bool, version: str | None
) -> None:
    """Write a claim's `starting` record: exclusively, unless `replace` (a forced start).

    Args:
        storage: the ledger's storage.
        name: the record's name.
        record: the `starting` record.
        replace: overwrite whatever is there.
        version: the version of the existing record the claimer's recall read (a dead claim or
            an expired record it may take over), or None when it read no record.

    Raises:
        ClaimedElsewhereError: another run holds or took over this start (nothing sent).
    """
    data = encode(record)
    if replace:
        await storage.replace(name, data)
        return
    if version is None:
        claimed = await storage.create(name, data)
    else:
        claimed = await storage.create(f"{name}.takeover-{version}", b"")
        if claimed:
            await storage.replace(name, data)
    if not claimed:
        raise ClaimedElsewhereError(f"another run is starting {_what(name)}; not sent")


def _what(name: str) -> str:
    leaf = name.rsplit("/", 1)[-1].removesuffix(".json")
    return "the same people" if leaf.startswith("chunk-") else f"lead {leaf}"


def after_failure(exc: BaseException) -> Item | None:
    """What a failed start leaves behind, from the error's delivery verdict alone.

    - not sent: nothing (None): a later run sends it;
    - maybe sent (or cancelled / crashed mid-request): `starting`, held by no one;
    - answered: a permanent refusal is remembered (`answered`, for a day); a transient one (a
      5xx lemlist says it did not act on, a 429, a refused key, no credits) leaves nothing.
    """
    if not isinstance(exc, LemlistError):
        return new_item(LedgerState.STARTING)  # cancelled or crashed mid-request: may be sent
    if exc.delivery == "not_sent":
        return None
    if exc.delivery == "maybe_sent":
        return new_item(LedgerState.STARTING)
    if not exc.permanent:
        return None
    answer = RecordedAnswer(message=exc.message, status_code=exc.status_code, code=exc.code)
    return new_item(LedgerState.ANSWERED, answer=answer)


class _Claim:
    """What both claims share: the record they write right before their request leaves."""

    def __init__(
        self,
        storage: LedgerStorage,
        name: str,
        keys: list[str],
        replace: bool,
        version: str | None,
    ) -> None:
        self._storage = storage
        self._name = name
        self._keys = keys
        self._replace = replace
        self._version = version
        self._sent = False

    async def sending(self) -> None:
        """Record that the start request is about to leave (it may start paid work).

        Raises:
            ClaimedElsewhereError: another run holds this start (nothing is sent).
        """
        if self._sent:
            return  # a retry of the same request (after a 500, 503 or 429): already claimed
        owner = this_process()
        record = Record(
            items={key: new_item(LedgerState.STARTING, owner=owner) for key in self._keys}
        )
        await write_claim(
            self._storage, self._name, record, replace=self._replace, version=self._version
        )
        self._sent = True

    async def _write(self, items: dict[str, Item] | None) -> None:
        """Replace the claim's record with `items`, or delete it (None: nothing started)."""
        if items is None:
            await self._storage.delete(self._name)  # a later run may send it
        else:
            await self._storage.replace(self._name, encode(Record(items=items)))


class LeadClaim(_Claim):
    """The claim on one lead's start: see `Ledger.claim_lead`.

    Args:
        storage: the ledger's storage.
        name: the lead's record.
        lead_id: the lead.
        replace: a forced start (overwrites the record).
        version: the record version the recall read, or None.
    """

    def __init__(
        self, storage: LedgerStorage, name: str, lead_id: str, replace: bool, version: str | None
    ) -> None:
        super().__init__(storage, name, [lead_id], replace, version)
        self._item: Item | None = None

    def started(self, enrichment_id: str) -> None:
        """lemlist accepted the start."""
        self._item = new_item(LedgerState.STARTED, enrichment_id=enrichment_id)

    def answered(self, answer: RecordedAnswer) -> None:
        """lemlist answered without starting anything."""
        self._item = new_item(LedgerState.ANSWERED, answer=answer)

    async def __aenter__(self) -> LeadClaim:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not self._sent:
            return  # nothing left: nothing to record
        item = self._item if exc is None else after_failure(exc)
        await self._write(None if item is None else {self._keys[0]: item})


class ChunkClaim(_Claim):
    """The claim on one bulk request: see `Ledger.claim_chunk`.

    Args:
        storage: the ledger's storage.
        name: the chunk's record.
        keys: the people of the chunk.
        replace: a forced start (a record of its own).
        version: the record version the recall read, or None.
    """

    def __init__(
        self,
        storage: LedgerStorage,
        name: str,
        keys: list[str],
        replace: bool,
        version: str | None,
    ) -> None:
        super().__init__(storage, name, keys, replace, version)
        self._items: dict[str, Item] | None = None

    def answered(self, started: Mapping[str, str], refused: Mapping[str, RecordedAnswer]) -> None:
        """lemlist's per-item answers: enrichment ids, and refusals that started nothing."""
        items = {
            key: new_item(LedgerState.STARTED, enrichment_id=eid) for key, eid in started.items()
        }
        items.update(
            {key: new_item(LedgerState.ANSWERED, answer=answer) for key, answer in refused.items()}
        )
        self._items = items

    async def __aenter__(self) -> ChunkClaim:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not self._sent:
            return
        if exc is None and self._items is not None:
            await self._write(self._items)
            return
        # every person of the chunk shares the request's fate: `starting` (held by no one now),
        # the whole request's permanent refusal, or nothing (not sent)
        item = after_failure(exc) if exc is not None else new_item(LedgerState.STARTING)
        await self._write(None if item is None else dict.fromkeys(self._keys, item))
