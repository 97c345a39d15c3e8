"""The enrichment ledger: a durable record of the paid enrichments started, so none starts twice.

lemlist has no idempotency key and no endpoint listing a person's enrichments: the only way to
never pay twice for the same work after a crash is to remember, before and after each start, what
was sent. The ledger keeps small JSON records on Prefect's configured result storage (a local
directory by default; a `LocalFileSystem` or `RemoteFileSystem` block shared by several machines
works too), under one namespace per lemlist team (see `account_key`).

Callers speak in intents, never in record states:
- `recall_leads` / `recall_contacts`: what earlier runs did for these keys (`Recall`);
- `claim_lead` / `claim_chunk`: an async context around one start request; `sending()` is awaited
  right before the request leaves (inside its rate slot) and records that it may start paid work
  (exclusively: a record another run holds, even a dead one, is taken over by one run only);
  the claim then records lemlist's answer, or, when the request failed, whether it may have
  started anything;
- `record_outcomes`: the final results, so that a later run reports them without a request.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import socket
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.results import aget_default_result_storage
from pydantic import BaseModel, Field

from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistOutOfCreditsError,
    LemlistResponseError,
    LemlistServerError,
)

LEDGER_DIR = "lemlist-ledger"
DEFAULT_LEDGER_DAYS = 30
ANSWER_TTL = timedelta(hours=24)
CLAIM_HOLD = timedelta(minutes=15)
"""The longest a live claim holds a start (a request's attempts, timeouts and rate-limit waits):
an older `starting` record is an interrupted one, whoever wrote it."""


class LedgerError(LemlistError):
    """The ledger cannot be used with the configured result storage."""

    hint = (
        "point Prefect's result storage at a directory or a RemoteFileSystem block "
        "(PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK)"
    )


class ClaimedElsewhereError(LemlistError):
    """Another run holds this start (it is sending it right now): nothing was sent.

    Retryable: once the other run records lemlist's answer, asking again returns it.
    """

    retryable = True


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


class _Owner(BaseModel):
    """The process holding a claim while its start request is on the wire."""

    host: str
    pid: int


class _Item(BaseModel):
    state: LedgerState
    written_at: datetime
    owner: _Owner | None = None  # only on the `starting` record of a claim being sent
    enrichment_id: str | None = None
    answer: RecordedAnswer | None = None
    outcome: dict[str, Any] | None = None


class _Record(BaseModel):
    version: int = 1
    items: dict[str, _Item] = Field(default_factory=dict)


@dataclass(frozen=True)
class Recall:
    """What earlier runs did for one item.

    Attributes:
        key: the item (a lead id, or a contact's fingerprint).
        enrichment_id: set when an earlier run started it: collect it instead of starting.
        answer: set when lemlist answered an earlier start without starting anything (less
            than a day ago): report it instead of asking again.
        outcome: set when an earlier run collected its final result: report it as it is.
        interrupted: an earlier start may have reached lemlist, but its answer was never
            recorded (the process died, or the connection dropped after sending).
        in_flight: another run, still alive, is sending this start right now: wait for its
            record to settle (never send it too).
        recorded_at: when the ledger learnt it.
    """

    key: str
    enrichment_id: str | None = None
    answer: RecordedAnswer | None = None
    outcome: dict[str, Any] | None = None
    interrupted: bool = False
    in_flight: bool = False
    recorded_at: datetime | None = None


def account_key(team_id: str) -> str:
    """The ledger namespace of a lemlist team: what identifies "the same account".

    It is the team's id (`GET /team`), the same for every API key of the team and whatever base
    URL reaches it (a proxy, lemlist directly): a rotated key finds what the old one started. The
    key itself is never part of it.
    """
    return hashlib.sha256(f"lemlist-team\0{team_id}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- storage


class LedgerStorage(Protocol):
    """Where records live: named byte blobs, with an exclusive create."""

    async def read_many(self, names: list[str]) -> dict[str, bytes]:
        """The content of the existing `names`."""

    async def create(self, name: str, data: bytes) -> bool:
        """Write `name` only if it does not exist; returns whether it did."""

    async def replace(self, name: str, data: bytes) -> None:
        """Write `name`, atomically replacing any earlier content."""

    async def delete(self, name: str) -> None:
        """Remove `name` (no error when missing)."""

    async def list(self, directory: str) -> list[str]:
        """The names of the records directly in `directory`."""


class LocalDirectoryStorage:
    """Records as files under a directory (also a directory shared by several machines).

    Writes are atomic (a temporary file renamed or linked into place), so a `kill -9` never
    leaves half a record, and `create` is exclusive across processes (`os.link`).

    Args:
        root: the base directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalDirectoryStorage({str(self.root)!r})"

    async def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Read the existing files of `names` (one thread hop for all of them)."""
        return await anyio.to_thread.run_sync(self._read_many, names)

    def _read_many(self, names: list[str]) -> dict[str, bytes]:
        found = {}
        for name in names:
            try:
                found[name] = (self.root / name).read_bytes()
            except FileNotFoundError:
                continue
        return found

    async def create(self, name: str, data: bytes) -> bool:
        """Exclusive create: `os.link` of a complete temporary file fails if `name` exists."""
        return await anyio.to_thread.run_sync(self._create, self.root / name, data)

    @staticmethod
    def _create(path: Path, data: bytes) -> bool:
        temporary = _write_temporary(path, data)
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    async def replace(self, name: str, data: bytes) -> None:
        """Atomic replace: a complete temporary file renamed over `name`."""
        await anyio.to_thread.run_sync(self._replace, self.root / name, data)

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        temporary = _write_temporary(path, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    async def delete(self, name: str) -> None:
        """Remove the file."""
        await anyio.to_thread.run_sync(lambda: (self.root / name).unlink(missing_ok=True))

    async def list(self, directory: str) -> list[str]:
        """The record files of `directory` (temporary files left out)."""

        def names() -> list[str]:
            try:
                entries = os.listdir(self.root / directory)
            except FileNotFoundError:
                return []
            return [f"{directory}/{e}" for e in entries if e.endswith(".json")]

        return await anyio.to_thread.run_sync(names)


def _absolute(path: str) -> Path:
    """A base path made absolute once (a relative one is the current directory's)."""
    return Path(path).expanduser().absolute()


def _write_temporary(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


class FsspecStorage:
    """Records on a `RemoteFileSystem` block's fsspec file system (`s3://`, `gs://`, …).

    Object stores write each object atomically; `create` checks for the object first, so two
    runs racing for the very same start within milliseconds are not excluded (lemlist's lead
    endpoint refuses the second one with a 409; contacts are documented as a known limit).

    Args:
        block: the file-system block.
    """

    def __init__(self, block: RemoteFileSystem) -> None:
        self.fs = block.filesystem
        self.base = block.basepath.rstrip("/")

    def _path(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Read the existing objects of `names`."""

        def read() -> dict[str, bytes]:
            found = {}
            for name in names:
                try:
                    found[name] = self.fs.cat_file(self._path(name))
                except FileNotFoundError:
                    continue
            return found

        return await anyio.to_thread.run_sync(read)

    async def create(self, name: str, data: bytes) -> bool:
        """Write unless it exists."""

        def create() -> bool:
            if self.fs.exists(self._path(name)):
                return False
            self.fs.pipe_file(self._path(name), data)
            return True

        return await anyio.to_thread.run_sync(create)

    async def replace(self, name: str, data: bytes) -> None:
        """Write the object."""
        await anyio.to_thread.run_sync(self.fs.pipe_file, self._path(name), data)

    async def delete(self, name: str) -> None:
        """Remove the object."""

        def delete() -> None:
            if self.fs.exists(self._path(name)):
                self.fs.rm_file(self._path(name))

        await anyio.to_thread.run_sync(delete)

    async def list(self, directory: str) -> list[str]:
        """The objects of `directory`."""

        def names() -> list[str]:
            try:
                entries = self.fs.ls(self._path(directory), detail=False)
            except FileNotFoundError:
                return []
            # fsspec lists paths without their protocol: keep only the file names
            names = (posixpath.basename(str(entry)) for entry in entries)
            return [f"{directory}/{name}" for name in names if name.endswith(".json")]

        return await anyio.to_thread.run_sync(names)


async def default_storage() -> LedgerStorage:
    """The ledger storage on Prefect's configured default result storage.

    Raises:
        LedgerError: the result storage is neither a local directory nor an fsspec file system.
    """
    storage = await aget_default_result_storage()
    if isinstance(storage, LocalFileSystem):
        return LocalDirectoryStorage(_absolute(storage.basepath or "."))
    if isinstance(storage, RemoteFileSystem):
        return FsspecStorage(storage)
    raise LedgerError(f"the enrichment ledger cannot use a {type(storage).__name__} result storage")


# ----------------------------------------------------------------------------- the ledger


class Ledger:
    """The records of one lemlist team (at one base URL) and one set of workflows.

    Args:
        storage: where the records live (`default_storage()` in the flows).
        account: `account_key(team_id)`.
        workflows: the requested workflows' label (`find_email+find_phone`): records of other
            workflow sets are other work.
        expiration_days: how long a started enrichment is remembered (after that, lemlist's own
            409 `ALREADY_ENRICHED` is the only guard on the lead endpoint).
    """

    def __init__(
        self,
        storage: LedgerStorage,
        account: str,
        workflows: str,
        expiration_days: float = DEFAULT_LEDGER_DAYS,
    ) -> None:
        self.storage = storage
        self.account = account
        self.workflows = workflows
        self.expiration = timedelta(days=expiration_days)
        self._chunk_of: dict[str, str] = {}  # contact key -> its chunk record's name
        self._seen: dict[str, str] = {}  # record name -> digest of the version last read

    def __repr__(self) -> str:
        return f"Ledger({self.storage!r}, account={self.account!r}, workflows={self.workflows!r})"

    def _lead_name(self, lead_id: str) -> str:
        return f"{LEDGER_DIR}/{self.account}/leads/{self.workflows}/{lead_id}.json"

    def _chunk_dir(self) -> str:
        return f"{LEDGER_DIR}/{self.account}/contacts/{self.workflows}"

    # ------------------------------------------------------------------ recall

    async def recall_leads(self, lead_ids: Iterable[str]) -> dict[str, Recall]:
        """What earlier runs did for these (validated) lead ids; leads without a live record are
        left out."""
        names = {self._lead_name(lead_id): lead_id for lead_id in lead_ids}
        records = await self._read(list(names))
        recalls = {}
        for name, record in records.items():
            lead_id = names[name]
            item = record.items.get(lead_id) or _damaged()
            recall = self._recall(lead_id, item)
            if recall is not None:
                recalls[lead_id] = recall
        return recalls

    async def recall_contacts(self, keys: Iterable[str]) -> dict[str, Recall]:
        """What earlier runs did for these contact fingerprints (reads every chunk record of
        this team and workflow set once)."""
        wanted = set(keys)
        recalls: dict[str, Recall] = {}
        for name, record in (await self._read(await self.storage.list(self._chunk_dir()))).items():
            for key, item in record.items.items():
                if key not in wanted:
                    continue
                recall = self._recall(key, item)
                if recall is not None and _better(recall, recalls.get(key)):
                    recalls[key] = recall
                    self._chunk_of[key] = name
        return recalls

    async def _read(self, names: list[str]) -> dict[str, _Record]:
        """Read the existing records of `names`, remembering which version of each was read
        when no live claim holds it (a claim may take over that version only)."""
        found = await self.storage.read_many(names)
        records = {name: _decode(data) for name, data in found.items()}
        for name in names:
            record = records.get(name)
            if record is None or any(_held(item) for item in record.items.values()):
                self._seen.pop(name, None)
            else:
                self._seen[name] = hashlib.sha256(found[name]).hexdigest()[:24]
        return records

    def _recall(self, key: str, item: _Item) -> Recall | None:
        ttl = ANSWER_TTL if item.state is LedgerState.ANSWERED else self.expiration
        if item.written_at + min(ttl, self.expiration) <= _now():
            return None
        in_flight = item.state is LedgerState.STARTING and _held(item)
        return Recall(
            key=key,
            enrichment_id=item.enrichment_id,
            answer=item.answer if item.state is LedgerState.ANSWERED else None,
            outcome=item.outcome if item.state is LedgerState.COLLECTED else None,
            interrupted=item.state is LedgerState.STARTING and not in_flight,
            in_flight=in_flight,
            recorded_at=item.written_at,
        )

    # ------------------------------------------------------------------ claims

    def claim_lead(self, lead_id: str, *, replace: bool = False) -> LeadClaim:
        """A claim on starting one lead's enrichment (use with `async with`).

        Args:
            lead_id: a validated lead id.
            replace: overwrite any record (a forced start). Otherwise the claim is exclusive: a
                lead without a record is created once, and a record read by the last recall
                (an interrupted start, an expired answer) is taken over by one run only.
        """
        return LeadClaim(self, self._lead_name(lead_id), lead_id, replace)

    def claim_chunk(self, keys: list[str], *, replace: bool = False) -> ChunkClaim:
        """A claim on one bulk request starting the enrichments of `keys` (use `async with`).

        The record's name comes from the keys, so two runs of the same file claim the same
        record and only one of them sends it.
        """
        digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24]
        name = f"{self._chunk_dir()}/chunk-{digest}.json"
        if replace:  # a forced chunk is new work: its own record
            name = f"{self._chunk_dir()}/chunk-{digest}-{uuid.uuid4().hex[:8]}.json"
        for key in keys:
            self._chunk_of[key] = name
        return ChunkClaim(self, name, keys, replace)

    async def _claim(self, name: str, record: _Record, replace: bool, what: str) -> None:
        """Write a claim's `starting` record, exclusively unless `replace`.

        A record the last recall read (dead or expired) is taken over through a marker named
        after that version: of two runs that read it, one creates the marker and sends.

        Raises:
            ClaimedElsewhereError: another run holds or took over this start.
        """
        data = _encode(record)
        if replace:
            await self.storage.replace(name, data)
            return
        seen = self._seen.get(name)
        if seen is None:
            claimed = await self.storage.create(name, data)
        else:
            claimed = await self.storage.create(f"{name}.takeover-{seen}", b"")
            if claimed:
                await self.storage.replace(name, data)
        if not claimed:
            raise ClaimedElsewhereError(f"another run is starting {what}; not sent")
        self._seen.pop(name, None)

    async def record_outcomes(self, outcomes: Mapping[str, dict[str, Any]]) -> None:
        """Remember final results (one write per lead; one per chunk record for contacts).

        Args:
            outcomes: item key -> the result to report on later runs.
        """
        by_record: dict[str, dict[str, dict[str, Any]]] = {}
        for key, outcome in outcomes.items():
            name = self._chunk_of.get(key) or self._lead_name(key)
            by_record.setdefault(name, {})[key] = outcome
        found = await self.storage.read_many(list(by_record))
        for name, updates in by_record.items():
            record = _decode(found[name]) if name in found else _Record()
            for key, outcome in updates.items():
                item = record.items.get(key)
                if item is None or item.state is not LedgerState.STARTED:
                    continue  # only started enrichments have a result worth keeping
                record.items[key] = item.model_copy(
                    update={"state": LedgerState.COLLECTED, "outcome": outcome}
                )
            await self.storage.replace(name, _encode(record))

    async def forget(self, keys: Iterable[str]) -> None:
        """Drop the records of `keys` (enrichments lemlist ended without charge): a later run
        starts them again."""
        by_record: dict[str, list[str]] = {}
        for key in keys:
            by_record.setdefault(self._chunk_of.get(key) or self._lead_name(key), []).append(key)
        found = await self.storage.read_many(list(by_record))
        for name, dropped in by_record.items():
            record = _decode(found[name]) if name in found else _Record()
            for key in dropped:
                record.items.pop(key, None)
            if record.items:
                await self.storage.replace(name, _encode(record))
            else:
                await self.storage.delete(name)


class LeadClaim:
    """The claim on one lead's start: see `Ledger.claim_lead`."""

    def __init__(self, ledger: Ledger, name: str, lead_id: str, replace: bool) -> None:
        self._ledger = ledger
        self._name = name
        self._key = lead_id
        self._replace = replace
        self._sent = False
        self._item: _Item | None = None

    async def sending(self) -> None:
        """Record that the start request is about to leave (it may start paid work).

        Raises:
            ClaimedElsewhereError: another run holds this start (nothing is sent).
        """
        if self._sent:
            return  # a retry of the same request (after a 500, 503 or 429): already claimed
        record = _Record(items={self._key: _item(LedgerState.STARTING, owner=_this_process())})
        what = f"lead {self._key} ({self._ledger.workflows})"
        await self._ledger._claim(self._name, record, self._replace, what)
        self._sent = True

    def started(self, enrichment_id: str) -> None:
        """lemlist accepted the start."""
        self._item = _item(LedgerState.STARTED, enrichment_id=enrichment_id)

    def answered(self, answer: RecordedAnswer) -> None:
        """lemlist answered without starting anything."""
        self._item = _item(LedgerState.ANSWERED, answer=answer)

    async def __aenter__(self) -> LeadClaim:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not self._sent:
            return  # nothing left: nothing to record
        storage = self._ledger.storage
        item = self._item if exc is None else _item_after_failure(exc)
        if item is None:
            await storage.delete(self._name)  # nothing started: a later run may send it
        else:
            await storage.replace(self._name, _encode(_Record(items={self._key: item})))


class ChunkClaim:
    """The claim on one bulk request: see `Ledger.claim_chunk`."""

    def __init__(self, ledger: Ledger, name: str, keys: list[str], replace: bool) -> None:
        self._ledger = ledger
        self._name = name
        self._keys = keys
        self._replace = replace
        self._sent = False
        self._items: dict[str, _Item] | None = None

    async def sending(self) -> None:
        """Record that the bulk request is about to leave.

        Raises:
            ClaimedElsewhereError: another run holds this chunk (nothing is sent).
        """
        if self._sent:
            return  # a retry of the same request (after a 500, 503 or 429): already claimed
        owner = _this_process()
        record = _Record(
            items={key: _item(LedgerState.STARTING, owner=owner) for key in self._keys}
        )
        await self._ledger._claim(self._name, record, self._replace, "the same people")
        self._sent = True

    def answered(self, started: Mapping[str, str], refused: Mapping[str, RecordedAnswer]) -> None:
        """lemlist's per-item answers: enrichment ids, and refusals that started nothing."""
        items = {key: _item(LedgerState.STARTED, enrichment_id=eid) for key, eid in started.items()}
        items.update(
            {key: _item(LedgerState.ANSWERED, answer=answer) for key, answer in refused.items()}
        )
        self._items = items

    async def __aenter__(self) -> ChunkClaim:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not self._sent:
            return
        storage = self._ledger.storage
        if exc is None and self._items is not None:
            await storage.replace(self._name, _encode(_Record(items=self._items)))
            return
        if exc is not None and _item_after_failure(exc) is None:
            await storage.delete(self._name)
            return
        # the request may have started every item of the chunk: `starting`, held by no one now
        record = _Record(items={key: _item(LedgerState.STARTING) for key in self._keys})
        await storage.replace(self._name, _encode(record))


def _item_after_failure(exc: BaseException) -> _Item | None:
    """What a failed start leaves behind: maybe started (`starting`), a definitive refusal
    (`answered`), or nothing (None: safe to send again)."""
    if not isinstance(exc, LemlistError) or isinstance(exc, ClaimedElsewhereError):
        return _item(LedgerState.STARTING)  # cancelled or crashed mid-request: may be sent
    if isinstance(exc, LemlistServerError) and not exc.retryable and exc.status_code != 503:
        return _item(LedgerState.STARTING)  # sent, then a timeout / dropped connection / 502
    if isinstance(exc, LemlistResponseError) and "html" not in (exc.content_type or ""):
        # a 200 whose JSON we could not use: lemlist may well have started the enrichment (an
        # HTML page, on the other hand, is the web app answering a path the API does not have)
        return _item(LedgerState.STARTING)
    if isinstance(exc, (LemlistAuthError, LemlistOutOfCreditsError)):
        return None  # the key or the credits: a later run (new key, top-up) may send it
    status = exc.status_code
    if status is not None and 400 <= status < 500 and status != 429:
        answer = RecordedAnswer(message=exc.message, status_code=status, code=exc.code)
        return _item(LedgerState.ANSWERED, answer=answer)
    return None


def _this_process() -> _Owner:
    return _Owner(host=socket.gethostname(), pid=os.getpid())


def _held(item: _Item) -> bool:
    """Whether a `starting` record is still held by a live claim (its request on the wire).

    A record without an owner was left by a claim that ended (cancelled, failed after sending)
    or by a process that died before writing the answer. On this host the owner's process is
    looked up; a record from another host is trusted for `CLAIM_HOLD` after it was written.
    """
    owner = item.owner
    if owner is None or item.written_at + CLAIM_HOLD <= _now():
        return False
    if owner.host != socket.gethostname():
        return True
    return _process_alive(owner.pid)


def _process_alive(pid: int) -> bool:
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


def _item(state: LedgerState, **fields: Any) -> _Item:
    return _Item(state=state, written_at=_now(), **fields)


def _damaged() -> _Item:
    """A record that cannot be read counts as `starting`: a request may have been sent."""
    return _Item(state=LedgerState.STARTING, written_at=_now())


def _decode(data: bytes) -> _Record:
    try:
        return _Record.model_validate_json(data)
    except ValueError:
        return _Record(items={})


def _encode(record: _Record) -> bytes:
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":")).encode()


def _better(new: Recall, old: Recall | None) -> bool:
    """Between two records of one contact (several chunks), keep the most informative."""
    if old is None:
        return True
    rank = (new.outcome is not None, new.enrichment_id is not None, new.interrupted)
    return rank > (old.outcome is not None, old.enrichment_id is not None, old.interrupted)


def _now() -> datetime:
    return datetime.now(timezone.utc)
