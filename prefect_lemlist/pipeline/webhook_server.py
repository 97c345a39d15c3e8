"""`WebhookReceiver`: the webhook app served by uvicorn on the flow's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from prefect_lemlist.api.validation import validate_http_url
from prefect_lemlist.pipeline.webhook import (
    DEFAULT_MAX_BODY_BYTES,
    WEBHOOK_PATH,
    WEBHOOK_PREFIX,
    WebhookStats,
    create_webhook_app,
    new_token,
)

_START_TIMEOUT_SECONDS = 15.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C and Prefect's SIGTERM keep reaching the flow
    (uvicorn would otherwise take them over while it serves)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebhookReceiver:
    """Receives lemlist's webhook calls for one run; use with `async with` on the flow's loop.

    Starting and stopping never block the event loop: uvicorn serves as a task of that loop, so
    results are handed to `on_result` on the loop where the collector lives.

    Args:
        on_result: called for each result (see `create_webhook_app`).
        host: interface to bind; loopback by default.
        port: port; 0 picks a free one.
        public_url: the base URL lemlist should call (a tunnel or proxy in front of this
            receiver); default: the receiver's own address.
        max_body_bytes: larger bodies are refused.
        token_in_query: give lemlist the older `/lemlist/webhook?token=…` form instead of the
            token in the path.
    """

    def __init__(
        self,
        on_result: Callable[[Any], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        token_in_query: bool = False,
    ) -> None:
        self.token = new_token()
        self.stats = WebhookStats()
        self.host = host
        self.port = port
        self.token_in_query = token_in_query
        self.public_url = (
            validate_http_url(public_url, "public_url").rstrip("/") if public_url else None
        )
        self._app = create_webhook_app(
            self.token, on_result, max_body_bytes=max_body_bytes, stats=self.stats
        )
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port` of the listening socket (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The URL to give lemlist, token included (a secret: do not log it)."""
        base = self.public_url or self.base_url
        if self.token_in_query:
            return f"{base}{WEBHOOK_PATH}?token={self.token}"
        return f"{base}{WEBHOOK_PREFIX}{self.token}"

    async def __aenter__(self) -> WebhookReceiver:
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._serve(sock), name=f"lemlist-webhook-{self.port}")
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.__aexit__(None, None, None)
                raise RuntimeError(f"the webhook receiver did not start on port {self.port}")
            await asyncio.sleep(0.01)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when it cannot start: never here
            raise RuntimeError("the webhook receiver failed to start") from None
        finally:
            sock.close()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10.0)
            if not self._task.done():
                self._task.cancel()
        self._task = None

    def __repr__(self) -> str:
        return f"WebhookReceiver(listening={self.base_url!r})"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
