"""Per-lead outcomes of a pipeline run, and writing them to CSV and JSON Lines."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from prefect_lemlist.models import Enrichment

OutcomeStatus = Literal[
    "done",
    "not_found",
    "skipped_already_enriched",
    "skipped_in_progress",
    "failed",
    "timed_out",
]
OUTCOME_STATUSES: tuple[str, ...] = OutcomeStatus.__args__  # type: ignore[attr-defined]
EXPORT_COLUMNS = (
    "lead_id",
    "enrichment_id",
    "status",
    "email",
    "email_status",
    "phone",
    "linkedin_url",
    "error",
)


class LeadOutcome(BaseModel):
    """The final word on one selected lead: one row of the export.

    Attributes:
        lead_id: the lead.
        enrichment_id: lemlist's enrichment id, when one was started (also for `timed_out`,
            so it can be collected later).
        status: `done`, `not_found`, `skipped_already_enriched`, `skipped_in_progress`,
            `failed` or `timed_out`.
        email, email_status, phone, linkedin_url: what lemlist found.
        error: why it failed or timed out.
    """

    lead_id: str
    enrichment_id: str | None = None
    status: OutcomeStatus
    email: str | None = None
    email_status: str | None = None
    phone: str | None = None
    linkedin_url: str | None = None
    error: str | None = None

    @classmethod
    def from_enrichment(cls, lead_id: str, enrichment: Enrichment) -> LeadOutcome:
        """The outcome of a finished enrichment (`done`, `not_found`, or `failed` for others)."""
        linkedin_url = None
        if enrichment.linkedin:
            value = enrichment.linkedin.get("linkedinUrl")
            linkedin_url = value if isinstance(value, str) else None
        if enrichment.done:
            status: OutcomeStatus = "done" if enrichment.found_anything else "not_found"
            error = None
        else:
            status = "failed"
            error = f"lemlist ended the enrichment with status {enrichment.status!r}"
        return cls(
            lead_id=lead_id,
            enrichment_id=enrichment.enrichment_id,
            status=status,
            email=enrichment.email,
            email_status=enrichment.email_status,
            phone=enrichment.phone,
            linkedin_url=linkedin_url,
            error=error,
        )

    def row(self) -> dict[str, Any]:
        """The export row, columns in `EXPORT_COLUMNS` order."""
        data = self.model_dump()
        return {column: data[column] for column in EXPORT_COLUMNS}


def count_by_status(outcomes: list[LeadOutcome]) -> dict[str, int]:
    """How many outcomes have each status (every status listed, zeros included)."""
    counts = Counter(outcome.status for outcome in outcomes)
    return {status: counts.get(status, 0) for status in OUTCOME_STATUSES}


def write_exports(outcomes: list[LeadOutcome], stem: Path) -> tuple[Path, Path]:
    """Write `<stem>.csv` and `<stem>.jsonl`, one row per outcome, atomically.

    Each file is written to a temporary file in the same directory and renamed into place, so a
    crash never leaves a half-written export.

    Args:
        outcomes: one per selected lead.
        stem: output path without extension; parent directories are created.

    Returns:
        The CSV path and the JSON Lines path.

    Raises:
        OSError: the directory cannot be created or written.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path = stem.with_name(stem.name + ".csv")
    jsonl_path = stem.with_name(stem.name + ".jsonl")

    def write_csv(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for outcome in outcomes:
            writer.writerow({k: "" if v is None else v for k, v in outcome.row().items()})

    def write_jsonl(handle: Any) -> None:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.row(), ensure_ascii=False) + "\n")

    _atomic_write(csv_path, write_csv)
    _atomic_write(jsonl_path, write_jsonl)
    return csv_path, jsonl_path


def _atomic_write(path: Path, writer: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
