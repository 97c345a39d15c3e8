"""lemlist stops mid-run and comes back: the sandbox itself is stopped while the run is starting
enrichments, then restarted on the same port and the same state file (as a user restarts it).

The first run must end within seconds, Failed, with every row exported; the restarted sandbox is
the same lemlist team (its id is kept in the state file), so the re-run of the same command
collects what the first run started (no new charge), starts what it never sent, each once, and
every enrichment the team was charged for is in its export.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

from _files import read_csv

from prefect_lemlist import EnrichmentOptions, LemlistCredentials, LemlistUnreachableError
from prefect_lemlist.flows import enrich_campaign
from prefect_lemlist.sandbox import Sandbox, SandboxConfig

LEADS = 120
STOP_AFTER_POSTS = 25


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_lemlist_stopped_mid_start_then_restarted_on_its_state_file(tmp_path):
    config = SandboxConfig(
        leads=LEADS,
        seed=23,
        port=free_port(),
        enrichment_seconds=(0.5, 1.5),
        app_enrichment_seconds=3600,
        state_file=str(tmp_path / "lemlist-state.json"),
    )
    options = EnrichmentOptions(
        first_poll_seconds=0.5,
        collect_timeout_seconds=180,
        unreachable_timeout_seconds=3,
        output_dir=str(tmp_path),
    )
    sandbox = Sandbox(config).start()
    team, campaign = sandbox.team_id, sandbox.campaign_id
    credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)

    async def stop_mid_start() -> None:
        while sandbox.stats().requests_by_route.get("enrich_post", 0) < STOP_AFTER_POSTS:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(sandbox.stop)  # lemlist goes away (its state is saved)

    stopper = asyncio.create_task(stop_mid_start())
    began = time.monotonic()
    first = await enrich_campaign(campaign, credentials, options=options, return_state=True)
    first_seconds = time.monotonic() - began
    await stopper
    before = sandbox.stats()
    assert first.is_failed()
    try:
        await first.result()
    except LemlistUnreachableError as exc:
        error = exc
    assert "re-run the same command when lemlist is reachable" in (error.hint or "")
    assert first_seconds < 150  # it ended after the outage, not after the collect timeout
    first_rows = read_csv(error.summary.csv_path)
    selected = len(first_rows)
    assert len({row["lead_id"] for row in first_rows}) == selected  # every row once
    unsent = [row for row in first_rows if row["status"] == "not_started"]
    assert unsent and all("not sent" in row["error"] for row in unsent)

    restarted = Sandbox(config).start()  # the same port, the same state file
    try:
        assert restarted.team_id == team  # the same lemlist team: the ledger finds its records
        second = await enrich_campaign(campaign, credentials, options=options)
        after = restarted.stats()
    finally:
        restarted.stop()
    rows = read_csv(second.csv_path)
    assert len(rows) == selected and {row["status"] for row in rows}.isdisjoint(
        {"not_started", "not_collected", "timed_out"}
    )
    started = Counter(before.enrichments_started_by_lead) + Counter(
        after.enrichments_started_by_lead
    )
    assert max(started.values()) == 1  # 0 leads started twice across both runs
    posts = Counter(before.enrich_posts_by_lead) + Counter(after.enrich_posts_by_lead)
    resent = {row["lead_id"] for row in rows if "interrupted" in row["note"]}
    assert all(count == 1 for lead, count in posts.items() if lead not in resent)
    assert all(count <= 2 for count in posts.values())  # a lost answer: re-sent once, no force
    exported = {row["enrichment_id"] for row in rows if row["enrichment_id"]}
    charged = {  # every enrichment started through the API, from the sandbox's saved world
        enrichment.enrichment_id
        for enrichment in restarted.state._enrichments.values()
        if enrichment.route == "enrich_post"
    }
    assert charged <= exported  # every enrichment the team paid for is in the export
    assert second.started == sum(after.enrichments_started_by_lead.values())
