"""The final word on one item (a lead or a person): its status and per-workflow results.

The same `Outcome` is exported for every row describing the item, and remembered in the ledger
once final, so a later run reports it without asking lemlist again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from prefect_lemlist.api.models import Enrichment, EnrichmentFlags
from prefect_lemlist.api.workflows import WORKFLOWS, Workflow
from prefect_lemlist.pipeline.collect import Collected, compact_json

Status = Literal[
    "done",
    "not_found",
    "skipped_already_enriched",
    "skipped_in_progress",
    "failed",
    "timed_out",
    "not_collected",
    "not_started",
    "rejected",
    "not_in_lemlist",
    "skipped_has_email",
    "skipped_has_data",
]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
FINAL_STATUSES = frozenset({"done", "not_found", "failed"})
"""Statuses of started enrichments whose result is final (kept in the ledger)."""

WorkflowStatus = Literal["found", "not_found", "not_run", "unknown"]

_VALUE_COLUMNS: dict[Workflow, tuple[str, ...]] = {
    Workflow.FIND_EMAIL: ("email", "email_status"),
    Workflow.VERIFY: ("email", "email_status"),
    Workflow.FIND_PHONE: ("phone",),
    Workflow.LINKEDIN_ENRICHMENT: ("linkedin_url", "linkedin_headline", "linkedin_company"),
}


class Outcome(BaseModel):
    """What happened to one item.

    Attributes:
        status: `done` (lemlist found something asked for), `not_found` (it ran and found
            nothing), `skipped_already_enriched` / `skipped_in_progress` (lemlist's 409s),
            `failed`, `timed_out` / `not_collected` (started; collect it later by its
            enrichment id), `not_started`, `rejected` (bad input, nothing sent),
            `not_in_lemlist` (an email no lead has), `skipped_has_email` (only find_email was
            asked and the row has an email: not sent, no charge), `skipped_has_data`
            (`only_missing`: the row already has what was asked).
        enrichment_id: lemlist's enrichment, when one was started.
        email, email_status, phone, linkedin_url, linkedin_headline, linkedin_company: what
            lemlist found.
        workflows: per requested workflow (its status column, e.g. `find_email_status`):
            `found`, `not_found`, `not_run` (lemlist did not run it: the data was there), or
            `unknown` (a webhook result without it, not confirmed).
        error: why it failed, was refused, or is not final.
        note: anything else worth knowing (e.g. the answer comes from an earlier run).
        enriched_at: when lemlist's result was collected (UTC).
        raw: lemlist's result body, as compact JSON text.
    """

    status: Status
    enrichment_id: str | None = None
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    linkedin_url: str | None = None
    linkedin_headline: str | None = None
    linkedin_company: str | None = None
    workflows: dict[str, WorkflowStatus] = Field(default_factory=dict)
    error: str | None = None
    note: str | None = None
    enriched_at: datetime | None = None
    raw: str | None = None

    def with_note(self, note: str | None) -> Outcome:
        """A copy with `note` added to any note it has."""
        if not note:
            return self
        joined = f"{self.note}; {note}" if self.note else note
        return self.model_copy(update={"note": joined})


def result_columns(flags: EnrichmentFlags) -> list[str]:
    """The export's result columns for these workflows, in a stable order."""
    columns: list[str] = []
    for spec in flags.specs:
        for column in (*_VALUE_COLUMNS[spec.workflow], spec.status_column):
            if column not in columns:
                columns.append(column)
    return columns


def outcome_of(collected: Collected, flags: EnrichmentFlags) -> Outcome:
    """The outcome of a collected enrichment."""
    if collected.kind != "finished" or collected.enrichment is None:
        status = "failed" if collected.kind == "finished" else collected.kind
        return Outcome(status=status, enrichment_id=collected.enrichment_id, error=collected.error)
    return outcome_of_enrichment(
        collected.enrichment, flags, collected.source, raw_json=collected.raw_json
    )


def outcome_of_enrichment(
    enrichment: Enrichment,
    flags: EnrichmentFlags,
    source: str = "poll",
    *,
    raw_json: str | None = None,
) -> Outcome:
    """The outcome of a finished enrichment, workflow by workflow."""
    profile = enrichment.linkedin or {}
    values: dict[str, Any] = {
        "enrichment_id": enrichment.enrichment_id,
        "email": enrichment.email,
        "email_status": enrichment.email_status,
        "phone": enrichment.phone,
        "linkedin_url": _text(profile.get("linkedinUrl")),
        "linkedin_headline": _text(profile.get("tagline") or profile.get("occupation")),
        "linkedin_company": _text(profile.get("companyName")),
        "enriched_at": datetime.now(timezone.utc),
        "raw": raw_json or compact_json(enrichment.raw),
    }
    if not enrichment.done:
        return Outcome(
            status="failed",
            error=f"lemlist ended the enrichment with status {enrichment.status!r}",
            **values,
        )
    missing: WorkflowStatus = "not_run" if source != "webhook" else "unknown"
    statuses = {
        spec.status_column: enrichment.results.get(spec.workflow, missing) for spec in flags.specs
    }
    status: Status = "done" if "found" in statuses.values() else "not_found"
    return Outcome(status=status, workflows=statuses, **values)


def credits_by_price(outcome: Outcome, flags: EnrichmentFlags) -> float | None:
    """What a final result costs by lemlist's published prices (None when not final).

    find_email: 5 when an email was found (deliverable or risky); verify: 1 when it ran;
    LinkedIn enrichment: 1 when found; find_phone: 20 when found. An estimate from the help
    centre's price list, not lemlist's invoice (lemlist reports no cost per enrichment).
    """
    if outcome.status not in ("done", "not_found") or outcome.enrichment_id is None:
        return None
    total = 0.0
    for spec in flags.specs:
        state = outcome.workflows.get(spec.status_column)
        total += _PRICES[spec.workflow](state, outcome)
    return total


def _find_email_price(state: str | None, outcome: Outcome) -> float:
    charged = state == "found" and outcome.email_status in (None, "deliverable", "risky")
    return 5.0 if charged else 0.0


_PRICES: dict[Workflow, Any] = {
    Workflow.FIND_EMAIL: _find_email_price,
    Workflow.VERIFY: lambda state, _o: 1.0 if state in ("found", "not_found") else 0.0,
    Workflow.LINKEDIN_ENRICHMENT: lambda state, _o: 1.0 if state == "found" else 0.0,
    Workflow.FIND_PHONE: lambda state, _o: 20.0 if state == "found" else 0.0,
}


def count_by_status(outcomes: Iterable[str]) -> dict[str, int]:
    """How many rows have each status (every status listed, zeros included)."""
    counts = Counter(outcomes)
    return {status: counts.get(status, 0) for status in STATUSES}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "WORKFLOWS",
    "Outcome",
    "Status",
    "count_by_status",
    "credits_by_price",
    "outcome_of",
    "outcome_of_enrichment",
    "result_columns",
]
