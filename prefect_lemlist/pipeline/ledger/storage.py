"""Where ledger records live: named byte blobs with an exclusive create, and the default place.

Guarantees per backend (docs/architecture.md has the table):
- `LocalDirectoryStorage`: atomic writes (a complete temporary file renamed or linked into
  place) and an atomic exclusive create (`os.link`), across processes of one machine, or of
  several machines sharing the directory over a file system that implements `link` atomically.
- `FsspecStorage`: one object per record on a `RemoteFileSystem` block. Its exclusive create is
  atomic where the store offers a conditional write: S3 through s3fs >= 2024.12 (`PUT` with
  `If-None-Match: *`) and Google Cloud Storage through gcsfs >= 2024.12 (`ifGenerationMatch=0`),
  checked once per process and store (`check_atomic_create`: a store that ignores the
  condition, as some S3-compatible ones do, is found out). Elsewhere it is a check-then-write,
  said once in the run log and in the dry run (`atomic_create` is False).
"""

from __future__ import annotations

import errno
import inspect
import os
import posixpath
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.results import aget_default_result_storage
from prefect.settings import get_current_settings

from prefect_lemlist.api.exceptions import LedgerError
from prefect_lemlist.settings import lemlist_settings

LEDGER_DIR_ENV = "LEMLIST_LEDGER_DIR"
"""Environment variable naming the ledger's directory (it wins over every other choice)."""


class LedgerStorage(Protocol):
    """Where records live: named byte blobs, with an exclusive create.

    Attributes:
        atomic_create: whether `create` is atomic (two racing creates: exactly one wins).
        shared: whether other machines can see the records (a process-local directory cannot).
        location: where the records are, for people (a path or a URL, never a secret).
    """

    atomic_create: bool
    shared: bool
    location: str

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
        shared: whether other machines see this directory (a network mount); False by default.
    """

    atomic_create = True

    def __init__(self, root: Path, *, shared: bool = False) -> None:
        self.root = root
        self.shared = shared
        self.location = str(root)

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


def _write_temporary(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


CONDITIONAL_CREATE_PACKAGES = frozenset({"s3fs", "gcsfs"})
"""The fsspec implementations whose `pipe_file(path, data, mode="create")` is a conditional write
done by the store itself (fsspec's generic `mode="create"` is an exists-then-write): s3fs sends
`If-None-Match: *` and gcsfs `ifGenerationMatch=0`; both raise `FileExistsError` when the object
exists (s3fs on a 412 `PreconditionFailed` naming that condition, gcsfs on any 412)."""

PROBE_DIR = ".lemlist-ledger-probes"
"""Where `FsspecStorage.check_atomic_create` writes (and removes) its probe objects."""

_CONFLICT_RETRIES = 4
_UNSUPPORTED_ERRNOS = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})
_probed: dict[tuple[Any, str], bool] = {}  # (file system, base path) -> create refuses a second


def has_conditional_create(fs: Any) -> bool:
    """Whether `fs` writes `mode="create"` as a conditional write of the store (s3fs, gcsfs of
    2024.12 or later), not as fsspec's generic exists-then-write."""
    owner = next((c for c in type(fs).__mro__ if "_pipe_file" in vars(c)), None)
    if owner is None or owner.__module__.split(".")[0] not in CONDITIONAL_CREATE_PACKAGES:
        return False
    try:
        return "mode" in inspect.signature(vars(owner)["_pipe_file"]).parameters
    except (TypeError, ValueError):
        return False


def _refusal(exc: OSError) -> str | None:
    """What a failed conditional write says: `exists` (412), `conflict` (409: another write of
    the same object is under way; S3 asks to retry), or None (another error).

    s3fs raises `FileExistsError` on a 412 only when the answer names the `If-None-Match`
    condition; the status of the store's answer (the error's cause) is read for the rest.
    """
    if isinstance(exc, FileExistsError):
        return "exists"
    response = getattr(exc.__cause__, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "PreconditionFailed" or status == 412:
        return "exists"
    if code in ("ConditionalRequestConflict", "OperationAborted") or status == 409:
        return "conflict"
    return None


class FsspecStorage:
    """Records on a `RemoteFileSystem` block's fsspec file system (`s3://`, `gs://`, …).

    Object stores write each object atomically. `create` is the store's own conditional write
    where it has one (S3 through s3fs, GCS through gcsfs): of two racing creates, on any number
    of machines, exactly one wins. `atomic_create` says so once `check_atomic_create` has seen
    the store refuse a second create of one object (`default_storage` and the first `create`
    check it); elsewhere `create` is a check-then-write and `atomic_create` stays False.

    Args:
        block: the file-system block.
    """

    shared = True

    def __init__(self, block: RemoteFileSystem) -> None:
        self.fs: Any = block.filesystem
        self.base = block.basepath.rstrip("/")
        self.location = self.base
        self.conditional_create = has_conditional_create(self.fs)
        self.atomic_create = _probed.get(self._probe_key(), False)

    def __repr__(self) -> str:
        return f"FsspecStorage({self.base!r})"

    def _path(self, name: str) -> str:
        return f"{self.base}/{name}"

    def _probe_key(self) -> tuple[Any, str]:
        try:
            hash(self.fs)  # fsspec file systems hash and compare by their options
        except TypeError:
            return (id(self.fs), self.base)
        return (self.fs, self.base)

    async def check_atomic_create(self) -> bool:
        """Whether `create` is atomic on this store: once per process and store, a probe object
        is created twice with the store's conditional write, and the second must be refused.

        Some S3-compatible stores ignore `If-None-Match` (a plain overwrite), and gcsfs writes
        zonal buckets without the condition: `create` is then a check-then-write.

        Returns:
            The new `atomic_create`.
        """
        if not self.conditional_create:
            return False
        key = self._probe_key()
        if key not in _probed:
            _probed[key] = await anyio.to_thread.run_sync(self._probe)
        self.atomic_create = _probed[key]
        return self.atomic_create

    def _probe(self) -> bool:
        path = self._path(f"{PROBE_DIR}/atomic-create-{uuid.uuid4().hex}")
        try:
            return self._create_if_absent(path, b"1") and not self._create_if_absent(path, b"2")
        except NotImplementedError:
            return False  # no conditional write after all
        except OSError as exc:
            if exc.errno in _UNSUPPORTED_ERRNOS:
                return False  # the store refuses the condition (400, 501)
            raise
        finally:
            self._remove(path)

    def _create_if_absent(self, path: str, data: bytes) -> bool:
        """The store's conditional write; False when the object exists (or another write of
        it is still under way after a few retries: the claim is held elsewhere)."""
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self.fs.pipe_file(path, data, mode="create")
                return True
            except OSError as exc:
                refusal = _refusal(exc)
                if refusal is None:
                    raise
                if refusal == "exists" or attempt == _CONFLICT_RETRIES:
                    return False
            time.sleep(0.05 * 2**attempt)
        return False

    def _check_then_write(self, path: str, data: bytes) -> bool:
        """Write unless the object exists (not atomic: two racing writers may both win)."""
        if self.fs.exists(path):
            return False
        self.fs.pipe_file(path, data)
        return True

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

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
        """Write unless it exists: the store's conditional write when `atomic_create` (checked
        on the first call), else a check-then-write."""
        if self.conditional_create and self._probe_key() not in _probed:
            await self.check_atomic_create()
        write = self._create_if_absent if self.atomic_create else self._check_then_write
        return await anyio.to_thread.run_sync(write, self._path(name), data)

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


def user_ledger_dir() -> Path:
    """The per-user ledger directory, the same for every Prefect home on this machine.

    `$XDG_DATA_HOME/prefect-lemlist` (or `~/.local/share/prefect-lemlist`; on Windows
    `%LOCALAPPDATA%\\prefect-lemlist`): the CLI, a worker and a `prefect server` of one user
    share it whatever their `PREFECT_HOME`.
    """
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "prefect-lemlist"


async def default_storage() -> LedgerStorage:
    """The ledger's storage, chosen in this order:

    1. the directory named by `LEMLIST_LEDGER_DIR`;
    2. Prefect's result storage when one is configured (`PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`
       or the server's default result storage): shared by every worker that uses it (on a
       `RemoteFileSystem`, whether its create is atomic is checked here, once per process);
    3. `user_ledger_dir()`: shared by every process of this user on this machine, whatever its
       `PREFECT_HOME` (Prefect's own default, `$PREFECT_HOME/storage`, is not).

    Raises:
        LedgerError: the configured result storage is neither a directory nor an fsspec one.
    """
    explicit = (lemlist_settings().ledger_dir or "").strip()
    if explicit:
        return LocalDirectoryStorage(_absolute(explicit))
    storage = await aget_default_result_storage()
    if _is_prefect_default(storage):
        return LocalDirectoryStorage(user_ledger_dir())
    if isinstance(storage, LocalFileSystem):
        return LocalDirectoryStorage(_absolute(storage.basepath or "."), shared=True)
    if isinstance(storage, RemoteFileSystem):
        remote = FsspecStorage(storage)
        await remote.check_atomic_create()  # the plan line and the dry run tell it
        return remote
    raise LedgerError(f"the enrichment ledger cannot use a {type(storage).__name__} result storage")


def _absolute(path: str) -> Path:
    """A base path made absolute once (a relative one is the current directory's)."""
    return Path(path).expanduser().absolute()


def _is_prefect_default(storage: Any) -> bool:
    """Whether the result storage is Prefect's process-local default (nothing configured)."""
    if not isinstance(storage, LocalFileSystem):
        return False
    local = str(get_current_settings().results.local_storage_path)
    return _absolute(storage.basepath or ".") == _absolute(local)


NOT_ATOMIC_WARNING = (
    "the ledger's storage (%s) has no atomic create: two workers starting the same item within "
    "milliseconds of each other are not excluded (use a local directory, or S3 or GCS through "
    "s3fs or gcsfs >= 2024.12, whose conditional writes are atomic)"
)


def describe_storage(storage: LedgerStorage) -> str:
    """Where the ledger is, for the plan line and the dry run (and who shares it)."""
    if storage.shared:
        return f"{storage.location} (shared)"
    return f"{storage.location} (this machine only: workers elsewhere do not share it)"
