"""The lemlist team of a sandbox: its id, its users, its API keys' use and its credits.

Not thread-safe: the state manager calls it under the backend's lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import make_id
from prefect_lemlist.sandbox.exceptions import NotEnoughCredits, PaymentRequired


class Account:
    """The team every API key belongs to.

    Args:
        config: returns the current configuration.
    """

    def __init__(self, config: Callable[[], SandboxConfig]) -> None:
        self._config = config
        # Each sandbox is its own team unless told otherwise: clients keep per-team records
        # (the enrichment ledger), and two sandboxes must not share them by accident.
        self._own_team_id = make_id(random.SystemRandom(), "tea")
        self._key_requests: dict[str, int] = {}
        self.credits = config().credits
        self.created_epoch = time.time()

    @property
    def team_id(self) -> str:
        """`config.team_id`, or this sandbox's own random team id."""
        return self._config().team_id or self._own_team_id

    def user_ids(self) -> list[str]:
        """One stable user id per API key."""
        cfg = self._config()
        return [
            make_id(random.Random(f"lemlist-sandbox-user-{cfg.seed}-{index}"), "usr")
            for index in range(len(cfg.api_keys))
        ]

    def is_valid_key(self, key: str) -> bool:
        """Whether `key` is one of the configured API keys (revocation not considered)."""
        return key in self._config().api_keys

    def authenticate(self, key: str) -> bool:
        """Check a request's API key and count its use (for `revoke_key_after_requests`).

        Args:
            key: the password of the request's Basic auth.

        Returns:
            False for an unknown key, or for the first key once it made
            `revoke_key_after_requests` authenticated requests (it is then revoked).
        """
        cfg = self._config()
        if key not in cfg.api_keys:
            return False
        used = self._key_requests.get(key, 0)
        limit = cfg.revoke_key_after_requests
        if limit is not None and key == cfg.api_keys[0] and used >= limit:
            return False
        self._key_requests[key] = used + 1
        return True

    def check_can_start(self) -> None:
        """Refuse an enrichment start when out of credits (per `out_of_credits_answer`).

        Raises:
            NotEnoughCredits: 400 (or `PaymentRequired`, 402). With `accept_then_fail` nothing
                is raised: the enrichment starts and ends in error.
        """
        if self.credits > 0:
            return
        answer = self._config().out_of_credits_answer
        if answer == "400":
            raise NotEnoughCredits()
        if answer == "402":
            raise PaymentRequired()

    def charge(self, cost: int) -> bool:
        """Take `cost` credits if the balance allows it.

        Returns:
            False (nothing taken) when the balance is too low.
        """
        if cost > self.credits:
            return False
        self.credits -= cost
        return True

    def to_state(self) -> dict[str, Any]:
        """Team id, key use, credits and creation time."""
        return {
            "team_id": self.team_id,
            "key_requests": dict(self._key_requests),
            "credits": self.credits,
            "created_epoch": self.created_epoch,
        }

    def from_state(self, data: dict[str, Any]) -> None:
        """Restore what `to_state` saved.

        The team is the account: a restarted sandbox is the same lemlist team (a configured
        `team_id` still wins).
        """
        self._own_team_id = str(data.get("team_id") or self._own_team_id)
        self._key_requests = {str(k): int(v) for k, v in data["key_requests"].items()}
        self.credits = int(data["credits"])
        self.created_epoch = float(data["created_epoch"])


__all__ = ["Account"]
