"""Helpers for the project's tests and benchmarks: a real `prefect server start` in a subprocess.

Prefect's `prefect_test_harness` runs an in-process API server; some tests need the real thing
(several flow processes sharing one API, the API going down and coming back on the same port and
database). `PrefectServer` starts and stops one with its own Prefect home (and SQLite database).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrefectServer:
    """A real `prefect server start` on loopback with its own home and database.

    It can be stopped and started again on the same port and database (an API outage). Each start
    writes its output to `home/server-<n>.log`.

    Args:
        home: the server's `PREFECT_HOME` (created if missing).
        port: the port to serve on (default: a free one, kept across restarts).
    """

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
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
            )
        return log_path

    async def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until its health check answers.

        Raises:
            RuntimeError: it exited or did not answer within `timeout` s (the end of its log is
                in the message).
        """
        log_path = self._spawn()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    self.process.wait(10)
                    raise RuntimeError(
                        f"prefect server did not start:\n{log_path.read_text()[-3000:]}"
                    )
                await asyncio.sleep(0.25)

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
