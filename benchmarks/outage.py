"""lemlist goes away mid-run, as a user meets it through the CLI, then comes back.

    .venv/bin/python benchmarks/outage.py people   # 1,000 people, --bulk-size 25, poll; lemlist
                                                   # refuses connections after the 3rd bulk request
    .venv/bin/python benchmarks/outage.py leads    # a 300-lead campaign; lemlist (the sandbox) is
                                                   # stopped after 60 POSTs and restarted on the
                                                   # same port and state file

Each runs the same `prefect-lemlist` command twice (its own local Prefect API, a fresh
`PREFECT_HOME` and ledger): under the outage, then after lemlist is back. It prints, per run:
wall time, exit status, the `error:` / `hint:` lines, the export's statuses; and the sandbox's own
counts: enrichments started twice (must be 0), POSTs per lead.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from prefect_lemlist.sandbox import Sandbox, SandboxConfig, generate_people, write_people_file
from prefect_lemlist.sandbox.network import FaultProxy

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli(args: list[str], base_url: str, api_key: str, work: Path, name: str) -> dict:
    env = {
        **os.environ,
        "LEMLIST_API_KEY": api_key,
        "LEMLIST_BASE_URL": base_url,
        "PREFECT_HOME": str(work / "prefect-home"),
        "LEMLIST_LEDGER_DIR": str(work / "ledger"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect_lemlist.cli", *args]
    command += ["--output-dir", str(work), "--output-name", name]
    began = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.monotonic() - began
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    export = work / f"{name}.csv"
    statuses = Counter()
    if export.exists():
        with export.open(newline="", encoding="utf-8") as handle:
            statuses = Counter(row["status"] for row in csv.DictReader(handle))
    return {
        "seconds": round(seconds, 1),
        "exit": done.returncode,
        "error_lines": lines,
        "traceback": "Traceback" in done.stderr,
        "statuses": dict(statuses),
    }


def people(work: Path) -> dict:
    config = SandboxConfig(leads=0, seed=3, enrichment_seconds=(1.0, 4.0))
    file = write_people_file(work / "people.csv", generate_people(1000, seed=11))
    args = ["enrich-contacts", str(file), "--bulk-size", "25", "--collection", "poll"]
    with Sandbox(config) as sandbox, FaultProxy(sandbox.base_url) as proxy:
        proxy.refuse(match=r"^POST /v2/enrichments/bulk", after=3)
        first = _cli(args, proxy.base_url, sandbox.api_key, work, "first")
        at_outage = sandbox.stats()
        proxy.accept()
        second = _cli(args, proxy.base_url, sandbox.api_key, work, "second")
        stats = sandbox.stats()
    return {
        "first": first,
        "second": second,
        "bulk_requests_first_run": at_outage.requests_by_route.get("bulk", 0),
        "people_started": sum(stats.enrichments_started_by_person.values()),
        "people_started_twice": sum(
            1 for n in stats.enrichments_started_by_person.values() if n > 1
        ),
    }


def leads(work: Path) -> dict:
    config = SandboxConfig(
        leads=300,
        seed=5,
        port=_free_port(),
        enrichment_seconds=(1.0, 4.0),
        app_enrichment_seconds=3600,
        state_file=str(work / "lemlist-state.json"),
    )
    sandbox = Sandbox(config).start()
    team, campaign = sandbox.team_id, sandbox.campaign_id

    def stop_after_posts() -> None:
        while sandbox.stats().requests_by_route.get("enrich_post", 0) < 60:
            time.sleep(0.005)
        sandbox.stop()

    stopper = threading.Thread(target=stop_after_posts, daemon=True)
    stopper.start()
    args = ["enrich-campaign", campaign]
    first = _cli(args, sandbox.base_url, sandbox.api_key, work, "first")
    stopper.join()
    before = sandbox.stats()
    restarted = Sandbox(config).start()
    try:
        second = _cli(args, restarted.base_url, restarted.api_key, work, "second")
        after = restarted.stats()
    finally:
        restarted.stop()
    started = Counter(before.enrichments_started_by_lead) + Counter(
        after.enrichments_started_by_lead
    )
    posts = Counter(before.enrich_posts_by_lead) + Counter(after.enrich_posts_by_lead)
    return {
        "first": first,
        "second": second,
        "same_team_after_restart": restarted.team_id == team,
        "leads_started": sum(started.values()),
        "leads_started_twice": sum(1 for n in started.values() if n > 1),
        "leads_posted_twice": sum(1 for n in posts.values() if n > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("door", choices=["people", "leads"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"lemlist-outage-{args.door}-"))
    result = people(work) if args.door == "people" else leads(work)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
