"""Run a sandbox on uvicorn in a background thread: `Sandbox` and `run_sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from prefect_lemlist.sandbox.app import AppRuntime, ConnectionRegistry, create_app
from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import SandboxLead
from prefect_lemlist.sandbox.models import Contact, Enrichment, PersonLead
from prefect_lemlist.sandbox.recorder import SandboxStats
from prefect_lemlist.sandbox.state import SandboxState
from prefect_lemlist.sandbox.threaded_server import ThreadedASGIServer

BACKLOG = 4096
KEEP_ALIVE_SECONDS = 75  # longer than httpx's 5 s pool expiry: no keep-alive close race


def _protocol_class(registry: ConnectionRegistry) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, subclassed to register each connection's transport."""

    class RegisteringProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            registry.register(self.client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.unregister(self.client, self.transport)
            super().connection_lost(exc)

    return RegisteringProtocol


class Sandbox:
    """A running (or ready to run) lemlist sandbox server.

    Use `run_sandbox` rather than building it directly.

    Args:
        config: the sandbox configuration.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self._state = SandboxState(config)
        self._registry = ConnectionRegistry()
        self._runtime = AppRuntime()
        self._app = create_app(self._state, connections=self._registry, runtime=self._runtime)
        self._server: ThreadedASGIServer | None = None
        self._port = 0

    # ------------------------------------------------------------------ facts

    @property
    def config(self) -> SandboxConfig:
        """The current configuration (reflects `configure` calls)."""
        return self._state.config

    @property
    def host(self) -> str:
        """The bound host."""
        return self._state.config.host

    @property
    def port(self) -> int:
        """The bound TCP port (0 before start)."""
        return self._port

    @property
    def base_url(self) -> str:
        """`http://<host>:<port>` (IPv6 hosts in brackets); lemlist paths go right after it."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def api_key(self) -> str:
        """The first valid API key."""
        return self._state.config.api_keys[0]

    @property
    def campaign_id(self) -> str:
        """The seeded campaign's id (`cam_…`)."""
        return self._state.campaign.campaign_id

    @property
    def campaign_ids(self) -> list[str]:
        """Every campaign id: the seeded one first, then `add_campaign_from_people` ones."""
        return self._state.campaign_ids

    @property
    def team_id(self) -> str:
        """The team (`tea_…`) every API key belongs to (`GET /team`)."""
        return self._state.team_id

    @property
    def leads(self) -> list[SandboxLead]:
        """The seeded leads with their hidden truth (ground truth for tests)."""
        return list(self._state.leads)

    @property
    def foreign_lead_ids(self) -> list[str]:
        """Lead ids that belong to another team (400 `Bad team`)."""
        return list(self._state.campaign.foreign_lead_ids)

    @property
    def app(self) -> Starlette:
        """The ASGI app (to add routes, e.g. the CLI's admin route, before `start`)."""
        return self._app

    @property
    def state(self) -> SandboxState:
        """The underlying state (advanced use and tests)."""
        return self._state

    def lead(self, lead_id: str) -> SandboxLead:
        """The seeded lead with this id (KeyError if unknown)."""
        return self._state.leads_by_id[lead_id]

    def contact(self, lead_id: str) -> Contact | None:
        """A copy of the lead's current contact data (None when the contact is missing)."""
        return self._state.contact_of(lead_id)

    def enrichment(self, enrichment_id: str) -> Enrichment | None:
        """The server-side record of an enrichment, or None."""
        return self._state.enrichment(enrichment_id)

    def enrichments(self) -> list[Enrichment]:
        """Every server-side enrichment record, in start order (app-started ones included)."""
        return self._state.enrichments()

    def person_lead(self, lead_id: str) -> PersonLead | None:
        """The lead of a people campaign with this id (its person key and inputs), or None."""
        return self._state.person_lead(lead_id)

    def add_campaign_from_people(
        self, rows: Sequence[Mapping[str, str]], name: str | None = None
    ) -> tuple[str, list[str]]:
        """Create a campaign whose leads are these people (one lead per row).

        Each row gets a new `lea_` id; rows of the same `person_key` (in this call or an
        earlier one) share one `ctc_` contact, like lemlist. The leads' enrichments
        (`POST /leads/{id}/enrich`) use `person_truth` of the row's inputs, so they agree with
        `POST /enrich` and bulk enrichments of the same people. The export route serves the
        campaign, and `GET /leads/{email}` lists its leads.

        Args:
            rows: people rows (`generate_people` shape).
            name: campaign name (default `People campaign N`).

        Returns:
            (campaign id, lead ids in row order).
        """
        return self._state.add_campaign_from_people(rows, name)

    # ------------------------------------------------------------------ knobs and stats

    def configure(self, **overrides: Any) -> SandboxConfig:
        """Change knobs at runtime (thread-safe, validated).

        Args:
            **overrides: `SandboxConfig` fields, e.g. `fault_5xx_rate=0.5`.

        Returns:
            The new configuration.
        """
        return self._state.configure(**overrides)

    def stats(self) -> SandboxStats:
        """A snapshot of the statistics."""
        return self._state.stats()

    def reset_stats(self) -> None:
        """Zero the statistics (keeps enrichments, credits and the rate limiter)."""
        self._state.reset_stats()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        """Start serving in a daemon thread and wait until connections are accepted.

        Returns:
            self.

        Raises:
            OSError: the address cannot be bound (e.g. the port is busy).
            RuntimeError: when the server does not come up.
        """
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        cfg = self._state.config
        self._server = ThreadedASGIServer(
            self._app,
            host=cfg.host,
            port=cfg.port,
            http=_protocol_class(self._registry),
            backlog=BACKLOG,
            limit_concurrency=None,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            date_header=True,
        )
        self._server.start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        """Shut the server down cleanly and wait for its thread (idempotent).

        Then saves the state file when `SandboxConfig.state_file` is set.
        """
        self._runtime.request_stop()  # wakes slow requests so shutdown is quick
        if self._server is not None:
            self._server.stop()
        self._state.save()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, campaign_id={self.campaign_id!r})"


@contextlib.contextmanager
def run_sandbox(config: SandboxConfig | None = None, /, **overrides: Any) -> Iterator[Sandbox]:
    """Run a lemlist sandbox on loopback for the duration of a `with` block.

    Usable from sync code and from inside a running asyncio loop (the server has its own loop
    in a daemon thread; only startup and shutdown block the caller).

    Args:
        config: the configuration (default: `SandboxConfig()`).
        **overrides: fields replacing those of `config`, e.g. `leads=50, seed=3`.

    Yields:
        The started `Sandbox`.
    """
    base = config or SandboxConfig()
    sandbox = Sandbox(base.with_overrides(**overrides) if overrides else base)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
