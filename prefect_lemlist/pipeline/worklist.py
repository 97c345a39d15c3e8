"""What a run works on: every input row, and the distinct items (leads or people) to enrich.

Both front doors produce a `Worklist`: rows keep their line numbers and the columns to carry into
the export; rows describing the same item share its key, so the item is enriched once and its
result fans out to every such row; rows that cannot be enriched carry their status and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


class RejectedInput(BaseModel):
    """An input row that was not enriched, and why.

    Attributes:
        line: 1-based line number in the file (the CSV header is line 1), or the 1-based
            position in a list given from Python.
        value: the raw value (shortened), for the report.
        reason: why it was not enriched.
    """

    line: int
    value: str
    reason: str


@dataclass(frozen=True)
class Source:
    """Where a run's inputs come from.

    Attributes:
        label: for people (`campaign cam_… (state=all, 200 leads)`, `file people.csv`).
        name: short name for files and artifact keys (`cam_…`, `people`).
        kind: `campaign` (rows chosen by the run) or `input` (rows given by the user: every one
            is exported).
    """

    label: str
    name: str
    kind: str = "input"

    @property
    def campaign_id(self) -> str | None:
        """The campaign, when the rows are a campaign's leads."""
        return self.name if self.kind == "campaign" else None

    @property
    def slug(self) -> str:
        """`name` with only lowercase letters, digits and dashes (Prefect artifact keys)."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:60].strip("-") or "input"


@dataclass
class Row:
    """One input row of a run.

    Attributes:
        line: its line (or position).
        context: the input columns to carry into the export.
        key: the item it describes (a lead id or a person's fingerprint); None when it is not
            enriched.
        status: a status decided without lemlist (`rejected`, `not_in_lemlist`, `not_started`).
        reason: why, for such a status.
        note: anything else a person should know about this row.
        value: the raw identifying value, for the rejection report.
        lead: what lemlist says about the row's lead before the run (`campaign_id`, `email`,
            `email_status`, `phone`, `company_domain`), for the results.
    """

    line: int
    context: dict[str, Any]
    key: str | None = None
    status: str | None = None
    reason: str | None = None
    note: str | None = None
    value: str = ""
    lead: dict[str, Any] = field(default_factory=dict)


@dataclass
class Worklist:
    """The rows of a run and the distinct items to enrich.

    Attributes:
        source: where the rows come from.
        columns: the context columns, in order.
        rows: every input row, in input order.
        items: item key -> what to enrich (a `LeadId` or a `Contact`), in first-seen order.
        not_needed: campaign leads left out because they already have the data.
        left_out: campaign leads a trial (`limit`) dropped (see `limit`).
        hints: what would let rejected rows be enriched (e.g. a column to add).
    """

    source: Source
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    items: dict[str, Any] = field(default_factory=dict)
    not_needed: int = 0
    left_out: int = 0
    hints: list[str] = field(default_factory=list)

    def add(self, row: Row, item: Any = None) -> None:
        """Append a row; its item is added once (later rows with the same key fan out)."""
        self.rows.append(row)
        if row.key is not None and row.key not in self.items:
            self.items[row.key] = item if item is not None else row.key

    @property
    def rejected(self) -> list[RejectedInput]:
        """The rows refused before any request, with their reasons."""
        return [
            RejectedInput(line=row.line, value=row.value[:80], reason=row.reason or "")
            for row in self.rows
            if row.status == "rejected"
        ]

    def first_rows(self) -> dict[str, int]:
        """Item key -> the line of the first row describing it."""
        first: dict[str, int] = {}
        for row in self.rows:
            if row.key is not None:
                first.setdefault(row.key, row.line)
        return first

    def limit(self, count: int | None, *, drop_others: bool) -> None:
        """Keep only the first `count` items (a trial run).

        Args:
            count: how many items to keep; None keeps all.
            drop_others: drop the other rows (campaign leads: not chosen by the user) instead
                of reporting them `not_started`.
        """
        if count is None or len(self.items) <= count:
            return
        kept = dict(list(self.items.items())[:count])
        rows = []
        for row in self.rows:
            if row.key is not None and row.key not in kept:
                if drop_others:
                    self.left_out += 1
                    continue
                row.key, row.status = None, "not_started"
                row.reason = f"not in this trial (limit {count})"
            rows.append(row)
        self.items, self.rows = kept, rows

    def drop_unreferenced(self) -> None:
        """Forget the items no row refers to any more (every row of theirs was skipped)."""
        referenced = {row.key for row in self.rows if row.key is not None}
        self.items = {key: item for key, item in self.items.items() if key in referenced}
