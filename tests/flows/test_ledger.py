"""The enrichment ledger: its intent API on both storages, claims, takeovers and live owners (two
flow processes sharing it through a storage block: tests/e2e/test_shared_ledger.py)."""

from __future__ import annotations

import asyncio
import csv
import os
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.filesystems import RemoteFileSystem

from prefect_lemlist import EnrichmentOptions, LemlistCredentials
from prefect_lemlist.api.exceptions import (
    LemlistResponseError,
    LemlistServerError,
    LemlistUnreachableError,
    error_for_status,
)
from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.flows import enrich_leads
from prefect_lemlist.pipeline.ledger import (
    ClaimedElsewhereError,
    FsspecStorage,
    Ledger,
    LocalDirectoryStorage,
    RecordedAnswer,
    account_key,
)
from prefect_lemlist.pipeline.ledger import records as ledger_records
from prefect_lemlist.pipeline.start import team_ledger
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "fsspec"])
def ledger(request, tmp_path) -> Ledger:
    if request.param == "local":
        storage = LocalDirectoryStorage(tmp_path)
    else:
        storage = FsspecStorage(RemoteFileSystem(basepath=f"memory://ledger-{uuid.uuid4().hex}"))
    return Ledger(storage, account_key("tea_unit"), "find_email")


async def start_lead(
    ledger: Ledger, lead_id: str, outcome: object, *, replace: bool = False, recalled=None
):
    """A claim whose request ends with `outcome`: an enrichment id, an answer or an error."""
    async with ledger.claim_lead(lead_id, replace=replace, recalled=recalled) as claim:
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


# Errors as the client builds them (its own constructors and its one status table); the same
# rule is proven end to end through the real client in tests/sandbox/test_delivery.py.
@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (
            LemlistServerError("read timeout after sending", delivery="maybe_sent"),
            "interrupted",
        ),
        (error_for_status(502, "HTTP 502: an HTML page"), "interrupted"),
        (
            LemlistResponseError("200 without an id", status_code=200, delivery="maybe_sent"),
            "interrupted",
        ),
        (asyncio.CancelledError(), "interrupted"),
        (error_for_status(500, "HTTP 500: Failed to enrich lead"), "nothing"),
        (error_for_status(503, "HTTP 503: unavailable"), "nothing"),
        (LemlistUnreachableError("could not connect: connection refused"), "nothing"),
        (error_for_status(401, "HTTP 401: Unauthorized"), "nothing"),
        (error_for_status(402, "HTTP 402: not enough credits"), "nothing"),
        (error_for_status(404, "HTTP 404: Lead not found", code="LEAD_NOT_FOUND"), "answer"),
        (error_for_status(400, "HTTP 400: Bad team"), "answer"),
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
    now = ledger_records.now()
    monkeypatch.setattr(ledger_records, "now", lambda: now + timedelta(hours=25))
    recalls = await ledger.recall_leads(["lea_a", "lea_s"])
    assert {key for key, recall in recalls.items() if recall.known} == {"lea_s"}
    monkeypatch.setattr(ledger_records, "now", lambda: now + timedelta(days=31))
    recalls = await ledger.recall_leads(["lea_a", "lea_s"])
    assert all(recall.expired and recall.version for recall in recalls.values())


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
            raise LemlistServerError(
                "dropped after sending", retryable=False, delivery="maybe_sent"
            )
    recalls = await ledger.recall_contacts(["a", "b"])
    assert recalls["a"].interrupted and recalls["b"].interrupted


async def test_a_start_on_the_wire_is_in_flight_for_other_runs_until_answered(ledger):
    other_run = Ledger(ledger.storage, ledger.account, ledger.workflows)
    async with ledger.claim_lead("lea_1") as claim:
        await claim.sending()
        seen = (await other_run.recall_leads(["lea_1"]))["lea_1"]
        assert seen.in_flight and not seen.interrupted  # wait for it, never re-send it
        with pytest.raises(ClaimedElsewhereError):  # having read it does not allow a takeover
            async with other_run.claim_lead("lea_1") as theirs:
                await theirs.sending()
        claim.started("enr_1")
    after = (await other_run.recall_leads(["lea_1"]))["lea_1"]
    assert after.enrichment_id == "enr_1" and not after.in_flight


async def test_a_bulk_request_on_the_wire_is_in_flight_for_other_runs(ledger):
    other_run = Ledger(ledger.storage, ledger.account, ledger.workflows)
    async with ledger.claim_chunk(["a", "b"]) as claim:
        await claim.sending()
        seen = await other_run.recall_contacts(["a", "b"])
        assert all(r.in_flight and not r.interrupted for r in seen.values()) and len(seen) == 2
        with pytest.raises(ClaimedElsewhereError):
            async with other_run.claim_chunk(["a", "b"]) as theirs:
                await theirs.sending()
        claim.answered({"a": "enr_a", "b": "enr_b"}, {})
    after = await other_run.recall_contacts(["a", "b"])
    assert after["a"].enrichment_id == "enr_a" and not after["b"].in_flight


def write_starting(ledger: Ledger, root: Path, lead_id: str, owner, age=timedelta(0)) -> None:
    """A `starting` record as a claim writes it, held by `owner` (host, pid) or by no one."""
    item = ledger_records.Item(
        state=ledger_records.LedgerState.STARTING,
        written_at=ledger_records.now() - age,
        owner=None if owner is None else ledger_records.Owner(host=owner[0], pid=owner[1]),
    )
    path = root / ledger.lead_record(lead_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ledger_records.encode(ledger_records.Record(items={lead_id: item})))


def exited_process() -> subprocess.Popen:
    """A process that has exited but is not reaped yet (a zombie: its pid still answers)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    return process


async def test_who_holds_a_starting_record_decides_between_waiting_and_resending(tmp_path):
    ledger = Ledger(LocalDirectoryStorage(tmp_path), account_key("tea_unit"), "find_email")
    here = socket.gethostname()
    zombie = exited_process()
    try:
        write_starting(ledger, tmp_path, "lea_live", (here, os.getpid()))
        write_starting(ledger, tmp_path, "lea_dead", (here, zombie.pid))
        write_starting(ledger, tmp_path, "lea_away", ("another-host", 1))
        write_starting(ledger, tmp_path, "lea_old", ("another-host", 1), timedelta(minutes=16))
        write_starting(ledger, tmp_path, "lea_left", None)  # a claim that ended mid-request
        recalls = await ledger.recall_leads(
            ["lea_live", "lea_dead", "lea_away", "lea_old", "lea_left"]
        )
    finally:
        zombie.wait()
    in_flight = {key for key, recall in recalls.items() if recall.in_flight}
    interrupted = {key for key, recall in recalls.items() if recall.interrupted}
    assert in_flight == {"lea_live", "lea_away"}
    assert interrupted == {"lea_dead", "lea_old", "lea_left"}


async def test_a_dead_claim_is_taken_over_by_one_run_only(tmp_path):
    storage = LocalDirectoryStorage(tmp_path)
    first, second = (Ledger(storage, account_key("tea_unit"), "find_email") for _ in range(2))
    write_starting(first, tmp_path, "lea_1", None)
    mine = (await first.recall_leads(["lea_1"]))["lea_1"]
    theirs_read = (await second.recall_leads(["lea_1"]))["lea_1"]
    assert mine.interrupted and theirs_read.interrupted
    assert mine.version == theirs_read.version  # both read the same stored version
    async with first.claim_lead("lea_1", recalled=mine) as claim:
        await claim.sending()  # takes over the record version both runs read
        with pytest.raises(ClaimedElsewhereError):
            async with second.claim_lead("lea_1", recalled=theirs_read) as theirs:
                await theirs.sending()
        claim.started("enr_again")
    assert (await second.recall_leads(["lea_1"]))["lea_1"].enrichment_id == "enr_again"


async def test_an_expired_answer_is_asked_again(ledger, monkeypatch):
    await start_lead(ledger, "lea_a", RecordedAnswer(status_code=409, skip_reason="IN_PROGRESS"))
    now = ledger_records.now()
    monkeypatch.setattr(ledger_records, "now", lambda: now + timedelta(hours=25))
    next_day = Ledger(ledger.storage, ledger.account, ledger.workflows)
    recall = (await next_day.recall_leads(["lea_a"]))["lea_a"]
    assert recall.expired and recall.answer is None
    with pytest.raises(ClaimedElsewhereError):  # a claim must name the version it read
        await start_lead(next_day, "lea_a", "enr_a")
    # the old record does not block a claim tied to what was recalled
    await start_lead(next_day, "lea_a", "enr_a", recalled=recall)
    assert (await next_day.recall_leads(["lea_a"]))["lea_a"].enrichment_id == "enr_a"


async def test_a_run_waits_for_a_start_another_live_run_holds_and_collects_it(tmp_path):
    """The race of two runs on the same lead, made deterministic: another run holds the lead's
    claim (its POST on the wire) until this run has started every other lead."""
    config = SandboxConfig(leads=30, seed=39, enrichment_seconds=(0.3, 0.6))
    with run_sandbox(config) as sandbox:
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:5]
        held, others = lead_ids[0], set(lead_ids[1:])
        flags = EnrichmentFlags(find_email=True)
        async with credentials.get_client() as client:
            other_run = await team_ledger(client, flags)
            claimed = asyncio.Event()

            async def other_run_starts_it() -> str | None:
                async with other_run.claim_lead(held) as claim:
                    await claim.sending()
                    claimed.set()
                    for _ in range(600):  # until this run has started the other leads
                        if others <= set(sandbox.stats().enrich_posts_by_lead):
                            break
                        await asyncio.sleep(0.1)
                    result = await client.enrich_lead(held, flags)
                    claim.started(result.enrichment_id)
                return result.enrichment_id

            other = asyncio.create_task(other_run_starts_it())
            await claimed.wait()
            summary = await enrich_leads(
                lead_ids=lead_ids,
                credentials_block=credentials,
                options=EnrichmentOptions(
                    output_dir=str(tmp_path), output_name="race", first_poll_seconds=0.3
                ),
            )
            enrichment_id = await other
        stats = sandbox.stats()
    rows = {row["lead_id"]: row for row in csv.DictReader(open(summary.csv_path))}
    assert stats.enrich_posts_by_lead == {lead_id: 1 for lead_id in lead_ids}
    assert rows[held]["enrichment_id"] == enrichment_id
    assert rows[held]["status"] in ("done", "not_found") and "another run" in rows[held]["note"]
    assert all(rows[lead_id]["status"] in ("done", "not_found") for lead_id in others)


async def test_an_interrupted_lead_that_lemlist_refuses_is_reported_as_re_sent(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=40, enrichment_seconds=(0.3, 0.6))) as sandbox:
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        refused = next(x.lead_id for x in sandbox.leads if x.kind == LeadKind.MISSING_CONTACT)
        async with credentials.get_client() as client:
            ledger = await team_ledger(client, EnrichmentFlags(find_email=True))
        write_starting(ledger, ledger.storage.root, refused, None)  # a killed run's last POST
        summary = await enrich_leads(
            lead_ids=[refused],
            credentials_block=credentials,
            options=EnrichmentOptions(output_dir=str(tmp_path), output_name="refused"),
        )
        posts = sandbox.stats().enrich_posts_by_lead
    [row] = csv.DictReader(open(summary.csv_path))
    assert posts == {refused: 1} and row["status"] == "failed" and "not found" in row["error"]
    assert "re-sent once without force after an interrupted run" in row["note"]


async def test_other_workflows_and_other_teams_are_other_records(ledger):
    await start_lead(ledger, "lea_1", "enr_1")
    phone = Ledger(ledger.storage, ledger.account, "find_phone")
    other_team = Ledger(ledger.storage, account_key("tea_other"), ledger.workflows)
    assert await phone.recall_leads(["lea_1"]) == {}
    assert await other_team.recall_leads(["lea_1"]) == {}
    assert account_key("tea_unit") != account_key("tea_other")
