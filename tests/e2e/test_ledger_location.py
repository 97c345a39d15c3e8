"""Where the ledger lives by default: one place per user, whatever the Prefect home, so the CLI and
a worker on one machine never pay twice; a configured result storage when there is one; and the
plan line says which (and when it is this machine only)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

from prefect.filesystems import LocalFileSystem
from prefect.settings import PREFECT_HOME, PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

from prefect_lemlist import EnrichmentOptions, LemlistCredentials
from prefect_lemlist.flows import enrich_leads
from prefect_lemlist.pipeline.ledger import (
    LEDGER_DIR_ENV,
    LocalDirectoryStorage,
    default_storage,
    user_ledger_dir,
)
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[2]


async def test_two_prefect_homes_of_one_user_share_one_ledger(tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    roots = []
    for home in ("cli-home", "worker-home"):
        with temporary_settings({PREFECT_HOME: tmp_path / home}):
            storage = await default_storage()
        assert isinstance(storage, LocalDirectoryStorage)
        roots.append(storage.root)
        assert not storage.shared  # this machine only: said in the plan line
    assert roots[0] == roots[1] == tmp_path / "data" / "prefect-lemlist" == user_ledger_dir()


async def test_an_explicit_directory_wins_and_a_configured_result_storage_is_used(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(LEDGER_DIR_ENV, str(tmp_path / "explicit"))
    assert (await default_storage()).root == tmp_path / "explicit"
    monkeypatch.delenv(LEDGER_DIR_ENV)
    name = f"shared-{uuid.uuid4().hex[:8]}"
    await LocalFileSystem(basepath=str(tmp_path / "nfs")).save(name)
    with temporary_settings({PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: f"local-file-system/{name}"}):
        storage = await default_storage()
    assert storage.root == tmp_path / "nfs" and storage.shared


def test_a_cli_run_and_a_flow_in_another_prefect_home_never_pay_twice(tmp_path):
    """The CLI (its own local API, its own PREFECT_HOME) enriches leads; a flow process with
    another PREFECT_HOME (a worker) asks for the same leads: it starts nothing."""
    config = SandboxConfig(leads=20, seed=8, enrichment_seconds=(0.2, 0.4))
    with run_sandbox(config) as sandbox:
        leads = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:4]
        env = {
            **os.environ,
            "LEMLIST_API_KEY": sandbox.api_key,
            "LEMLIST_BASE_URL": sandbox.base_url,
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        for drop in (LEDGER_DIR_ENV, "PREFECT_API_URL", "PREFECT_TEST_MODE"):
            env.pop(drop, None)
        runs = []
        for home in ("cli-home", "worker-home"):
            command = [
                sys.executable, "-m", "prefect_lemlist.cli", "enrich-leads", *leads,
                "--output-dir", str(tmp_path / home), "--collect-timeout", "60",
            ]  # fmt: skip
            runs.append(
                subprocess.run(
                    command,
                    env={**env, "PREFECT_HOME": str(tmp_path / home)},
                    capture_output=True,
                    text=True,
                    timeout=240,
                    cwd=ROOT,
                )
            )
        stats = sandbox.stats()
    assert [run.returncode for run in runs] == [0, 0], runs[1].stderr[-2000:]
    assert sum(stats.enrichments_started_by_lead.values()) == len(leads)
    assert set(stats.enrich_posts_by_lead) == set(leads)
    assert max(stats.enrich_posts_by_lead.values()) == 1
    assert "started: 0" in runs[1].stdout and "this machine only" in runs[1].stderr + runs[1].stdout


async def test_the_plan_line_names_the_ledger_and_who_shares_it(tmp_path, caplog):
    with run_sandbox(SandboxConfig(leads=10, seed=4, enrichment_seconds=(0.2, 0.3))) as sandbox:
        lead = next(lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE)
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        with caplog.at_level(logging.INFO):
            await enrich_leads(
                [lead],
                credentials_block=credentials,
                options=EnrichmentOptions(
                    dry_run=True, output_dir=str(tmp_path), first_poll_seconds=0.5
                ),
            )
    plan = next(r.getMessage() for r in caplog.records if "to enrich" in r.getMessage())
    assert f"ledger: {os.environ[LEDGER_DIR_ENV]} (this machine only" in plan
