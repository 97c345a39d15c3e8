"""A throw-away PostgreSQL cluster for tests and benchmarks: `initdb` into a temporary directory
(trust authentication), `pg_ctl start` on a free loopback port with its unix socket in the same
directory, one database, and `pg_ctl stop -m immediate` plus removal at the end.

PostgreSQL itself comes from the machine: `initdb` and `pg_ctl` from PATH, else the newest
`/usr/lib/postgresql/*/bin` (Debian's `postgresql` package; `.ci/run` installs it when missing).
PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user (which
Debian's package creates) through `runuser -u postgres --`, its directory chowned to it.

Each call makes its own directory and port, so several pytest-xdist workers (or a benchmark next
to the tests) each run their own cluster.

    with postgres_cluster() as url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/lemlist_test
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = "run .ci/run, or apt-get install postgresql"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or no way to run them (root without `postgres`)."""


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `pg_ctl`: PATH first, then the newest Debian one."""
    found = shutil.which("initdb")
    if found:
        directory = Path(os.path.realpath(found)).parent
        if (directory / "pg_ctl").exists():
            return directory
        if shutil.which("pg_ctl"):
            return Path(found).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> float:
        try:
            return float(Path(path).parts[-3])
        except ValueError:
            return 0.0

    for initdb in sorted(candidates, key=version, reverse=True):
        if (Path(initdb).parent / "pg_ctl").exists():
            return Path(initdb).parent
    raise PostgresUnavailable(
        f"PostgreSQL is not installed (no initdb in PATH or /usr/lib/postgresql/*/bin): "
        f"{INSTALL_HINT}"
    )


def _run_as() -> tuple[list[str], tuple[int, int] | None]:
    """The command prefix and (uid, gid) to own the files: `runuser -u postgres --` as root."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = None
    if runuser is None or user is None:
        raise PostgresUnavailable(
            "PostgreSQL refuses to run as root, and there is no `postgres` user or no runuser "
            f"to run it as: {INSTALL_HINT} (Debian's package creates the user)"
        )
    return [runuser, "-u", "postgres", "--"], (user.pw_uid, user.pw_gid)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        if log is not None and log.exists():
            detail += log.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed ({done.returncode}): " + " | ".join(detail))


@contextlib.contextmanager
def postgres_cluster(database: str = "lemlist_test", *, durable: bool = False) -> Iterator[str]:
    """Start a throw-away cluster; yields its SQLAlchemy URL; stops and deletes it afterwards.

    Args:
        database: the database to create in it.
        durable: keep PostgreSQL's default durability (fsync, synchronous commit); by default
            they are off, which is what a throw-away test database wants.
    """
    bin_dir = find_bin_dir()
    prefix, owner = _run_as()
    # as root, a directory the postgres user can reach (TMPDIR may be under /root)
    root = Path(tempfile.mkdtemp(prefix="lemlist-pg-", dir="/tmp" if owner else None))
    data, log = root / "data", root / "postgres.log"
    started = False
    try:
        if owner is not None:
            os.chown(root, *owner)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        _check([*prefix, *initdb, "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        options = f"-c listen_addresses=127.0.0.1 -k {root}"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for attempt in range(3):  # another process may take the free port before we bind it
            port = free_port()
            start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
            start += ["-o", f"-p {port} {options}", "start"]
            try:
                _check([*prefix, *start], "pg_ctl start", log)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        started = True
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        _check([*createdb, database], "createdb")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            subprocess.run([*prefix, *stop], capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
