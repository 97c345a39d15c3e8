"""The pipeline flows of issue #3 against the sandbox, run as real Prefect flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _files import as_text_rows, read_csv, read_jsonl
from _sandboxes import FAST_WINDOW, credentials_for
from prefect.client.orchestration import get_client

from prefect_lemlist import (
    EnrichmentsNotCollectedError,
    InsufficientCreditsError,
)
from prefect_lemlist.flows import enrich_campaign, enrich_leads
from prefect_lemlist.pipeline import EnrichmentOptions
from prefect_lemlist.pipeline.schema import RESULT_COLUMNS
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

EXPECTED_FIND_EMAIL = {
    LeadKind.FINDABLE: "done",
    LeadKind.NOT_FINDABLE: "not_found",
    LeadKind.MISSING_CONTACT: "failed",
    LeadKind.RECENTLY_NOT_FOUND: "skipped_already_enriched",
    LeadKind.IN_PROGRESS: "skipped_in_progress",
}
FOUND = ["email", "email_status", "phone", "linkedin_url", "linkedin_headline", "linkedin_company"]
CAMPAIGN_INPUTS = [  # docs/schema.md: the campaign export's columns a campaign run carries
    "first_name",
    "last_name",
    "company_name",
    "company_domain",
    "job_title",
    "input_email",
    "input_email_status",
    "input_phone",
    "input_linkedin_url",
]
FAST = {"enrichment_seconds": (0.3, 1.0), **FAST_WINDOW}  # not about the limit: a fast window
REAL_WINDOW = {"enrichment_seconds": (0.3, 1.0)}  # lemlist's 20 per 2 s, where it is checked


async def save_block(sandbox, name: str) -> None:
    await credentials_for(sandbox).save(name, overwrite=True)


def options(tmp_path: Path, **overrides) -> EnrichmentOptions:
    fields = {"output_dir": str(tmp_path), "output_name": "run", "first_poll_seconds": 0.5}
    return EnrichmentOptions(**{**fields, **overrides})


@pytest.mark.parametrize("collection", ["poll", "webhook"])
async def test_enrich_campaign_accounts_for_every_lead(tmp_path, collection):
    config = SandboxConfig(leads=120, seed=5, **REAL_WINDOW)
    with run_sandbox(config) as sandbox:
        await save_block(sandbox, f"flow-test-{collection}")
        opts = options(tmp_path, collection=collection)
        if collection == "webhook":
            opts = opts.model_copy(
                update={"webhook": opts.webhook.model_copy(update={"grace_seconds": 20.0})}
            )
        summary = await enrich_campaign(
            sandbox.campaign_id, f"flow-test-{collection}", options=opts
        )
        stats = sandbox.stats()
        truth = {lead.lead_id: lead.kind for lead in sandbox.leads}
        selected = [lead.lead_id for lead in sandbox.leads if not lead.email]

    rows = read_csv(summary.csv_path)
    assert [row["lead_id"] for row in rows] == selected  # every selected lead, once, in order
    assert all(row["campaign_id"] == sandbox.campaign_id for row in rows)
    # the JSON Lines export holds the same rows, typed (numbers, booleans, the raw result)
    assert as_text_rows(read_jsonl(summary.jsonl_path)) == rows
    for row in rows:
        assert row["status"] == EXPECTED_FIND_EMAIL[truth[row["lead_id"]]], row
        if row["status"] == "done":
            assert row["email"] and row["enrichment_id"].startswith("enr_")
        if row["status"] == "failed":
            assert "CONTACT_NOT_FOUND" in row["error"] or "Contact not found" in row["error"]
    assert summary.selected == len(selected)
    assert sum(summary.counts.values()) == len(selected)
    assert max(stats.enrich_posts_by_lead.values()) == 1  # nobody POSTed twice
    assert set(stats.enrich_posts_by_lead) == set(selected)
    assert stats.responses_by_status.get(429, 0) == 0
    assert stats.max_requests_in_window(2.0) <= 20
    assert summary.credits_before - summary.credits_after == stats.credits_used
    started = sum(stats.enrichments_started_by_lead.values())
    if collection == "webhook":
        assert summary.webhook_results == started
        assert summary.polls == 0
        assert len(stats.webhook_deliveries) == started
    else:
        assert summary.polls >= started
    # export + credits + one POST per lead + polls: the report adds up
    assert summary.requests_made == stats.total_requests


async def test_artifacts_summary_table_and_progress(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=2, **FAST)) as sandbox:
        await save_block(sandbox, "flow-test-artifacts")
        state = await enrich_campaign(
            sandbox.campaign_id, "flow-test-artifacts", options=options(tmp_path), return_state=True
        )
        summary = await state.result()
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    this_run = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    )
    async with get_client() as client:
        artifacts = await client.read_artifacts(artifact_filter=this_run)
    artifacts.sort(key=lambda a: a.created)
    by_key = {a.key: a for a in artifacts if a.key}  # the latest version of each key
    slug = sandbox.campaign_id.lower().replace("_", "-")
    # keys carry the campaign, so the Artifacts page groups each campaign's history
    summary_artifact = by_key[f"lemlist-summary-{slug}"]
    assert f"| done | {summary.counts['done']} |" in summary_artifact.data
    table = by_key[f"lemlist-results-{slug}"].data
    table_rows = json.loads(table) if isinstance(table, str) else table
    assert len(table_rows) == summary.selected
    # the status and what was found, first; then the schema's fixed columns and the inputs
    assert list(table_rows[0])[: 1 + len(FOUND)] == ["status", *FOUND], list(table_rows[0])
    fixed = [c for c in RESULT_COLUMNS if c != "raw_result"]
    assert list(table_rows[0]) == [*fixed, *CAMPAIGN_INPUTS], list(table_rows[0])
    # the export keeps the same order, with the raw result last
    assert list(read_csv(summary.csv_path)[0]) == [*fixed, *CAMPAIGN_INPUTS, "raw_result"]
    progress = by_key[f"lemlist-progress-{slug}"]
    assert float(progress.data) == 100.0
    assert f"started {summary.selected}/{summary.selected}" in (progress.description or "")
    batches = by_key[f"lemlist-batches-{slug}"].data
    batch_rows = json.loads(batches) if isinstance(batches, str) else batches
    assert sum(row["items"] for row in batch_rows) == summary.to_start


async def test_dry_run_spends_nothing(tmp_path):
    with run_sandbox(SandboxConfig(leads=40, seed=3)) as sandbox:
        await save_block(sandbox, "flow-test-dry")
        summary = await enrich_campaign(
            sandbox.campaign_id,
            "flow-test-dry",
            options=options(tmp_path, dry_run=True, find_phone=True),
        )
        stats = sandbox.stats()
    assert summary.dry_run and summary.to_start == summary.selected > 0
    assert summary.max_credit_cost == summary.selected * (5 + 20)
    assert stats.requests_by_route.get("enrich_post", 0) == 0
    assert summary.csv_path is None and not list(tmp_path.iterdir())


@pytest.mark.parametrize("limit", ["credits", "max_credits"])
async def test_credit_guard_stops_before_spending(tmp_path, limit):
    credits = 50 if limit == "credits" else 100_000
    with run_sandbox(SandboxConfig(leads=40, seed=3, credits=credits)) as sandbox:
        await save_block(sandbox, "flow-test-credits")
        opts = options(tmp_path, max_credits=50 if limit == "max_credits" else None)
        state = await enrich_campaign(
            sandbox.campaign_id, "flow-test-credits", options=opts, return_state=True
        )
        stats = sandbox.stats()
    assert state.is_failed()
    with pytest.raises(InsufficientCreditsError) as info:
        await state.result()
    assert "Nothing was spent" in str(info.value)
    assert stats.requests_by_route.get("enrich_post", 0) == 0


async def test_rerun_collects_instead_of_posting_again(tmp_path):
    with run_sandbox(SandboxConfig(leads=40, seed=8, **FAST)) as sandbox:
        await save_block(sandbox, "flow-test-rerun")
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE]
        first = await enrich_leads(
            lead_ids, credentials_block="flow-test-rerun", options=options(tmp_path / "1")
        )
        posts_after_first = dict(sandbox.stats().enrich_posts_by_lead)
        second = await enrich_leads(
            lead_ids, credentials_block="flow-test-rerun", options=options(tmp_path / "2")
        )
        posts_after_second = dict(sandbox.stats().enrich_posts_by_lead)
        forced = await enrich_leads(
            lead_ids[:2],
            credentials_block="flow-test-rerun",
            options=options(tmp_path / "3", force=True),
        )
        posts_after_force = sandbox.stats().enrich_posts_by_lead
    assert first.counts["done"] == len(lead_ids)
    assert posts_after_second == posts_after_first  # zero new POSTs
    assert second.recalled_from_ledger == len(lead_ids) and second.to_start == 0
    assert second.counts["done"] == len(lead_ids)
    first_rows, second_rows = read_csv(first.csv_path), read_csv(second.csv_path)
    # the same rows, but the note and the run's own time (`run_at`)
    assert [{**r, "note": "", "run_at": ""} for r in second_rows] == [
        {**r, "note": "", "run_at": ""} for r in first_rows
    ]
    assert len({r["run_at"] for r in first_rows + second_rows}) == 2  # one per run
    # the answers are marked as coming from the earlier run, with the CLI's flag for more
    assert all("earlier run" in r["note"] and "--force" in r["note"] for r in second_rows)
    assert second.requests_made <= 3  # team (first use of this key only), credits: no poll
    assert forced.to_start == 2  # force: deliberately sent again
    assert all(posts_after_force[lid] == 2 for lid in lead_ids[:2])


async def test_enrich_leads_from_csv_reports_bad_rows(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=4, **FAST)) as sandbox:
        await save_block(sandbox, "flow-test-csv")
        good = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:3]
        path = tmp_path / "leads.csv"
        path.write_text(
            "name,lead_id\n"
            f"a,{good[0]}\n"  # line 2
            "b,\n"  # line 3: missing
            f"c,{good[1]}\n"  # line 4
            "d,lea_bad/id\n"  # line 5: malformed
            f"e,{good[0]}\n"  # line 6: duplicate
            f"f,{good[2]}\n",  # line 7
            encoding="utf-8",
        )
        summary = await enrich_leads(
            path=str(path), credentials_block="flow-test-csv", options=options(tmp_path)
        )
        stats = sandbox.stats()
    # bad rows are reported with their line and reason; a repeated id is not an error any
    # more: it shares the first row's result (every input row is in the export once)
    assert [(r.line, r.reason.split(":")[0]) for r in summary.rejected] == [
        (3, "missing lead id"),
        (5, "lead id 'lea_bad/id' is not valid"),
    ]
    rows = read_csv(summary.csv_path)
    assert [row["name"] for row in rows] == ["a", "b", "c", "d", "e", "f"]  # columns kept
    # the input's lead_id column is carried as input_lead_id; lead_id is the lead enriched
    column = [good[0], "", good[1], "lea_bad/id", good[0], good[2]]
    assert [row["input_lead_id"] for row in rows] == column
    assert [row["lead_id"] for row in rows] == [good[0], "", good[1], "", good[0], good[2]]
    assert [row["status"] for row in rows] == [
        "done",
        "rejected",
        "done",
        "rejected",
        "done",
        "done",
    ]
    assert rows[4]["email"] == rows[0]["email"] and "same as line 2" in rows[4]["note"]
    rejected = read_csv(summary.rejected_path)
    assert list(rejected[0]) == ["line", "reason", "name", "input_lead_id"]
    assert [(r["line"], r["name"], r["input_lead_id"]) for r in rejected] == [
        ("3", "b", ""),
        ("5", "d", "lea_bad/id"),
    ]
    assert [r["reason"].split(":")[0] for r in rejected] == [
        "missing lead id",
        "lead id 'lea_bad/id' is not valid",
    ]
    assert set(stats.enrich_posts_by_lead) == set(good)
    assert max(stats.enrich_posts_by_lead.values()) == 1


async def test_collector_timeout_reports_timed_out_with_enrichment_id(tmp_path):
    config = SandboxConfig(leads=30, seed=9, enrichment_never_finish_rate=1.0)
    with run_sandbox(config) as sandbox:
        await save_block(sandbox, "flow-test-timeout")
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:3]
        with pytest.raises(EnrichmentsNotCollectedError) as failed:  # the run ends Failed
            await enrich_leads(
                lead_ids,
                credentials_block="flow-test-timeout",
                options=options(tmp_path, collect_timeout_seconds=2.0),
            )
    assert "3 started enrichments could not be collected" in failed.value.message
    rows = read_csv(failed.value.summary.csv_path)  # and every row is exported
    assert [row["status"] for row in rows] == ["timed_out"] * 3
    assert all(row["enrichment_id"].startswith("enr_") for row in rows)


@pytest.mark.parametrize(
    "case",
    [
        "no_flag",
        "negative_batch",
        "missing_csv",
        "missing_csv_old_name",
        "path_and_old_name",
        "malformed_campaign_id",
        "unknown_block",
        "bad_base_url",
        "no_credentials",
    ],
)
async def test_invalid_parameters_fail_clearly_before_any_paid_request(tmp_path, case, monkeypatch):
    monkeypatch.delenv("LEMLIST_API_KEY", raising=False)
    with run_sandbox(SandboxConfig(leads=20, seed=1)) as sandbox:
        await save_block(sandbox, "flow-test-params")
        lead_ids = [sandbox.leads[0].lead_id]
        kwargs: dict = {"lead_ids": lead_ids, "credentials_block": "flow-test-params"}
        expected = ""
        if case == "no_flag":
            kwargs["options"] = {"find_email": False}
            expected = "No enrichment requested"
        elif case == "negative_batch":
            kwargs["options"] = {"batch_size": -1}
            expected = "batch_size"
        elif case in ("missing_csv", "missing_csv_old_name"):  # csv_path: deprecated `path`
            name = "path" if case == "missing_csv" else "csv_path"
            kwargs = {name: str(tmp_path / "nope.csv"), "credentials_block": "flow-test-params"}
            expected = "input file not found"
        elif case == "path_and_old_name":
            kwargs = {"path": "a.csv", "csv_path": "b.csv", "credentials_block": "flow-test-params"}
            expected = "not both"
        elif case == "malformed_campaign_id":
            state = await enrich_campaign(
                "cam_../team", "flow-test-params", options=options(tmp_path), return_state=True
            )
            stats = sandbox.stats()
            assert state.is_failed()
            assert "campaign id 'cam_../team' is not valid" in str(await _exception_of(state))
            assert sum(stats.requests_by_route.values()) == 0  # nothing sent to lemlist
            return
        elif case == "unknown_block":
            kwargs["credentials_block"] = "no-such-block"
            expected = "No LemlistCredentials block named 'no-such-block'"
        elif case == "bad_base_url":
            monkeypatch.setenv("LEMLIST_API_KEY", "k")
            monkeypatch.setenv("LEMLIST_BASE_URL", "ftp://nowhere")
            kwargs["credentials_block"] = None
            expected = "base_url must be an absolute http"
        elif case == "no_credentials":
            kwargs["credentials_block"] = None
            expected = "No lemlist credentials"
        state = await enrich_leads(**kwargs, return_state=True)
        stats = sandbox.stats()
    assert state.is_failed()
    assert expected in state.message or expected in str(await _exception_of(state))
    assert stats.requests_by_route.get("enrich_post", 0) == 0


async def _exception_of(state) -> BaseException | None:
    try:
        await state.result()
    except BaseException as exc:
        return exc
    return None


# ---------------------------------------------------------------------------- the Prefect UI


def test_the_run_form_has_a_block_picker_and_a_filled_options_form():
    from prefect.utilities.callables import parameter_schema

    from prefect_lemlist.flows import enrich_campaign, enrich_contacts, enrich_leads

    for flow_ in (enrich_campaign, enrich_leads, enrich_contacts):
        schema = parameter_schema(flow_.fn).model_dump()
        credentials = schema["properties"]["credentials_block"]
        refs = [option.get("$ref", "") for option in credentials["anyOf"]]
        assert "#/definitions/LemlistCredentials" in refs  # the UI's block picker ...
        assert {"type": "string"} in credentials["anyOf"]  # ... or a saved block's name
        block_schema = schema["definitions"]["LemlistCredentials"]
        assert block_schema["block_type_slug"] == "lemlist-credentials"
        assert "api_key" in block_schema["secret_fields"]
        options = schema["properties"]["options"]
        assert options["default"]["find_email"] is True  # a filled form, not a None toggle
        assert options["default"]["collection"] == "poll"
        assert "anyOf" not in options
    # one name for an input file across the flows (`-p path=...` on either deployment)
    for flow_ in (enrich_leads, enrich_contacts):
        assert "path" in parameter_schema(flow_.fn).model_dump()["properties"], flow_.name


async def test_the_old_csv_path_parameter_still_works_with_a_deprecation_warning(tmp_path):
    with run_sandbox(SandboxConfig(leads=10, seed=21, **FAST)) as sandbox:
        await save_block(sandbox, "flow-test-old-name")
        path = tmp_path / "ids.csv"
        path.write_text(f"lead_id\n{sandbox.leads[0].lead_id}\n", encoding="utf-8")
        with pytest.warns(DeprecationWarning, match="use `path`"):
            summary = await enrich_leads(
                csv_path=str(path),
                credentials_block="flow-test-old-name",
                options=options(tmp_path, dry_run=True),
            )
    assert summary.input_rows == 1 and summary.source.endswith("ids.csv")


async def test_a_block_reference_from_the_ui_and_the_rows_in_the_result(tmp_path):
    with run_sandbox(SandboxConfig(leads=20, seed=14, **FAST)) as sandbox:
        await save_block(sandbox, "flow-test-ref")
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE][:3]
        reference = {"$ref": {"block_document_slug": "lemlist-credentials/flow-test-ref"}}
        summary = await enrich_leads(
            lead_ids, credentials_block=reference, options=options(tmp_path)
        )
    assert summary.counts["done"] == 3
    # the flow's result carries the rows, as exported, for a downstream task
    assert summary.rows == [
        {k: (v or None) for k, v in row.items()} for row in read_csv(summary.csv_path)
    ]
    assert Path(summary.csv_path).is_absolute()
