"""Where ledger records live: named byte blobs with an exclusive create, and the default place.

Guarantees per backend (docs/architecture.md has the table):
- `LocalDirectoryStorage`: atomic writes (a complete temporary file renamed or linked into
  place) and an atomic exclusive create (`os.link`), across processes of one machine, or of
  several machines sharing the directory over a file system that implements `link` atomically.
- `FsspecStorage`: one object per record on a `RemoteFileSystem` block. Its exclusive create is
  atomic only where the store offers a conditional write (`atomic_create`); elsewhere it is a
  check-then-write, said once in the run log and in the dry run.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.results import aget_default_result_storage
from prefect.settings import get_current_settings

from prefect_lemlist.api.exceptions import LedgerError

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


class FsspecStorage:
    """Records on a `RemoteFileSystem` block's fsspec file system (`s3://`, `gs://`, …).

    Object stores write each object atomically; `create` is atomic where the store offers a
    conditional write (`atomic_create`), a check-then-write elsewhere.

    Args:
        block: the file-system block.
    """

    shared = True

    def __init__(self, block: RemoteFileSystem) -> None:
        self.fs: Any = block.filesystem
        self.base = block.basepath.rstrip("/")
        self.location = self.base
        self.atomic_create = False

    def __repr__(self) -> str:
        return f"FsspecStorage({self.base!r})"

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
       or the server's default result storage): shared by every worker that uses it;
    3. `user_ledger_dir()`: shared by every process of this user on this machine, whatever its
       `PREFECT_HOME` (Prefect's own default, `$PREFECT_HOME/storage`, is not).

    Raises:
        LedgerError: the configured result storage is neither a directory nor an fsspec one.
    """
    explicit = os.environ.get(LEDGER_DIR_ENV, "").strip()
    if explicit:
        return LocalDirectoryStorage(_absolute(explicit))
    storage = await aget_default_result_storage()
    if _is_prefect_default(storage):
        return LocalDirectoryStorage(user_ledger_dir())
    if isinstance(storage, LocalFileSystem):
        return LocalDirectoryStorage(_absolute(storage.basepath or "."), shared=True)
    if isinstance(storage, RemoteFileSystem):
        return FsspecStorage(storage)
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
    "milliseconds of each other are not excluded (use a local directory, or S3 through s3fs, "
    "whose conditional writes are atomic)"
)


def describe_storage(storage: LedgerStorage) -> str:
    """Where the ledger is, for the plan line and the dry run (and who shares it)."""
    if storage.shared:
        return f"{storage.location} (shared)"
    return f"{storage.location} (this machine only: workers elsewhere do not share it)"
