"""Serve an ASGI app with uvicorn in a background thread (the sandbox, and receivers in tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn

STARTUP_TIMEOUT_SECONDS = 15.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a TCP socket on (host, port), ready to listen; port 0 picks a free one.

    Raises:
        OSError: the address is in use or cannot be bound (e.g. a non-local host).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ThreadedASGIServer:
    """uvicorn serving `app` on its own event loop in a daemon thread.

    Args:
        app: the ASGI application.
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        **uvicorn_options: extra `uvicorn.Config` options (e.g. `http=` a protocol class).
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._options = uvicorn_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ThreadedASGIServer:
        """Start serving and wait until connections are accepted.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: the server did not come up in time.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._socket = bind_socket(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        options = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "on",
            "ws": "none",
            "backlog": 4096,
            "timeout_graceful_shutdown": 5,
            "server_header": False,
            **self._options,
        }
        self._server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self._thread = threading.Thread(target=self._serve, name=f"asgi-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on port {self.port} failed to start: {self._error!r}")
            time.sleep(0.005)
        return self

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start()
            self._error = exc

    def stop(self) -> None:
        """Shut the server down and wait for its thread (idempotent)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._thread = None

    def __enter__(self) -> ThreadedASGIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
