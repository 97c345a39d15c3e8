"""Where lemlist's documentation is silent (issue #12): each behaviour with the sandbox knob that
makes lemlist behave the other way, run as real flows over loopback HTTP.

Run with `-s` to print the rows of the README's reliability table for these cases.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from _files import read_csv

from prefect_lemlist import (
    EnrichmentOptions,
    LemlistAuthError,
    LemlistCredentials,
    LemlistOutOfCreditsError,
)
from prefect_lemlist.flows import enrich_campaign, enrich_leads
from prefect_lemlist.sandbox import SandboxConfig, generate_people, run_sandbox

FAST = {"enrichment_seconds": (0.2, 0.6)}
TWO_WORKFLOWS = {"find_email": True, "linkedin_enrichment": True}
COMPARED = ("status", "email", "find_email_status", "linkedin_url", "linkedin_status")


def block(sandbox, key: str | None = None) -> LemlistCredentials:
    return LemlistCredentials(api_key=key or sandbox.api_key, base_url=sandbox.base_url)


def options(tmp_path: Path, name: str, **overrides) -> EnrichmentOptions:
    fields = {
        "output_dir": str(tmp_path),
        "output_name": name,
        "first_poll_seconds": 0.3,
        "webhook": {"grace_seconds": 20.0},
    }
    return EnrichmentOptions.model_validate({**fields, **overrides})


async def exception_of(state) -> BaseException | None:
    try:
        await state.result()
    except BaseException as exc:
        return exc
    return None


def measured_tail(stats) -> str:
    """The table's last two columns from the sandbox: leads started twice, 429 answers."""
    twice = sum(1 for n in stats.enrichments_started_by_lead.values() if n > 1)
    return f"{twice} | {stats.responses_by_status.get(429, 0)} |"


# ------------------------------------------------------------------ 1. unclear webhook bodies


@pytest.fixture(scope="module")
async def polled(tmp_path_factory) -> dict[str, dict[str, str]]:
    """What polling gives for the campaign of seed 31 (the reference for every webhook run)."""
    tmp = tmp_path_factory.mktemp("polled")
    with run_sandbox(SandboxConfig(leads=40, seed=31, **FAST)) as sandbox:
        summary = await enrich_campaign(
            sandbox.campaign_id, block(sandbox), options=options(tmp, "poll", **TWO_WORKFLOWS)
        )
    return {row["lead_id"]: row for row in read_csv(summary.csv_path)}


async def webhook_run(tmp_path: Path, style: str, confirm: str = "when_unclear"):
    config = SandboxConfig(leads=40, seed=31, webhook_body_style=style, **FAST)
    with run_sandbox(config) as sandbox:
        opts = options(
            tmp_path,
            style,
            collection="webhook",
            webhook={"grace_seconds": 20.0, "confirm": confirm},
            **TWO_WORKFLOWS,
        )
        summary = await enrich_campaign(sandbox.campaign_id, block(sandbox), options=opts)
        stats = sandbox.stats()
        rows = {row["lead_id"]: row for row in read_csv(summary.csv_path)}
        ran = [
            sandbox.enrichment(r["enrichment_id"]).workflows
            for r in rows.values()
            if r["enrichment_id"]
        ]
    return summary, stats, rows, ran


@pytest.mark.parametrize(
    ("style", "unclear"),
    [
        ("documented", False),
        ("polling_keys", False),
        ("not_found_flags", False),
        ("empty_data", True),
        ("nulls", True),
        ("unknown_keys", True),
    ],
)
async def test_every_webhook_body_shape_ends_as_polling_would(tmp_path, polled, style, unclear):
    summary, stats, rows, ran = await webhook_run(tmp_path, style)
    started = sum(stats.enrichments_started_by_lead.values())
    assert started > 10 and len(stats.webhook_deliveries) == started
    # every lead's final answer is what polling gives, whatever the webhook body looked like
    assert {lid: [r[c] for c in COMPARED] for lid, r in rows.items()} == {
        lid: [r[c] for c in COMPARED] for lid, r in polled.items()
    }
    # ... and what it cost: a clear body is taken as it is, an unclear one confirmed by one GET.
    # A body is also unclear when lemlist skipped a workflow (the lead already had an email):
    # the webhook cannot say "not run", so that one is confirmed whatever the shape.
    partial = sum(1 for workflows in ran if set(workflows) != set(TWO_WORKFLOWS))
    assert 0 < partial < started
    assert summary.webhook_confirmations == (started if unclear else partial)
    assert stats.requests_by_route.get("enrich_get", 0) == summary.polls
    assert summary.polls == summary.webhook_confirmations
    print(
        f"\n| webhook bodies `{style}` | `webhook_body_style={style}` | every lead as polling "
        f"gives; {summary.webhook_confirmations} of {started} webhook results confirmed by a "
        f"GET | {len(rows)} / {len(rows)} | {measured_tail(stats)}"
    )


async def test_confirm_never_trusts_unclear_bodies_and_always_confirms_every_one(tmp_path, polled):
    never, _, never_rows, _ = await webhook_run(tmp_path / "never", "nulls", confirm="never")
    assert never.polls == 0 and never.webhook_confirmations == 0
    found = [lid for lid, row in polled.items() if row["status"] == "done"]
    assert found
    # taken as they are, `null` results say nothing: the workflows are `unknown`, not found
    assert all(never_rows[lid]["status"] == "not_found" for lid in found)
    assert all(never_rows[lid]["find_email_status"] == "unknown" for lid in found)
    always, stats, always_rows, _ = await webhook_run(tmp_path / "always", "documented", "always")
    started = sum(stats.enrichments_started_by_lead.values())
    assert always.webhook_confirmations == started == always.polls
    assert {lid: [r[c] for c in COMPARED] for lid, r in always_rows.items()} == {
        lid: [r[c] for c in COMPARED] for lid, r in polled.items()
    }


# ------------------------------------------------------------------ 2. the token in the path


async def test_webhook_urls_without_their_query_string_still_deliver(tmp_path):
    config = SandboxConfig(leads=30, seed=32, webhook_strip_query=True, **FAST)
    with run_sandbox(config) as sandbox:
        opts = options(tmp_path, "stripped", collection="webhook")
        summary = await enrich_campaign(sandbox.campaign_id, block(sandbox), options=opts)
        stats = sandbox.stats()
    started = sum(stats.enrichments_started_by_lead.values())
    assert started > 5
    assert summary.webhook_results == started and summary.polls == 0
    assert all(d.ok and d.status_code == 200 for d in stats.webhook_deliveries)
    print(
        f"\n| webhook URL loses its query string | `webhook_strip_query=True` | every result by "
        f"webhook ({summary.webhook_results} of {started}), 0 polls: the token is in the path | "
        f"{summary.selected} / {summary.selected} | {measured_tail(stats)}"
    )


# ------------------------------------------------------------------ 3. prices


async def test_linkedin_is_counted_at_its_upper_bound_and_the_actual_spend_is_reported(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=33, linkedin_credits=1, **FAST)) as sandbox:
        lead_ids = [lead.lead_id for lead in sandbox.leads if lead.linkedin_url][:12]
        linkedin = {"find_email": False, "linkedin_enrichment": True}
        dry = await enrich_leads(
            lead_ids,
            credentials_block=block(sandbox),
            options=options(tmp_path, "dry", dry_run=True, **linkedin),
        )
        assert dry.max_credit_cost == 2 * len(lead_ids)  # 2: the highest price lemlist published
        guard = await enrich_leads(
            lead_ids,
            credentials_block=block(sandbox),
            options=options(tmp_path, "guard", max_credits=2 * len(lead_ids) - 1, **linkedin),
            return_state=True,
        )
        assert guard.is_failed()  # the bound, not the current price, is what the guard uses
        run = await enrich_leads(
            lead_ids, credentials_block=block(sandbox), options=options(tmp_path, "run", **linkedin)
        )
        stats = sandbox.stats()
    started = sum(stats.enrichments_started_by_lead.values())
    assert started >= len(lead_ids) - 2
    assert run.credits_spent == stats.credits_used == started  # 1 each, as charged
    assert run.max_credit_cost == 2 * len(lead_ids)
    from prefect_lemlist.pipeline.report import render_summary

    text = render_summary(run)
    assert "upper-bound" in text and f"spent {stats.credits_used:g}" in text


# ------------------------------------------------------------------ 4. running out of credits


async def drain_credits_after(sandbox, posts: int) -> None:
    """Another tool spends the team's credits while the run is going."""
    while sandbox.stats().requests_by_route.get("enrich_post", 0) < posts:
        await asyncio.sleep(0.01)
    sandbox.configure(credits=0)


@pytest.mark.parametrize("answer", ["400", "402", "accept_then_fail"])
async def test_running_out_of_credits_stops_starting_and_a_rerun_after_a_top_up_continues(
    tmp_path, answer
):
    config = SandboxConfig(
        leads=80,
        seed=34,
        out_of_credits_answer=answer,
        enrichment_seconds=(0.3, 0.8),
        latency_seconds=(0.02, 0.05),
    )
    with run_sandbox(config) as sandbox:
        selected = [lead.lead_id for lead in sandbox.leads if not lead.email]
        drain = asyncio.create_task(drain_credits_after(sandbox, 12))
        first = await enrich_campaign(
            sandbox.campaign_id,
            block(sandbox),
            options=options(tmp_path, "first", batch_size=10),
            return_state=True,
        )
        await drain
        error = await exception_of(first)
        rows = {row["lead_id"]: row for row in read_csv(tmp_path / "first.csv")}
        first_stats = sandbox.stats()
        sandbox.configure(credits=100_000)  # the top-up
        second = await enrich_campaign(
            sandbox.campaign_id, block(sandbox), options=options(tmp_path, "second")
        )
        stats = sandbox.stats()
        statuses_of = {eid: sandbox.enrichment(eid).status for eid in _ids(rows)}
    # the first run stops starting at the first sign, says why in one error, exports every lead
    assert first.is_failed() and isinstance(error, LemlistOutOfCreditsError), error
    assert sorted(rows) == sorted(selected)
    not_started = [r for r in rows.values() if r["status"] == "not_started"]
    assert not_started and all("credits" in r["error"] for r in not_started)
    # a lead refused for lack of credits was sent, but nothing was started for it
    started_first = first_stats.enrichments_started_by_lead
    assert all(not started_first.get(r["lead_id"]) for r in not_started)
    # ... and collected everything it had started
    assert not any(r["status"] == "timed_out" for r in rows.values())
    # the re-run after the top-up continues: every lead gets a final answer
    second_rows = read_csv(second.csv_path)
    assert sorted(r["lead_id"] for r in second_rows) == sorted(selected)
    assert not any(r["status"] in ("not_started", "timed_out") for r in second_rows)
    # without paying twice: a lead started twice had its first enrichment ended by lemlist
    # with an error for lack of credits (nothing charged); the first run said so
    twice = [lid for lid, count in stats.enrichments_started_by_lead.items() if count == 2]
    assert max(stats.enrichments_started_by_lead.values()) <= 2
    for lead_id in twice:
        assert statuses_of[rows[lead_id]["enrichment_id"]] == "error"
        assert "not charged" in rows[lead_id]["note"]
    if answer == "accept_then_fail":
        assert twice  # the refusal came as failed enrichments
    print(
        f"\n| out of credits mid-run, answered `{answer}` | credits set to 0 after 12 POSTs, "
        f"`out_of_credits_answer={answer}` | the run stopped starting ({len(not_started)} "
        f"`not_started`), collected what it had started, exited with one error; a re-run after "
        f"a top-up finished every lead | {len(selected)} / {len(rows)} | {measured_tail(stats)}"
    )


def _ids(rows: dict[str, dict[str, str]]) -> list[str]:
    return [row["enrichment_id"] for row in rows.values() if row["enrichment_id"]]


# ------------------------------------------------------------------ 5. a key revoked mid-run


async def test_a_revoked_key_stops_every_request_and_a_new_key_of_the_team_collects(tmp_path):
    config = SandboxConfig(
        leads=80,
        seed=35,
        api_keys=["old-key", "new-key"],
        revoke_key_after_requests=40,
        enrichment_seconds=(1.0, 2.0),
    )
    with run_sandbox(config) as sandbox:
        selected = [lead.lead_id for lead in sandbox.leads if not lead.email]
        first = await enrich_campaign(
            sandbox.campaign_id,
            block(sandbox, "old-key"),
            options=options(tmp_path, "first"),
            return_state=True,
        )
        error = await exception_of(first)
        after_first = sandbox.stats()
        second = await enrich_campaign(
            sandbox.campaign_id, block(sandbox, "new-key"), options=options(tmp_path, "second")
        )
        stats = sandbox.stats()
    assert first.is_failed() and isinstance(error, LemlistAuthError)
    # no request after the first 401 but those already in flight (not one per pending lead)
    assert after_first.responses_by_status.get(401, 0) <= 20
    assert after_first.total_requests <= 40 + 20
    rows = {row["lead_id"]: row for row in read_csv(tmp_path / "first.csv")}
    assert sorted(rows) == sorted(selected)
    waiting = [r for r in rows.values() if r["status"] == "not_collected"]
    assert waiting and all(r["enrichment_id"].startswith("enr_") for r in waiting)
    # the new key of the same team collects them: no second start, every lead final
    second_rows = {row["lead_id"]: row for row in read_csv(second.csv_path)}
    assert max(stats.enrichments_started_by_lead.values()) == 1
    for row in waiting:
        assert second_rows[row["lead_id"]]["enrichment_id"] == row["enrichment_id"]
        assert second_rows[row["lead_id"]]["status"] in ("done", "not_found", "failed")
    assert not any(r["status"] in ("not_collected", "not_started") for r in second_rows.values())
    print(
        f"\n| key revoked mid-run | `revoke_key_after_requests=40` | one error; "
        f"{after_first.responses_by_status.get(401, 0)} requests answered 401 (those in flight); "
        f"{len(waiting)} started enrichments reported `not_collected` with their ids; the new "
        f"key's re-run collected them | {len(selected)} / {len(rows)} | {measured_tail(stats)}"
    )


# ------------------------------------------------------------------ 6. leads by email


async def test_leads_by_email_are_resolved_once_each_and_unknown_ones_cost_nothing(tmp_path):
    people = [p for p in generate_people(200, seed=36) if "@" in p["email"]]
    assert len(people) >= 12
    with run_sandbox(SandboxConfig(leads=5, seed=36, **FAST)) as sandbox:
        sandbox.add_campaign_from_people(people[:12], name="first")
        sandbox.add_campaign_from_people(people[6:12], name="second")  # six in both
        emails = [p["email"] for p in people[:12]] + [people[0]["email"].upper(), "nobody@x.io"]
        summary = await enrich_leads(
            emails=emails,
            credentials_block=block(sandbox),
            options=options(tmp_path, "emails", find_email=False, verify_email=True),
        )
        stats = sandbox.stats()
    rows = read_csv(summary.csv_path)
    assert [r["input_email"] for r in rows] == emails  # the input column, carried through
    assert stats.requests_by_route["lead_by_email"] == 13  # one per distinct email
    assert rows[-1]["status"] == "not_in_lemlist" and "nobody@x.io" in rows[-1]["error"]
    assert all(r["status"] in ("done", "not_found") for r in rows[:12])
    in_two = rows[6:12]
    assert all("also" in r["note"] for r in in_two)  # the other campaign's lead is named
    assert rows[12]["enrichment_id"] == rows[0]["enrichment_id"]  # same person: enriched once
    assert sum(stats.enrich_posts_by_lead.values()) == 12


# ------------------------------------------------------------------ 7. the export route


@pytest.mark.parametrize(("route", "missing"), [("v1", 200), ("v2", 200), ("v2", 404)])
async def test_the_campaign_export_falls_back_to_the_v2_route(tmp_path, caplog, route, missing):
    caplog.set_level(logging.WARNING, logger="prefect_lemlist.client")
    config = SandboxConfig(
        leads=20, seed=37, export_route=route, export_v1_missing_status=missing, **FAST
    )
    with run_sandbox(config) as sandbox:
        summary = await enrich_campaign(
            sandbox.campaign_id, block(sandbox), options=options(tmp_path, "export")
        )
        unknown = await enrich_campaign(
            "cam_nowhere00000000", block(sandbox), options=options(tmp_path, "x"), return_state=True
        )
        stats = sandbox.stats()
    assert summary.selected > 0
    warned = [r for r in caplog.records if "newer route" in r.getMessage()]
    assert bool(warned) == (route == "v2")
    # an unknown campaign is still said to be unknown, not hidden behind the fallback
    assert "Campaign not found" in str(await exception_of(unknown))
    assert stats.responses_by_status.get(429, 0) == 0
