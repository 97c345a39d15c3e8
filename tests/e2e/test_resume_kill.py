"""kill -9 of a real flow process at three points, then a re-run: no double billing, no loss."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _processes import start_python
from prefect.settings import PREFECT_API_URL

from prefect_lemlist.sandbox import SandboxConfig, run_sandbox


def flow_process(sandbox, output_dir: Path, name: str) -> subprocess.Popen:
    command = ["-m", "flows.enrich_campaign", sandbox.campaign_id]
    command += ["--output-dir", str(output_dir), "--batch-size", "20"]
    return start_python(
        command,
        sandbox=sandbox,
        env={"PREFECT_API_URL": str(PREFECT_API_URL.value())},
        log=output_dir / f"{name}.log",
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the flow ended (rc={process.returncode}) before the kill point")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(0.01)


KILL_POINTS = {
    # selection: the campaign export has reached the sandbox, nothing was enriched yet
    "selection": lambda stats, n: stats.requests_by_route.get("export", 0) >= 1,
    # mid-enrichment: about a third of the POSTs are done
    "enrichment": lambda stats, n: stats.requests_by_route.get("enrich_post", 0) >= n // 3,
    # mid-collection: every POST sent, some polls answered
    "collection": lambda stats, n: (
        stats.requests_by_route.get("enrich_post", 0) >= n
        and stats.requests_by_route.get("enrich_get", 0) >= 5
    ),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_minus_nine_then_rerun_never_double_bills_nor_loses_a_lead(tmp_path, point):
    config = SandboxConfig(leads=80, seed=21, enrichment_seconds=(2.0, 5.0))
    with run_sandbox(config) as sandbox:
        selected = [lead.lead_id for lead in sandbox.leads if not lead.email]
        first = flow_process(sandbox, tmp_path, "first")
        wait_for(lambda: KILL_POINTS[point](sandbox.stats(), len(selected)), first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        posts_at_kill = sum(sandbox.stats().enrich_posts_by_lead.values())

        second = flow_process(sandbox, tmp_path, "second")
        assert second.wait(300) == 0, (tmp_path / "second.log").read_text()[-3000:]
        stats = sandbox.stats()

    exports = list(tmp_path.glob("*.csv"))
    assert len(exports) == 1, "the killed run must not leave an export behind"
    with exports[0].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["lead_id"] for row in rows) == sorted(selected)  # all there, exactly once
    assert all(row["status"] for row in rows)
    # only one enrichment was ever started (billed) per lead. A POST refused with 429 (the
    # killed run's requests still fill lemlist's window when the re-run starts) is resent; a
    # POST whose answer the kill lost is sent once more without force (issue #12.8), and only
    # those reach lemlist's enrichment logic twice: lemlist refuses the second start (409)
    assert max(stats.enrichments_started_by_lead.values()) == 1
    resent = {row["lead_id"] for row in rows if "interrupted" in row["note"]}
    twice = {k: v for k, v in stats.enrich_posts_processed_by_lead.items() if v > 1}
    assert set(twice) <= resent, [
        (lid, sandbox.lead(lid).kind.value, [r for r in rows if r["lead_id"] == lid])
        for lid in set(twice) - resent
    ]
    assert max(stats.enrich_posts_processed_by_lead.values()) <= 2
    if point == "selection":
        assert posts_at_kill == 0
    unknowable = [row for row in rows if "cannot be recovered" in row["note"]]
    assert all(
        stats.enrich_posts_processed_by_lead.get(row["lead_id"]) == 2 for row in unknowable
    )  # the note is only given to a lead lemlist did receive twice
    # only POSTs in flight at the kill can have lost their answer: at most a batch's worth
    assert len(resent) <= 20
    for row in rows:
        if row["lead_id"] in stats.enrichments_started_by_lead and row not in unknowable:
            assert row["enrichment_id"].startswith("enr_"), row
        if row in unknowable:  # lemlist answered the re-send with a 409: nothing started twice
            assert row["status"].startswith("skipped_"), row
            assert stats.enrichments_started_by_lead.get(row["lead_id"], 0) <= 1
