"""A loopback TCP fault proxy between an HTTP client and an upstream server (e.g. the sandbox).

Tests put a `FaultProxy` in front of the sandbox to inject network faults (see `NetworkFault`).
It answers one request per TCP connection, always with `Connection: close`, so a client never
reuses a pooled connection: after `refuse()` its next request is refused, not dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx

from prefect_lemlist.sandbox.threaded_server import bind_socket

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT, UPSTREAM_TIMEOUT, TLS_HANDSHAKE_TIMEOUT = 10.0, 60.0, 10.0  # seconds
HOP_BY_HOP = frozenset("connection keep-alive te trailer transfer-encoding upgrade".split())
PAGE_TITLES = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}
PAGE = "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n"
PAGE += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"  # nginx's error pages


class NetworkFault(str, Enum):
    """A network fault a `FaultProxy` injects into an exchange ("held": kept open, silent)."""

    NONE = "none"  # forward normally
    RESET_AFTER_REQUEST = "reset"  # forward, await the answer, then RST: no byte answered
    READ_TIMEOUT = "read_timeout"  # forward, never answer: held
    PROXY_502 = "502"  # do not forward; answer an HTML 502 Bad Gateway
    PROXY_504 = "504"  # forward, discard the answer; answer an HTML 504 Gateway Time-out
    STALL_MID_BODY = "stall"  # forward; send the head and half of the body, then held
    TLS_HANDSHAKE_FAIL = "tls_fail"  # TLS only: the handshake is aborted, nothing read


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of a `FaultProxy`'s counters.

    Attributes:
        requests_seen: complete requests read from clients.
        forwarded: requests sent upstream that got an upstream answer (faulted ones included).
        faulted: fault value -> exchanges (TLS: handshakes) that fault was injected into.
        listening: whether new connections are accepted (False after `refuse`).
    """

    requests_seen: int
    forwarded: int
    faulted: Counter[str]
    listening: bool


@dataclass
class _Rule:
    """A fault (or a pending refusal) for `times` exchanges matching `pattern`, after `skip`."""

    fault: NetworkFault = NetworkFault.NONE
    pattern: re.Pattern[str] | None = None
    skip: int = 0
    times: int | None = None

    def take(self, key: str) -> bool:
        """Count one exchange (`key`: `"METHOD /path"`); True when the rule applies to it."""
        if self.pattern and not self.pattern.search(key):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None:
            self.times -= 1
            return self.times >= 0
        return True


class _Request(NamedTuple):
    """A parsed request; `key` is `"METHOD /path"` (no query string), what `match` searches."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    key: str


def _serialise(status: str, headers: list[tuple[str, str]], body: bytes) -> tuple[bytes, bytes]:
    """Serialise an answer; hop-by-hop headers are replaced by `Connection: close`."""
    lines = [status, *(f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP)]
    lines = [line for line in lines if not line.lower().startswith("content-length:")]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1"), body


def _page(status: int) -> tuple[bytes, bytes]:
    """An nginx-like HTML error page (`502 Bad Gateway`, `504 Gateway Time-out`)."""
    title = PAGE_TITLES[status]
    page = PAGE.format(title).encode()
    return _serialise(f"HTTP/1.1 {title}", [("Content-Type", "text/html")], page)


def _require_loopback(host: str) -> None:
    """Raise ValueError unless `host` is `localhost` or a loopback IP address."""
    with contextlib.suppress(ValueError):
        if host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    raise ValueError(f"only loopback addresses are allowed, not {host!r}")


def _write_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write `{name}-cert.pem` (self-signed, 127.0.0.1 ::1 localhost) and `{name}-key.pem`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    # a name of its own: trust stores find an issuer by name, so two proxies trusted together
    # must not share one
    unique = f"fault-proxy {name} {secrets.token_hex(4)}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique)])
    names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=30)
    serial = x509.random_serial_number()
    builder = x509.CertificateBuilder(subject, subject, key.public_key(), serial, start, end)
    for extension, critical in (
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, True, False, False, False), True),  # sign
        (x509.SubjectAlternativeName([x509.DNSName("localhost"), *names]), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ):
        builder = builder.add_extension(extension, critical=critical)
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    cert_path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    return cert_path, key_path


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """Read one request (head, `Content-Length` bytes); None if junk or chunked; EOF raises."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, _, rest = request_line.partition(" ")
    target, _, version = rest.partition(" ")
    headers = [(n.strip(), v.strip()) for n, _, v in (x.partition(":") for x in lines if x)]
    values = {name.lower(): value for name, value in headers}
    if not version.startswith("HTTP/") or "chunked" in values.get("transfer-encoding", ""):
        return None
    length = int(values.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target, headers, body, f"{method} {target.split('?', 1)[0]}")


class FaultProxy:
    """An HTTP/1.1 proxy on loopback forwarding to `upstream_url`, with injectable faults.

    It runs its own event loop in a daemon thread; the control methods are thread-safe.

    Args:
        upstream_url: where requests are forwarded, e.g. `http://127.0.0.1:8123`.
        host: the loopback address to listen on.
        port: TCP port; 0 picks a free one (kept for the proxy's whole life).
        tls: serve HTTPS with a generated self-signed certificate (trust `ca_file`).
        hold_seconds: the longest a held connection stays open (read timeout, stall).

    Raises:
        ValueError: `host` or the upstream host is not a loopback address.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        hold_seconds: float = 120.0,
    ) -> None:
        _require_loopback(host)
        _require_loopback(urlsplit(upstream_url).hostname or "")
        self.upstream_url = upstream_url.rstrip("/")
        self.host, self.port, self.tls, self.hold_seconds = host, port, tls, hold_seconds
        self._lock = threading.Lock()
        self._fault, self._refusal = _Rule(), _Rule(times=0)  # no refusal pending
        self._counts: Counter[str] = Counter()
        self._faulted: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._placeholder: socket.socket | None = None  # keeps the port while refusing
        self._tempdir: Path | None = None
        self._ssl: ssl.SSLContext | None = None

    @property
    def base_url(self) -> str:
        """`http(s)://host:port` of the proxy (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        """Path of the PEM certificate a client must trust (e.g. `SSL_CERT_FILE`) for HTTPS.

        Raises:
            RuntimeError: the proxy has no TLS or was not started.
        """
        if not self.tls or self._tempdir is None:
            raise RuntimeError("ca_file exists only on a started proxy with tls=True")
        return str(self._tempdir / "proxy-cert.pem")

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the counters and of the listening state."""
        with self._lock:
            return ProxyStats(
                self._counts["requests_seen"],
                self._counts["forwarded"],
                Counter(self._faulted),
                self._server is not None,
            )

    def start(self) -> FaultProxy:
        """Start the event loop thread and listen; returns the proxy itself.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        if self.tls:  # the server context; its callback can abort handshakes
            self._tempdir = Path(tempfile.mkdtemp(prefix="fault-proxy-"))
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(*_write_certificate(self._tempdir, "proxy"))
            self._ssl.sni_callback = self._on_client_hello  # called without SNI (IP hosts) too
        limits = httpx.Limits(max_keepalive_connections=0)  # a fresh upstream connection each
        self._client = httpx.AsyncClient(trust_env=False, timeout=UPSTREAM_TIMEOUT, limits=limits)
        loop = self._loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _, context: logger.debug("fault proxy: %s", context))
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        try:
            self._call(self._listen)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every connection, end the thread (idempotent; about 1 s)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(Exception):
                self._call(self._shutdown)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CONTROL_TIMEOUT)
            if not loop.is_running():
                loop.close()
        self._loop = self._thread = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> FaultProxy:
        """Start the proxy (see `start`)."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the proxy (see `stop`)."""
        self.stop()

    def set_fault(
        self,
        fault: NetworkFault,
        *,
        match: str | None = None,
        after: int = 0,
        times: int | None = None,
    ) -> None:
        """Inject `fault` from now on (replacing the previous fault) into matching requests.

        Args:
            fault: the fault; NONE forwards everything.
            match: regex searched (`re.search`) in `"METHOD /path"` (no query); None: all.
            after: let that many more matching requests through normally first.
            times: fault only that many matching requests, then forward normally (None: all).

        Raises:
            ValueError: TLS_HANDSHAKE_FAIL without TLS or with `match` (the request is never
                read; `after` and `times` count handshakes), or `match` is not a regex.
        """
        fault = NetworkFault(fault)
        if fault is NetworkFault.TLS_HANDSHAKE_FAIL and (not self.tls or match is not None):
            raise ValueError("TLS_HANDSHAKE_FAIL needs tls=True and no match")
        pattern = re.compile(match) if match is not None else None
        with self._lock:
            self._fault = _Rule(fault, pattern, after, times)

    def heal(self) -> None:
        """Forward normally again: no fault, no pending `refuse`; the listening state is kept."""
        with self._lock:
            self._fault, self._refusal = _Rule(), _Rule(times=0)

    def refuse(self, *, match: str | None = None, after: int = 0) -> None:
        """Stop listening: new connections get ECONNREFUSED; the port stays reserved.

        Args:
            match: regex searched in `"METHOD /path"` of forwarded requests; None: all.
            after: refuse once that many more matching requests were forwarded (the last one
                is still answered normally); 0 refuses now.

        Raises:
            RuntimeError: the proxy is not started.
        """
        if after <= 0:
            self._call(self._unlisten)
            return
        pattern = re.compile(match) if match is not None else None
        with self._lock:
            self._refusal = _Rule(pattern=pattern, skip=after - 1, times=1)

    def accept(self) -> None:
        """Listen again on the same port; clear the fault and any pending `refuse`.

        Raises:
            OSError: the port cannot be bound again.
            RuntimeError: the proxy is not started.
        """
        self.heal()
        self._call(self._listen)

    def _call(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `function()` on the proxy's loop and wait for it (re-raises its exception)."""
        if self._loop is None:
            raise RuntimeError("proxy not started")
        asyncio.run_coroutine_threadsafe(function(), self._loop).result(CONTROL_TIMEOUT)

    def _on_client_hello(self, _ssl_object: Any, _name: str | None, _ctx: Any) -> int | None:
        """At each handshake: abort it (a handshake_failure alert) when the fault says so."""
        with self._lock:
            rule = self._fault
            if rule.fault is not NetworkFault.TLS_HANDSHAKE_FAIL or not rule.take(""):
                return None
            self._faulted[rule.fault.value] += 1
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE

    async def _listen(self) -> None:
        """Bind the port (SO_REUSEADDR) before freeing the placeholder, then serve."""
        if self._server is not None:
            return
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        await self._unlisten(reserve=False)  # frees the placeholder, once the port is bound
        timeout = TLS_HANDSHAKE_TIMEOUT if self._ssl else None
        server = await asyncio.start_server(
            self._handle, sock=sock, ssl=self._ssl, ssl_handshake_timeout=timeout
        )
        with self._lock:
            self._server = server

    async def _unlisten(self, reserve: bool = True) -> None:
        """Close the listening socket now; keep the port bound, not listening, if `reserve`."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()  # closes the listening socket at once; accepted connections live on
        if not reserve and self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        elif reserve and self._placeholder is None:
            with contextlib.suppress(OSError):  # if it fails, the port is merely not reserved
                self._placeholder = bind_socket(self.host, self.port)

    async def _shutdown(self) -> None:
        """Stop listening, free the port, cancel every connection, close the upstream client."""
        await self._unlisten(reserve=False)
        tasks = asyncio.all_tasks() - {asyncio.current_task()}  # the connections: a private loop
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        await self._client.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: one request, one (possibly faulty) answer, then close it."""
        try:
            request = await asyncio.wait_for(_read_request(reader), self.hold_seconds)
            if request is not None:
                await self._answer(request, reader, writer)
        except Exception as exc:
            logger.debug("fault proxy: connection ended by %r", exc)
        finally:
            writer.close()

    async def _answer(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Choose the fault, then forward (or not) and answer (or not) as it says."""
        with self._lock:
            self._counts["requests_seen"] += 1
            rule, fault = self._fault, NetworkFault.NONE
            if rule.fault.value not in ("none", "tls_fail") and rule.take(request.key):
                fault = rule.fault
                self._faulted[fault.value] += 1
        answer = None if fault is NetworkFault.PROXY_502 else await self._forward(request)
        head, body = _page(504) if fault is NetworkFault.PROXY_504 else answer or _page(502)
        if fault is NetworkFault.RESET_AFTER_REQUEST:  # SO_LINGER 0: the close sends a RST
            linger = struct.pack("ii", 1, 0)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            writer.transport.abort()
            return
        if fault is not NetworkFault.READ_TIMEOUT:
            stall = fault is NetworkFault.STALL_MID_BODY
            writer.write(head + (body[: len(body) // 2] if stall else body))
            await writer.drain()
        if fault in (NetworkFault.READ_TIMEOUT, NetworkFault.STALL_MID_BODY):  # held: silent
            with contextlib.suppress(asyncio.TimeoutError, OSError):  # until EOF or the limit
                await asyncio.wait_for(reader.read(1), self.hold_seconds)

    async def _forward(self, request: _Request) -> tuple[bytes, bytes] | None:
        """Send `request` upstream on a fresh connection; None when the upstream failed."""
        headers = [(k, v) for k, v in request.headers if k.lower() not in {*HOP_BY_HOP, "host"}]
        url = httpx.URL(self.upstream_url).copy_with(raw_path=request.target.encode("latin-1"))
        upstream = httpx.Request(request.method, url, headers=headers, content=request.body)
        try:
            response = await self._client.send(upstream, stream=True)
            body = b"".join([chunk async for chunk in response.aiter_raw()])  # then it closes
        except httpx.HTTPError as exc:
            logger.debug("fault proxy: upstream failed: %r", exc)
            return None
        with self._lock:
            self._counts["forwarded"] += 1
            refuse_now = self._refusal.take(request.key)
        if refuse_now:  # before the answer is written: the client's next connect is refused
            await self._unlisten()
        status_line = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
        return _serialise(status_line, [(k, v) for k, v in response.headers.multi_items()], body)
