"""The ledger's record schema: what one item's record says, and what a recall tells a run.

A record is a small JSON document (`Record`) holding one `Item` per key: a lead id, or a
person's fingerprint (a bulk request's record holds the whole chunk). Records are read whole,
and the digest of the bytes read is the record's *version*: a claim that takes over a dead or
expired record names the version its recall read (see `claims.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

CLAIM_HOLD = timedelta(minutes=15)
"""The default of `LemlistSettings.claim_hold_seconds`: the longest a live claim holds a start (a
request's attempts, timeouts and rate-limit waits): an older `starting` record is an interrupted
one, whoever wrote it."""


class LedgerState(str, Enum):
    """What the ledger knows about one item (internal: callers get a `Recall`)."""

    STARTING = "starting"  # a start request may have reached lemlist; its answer is unknown
    STARTED = "started"  # lemlist accepted it: the enrichment id is known
    ANSWERED = "answered"  # lemlist answered without starting anything (kept for a day)
    COLLECTED = "collected"  # started and its final result recorded


class RecordedAnswer(BaseModel):
    """lemlist's answer to a start that started nothing (a 409 skip or a definitive refusal).

    Attributes:
        message: what lemlist said.
        status_code: the HTTP status.
        code: lemlist's code (`ALREADY_ENRICHED`, `LEAD_NOT_FOUND`, `MISSING_INPUTS`, …).
        skip_reason: `ALREADY_ENRICHED` or `IN_PROGRESS` for a 409 skip, else None.
    """

    message: str | None = None
    status_code: int | None = None
    code: str | None = None
    skip_reason: str | None = None


class Owner(BaseModel):
    """The process holding a claim while its start request is on the wire."""

    host: str
    pid: int


class Item(BaseModel):
    """One key's state in a record."""

    state: LedgerState
    written_at: datetime
    owner: Owner | None = None  # only on the `starting` record of a claim being sent
    enrichment_id: str | None = None
    answer: RecordedAnswer | None = None
    outcome: dict[str, Any] | None = None


class Record(BaseModel):
    """One stored record: the items of one lead, or of one bulk request."""

    version: int = 1
    items: dict[str, Item] = Field(default_factory=dict)


@dataclass(frozen=True)
class Recall:
    """What earlier runs did for one item, and which stored version of its record said so.

    Attributes:
        key: the item (a lead id, or a contact's fingerprint).
        record: the name of the record it was read from.
        version: the digest of the record's bytes as read, when no live claim holds it: a claim
            may take that version over (a dead claim, an expired answer), and only that one.
        enrichment_id: set when an earlier run started it: collect it instead of starting.
        answer: set when lemlist answered an earlier start without starting anything (less
            than a day ago): report it instead of asking again.
        outcome: set when an earlier run collected its final result: report it as it is.
        interrupted: an earlier start may have reached lemlist, but its answer was never
            recorded (the process died, or the connection dropped after sending).
        in_flight: another run, still alive, is sending this start right now: wait for its
            record to settle (never send it too).
        expired: the record is older than it is trusted: the item is started anew (its
            record is taken over through `version`).
        recorded_at: when the ledger learnt it.
    """

    key: str
    record: str = ""
    version: str | None = None
    enrichment_id: str | None = None
    answer: RecordedAnswer | None = None
    outcome: dict[str, Any] | None = None
    interrupted: bool = False
    in_flight: bool = False
    expired: bool = False
    recorded_at: datetime | None = None

    @property
    def known(self) -> bool:
        """Whether the record says anything about the item (an expired one does not)."""
        return not self.expired

    def rank(self) -> tuple[bool, bool, bool, bool]:
        """How informative it is (between two records of one person in several chunks)."""
        return (
            self.known,
            self.outcome is not None,
            self.enrichment_id is not None,
            self.interrupted,
        )


def recall_of(
    key: str,
    name: str,
    item: Item,
    version: str | None,
    ttl: timedelta,
    hold: timedelta = CLAIM_HOLD,
) -> Recall:
    """What one stored item tells a run (an item older than `ttl` is `expired`).

    Args:
        key: the item's key.
        name: the record's name.
        item: the stored item.
        version: the digest of the record as read (None while a live claim holds it).
        ttl: how long the item is trusted.
        hold: how long another host's start record counts as in flight.
    """
    if item.written_at + ttl <= now():
        return Recall(key=key, record=name, version=version, expired=True)
    in_flight = item.state is LedgerState.STARTING and held(item, hold)
    return Recall(
        key=key,
        record=name,
        version=version,
        enrichment_id=item.enrichment_id,
        answer=item.answer if item.state is LedgerState.ANSWERED else None,
        outcome=item.outcome if item.state is LedgerState.COLLECTED else None,
        interrupted=item.state is LedgerState.STARTING and not in_flight,
        in_flight=in_flight,
        recorded_at=item.written_at,
    )


def version_of(data: bytes, record: Record, hold: timedelta = CLAIM_HOLD) -> str | None:
    """The version a claim may take over: None while a live claim holds the record."""
    if any(held(item, hold) for item in record.items.values()):
        return None
    return hashlib.sha256(data).hexdigest()[:24]


def this_process() -> Owner:
    """The owner a claim of this process writes."""
    return Owner(host=socket.gethostname(), pid=os.getpid())


def held(item: Item, hold: timedelta = CLAIM_HOLD) -> bool:
    """Whether a `starting` record is still held by a live claim (its request on the wire).

    A record without an owner was left by a claim that ended (cancelled, failed after sending)
    or by a process that died before writing the answer. On this host the owner's process is
    looked up; a record from another host is trusted for `hold` after it was written.
    """
    owner = item.owner
    if owner is None or item.written_at + hold <= now():
        return False
    if owner.host != socket.gethostname():
        return True
    return process_alive(owner.pid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the process exists
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def new_item(state: LedgerState, **fields: Any) -> Item:
    """An item written now."""
    return Item(state=state, written_at=now(), **fields)


def unreadable_item() -> Item:
    """A record that cannot be read counts as `starting`: a request may have been sent."""
    return Item(state=LedgerState.STARTING, written_at=now())


def decode(data: bytes) -> Record:
    """A stored record (an unreadable one has no items)."""
    try:
        return Record.model_validate_json(data)
    except ValueError:
        return Record(items={})


def encode(record: Record) -> bytes:
    """The bytes stored for a record."""
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":")).encode()


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)
