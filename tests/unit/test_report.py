"""What people read of a run: the summary's arithmetic and the results table's column order."""

from __future__ import annotations

import re

import pytest

from prefect_lemlist.pipeline.export import table_columns
from prefect_lemlist.pipeline.report import PipelineSummary, render_summary
from prefect_lemlist.pipeline.schema import RESULT_COLUMNS


def _summary(**fields) -> PipelineSummary:
    return PipelineSummary(source="test", workflows=["find_email"], dry_run=False, **fields)


def _rows_line(summary: PipelineSummary) -> tuple[int, list[int]]:
    [line] = [line for line in render_summary(summary).splitlines() if line.startswith("- rows:")]
    total, parts = re.fullmatch(r"- rows: (\d+) \((.*)\)", line).groups()
    return int(total), [int(part.split()[0]) for part in parts.split(", ")]


@pytest.mark.parametrize(
    "fields",
    [
        # `--limit 5` on a campaign of 200 leads, 92 of which already have the data
        {"input_rows": 5, "selected": 5, "not_needed": 92, "left_out": 103},
        # the same summary without the trial's count (what the line must still add up to)
        {"input_rows": 5, "selected": 5, "not_needed": 92},
        # a file: a repeated lead, 2 rows a trial did not start, an unknown email, a bad row
        {
            "input_rows": 9,
            "selected": 4,
            "rejected_count": 1,
            "counts": {"done": 5, "not_started": 2, "not_in_lemlist": 1, "rejected": 1},
        },
        # a dry run (no counts yet) of a file with repeats
        {"input_rows": 7, "selected": 3, "rejected_count": 2},
    ],
)
def test_the_rows_line_adds_up(fields):
    summary = _summary(**fields)
    total, parts = _rows_line(summary)
    assert total == sum(parts) == summary.total_rows == sum(summary.row_breakdown.values())
    assert total == summary.input_rows + summary.not_needed + summary.left_out


def test_a_campaign_trial_says_how_many_leads_it_left_out():
    summary = _summary(input_rows=5, selected=5, not_needed=92, left_out=103)
    line = next(line for line in render_summary(summary).splitlines() if "- rows:" in line)
    assert line == (
        "- rows: 200 (5 to enrich, 92 not needing it, 0 rejected, 103 left out by the trial limit)"
    )


def test_the_results_table_starts_with_the_status_and_what_was_found():
    export = [*RESULT_COLUMNS[:-1], "crm_id", "raw_result"]
    shown = table_columns(export)
    assert shown[:4] == ["status", "email", "email_status", "phone"]
    assert shown == [c for c in export if c != "raw_result"]  # the raw body: in the files only
    export.remove("raw_result")
    assert sorted(table_columns(export)) == sorted(export)  # nothing lost
