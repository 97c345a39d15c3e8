"""Reading input rows the way users mean them: what a row already has, what is left to do.

A row that already has what was asked is not sent (it would cost for nothing): find_email on a
row with an email is `skipped_has_email`; with `only_missing`, a row whose email status or
phone is already filled is `skipped_has_data`. `force` sends everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.api.workflows import Workflow
from prefect_lemlist.pipeline.schema import snake_case_name
from prefect_lemlist.pipeline.worklist import Row, Worklist

KNOWN_NAMES: Mapping[str, tuple[str, ...]] = {
    "email": ("email", "Email", "emailAddress"),
    "email_status": ("email_status", "emailStatus"),
    "phone": ("phone", "phoneNumber", "phone_number"),
}
"""A value a row may already have -> the input columns that hold it."""
_HAS_EMAIL = "the row has an email: find_email not sent (no charge); --force sends it"
_HAS_DATA = "the row already has what was asked: not sent (no charge); --force sends it"


def known_values(row: Row) -> dict[str, str]:
    """What a row already has (`email`, `email_status`, `phone`): from its lead in lemlist,
    else from its own columns."""
    known: dict[str, str] = {}
    for name, columns in KNOWN_NAMES.items():
        value = row.lead.get(name) or next(
            (row.context.get(c) for c in columns if row.context.get(c)), None
        )
        if isinstance(value, str) and value.strip():
            known[name] = value.strip()
    return known


def skip_status(known: Mapping[str, str], flags: EnrichmentFlags, only_missing: bool) -> str | None:
    """`skipped_has_email` / `skipped_has_data` when no requested workflow has anything to do
    for a row that already has `known`, else None."""
    left = [w for w in flags.workflows if not _done(w, known, only_missing)]
    if left:
        return None
    return "skipped_has_email" if flags.workflows == [Workflow.FIND_EMAIL] else "skipped_has_data"


def _done(workflow: Workflow, known: Mapping[str, str], only_missing: bool) -> bool:
    if workflow is Workflow.FIND_EMAIL:
        return "email" in known
    if workflow is Workflow.VERIFY:
        return only_missing and "email_status" in known
    if workflow is Workflow.FIND_PHONE:
        return only_missing and "phone" in known
    return False  # a LinkedIn enrichment: the input cannot tell whether it was done


def apply_skip_rules(
    worklist: Worklist, flags: EnrichmentFlags, *, force: bool, only_missing: bool
) -> int:
    """Mark the rows with nothing left to do as skipped (they cost nothing) and forget their
    items. A campaign's rows are chosen by the run already (`needs_enrichment`).

    Returns:
        How many rows were skipped.
    """
    if force or worklist.source.kind == "campaign":
        return 0
    skipped = 0
    for row in worklist.rows:
        if row.key is None:
            continue
        status = skip_status(known_values(row), flags, only_missing)
        if status is not None:
            row.lead.setdefault("key", row.key)  # still the row's lead or person in the results
            row.key, row.status = None, status
            row.note = _HAS_EMAIL if status == "skipped_has_email" else _HAS_DATA  # not an error
            skipped += 1
    worklist.drop_unreferenced()
    return skipped


def missing_column_hint(columns: Iterable[str], flags: EnrichmentFlags) -> str | None:
    """The columns to add so that rows can meet a requested workflow's inputs, when the
    input has none of its complete combinations (e.g. `add a company_name column`)."""
    present = {snake_case_name(c) for c in columns}
    hints = []
    for spec in flags.specs:
        gaps = [(set(combo) - present, len(combo)) for combo in spec.required_inputs]
        if any(not gap for gap, _ in gaps):
            continue
        # the fewest columns to add; of those, the combination the input has most of
        smallest, _ = min(gaps, key=lambda pair: (len(pair[0]), len(pair[0]) - pair[1]))
        names = " and ".join(sorted(smallest))
        plural = "columns" if len(smallest) > 1 else "column"
        hints.append(f"add a {names} {plural}: {spec.option} needs {spec.describe_inputs()}")
    return "; ".join(hints) or None


def looks_like_lead_ids(values: Iterable[Any]) -> bool:
    """Whether a column's values are lemlist lead ids (`lea_…`): most of its first 50
    non-empty values are."""
    sample = [str(v).strip() for v in values if v not in (None, "")][:50]
    if not sample:
        return False
    hits = sum(1 for v in sample if v.startswith("lea_"))
    return hits * 2 > len(sample)


__all__ = [
    "KNOWN_NAMES",
    "apply_skip_rules",
    "known_values",
    "looks_like_lead_ids",
    "missing_column_hint",
    "skip_status",
]
