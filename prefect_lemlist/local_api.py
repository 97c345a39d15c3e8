"""A local Prefect API: a real `prefect server start` in a subprocess, with its own home.

The CLI uses it instead of Prefect's ephemeral API, which Prefect starts as a plain child process:
a terminal's Ctrl-C reaches the whole process group and would stop that API before the run could
be recorded `Cancelled` (the CLI then hung for minutes). This one runs in its own session, and
dies with its parent on Linux. The tests and benchmarks use it for several flow processes sharing
one API, and for an API that goes down and comes back on the same port and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: its own session (a terminal's Ctrl-C does not reach it) and,
    on Linux, SIGTERM when the parent dies (it never outlives the CLI that started it)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PrefectServer:
    """A real `prefect server start` on loopback with its own home and database.

    It can be stopped and started again on the same port and database (an API outage). Each start
    writes its output to `home/server-<n>.log`.

    Args:
        home: the server's `PREFECT_HOME` (created if missing).
        port: the port to serve on (default: a free one, kept across restarts).
        own_session: run it in its own session, dying with its parent (see the module doc).
    """

    def __init__(self, home: Path, port: int | None = None, *, own_session: bool = False) -> None:
        self.home = home
        self.own_session = own_session
        self.chosen_port = port is None  # a port chosen here may be chosen again
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        for name in ("PREFECT_API_URL", "PREFECT_TEST_MODE"):
            env.pop(name, None)
        return env

    def _spawn(self) -> Path:
        """Start the server process (it starts at once); returns the path of its log."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log_path = self.home / f"server-{self.starts}.log"
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                [*command, "--port", str(self.port)],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.own_session else None,
            )
        return log_path

    async def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until its health check answers.

        A server that exits at once on a port chosen here (another process took it between
        `free_port` and the server's bind) is started again on another free port, twice at
        most; an answer counts only while this server's process runs and says `true`, so
        another program on the port is never taken for it.

        Raises:
            RuntimeError: it exited or did not answer within `timeout` s (the end of its log is
                in the message).
        """
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            log_path = self._spawn()
            if await self._answers(deadline):
                return
            process = self.process
            assert process is not None  # set by _spawn
            if process.poll() is None or not self.chosen_port or attempt == 2:
                process.kill()
                process.wait(10)
                raise RuntimeError(f"prefect server did not start:\n{log_path.read_text()[-3000:]}")
            self.port = free_port()  # it exited: most likely its port was taken meanwhile
            self.url = f"http://127.0.0.1:{self.port}/api"

    async def _answers(self, deadline: float) -> bool:
        """Whether this server's own health check says `true` before `deadline` (False as soon
        as its process exits)."""
        process = self.process
        assert process is not None  # set by _spawn
        async with httpx.AsyncClient(timeout=2.0) as client:
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    answer = await client.get(f"{self.url}/health")
                    if answer.status_code == 200 and answer.text.strip() == "true":
                        return process.poll() is None
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.25)
        return False

    async def stop(self, timeout: float = 30.0) -> None:
        """Terminate the server; kill it if it has not exited after `timeout` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait(10)
                return
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def local_api_unless_configured() -> Iterator[str | None]:
    """Where Prefect would start its ephemeral API (no `PREFECT_API_URL`, ephemeral mode on),
    serve the same local API from its own session instead, for the duration of the block.

    Yields:
        The local API's URL, or None when an API is configured (then nothing is started).

    Raises:
        RuntimeError: the local API did not start (the end of its log is in the message).
    """
    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield None
        return
    server = PrefectServer(Path(settings.home), own_session=True)
    asyncio.run(server.start(timeout=settings.server.ephemeral.startup_timeout_seconds))
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            try:
                yield server.url
            finally:
                asyncio.run(_deliver_pending_logs_and_events())
    finally:
        asyncio.run(server.stop())


async def _deliver_pending_logs_and_events() -> None:
    """Send the run's last logs and events while the API still answers (they would otherwise
    be retried against a stopped API at exit, for minutes)."""
    await APILogHandler.aflush()
    drained = EventsWorker.drain_all()
    if inspect.isawaitable(drained):
        await drained
