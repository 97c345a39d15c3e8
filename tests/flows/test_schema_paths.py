"""The output schema through every door, and the input rules users asked for, against the sandbox:
the same columns for the three lead paths and the people path whatever the workflows, `lead_id`
on the by-email path, a CRM `id` that never hides `email`, rejections summarised with a hint,
rows that already have an email never sent, refresh after N days, `only_missing`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from _files import read_csv
from _sandboxes import FAST_WINDOW, credentials_for

from prefect_lemlist import ContactOptions, EnrichmentOptions
from prefect_lemlist.flows import enrich_campaign, enrich_contacts, enrich_leads
from prefect_lemlist.pipeline.schema import RESULT_COLUMNS
from prefect_lemlist.sandbox import SandboxConfig, generate_people, run_sandbox

FIXED = list(RESULT_COLUMNS[:-1])  # raw_result comes last, after the input's own columns
QUICK = {"enrichment_seconds": (0.1, 0.3), **FAST_WINDOW}


def lead_options(out: Path, name: str, **fields: Any) -> EnrichmentOptions:
    base = {"output_dir": str(out), "output_name": name, "first_poll_seconds": 0.2}
    return EnrichmentOptions.model_validate({**base, **fields})


def people_options(out: Path, name: str, **fields: Any) -> ContactOptions:
    base = {"output_dir": str(out), "output_name": name, "first_poll_seconds": 0.2}
    return ContactOptions.model_validate({**base, **fields})


def header(path: str | None) -> list[str]:
    assert path is not None
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def check_fixed_columns(path: str | None, inputs: list[str]) -> list[dict[str, str]]:
    columns = header(path)
    assert columns == [*FIXED, *inputs, "raw_result"], columns
    return read_csv(path)


async def test_every_door_writes_the_same_documented_columns(tmp_path: Path) -> None:
    people = [p for p in generate_people(120, seed=51) if p["email"] and "@" in p["email"]][:8]
    with run_sandbox(SandboxConfig(leads=12, seed=51, **QUICK)) as sandbox:
        creds = credentials_for(sandbox)
        campaign_id, lead_ids = sandbox.add_campaign_from_people(people, name="crm")
        campaign = await enrich_campaign(
            campaign_id, creds, options=lead_options(tmp_path, "campaign", find_phone=True)
        )
        by_id = await enrich_leads(
            lead_ids=lead_ids[:4], credentials_block=creds, options=lead_options(tmp_path, "ids")
        )
        by_email = await enrich_leads(
            emails=[p["email"] for p in people[:5]],
            credentials_block=creds,
            options=lead_options(tmp_path, "emails", find_email=False, find_phone=True),
        )
        ids_file = write_csv(
            tmp_path / "ids-input.csv",
            [{"lead_id": i, "crm": n} for n, i in enumerate(lead_ids[4:8])],
        )
        by_file = await enrich_leads(
            path=str(ids_file),
            credentials_block=creds,
            options=lead_options(tmp_path, "file", linkedin_enrichment=True, find_email=False),
        )
        contacts = write_csv(
            tmp_path / "people.csv",
            [
                {
                    "linkedinUrl": p["linkedin_url"],
                    "first_name": p["first_name"],
                    "last_name": p["last_name"],
                    "crm_id": str(n),
                }
                for n, p in enumerate(generate_people(30, seed=52))
            ],
        )
        people_run = await enrich_contacts(
            path=str(contacts), credentials_block=creds, options=people_options(tmp_path, "people")
        )
    campaign_inputs = [
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
    for row in check_fixed_columns(campaign.csv_path, campaign_inputs):
        assert row["lead_id"].startswith("lea_") and row["campaign_id"] == campaign_id
        assert row["workflows"] == "find_email+find_phone" and row["record_key"] == row["lead_id"]
    for row in check_fixed_columns(by_id.csv_path, ["input_lead_id"]):
        assert row["lead_id"] == row["input_lead_id"] and row["workflows"] == "find_email"
    rows = check_fixed_columns(by_email.csv_path, ["input_email"])
    assert [r["lead_id"] for r in rows] == lead_ids[:5]  # the lead each email resolved to
    assert all(r["campaign_id"] == campaign_id for r in rows)
    assert all(r["find_email_status"] == "" for r in rows)  # not asked: empty, still there
    for row in check_fixed_columns(by_file.csv_path, ["input_lead_id", "crm"]):
        assert row["lead_id"] == row["input_lead_id"] and row["linkedin_status"]
    rows = check_fixed_columns(
        people_run.csv_path, ["input_linkedin_url", "first_name", "last_name", "crm_id"]
    )
    assert all(r["lead_id"] == "" for r in rows)
    assert all(r["person_key"] for r in rows if r["status"] != "rejected")
    done = [r for r in rows if r["status"] == "done"]
    assert done and all(r["enriched_at"] for r in done), done[0]
    assert all(r["raw_result"].startswith("{") for r in done), done[0]["raw_result"]
    assert all(float(r["credits_charged"]) in (0.0, 5.0) for r in done)


async def test_a_crm_id_never_hides_the_email_column(tmp_path: Path) -> None:
    people = [p for p in generate_people(80, seed=53) if p["email"] and "@" in p["email"]][:6]
    with run_sandbox(SandboxConfig(leads=0, seed=53, **QUICK)) as sandbox:
        _, lead_ids = sandbox.add_campaign_from_people(people, name="crm")
        crm = write_csv(
            tmp_path / "crm-input.csv",
            [{"id": 101 + n, "email": p["email"]} for n, p in enumerate(people)],
        )
        summary = await enrich_leads(
            path=str(crm),
            credentials_block=credentials_for(sandbox),
            options=lead_options(tmp_path, "crm", find_email=False, find_phone=True),
        )
        stats = sandbox.stats()
    rows = read_csv(summary.csv_path)
    assert [r["lead_id"] for r in rows] == lead_ids  # found by email, not POST /leads/101
    assert [r["id"] for r in rows] == [str(101 + n) for n in range(len(people))]
    assert stats.responses_by_status.get(404, 0) == 0
    assert sum(stats.enrich_posts_by_lead.values()) == len(people)


async def test_rejections_are_summarised_with_the_column_to_add(tmp_path: Path) -> None:
    rows = [
        {
            "crm_id": f"c{n}",
            "first_name": f"Ada{n}",
            "last_name": "Lovelace",
            "company_domain": "acme.io",
        }
        for n in range(40)
    ]
    path = write_csv(tmp_path / "crm-people-input.csv", rows)
    with run_sandbox(SandboxConfig(leads=0, seed=54, **QUICK)) as sandbox:
        summary = await enrich_contacts(
            path=str(path),
            credentials_block=credentials_for(sandbox),
            options=people_options(tmp_path, "crm-people"),
        )
        stats = sandbox.stats()
    assert summary.rejected_count == 40 and len(summary.rejected_reasons) == 1
    assert summary.hints and summary.hints[0].startswith("add a company_name column")
    assert stats.total_requests <= 2  # GET /team, GET /team/credits: nothing to send
    rejected = read_csv(summary.rejected_path)
    assert [r["crm_id"] for r in rejected] == [f"c{n}" for n in range(40)]
    assert list(rejected[0])[:2] == ["line", "reason"]


async def test_a_row_that_has_an_email_is_not_sent_to_find_email(tmp_path: Path) -> None:
    people = [p for p in generate_people(200, seed=55) if p["linkedin_url"]][:20]
    for n, person in enumerate(people[:8]):
        person["email"] = f"known{n}@{person['company_domain'] or 'acme.io'}"
    for person in people[8:]:
        person["email"] = ""
    path = write_csv(tmp_path / "people-input.csv", people)
    with run_sandbox(SandboxConfig(leads=0, seed=55, **QUICK)) as sandbox:
        creds = credentials_for(sandbox)
        summary = await enrich_contacts(
            path=str(path), credentials_block=creds, options=people_options(tmp_path, "first")
        )
        credits_spent = summary.credits_spent
        forced = await enrich_contacts(
            path=str(path),
            credentials_block=creds,
            options=people_options(tmp_path, "forced", force=True, limit=8),
        )
    rows = read_csv(summary.csv_path)
    skipped = [r for r in rows if r["status"] == "skipped_has_email"]
    assert len(skipped) == 8 and all(r["enrichment_id"] == "" for r in skipped)
    assert all(r["email"] == r["input_email"] for r in skipped)  # the email it already had
    assert summary.counts["skipped_has_email"] == 8 and summary.selected == 12
    assert credits_spent is not None and credits_spent <= 12 * 5
    assert "skipped: had an email" in " ".join(summary.row_breakdown)
    forced_rows = read_csv(forced.csv_path)
    assert sum(1 for r in forced_rows[:8] if r["enrichment_id"]) == 8  # force sends them


async def test_only_missing_and_email_domain_matches(tmp_path: Path) -> None:
    people = [p for p in generate_people(300, seed=56) if p["linkedin_url"]][:12]
    for n, person in enumerate(people):
        person["phone"] = f"+33 6 00 00 00 0{n}" if n < 5 else ""
    path = write_csv(tmp_path / "phones-input.csv", people)
    with run_sandbox(SandboxConfig(leads=0, seed=56, **QUICK)) as sandbox:
        summary = await enrich_contacts(
            path=str(path),
            credentials_block=credentials_for(sandbox),
            options=people_options(
                tmp_path, "phones", find_email=True, find_phone=True, only_missing=True
            ),
        )
    rows = read_csv(summary.csv_path)
    both = sum(1 for p in people if p["phone"] and p["email"])  # nothing left to find for them
    assert summary.counts["skipped_has_data"] == both
    found = [r for r in rows if r["email"]]
    assert found, "the sandbox finds some emails"
    for row in found:
        if row["company_domain"]:
            domain = row["company_domain"].lower()
            assert row["email_domain_matches"] == str(row["email"].endswith(domain)).lower()
    phone_only = await _phone_only(tmp_path, path, seed=56)
    assert phone_only.counts["skipped_has_data"] == 5


async def _phone_only(tmp_path: Path, path: Path, *, seed: int):
    with run_sandbox(SandboxConfig(leads=0, seed=seed, **QUICK)) as sandbox:
        return await enrich_contacts(
            path=str(path),
            credentials_block=credentials_for(sandbox),
            options=people_options(
                tmp_path, "phone-only", find_email=False, find_phone=True, only_missing=True
            ),
        )


async def test_refresh_after_days_enriches_stale_results_again_once(tmp_path: Path) -> None:
    with run_sandbox(SandboxConfig(leads=10, seed=57, **QUICK)) as sandbox:
        creds = credentials_for(sandbox)
        lead_ids = [lead.lead_id for lead in sandbox.leads if not lead.email][:6]
        first = await enrich_leads(
            lead_ids=lead_ids, credentials_block=creds, options=lead_options(tmp_path, "one")
        )
        again = await enrich_leads(
            lead_ids=lead_ids, credentials_block=creds, options=lead_options(tmp_path, "two")
        )
        dry = await enrich_leads(
            lead_ids=lead_ids,
            credentials_block=creds,
            options=lead_options(tmp_path, "dry", refresh_after_days=0, dry_run=True),
        )
        refreshed = await enrich_leads(
            lead_ids=lead_ids,
            credentials_block=creds,
            options=lead_options(tmp_path, "three", refresh_after_days=0),
        )
        stats = sandbox.stats()
    final = sum(1 for r in read_csv(first.csv_path) if r["status"] in ("done", "not_found"))
    assert final > 0
    assert again.started == 0 and again.recalled_from_ledger == len(lead_ids)
    assert dry.refreshed == final and dry.max_credit_cost == 5 * dry.to_start
    # lemlist's force does not lift an earlier not-found with the same inputs (409): those
    # stale leads are sent and skipped, the others started again
    assert refreshed.refreshed == final and 0 < refreshed.started <= final
    # each stale lead POSTed once more (with lemlist's force), never twice
    posts = stats.enrich_posts_by_lead
    assert all(posts[lead] <= 2 for lead in lead_ids)
    assert sum(posts[lead] for lead in lead_ids) == len(lead_ids) + final


async def test_verify_email_by_email_reports_an_answer_for_every_lead(tmp_path: Path) -> None:
    people = [p for p in generate_people(200, seed=58) if p["email"] and "@" in p["email"]][:8]
    with run_sandbox(SandboxConfig(leads=0, seed=58, **QUICK)) as sandbox:
        _, lead_ids = sandbox.add_campaign_from_people(people, name="verify")
        summary = await enrich_leads(
            emails=[p["email"] for p in people],
            credentials_block=credentials_for(sandbox),
            options=lead_options(tmp_path, "verify", find_email=False, verify_email=True),
        )
    rows = read_csv(summary.csv_path)
    assert [r["lead_id"] for r in rows] == lead_ids
    for row in rows:
        # the lead's email, verified by lemlist in this run or already carrying lemlist's status
        assert row["email"].lower() == row["input_email"].lower(), row
        assert row["email_status"] in ("deliverable", "risky", "undeliverable"), row
        assert row["verify_status"] in ("found", "not_found", "not_run"), row
