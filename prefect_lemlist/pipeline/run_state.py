"""`RunState`: what one execution of a run has learnt so far, in one place.

The stages of `EnrichmentRun.execute` hand this object along instead of sharing loose mutable
collections: the start answers are taken in here (`take`), the collector's results are folded
in at the end (`collected`), and the report reads it. A new state is made per execution, so a
run object can execute twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect_lemlist.api.exceptions import LemlistError
from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.collect import ResultCollector
from prefect_lemlist.pipeline.outcomes import Outcome, outcome_of
from prefect_lemlist.pipeline.start import StartAnswer
from prefect_lemlist.pipeline.stop import StopSignal


@dataclass
class RunState:
    """The state of one execution of a run.

    Attributes:
        stop: the run's stop signal (every stage reads it).
        collector: the run's result collector (None for a dry run).
        outcomes: item -> its final outcome, as far as known.
        notes: item -> a note for its final outcome.
        waiting: items another live run is starting: followed, never sent twice.
        started: enrichments lemlist accepted in this execution.
        sent: items whose start request was sent (or answered by an earlier run).
        batches: one row per start batch, for the batches artifact.
        landing_error: why the rows could not be merged into the database (the files are
            written), or None.
    """

    stop: StopSignal = field(default_factory=StopSignal)
    collector: ResultCollector | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    started: int = 0
    sent: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    landing_error: LemlistError | None = None

    def take(self, answers: list[StartAnswer]) -> None:
        """Take one batch's start answers in: enrichment ids to the collector, decided
        outcomes and notes here, items another run holds to `waiting`."""
        for answer in answers:
            if answer.note:
                self.notes[answer.key] = answer.note
            if answer.enrichment_id:
                self.started += 1
                self._collector().add(
                    answer.key, answer.enrichment_id, started_at=answer.started_at
                )
            elif answer.elsewhere:
                self.waiting.append(answer.key)
            elif answer.outcome is not None:
                self.outcomes[answer.key] = answer.outcome
        self.sent += sum(answer.sent for answer in answers)
        self.batches.append(_batch_row(len(self.batches) + 1, answers))

    def collect_elsewhere(self, key: str, enrichment_id: str, note: str) -> None:
        """Collect an enrichment another run started (its id read from the ledger)."""
        self._collector().add(key, enrichment_id)
        self.notes[key] = note

    def finished(self) -> int:
        """Items with a final answer so far (not counting those left unsent)."""
        unsent = sum(o.status == "not_started" for o in self.outcomes.values())
        collected = len(self.collector.results) if self.collector is not None else 0
        return len(self.outcomes) - unsent + collected

    def collected(self, flags: EnrichmentFlags) -> None:
        """Fold the collector's results (and the notes) into the outcomes."""
        collector = self._collector()
        for key, result in collector.results.items():
            self.outcomes[key] = outcome_of(result, flags).with_note(self.notes.get(key))
        for key in self.notes.keys() - collector.results.keys():
            if key in self.outcomes:
                self.outcomes[key] = self.outcomes[key].with_note(self.notes[key])

    def uncollected(self) -> int:
        """Started enrichments whose result this execution could not read (ids kept)."""
        return sum(o.status in ("timed_out", "not_collected") for o in self.outcomes.values())

    def _collector(self) -> ResultCollector:
        if self.collector is None:
            raise RuntimeError("this run state has no collector (a dry run)")
        return self.collector


def _batch_row(number: int, answers: list[StartAnswer]) -> dict[str, Any]:
    statuses = [a.outcome.status for a in answers if a.outcome is not None and not a.enrichment_id]
    return {
        "batch": number,
        "items": len(answers),
        "started": sum(1 for a in answers if a.enrichment_id),
        "skipped": sum(1 for s in statuses if s.startswith("skipped")),
        "refused": sum(1 for s in statuses if s in ("failed", "rejected")),
        "not_started": sum(1 for s in statuses if s == "not_started"),
    }
