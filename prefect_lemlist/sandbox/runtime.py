"""Loop-side handles of a running sandbox app: connections (for the drop fault) and the stop
signal (for slow answers)."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class ConnectionRegistry:
    """Maps a client address to its TCP transport, so a request can kill its own connection.

    The sandbox's uvicorn protocol registers every connection here; the `drop` fault looks the
    transport up by the request's `scope["client"]` and closes it without any HTTP response.
    All methods run on the server's event loop thread.
    """

    def __init__(self) -> None:
        self._transports: dict[tuple[str, int], asyncio.BaseTransport] = {}

    def register(self, client: tuple[str, int] | None, transport: asyncio.BaseTransport) -> None:
        """Remember the transport of a new connection from `client`."""
        if client is not None:
            self._transports[(client[0], client[1])] = transport

    def unregister(self, client: tuple[str, int] | None, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection (only if it is still the registered one)."""
        if client is not None and self._transports.get((client[0], client[1])) is transport:
            del self._transports[(client[0], client[1])]

    def close(self, scope: Scope) -> bool:
        """Close the connection a request arrived on.

        Args:
            scope: the request's ASGI scope.

        Returns:
            True if a transport was found and closed.
        """
        client = scope.get("client")
        if not client:
            return False
        transport = self._transports.get((client[0], client[1]))
        if transport is None:
            return False
        transport.close()
        return True


class DropConnectionResponse(Response):
    """A "response" that closes the TCP connection without sending anything.

    Args:
        connections: the server's `ConnectionRegistry` (None when served by another server).
    """

    def __init__(self, connections: ConnectionRegistry | None) -> None:
        super().__init__(status_code=200)
        self._connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Close the connection, then wait until the server notices the disconnect."""
        if self._connections is not None and self._connections.close(scope):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_wait_disconnect(receive), timeout=2.0)
            return
        # Fallback without access to the transport: promise a body that never comes. The
        # server then aborts the connection and the client sees an incomplete message.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class AppRuntime:
    """Loop-side handles of a running app: the stop signal for slow answers.

    `request_stop` may be called from any thread.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    def request_stop(self) -> None:
        """Wake every sleeping slow/latency answer so the server can shut down promptly."""
        loop, stopping = self.loop, self.stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the server is stopping."""
        if seconds <= 0:
            return
        if self.stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)


__all__ = ["AppRuntime", "ConnectionRegistry", "DropConnectionResponse"]
