"""Two flow processes with different Prefect homes share the enrichment ledger through a
result-storage block on one Prefect server: one after the other, and at the same time (their own
processes and server: the e2e tier)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _processes import start_python

from prefect_lemlist.local_api import PrefectServer
from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

SAVE_BLOCK = """
import sys
from prefect.filesystems import LocalFileSystem
LocalFileSystem(basepath=sys.argv[1]).save("shared-ledger", overwrite=True, _sync=True)
"""


def flow_process(sandbox, server: PrefectServer, home: Path, csv_path: Path, out: Path, shared):
    command = ["-m", "flows.enrich_leads", "--csv", str(csv_path)]
    command += ["--output-dir", str(out), "--collect-timeout", "60"]
    storage = "local-file-system/shared-ledger"
    env = {
        "PREFECT_API_URL": server.url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_TEST_MODE": None,
        # shared: the storage block; else a home on its own storage (LEMLIST_LEDGER_DIR would
        # win over the storage block)
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": storage if shared else None,
        "LEMLIST_LEDGER_DIR": None if shared else str(home / "own-ledger"),
    }
    return start_python(command, sandbox=sandbox, prefect_home=home, env=env, log_level=None)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
async def test_two_prefect_homes_share_the_ledger_through_a_storage_block(tmp_path):
    server = PrefectServer(tmp_path / "server-home")
    await server.start()
    try:
        env = {**os.environ, "PREFECT_API_URL": server.url, "PREFECT_HOME": str(tmp_path / "h0")}
        env.pop("PREFECT_TEST_MODE", None)
        subprocess.run(
            [sys.executable, "-c", SAVE_BLOCK, str(tmp_path / "shared")],
            env=env,
            check=True,
            timeout=120,
        )
        config = SandboxConfig(leads=100, seed=38, enrichment_seconds=(0.3, 1.0))
        with run_sandbox(config) as sandbox:
            leads = [lead.lead_id for lead in sandbox.leads if not lead.email]
            assert len(leads) >= 50
            first, second, fresh = leads[:20], leads[10:30], leads[30:50]  # ten leads in both
            files = {}
            for name, ids in (("a", first), ("b", second), ("c", fresh)):
                files[name] = tmp_path / f"{name}.csv"
                files[name].write_text("lead_id\n" + "\n".join(ids) + "\n")
            # one after the other: B, with its own home, finds what A started in the shared block
            finish(
                flow_process(
                    sandbox, server, tmp_path / "home-a", files["a"], tmp_path / "out-a", True
                )
            )
            # POSTs that reached lemlist's enrichment logic (a POST answered 429, as two
            # processes on one key without a shared limit get, is sent again: not counted)
            after_a = dict(sandbox.stats().enrich_posts_processed_by_lead)
            finish(
                flow_process(
                    sandbox, server, tmp_path / "home-b", files["b"], tmp_path / "out-b", True
                )
            )
            after_b = dict(sandbox.stats().enrich_posts_processed_by_lead)
            # at the same time, two more homes on the same new leads: none is sent twice
            racing = [
                flow_process(
                    sandbox, server, tmp_path / f"home-{n}", files["c"], tmp_path / f"out-{n}", True
                )
                for n in ("c", "d")
            ]
            for process in racing:
                finish(process)
            after_race = dict(sandbox.stats().enrich_posts_processed_by_lead)
            started = dict(sandbox.stats().enrichments_started_by_lead)
            # the control: a home on its own storage does not see the others' records
            finish(
                flow_process(
                    sandbox, server, tmp_path / "home-e", files["a"], tmp_path / "out-e", False
                )
            )
            control = sandbox.stats().enrich_posts_processed_by_lead
    finally:
        await server.stop()
    assert set(after_a) == set(first)
    assert after_b == {**after_a, **{lid: 1 for lid in second[10:]}}  # only B's ten new leads
    assert max(after_race.values()) == 1 and set(after_race) == set(leads[:50])
    assert max(started.values()) == 1
    assert [lid for lid in first if control[lid] > 1]  # without the shared storage: sent again
    assert list((tmp_path / "shared" / "lemlist-ledger").rglob("*.json"))
