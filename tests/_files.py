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
