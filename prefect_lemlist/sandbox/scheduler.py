"""Completion scheduling of enrichments and the sandbox's seeded randomness.

`Randomness` holds the four seeded RNGs (timing and ids, faults, fates, people ids) so a run is
reproducible for a given sequence of requests, and their positions survive a restart.
`CompletionScheduler` turns a `PendingEnrichment` into a registered `Enrichment` (id, fate,
due time) and yields the enrichments that are due.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

from prefect_lemlist.sandbox.config import SandboxConfig
from prefect_lemlist.sandbox.data import make_id
from prefect_lemlist.sandbox.models import Enrichment, EnrichmentStore, PendingEnrichment
from prefect_lemlist.sandbox.persistence import rng_state, set_rng_state


class Randomness:
    """The seeded RNGs of one sandbox.

    Attributes:
        timing: enrichment ids and durations.
        faults: injected faults and latency.
        fates: per-enrichment fates (unknown status, vanish, never finish, duplicate webhook).
        people: ids of people campaigns, leads and contacts.

    Args:
        seed: `SandboxConfig.seed`.
    """

    def __init__(self, seed: int) -> None:
        self.timing = random.Random(f"lemlist-sandbox-timing-{seed}")
        self.faults = random.Random(f"lemlist-sandbox-faults-{seed}")
        self.fates = random.Random(f"lemlist-sandbox-fates-{seed}")
        self.people = random.Random(f"lemlist-sandbox-people-ids-{seed}")

    def duration(self, seconds: tuple[float, float]) -> float:
        """Draw an enrichment duration from a `(min, max)` range."""
        low, high = seconds
        return self.timing.uniform(low, high)

    def to_state(self) -> dict[str, Any]:
        """The four RNG positions."""
        return {
            "timing": rng_state(self.timing),
            "faults": rng_state(self.faults),
            "fates": rng_state(self.fates),
            "people": rng_state(self.people),
        }

    def from_state(self, data: dict[str, Any]) -> None:
        """Restore the positions saved by `to_state`."""
        set_rng_state(self.timing, data["timing"])
        set_rng_state(self.faults, data["faults"])
        set_rng_state(self.fates, data["fates"])
        set_rng_state(self.people, data["people"])


class CompletionScheduler:
    """Registers new enrichments with their fate and finds the ones that are due.

    Not thread-safe: the backend calls it under its lock.

    Args:
        store: where enrichments are registered.
        randomness: the sandbox's RNGs.
    """

    def __init__(self, store: EnrichmentStore, randomness: Randomness) -> None:
        self._store = store
        self._random = randomness
        self._due: list[tuple[float, int, str]] = []
        self._due_seq = 0

    def create(
        self, pending: PendingEnrichment, now: float, config: SandboxConfig, out_of_credits: bool
    ) -> Enrichment:
        """Draw an id and a fate, register the enrichment and schedule its end.

        Args:
            pending: what the enrichment is made of.
            now: monotonic start time.
            config: the current configuration (fate rates).
            out_of_credits: accepted without credits (ends `error`).

        Returns:
            The registered enrichment.
        """
        enrichment_id = make_id(self._random.timing, "enr")
        while enrichment_id in self._store:
            enrichment_id = make_id(self._random.timing, "enr")
        draws = [self._random.fates.random() for _ in range(4)]
        api = not pending.from_app
        enrichment = Enrichment(
            enrichment_id=enrichment_id,
            lead_id=pending.lead_id,
            contact_id=pending.contact_id,
            workflows=pending.workflows,
            input=pending.inputs,
            started_at=now,
            due_at=now + pending.duration,
            webhook_url=pending.webhook_url,
            from_app=pending.from_app,
            fails=api and draws[0] < config.enrichment_unknown_status_rate,
            vanishes=api and draws[1] < config.enrichment_vanish_rate,
            never_finishes=api and draws[2] < config.enrichment_never_finish_rate,
            duplicate_webhook=api and draws[3] < config.webhook_duplicate_rate,
            route=pending.route,
            person_key=pending.person_key,
            person_inputs=pending.person_inputs,
            metadata=pending.metadata,
            has_metadata=pending.has_metadata,
            out_of_credits=api and out_of_credits,
        )
        self._store.add(enrichment)
        self._schedule(enrichment)
        return enrichment

    def _schedule(self, enrichment: Enrichment) -> None:
        if not enrichment.never_finishes:
            self._due_seq += 1
            heapq.heappush(self._due, (enrichment.due_at, self._due_seq, enrichment.enrichment_id))

    def next_due(self) -> float | None:
        """Monotonic time of the next enrichment to finish, or None."""
        return self._due[0][0] if self._due else None

    def pop_due(self, now: float) -> Iterator[Enrichment]:
        """Yield (and unschedule) the unfinished enrichments due at `now`, in due order."""
        while self._due and self._due[0][0] <= now:
            _, _, enrichment_id = heapq.heappop(self._due)
            enrichment = self._store.get(enrichment_id)
            if enrichment is not None and not enrichment.finished:
                yield enrichment

    def to_state(self) -> dict[str, Any]:
        """The schedule's sequence number (the heap is rebuilt from the enrichments)."""
        return {"due_seq": self._due_seq}

    def from_state(self, data: dict[str, Any]) -> None:
        """Restore the sequence number and reschedule every unfinished enrichment.

        Call after the store was restored.
        """
        self._due = []
        self._due_seq = int(data["due_seq"])
        for enrichment in self._store:
            if not enrichment.finished:
                self._schedule(enrichment)
        heapq.heapify(self._due)


__all__ = ["CompletionScheduler", "Randomness"]
