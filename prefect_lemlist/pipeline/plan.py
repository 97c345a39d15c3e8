"""The plan of a run: what earlier runs already did, what is left to start, and what it may cost.

Nothing here sends a request: the plan is made from the worklist and the ledger's recall, then
checked against the team's credits and `max_credits` before anything is spent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.bulk import refusal_outcome
from prefect_lemlist.pipeline.ledger import Recall
from prefect_lemlist.pipeline.outcomes import Outcome

ItemKind = Literal["leads", "contacts"]
"""What a run enriches: leads (`POST /leads/{id}/enrich`) or people (bulk)."""


@dataclass
class Plan:
    """What a run will do, item by item.

    Attributes:
        to_start: items to start now (in worklist order).
        to_collect: item -> enrichment id an earlier run started (collected, not started).
        decided: item -> outcome known without lemlist (an earlier run's final result or
            recorded answer, or an interrupted contacts start that is never re-sent).
        resend: leads whose earlier start was interrupted: sent once more, without `force`.
        recalled: the recall of every item of `to_start` that has a record (interrupted,
            expired): its claim takes over the record version the recall read.
        elsewhere: items another live run is starting right now: followed in the ledger until
            its answer is recorded (then collected), never sent by this run too.
        max_credit_cost: the most starting `to_start` can cost (upper-bound prices).
        refresh: items of `to_start` whose result is older than `refresh_before`: enriched
            (and paid) again, sent with lemlist's `force`.
    """

    to_start: list[str] = field(default_factory=list)
    to_collect: dict[str, str] = field(default_factory=dict)
    decided: dict[str, Outcome] = field(default_factory=dict)
    resend: dict[str, Recall] = field(default_factory=dict)
    recalled: dict[str, Recall] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)
    max_credit_cost: int = 0
    refresh: set[str] = field(default_factory=set)

    @property
    def from_earlier_runs(self) -> int:
        """Items answered or collected thanks to an earlier run."""
        return len(self.to_collect) + len(self.decided)


def make_plan(
    keys: Iterable[str],
    recalls: dict[str, Recall],
    flags: EnrichmentFlags,
    *,
    force: bool,
    kind: ItemKind,
    refresh_before: datetime | None = None,
) -> Plan:
    """Split items by what earlier runs did (everything is started with `force`).

    Args:
        keys: the run's items (lead ids or contact fingerprints), in worklist order.
        recalls: the ledger's recall of those items.
        flags: the requested workflows (for the cost).
        force: start everything again.
        kind: `leads` (an interrupted start is re-sent without force: lemlist refuses a second
            start of a contact) or `contacts` (never re-sent: lemlist does not deduplicate).
        refresh_before: a result recorded before this time is enriched again (`refresh`);
            its record is taken over by one run only, like an expired one.
    """
    plan = Plan()
    for key in keys:
        recall = recalls.get(key)
        stale = recall is not None and _stale(recall, refresh_before)
        if force or recall is None or recall.expired or stale:
            plan.to_start.append(key)
            if recall is not None:
                plan.recalled[key] = recall
            if stale and not force:
                plan.refresh.add(key)
            continue
        _place(plan, key, recall, kind)
    plan.max_credit_cost = flags.max_credits_each() * len(plan.to_start)
    return plan


def _stale(recall: Recall, refresh_before: datetime | None) -> bool:
    """Whether a recorded final result is older than the refresh cut-off."""
    if refresh_before is None or recall.outcome is None or recall.recorded_at is None:
        return False
    return recall.recorded_at < refresh_before


def _place(plan: Plan, key: str, recall: Recall, kind: ItemKind) -> None:
    if recall.outcome is not None:
        when = f"{recall.recorded_at:%Y-%m-%d %H:%M} UTC" if recall.recorded_at else "earlier"
        note = f"result recorded by an earlier run ({when}); --force enriches again"
        plan.decided[key] = Outcome.model_validate(recall.outcome).with_note(note)
    elif recall.enrichment_id is not None:
        plan.to_collect[key] = recall.enrichment_id
    elif recall.answer is not None:
        plan.decided[key] = _recorded_answer(recall)
    elif recall.in_flight:
        plan.elsewhere.append(key)
    elif kind == "leads":
        plan.to_start.append(key)
        plan.resend[key] = recall
        plan.recalled[key] = recall
    else:
        plan.decided[key] = Outcome(
            status="failed",
            error=(
                "may have started: an earlier run sent this person but never recorded "
                "lemlist's answer (lemlist may have billed it; its id is unknown)"
            ),
            note="not sent again: lemlist does not deduplicate; --force sends it again",
        )


def _recorded_answer(recall: Recall) -> Outcome:
    """An answer lemlist gave an earlier run (less than a day ago), reported again."""
    answer = recall.answer
    assert answer is not None
    note = "answer recorded by an earlier run (less than a day ago); --force asks again"
    if answer.skip_reason == "ALREADY_ENRICHED":
        return Outcome(status="skipped_already_enriched", note=note)
    if answer.skip_reason == "IN_PROGRESS":
        return Outcome(status="skipped_in_progress", note=note)
    if answer.status_code is None and answer.code:  # a bulk per-item refusal
        return refusal_outcome(answer).with_note(note)
    return Outcome(status="failed", error=answer.message, note=note)


def credit_refusal(plan: Plan, credits: float, max_credits: float | None) -> str | None:
    """Why the run must not start (its upper-bound cost exceeds what is allowed), or None."""
    allowed = credits if max_credits is None else min(credits, max_credits)
    if plan.max_credit_cost <= allowed:
        return None
    limit = f", max_credits={max_credits:g}" if max_credits is not None else ""
    return (
        f"This run could cost up to {plan.max_credit_cost} credits (upper-bound prices), more "
        f"than the {allowed:g} allowed ({credits:g} available{limit}). Nothing was spent."
    )
