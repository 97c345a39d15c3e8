"""prefect.yaml deploys, and a real worker runs the deployed flow against the sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from _files import read_csv
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from prefect_lemlist import LemlistCredentials
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def prefect_cli(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        [*PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


async def test_deploy_then_worker_runs_enrich_leads(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=12, enrichment_seconds=(0.3, 0.8))) as sandbox:
        await LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url).save(
            "lemlist", overwrite=True
        )
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:4]
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PWD": str(ROOT),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        prefect_cli("work-pool", "create", "lemlist-pool", "--type", "process", env=env)
        prefect_cli("--no-prompt", "deploy", "--name", "enrich-leads", env=env)
        leads_file = tmp_path / "leads.csv"
        leads_file.write_text("lead_id\n" + "\n".join(lead_ids) + "\n", encoding="utf-8")
        params = {
            "options": {
                "output_dir": str(tmp_path),
                "output_name": "deployed",
                "first_poll_seconds": 0.5,
            },
        }
        out = prefect_cli(
            "deployment",
            "run",
            "enrich-leads/enrich-leads",
            "-p",
            f"path={leads_file}",  # the input file is `path`, as for enrich-contacts
            "--params",
            json.dumps(params),
            env=env,
        )
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)
        prefect_cli("worker", "start", "--pool", "lemlist-pool", "--run-once", env=env, timeout=600)
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
        stats = sandbox.stats()
    assert flow_run.state.is_completed(), flow_run.state
    rows = read_csv(tmp_path / "deployed.csv")
    assert [row["lead_id"] for row in rows] == lead_ids
    assert all(row["status"] == "done" for row in rows), rows
    assert set(stats.enrich_posts_by_lead) == set(lead_ids)
