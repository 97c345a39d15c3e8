"""The enrichment ledger: its intent API on both storages, and two flow processes with different
Prefect homes sharing it through a result-storage block on one Prefect server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.filesystems import RemoteFileSystem

from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistOutOfCreditsError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.local_api import PrefectServer
from prefect_lemlist.pipeline import ledger as ledger_module
from prefect_lemlist.pipeline.ledger import (
    ClaimedElsewhereError,
    FsspecStorage,
    Ledger,
    LocalDirectoryStorage,
    RecordedAnswer,
    account_key,
)
from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["local", "fsspec"])
def ledger(request, tmp_path) -> Ledger:
    if request.param == "local":
        storage = LocalDirectoryStorage(tmp_path)
    else:
        storage = FsspecStorage(RemoteFileSystem(basepath=f"memory://ledger-{uuid.uuid4().hex}"))
    return Ledger(storage, account_key("tea_unit"), "find_email")


async def start_lead(ledger: Ledger, lead_id: str, outcome: object, *, replace: bool = False):
    """A claim whose request ends with `outcome`: an enrichment id, an answer or an error."""
    async with ledger.claim_lead(lead_id, replace=replace) as claim:
        await claim.sending()
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, RecordedAnswer):
            claim.answered(outcome)
        else:
            claim.started(outcome)


async def test_a_started_lead_is_recalled_with_its_enrichment_id(ledger):
    await start_lead(ledger, "lea_1", "enr_1")
    recalls = await ledger.recall_leads(["lea_1", "lea_2"])
    assert list(recalls) == ["lea_1"]
    assert recalls["lea_1"].enrichment_id == "enr_1" and not recalls["lea_1"].interrupted


async def test_a_claim_is_exclusive_across_runs_but_a_retry_of_its_own_request_is_not_refused(
    ledger,
):
    other_run = Ledger(ledger.storage, ledger.account, ledger.workflows)
    async with ledger.claim_lead("lea_1") as claim:
        await claim.sending()
        await claim.sending()  # the client resends after a 500: the same claim
        with pytest.raises(ClaimedElsewhereError):
            async with other_run.claim_lead("lea_1") as theirs:
                await theirs.sending()
        claim.started("enr_1")
    assert (await ledger.recall_leads(["lea_1"]))["lea_1"].enrichment_id == "enr_1"


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (LemlistServerError("read timeout after sending", retryable=False), "interrupted"),
        (LemlistServerError("HTTP 502", status_code=502, retryable=False), "interrupted"),
        (LemlistResponseError("200 without an id", status_code=200), "interrupted"),
        (asyncio.CancelledError(), "interrupted"),
        (LemlistServerError("HTTP 500", status_code=500), "nothing"),
        (LemlistServerError("connection refused", retryable=False, status_code=503), "nothing"),
        (LemlistAuthError("401", status_code=401), "nothing"),
        (LemlistOutOfCreditsError("no credits", status_code=402), "nothing"),
        (LemlistNotFoundError("Lead not found", status_code=404, code="LEAD_NOT_FOUND"), "answer"),
        (LemlistError("Bad team", status_code=400), "answer"),
    ],
)
async def test_a_failed_request_leaves_what_it_may_have_done(ledger, error, recorded):
    with pytest.raises(type(error)):
        await start_lead(ledger, "lea_1", error)
    recall = (await ledger.recall_leads(["lea_1"])).get("lea_1")
    if recorded == "nothing":
        assert recall is None  # safe to send again
    elif recorded == "interrupted":
        assert recall is not None and recall.interrupted and recall.enrichment_id is None
    else:
        assert recall is not None and recall.answer is not None
        assert recall.answer.status_code == error.status_code


async def test_a_claim_that_never_sent_records_nothing(ledger):
    with pytest.raises(RuntimeError):
        async with ledger.claim_lead("lea_1"):
            raise RuntimeError("failed while waiting for a rate slot")
    assert await ledger.recall_leads(["lea_1"]) == {}


async def test_answers_expire_after_a_day_and_starts_after_the_ledger_period(ledger, monkeypatch):
    await start_lead(
        ledger, "lea_a", RecordedAnswer(status_code=409, skip_reason="ALREADY_ENRICHED")
    )
    await start_lead(ledger, "lea_s", "enr_s")
    now = ledger_module._now()
    monkeypatch.setattr(ledger_module, "_now", lambda: now + timedelta(hours=25))
    assert set(await ledger.recall_leads(["lea_a", "lea_s"])) == {"lea_s"}
    monkeypatch.setattr(ledger_module, "_now", lambda: now + timedelta(days=31))
    assert await ledger.recall_leads(["lea_a", "lea_s"]) == {}


async def test_a_damaged_record_counts_as_maybe_sent(tmp_path):
    ledger = Ledger(LocalDirectoryStorage(tmp_path), account_key("tea_unit"), "find_email")
    await start_lead(ledger, "lea_1", "enr_1")
    [record] = list(tmp_path.rglob("lea_1.json"))
    record.write_bytes(b'{"items": {"lea_1": {"state": "sta')  # torn by a crash or by hand
    recall = (await ledger.recall_leads(["lea_1"]))["lea_1"]
    assert recall.interrupted and recall.enrichment_id is None


async def test_chunks_are_recalled_per_person_and_outcomes_recorded_once_per_chunk(ledger):
    keys = [f"k{n}" for n in range(5)]
    async with ledger.claim_chunk(keys) as claim:
        await claim.sending()
        claim.answered(
            {k: f"enr_{k}" for k in keys[:4]}, {"k4": RecordedAnswer(code="MISSING_INPUTS")}
        )
    same_file_again = Ledger(ledger.storage, ledger.account, ledger.workflows)
    with pytest.raises(ClaimedElsewhereError):  # the same contacts, the same record: not twice
        async with same_file_again.claim_chunk(list(reversed(keys))) as theirs:
            await theirs.sending()
    recalls = await same_file_again.recall_contacts(keys)
    assert recalls["k0"].enrichment_id == "enr_k0" and recalls["k4"].answer.code == "MISSING_INPUTS"
    await same_file_again.record_outcomes({"k0": {"status": "done", "enrichment_id": "enr_k0"}})
    await same_file_again.forget(["k1"])
    recalls = await Ledger(ledger.storage, ledger.account, ledger.workflows).recall_contacts(keys)
    assert recalls["k0"].outcome == {"status": "done", "enrichment_id": "enr_k0"}
    assert "k1" not in recalls and recalls["k2"].enrichment_id == "enr_k2"


async def test_an_interrupted_chunk_keeps_every_person_maybe_sent(ledger):
    with pytest.raises(LemlistServerError):
        async with ledger.claim_chunk(["a", "b"]) as claim:
            await claim.sending()
            raise LemlistServerError("dropped after sending", retryable=False)
    recalls = await ledger.recall_contacts(["a", "b"])
    assert recalls["a"].interrupted and recalls["b"].interrupted


async def test_other_workflows_and_other_teams_are_other_records(ledger):
    await start_lead(ledger, "lea_1", "enr_1")
    phone = Ledger(ledger.storage, ledger.account, "find_phone")
    other_team = Ledger(ledger.storage, account_key("tea_other"), ledger.workflows)
    assert await phone.recall_leads(["lea_1"]) == {}
    assert await other_team.recall_leads(["lea_1"]) == {}
    assert account_key("tea_unit") != account_key("tea_other")


# ------------------------------------------------------------------ two homes, one storage

SAVE_BLOCK = """
import sys
from prefect.filesystems import LocalFileSystem
LocalFileSystem(basepath=sys.argv[1]).save("shared-ledger", overwrite=True, _sync=True)
"""


def flow_process(sandbox, server: PrefectServer, home: Path, csv_path: Path, out: Path, shared):
    env = {
        **os.environ,
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(home),
        "LEMLIST_API_KEY": sandbox.api_key,
        "LEMLIST_BASE_URL": sandbox.base_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_TEST_MODE", None)
    env.pop("PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK", None)
    if shared:
        env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] = "local-file-system/shared-ledger"
    command = [sys.executable, "-m", "flows.enrich_leads", "--csv", str(csv_path)]
    command += ["--output-dir", str(out), "--collect-timeout", "60"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


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
