"""The state manager of a sandbox: builds its components and persists them.

Like moto's backends registry, `SandboxState` owns one sandbox's world — the configuration,
the `Directory` (campaigns, leads, contacts), the `Account` (team, keys, credits), the
`LemlistBackend` (lemlist's enrichment logic), the `Recorder` (statistics) and the seeded
`Randomness` — and saves/loads it through `persistence`, each component serialising itself.
It is HTTP-agnostic and thread-safe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect_lemlist.sandbox.account import Account
from prefect_lemlist.sandbox.backend import LemlistBackend
from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import SandboxLead, SeededCampaign
from prefect_lemlist.sandbox.directory import Directory
from prefect_lemlist.sandbox.models import (
    Contact,
    Enrichment,
    PeopleCampaign,
    PersonLead,
    WebhookDelivery,
    WebhookJob,
)
from prefect_lemlist.sandbox.persistence import (
    STATE_FILE_FORMAT,
    STATE_FILE_VERSION,
    envelope,
    read_state_file,
    write_state_file,
)
from prefect_lemlist.sandbox.recorder import Recorder, SandboxStats, max_in_window
from prefect_lemlist.sandbox.responses import Reply, iso_time
from prefect_lemlist.sandbox.rules import strip_query, webhook_url_allowed
from prefect_lemlist.sandbox.scheduler import Randomness


class SandboxState:
    """The whole mutable world of one sandbox (thread-safe).

    When `config.state_file` names an existing file, the world is loaded from it instead of
    being freshly seeded (see `save`).

    Args:
        config: the starting configuration.

    Raises:
        ValueError: the state file is unreadable or was written for another seed / lead count.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self.randomness = Randomness(config.seed)
        self.recorder = Recorder()
        self.directory = Directory(config.leads, config.seed, self.randomness.people)
        self.account = Account(lambda: self._config)
        self.backend = LemlistBackend(
            lambda: self._config, self.directory, self.account, self.randomness, self.recorder
        )
        self._lock = self.backend.lock
        path = config.state_file
        if path is not None and Path(path).exists():
            self._load(Path(path))
        else:
            self.backend.seed_app_state()

    # ----------------------------------------------------------------- setup / config

    @property
    def campaign(self) -> SeededCampaign:
        """The seeded campaign."""
        return self.directory.campaign

    @property
    def leads(self) -> tuple[SandboxLead, ...]:
        """The seeded leads, in campaign order."""
        return self.directory.leads

    @property
    def leads_by_id(self) -> dict[str, SandboxLead]:
        """The seeded leads by id."""
        return self.directory.leads_by_id

    @property
    def config(self) -> SandboxConfig:
        """The current configuration."""
        return self._config

    @property
    def team_id(self) -> str:
        """The team every API key belongs to (`config.team_id`, or a random one per sandbox)."""
        with self._lock:
            return self.account.team_id

    def configure(self, **overrides: Any) -> SandboxConfig:
        """Change knobs at runtime (validated; `credits` resets the balance).

        Saves the state file afterwards when `state_file` is set.

        Args:
            **overrides: `SandboxConfig` fields. `leads`, `seed`, `host` and `port` have no
                effect once the sandbox runs.

        Returns:
            The new configuration.
        """
        with self._lock:
            self._config = self._config.with_overrides(**overrides)
            if "credits" in overrides:
                self.account.credits = self._config.credits
            if self._config.state_file is not None:
                self.save()
            return self._config

    # ----------------------------------------------------------------- keys and statistics

    def is_valid_key(self, key: str) -> bool:
        """Whether `key` is one of the configured API keys (revocation not considered)."""
        return self.account.is_valid_key(key)

    def authenticate(self, key: str) -> bool:
        """Check a request's API key and count its use (see `Account.authenticate`)."""
        with self._lock:
            return self.account.authenticate(key)

    def record_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Store the outcome of one webhook delivery."""
        enrichment = self.enrichment(delivery.enrichment_id)
        lead_id = enrichment.lead_id if enrichment is not None else None
        self.recorder.webhook_delivery(delivery, lead_id)

    def record_result_served(self, enrichment_id: str, source: str) -> None:
        """Note (once) when a finished enrichment's result first reached the client."""
        enrichment = self.enrichment(enrichment_id)
        lead_id = enrichment.lead_id if enrichment is not None else None
        self.recorder.result_served(enrichment_id, lead_id, source)

    def reset_stats(self) -> None:
        """Zero every statistic (the rate limiter, credits and enrichments are kept)."""
        self.recorder.reset()

    def stats(self) -> SandboxStats:
        """A consistent snapshot of the statistics (due enrichments finished first)."""
        with self._lock:
            self.backend.complete_due()
            return self.recorder.stats(self.account.credits, self._config.api_keys[0])

    def benchmark_snapshot(self) -> dict[str, Any]:
        """Counters and per-lead result times as JSON-ready data (`GET /_sandbox/stats`)."""
        with self._lock:
            self.backend.complete_due()
            cfg = self._config
            return self.recorder.benchmark(cfg.api_keys[0], cfg.rate_limit, cfg.rate_window_seconds)

    # ----------------------------------------------------------------- world

    @property
    def campaign_ids(self) -> list[str]:
        """Every campaign id: the seeded one first, then people campaigns in creation order."""
        with self._lock:
            return self.directory.campaign_ids

    def has_campaign(self, campaign_id: str) -> bool:
        """Whether the campaign exists in this sandbox."""
        with self._lock:
            return self.directory.has_campaign(campaign_id)

    def add_campaign_from_people(
        self, rows: Sequence[Mapping[str, str]], name: str | None = None
    ) -> tuple[str, list[str]]:
        """Create a campaign whose leads are these people (see `Directory`)."""
        with self._lock:
            return self.directory.add_campaign_from_people(rows, name)

    def person_lead(self, lead_id: str) -> PersonLead | None:
        """The lead of a people campaign with this id, or None."""
        return self.backend.person_lead(lead_id)

    def contact_of(self, lead_id: str) -> Contact | None:
        """A copy of the current contact of a lead (None when missing), for tests."""
        with self._lock:
            contact = self.directory.contact(lead_id)
            return None if contact is None else contact.copy()

    def enrichment(self, enrichment_id: str) -> Enrichment | None:
        """The enrichment record (for tests and debugging), or None."""
        with self._lock:
            return self.backend.enrichments.get(enrichment_id)

    def enrichments(self) -> list[Enrichment]:
        """Every enrichment record, in start order (for tests and debugging)."""
        with self._lock:
            return list(self.backend.enrichments)

    @property
    def _enrichments(self) -> dict[str, Enrichment]:
        """Id → enrichment (kept for callers of the former private field; use `enrichments`)."""
        return self.backend.enrichments.by_id

    def complete_due(self, now: float | None = None) -> int:
        """Finish every enrichment whose duration has passed (see `LemlistBackend`)."""
        return self.backend.complete_due(now)

    def next_due(self) -> float | None:
        """Monotonic time of the next enrichment to finish, or None."""
        return self.backend.next_due()

    def take_webhook_jobs(self) -> list[WebhookJob]:
        """Remove and return the webhooks waiting to be delivered."""
        return self.backend.take_webhook_jobs()

    # ----------------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        """The mutable world as JSON-ready data (what `save` writes).

        The header, the keys and the account's fields (`team_id`, `key_requests`, `credits`,
        `created_epoch`) at the top level, then one section per component (`directory`,
        `enrichments`, `skips`, `scheduler`, `rng`); monotonic times are stored as epoch
        seconds.
        """
        with self._lock:
            cfg = self._config
            return envelope(
                cfg.seed,
                cfg.leads,
                {
                    "api_keys": list(cfg.api_keys),
                    **self.account.to_state(),
                    "directory": self.directory.to_state(),
                    "enrichments": self.backend.enrichments.to_state(),
                    "skips": self.backend.memory.to_state(),
                    "scheduler": self.backend.scheduler.to_state(),
                    "rng": self.randomness.to_state(),
                },
            )

    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the mutable world to the state file atomically (temp file + `os.replace`).

        Args:
            path: where to write (default: `config.state_file`).

        Returns:
            The written path, or None when there is no state file.
        """
        with self._lock:
            target = path if path is not None else self._config.state_file
            if target is None:
                return None
            data = self.snapshot()
        return write_state_file(target, data)

    def _load(self, path: Path) -> None:
        """Replace the freshly seeded world by the one saved in `path`."""
        cfg = self._config
        data = read_state_file(path, cfg.seed, cfg.leads)
        with self._lock:
            self._config = cfg.with_overrides(api_keys=data["api_keys"])
            self.account.from_state(data)
            self.directory.from_state(data["directory"])
            self.backend.enrichments.from_state(data["enrichments"])
            self.backend.memory.from_state(data["skips"])
            self.backend.scheduler.from_state(data["scheduler"])
            self.randomness.from_state(data["rng"])


__all__ = [
    "STATE_FILE_FORMAT",
    "STATE_FILE_VERSION",
    "Contact",
    "Enrichment",
    "PeopleCampaign",
    "PersonLead",
    "Reply",
    "SandboxState",
    "SandboxStats",
    "WebhookDelivery",
    "WebhookJob",
    "iso_time",
    "max_in_window",
    "strip_query",
    "webhook_url_allowed",
]
