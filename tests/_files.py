"""Reading what a run exported, for every tier's tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV export (every value a string, as written)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines export."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def as_text(value: Any) -> str:
    """A typed value (a JSON Lines record's, a flow result's) as the CSV export writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def as_text_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Records with every value as the CSV export writes it (the keys in their order)."""
    return [{key: as_text(value) for key, value in record.items()} for record in records]
