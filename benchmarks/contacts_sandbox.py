"""A sandbox process for `benchmarks/contacts.py`, optionally holding the people as leads.

    python benchmarks/contacts_sandbox.py --port 0 --seed 1 --rate-limit 20 --rate-window 2 \
        --latency 0.05 0.25 --enrichment-seconds 5 30 [--people 10000 --leads-file LEADS.csv]

The same sandbox as `python -m prefect_lemlist.sandbox --admin` (same config, same lemlist routes,
same `GET /_sandbox/stats`), built in this process so that, with `--people N`, the rows of
`generate_people(N, seed)` can be added as a lemlist campaign (`Sandbox.add_campaign_from_people`)
before it serves: the per-lead baseline enriches those leads, and `--leads-file` gets a CSV of
their lead ids with the people's columns carried along (the same columns the contacts flow
exports). The CLI has no flag for this, hence this launcher.

It prints the CLI's first banner lines (`lemlist sandbox running at URL`, `Campaign id: ID`, the
people campaign's id when there is one) and serves until SIGTERM / Ctrl-C. One more admin route,
`GET /_bench/contacts`, gives what `/_sandbox/stats` does not hold for contacts, from the sandbox's
public API only: the absolute monotonic time of the first request (so that a contender's own
`time.monotonic()` readings can be put on the sandbox's clock: on Linux `CLOCK_MONOTONIC` is the
same in every process), the durations of the enrichments started through the API (the slowest
one bounds webhook mode's wall time) and the webhook deliveries.
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefect_lemlist.sandbox import Sandbox, SandboxConfig, generate_people  # noqa: E402
from prefect_lemlist.sandbox.app import add_admin_routes  # noqa: E402
from prefect_lemlist.sandbox.people import PEOPLE_COLUMNS  # noqa: E402
from prefect_lemlist.sandbox.state import SandboxState  # noqa: E402

BENCH_ROUTE = "/_bench/contacts"


def bench_snapshot(state: SandboxState) -> dict[str, Any]:
    """What `GET /_bench/contacts` serves (times in seconds from the first request).

    Returns:
        `t0_monotonic` (absolute `time.monotonic()` of the first request, None before it),
        the API-started enrichments (count by route, slowest / fastest duration, last due time)
        and the webhook deliveries (count, ok, retried, last ok delivery).
    """
    stats = state.benchmark_snapshot()
    mono, wall = time.monotonic(), time.time()
    t0 = mono - stats["now"] if stats["first_request"] is not None else None
    wall_t0 = wall - (mono - t0) if t0 is not None else wall
    durations: list[float] = []
    by_route: dict[str, int] = {}
    last_due = None
    for record in state.snapshot()["enrichments"]:
        if record["from_app"]:
            continue  # the seeded campaign's "started in the app" enrichments
        durations.append(record["due_at"] - record["started_at"])
        by_route[record["route"]] = by_route.get(record["route"], 0) + 1
        due = record["due_at"] - wall_t0
        last_due = due if last_due is None else max(last_due, due)
    deliveries = state.stats().webhook_deliveries
    first_ok: dict[str, float] = {}
    for delivery in deliveries:
        if delivery.ok:
            at = delivery.delivered_at - wall_t0
            first_ok[delivery.enrichment_id] = min(first_ok.get(delivery.enrichment_id, at), at)
    return {
        "t0_monotonic": t0,
        "enrichments": len(durations),
        "enrichments_by_route": by_route,
        "slowest_enrichment_s": round(max(durations), 3) if durations else None,
        "fastest_enrichment_s": round(min(durations), 3) if durations else None,
        "last_enrichment_due_s": round(last_due, 3) if last_due is not None else None,
        "webhook_deliveries": len(deliveries),
        "webhook_deliveries_ok": sum(1 for d in deliveries if d.ok),
        "webhook_deliveries_retried": sum(1 for d in deliveries if d.attempts > 1),
        "webhook_enrichments_delivered": len(first_ok),
        "last_webhook_first_ok_s": round(max(first_ok.values()), 3) if first_ok else None,
    }


def add_bench_route(sandbox: Sandbox) -> None:
    """Serve `GET /_bench/contacts` (see `bench_snapshot`); before the sandbox starts."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state = sandbox.state

    async def contacts(_: Request) -> Response:
        return JSONResponse(bench_snapshot(state))

    sandbox.app.router.routes.insert(0, Route(BENCH_ROUTE, contacts, methods=["GET"]))


def write_leads_file(path: Path, lead_ids: list[str], rows: list[dict[str, str]]) -> None:
    """A lead file for `enrich_leads(path=...)`: `lead_id`, then the people's columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_id", *PEOPLE_COLUMNS])
        for lead_id, row in zip(lead_ids, rows, strict=True):
            writer.writerow([lead_id, *(row.get(column, "") for column in PEOPLE_COLUMNS)])


def main() -> int:
    """Build the sandbox, add the people campaign if asked, serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--rate-limit", type=int, default=20)
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.25))
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(5.0, 30.0))
    parser.add_argument("--credits", type=int, default=100_000_000)
    parser.add_argument("--campaign-leads", type=int, default=0, help="seeded campaign size")
    parser.add_argument("--people", type=int, default=0, help="add generate_people(N) as leads")
    parser.add_argument("--leads-file", type=Path, default=None, help="CSV of their lead ids")
    args = parser.parse_args()

    config = SandboxConfig(
        port=args.port,
        leads=args.campaign_leads,
        seed=args.seed,
        api_keys=[args.api_key],
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
        latency_seconds=tuple(args.latency),
        enrichment_seconds=tuple(args.enrichment_seconds),
        credits=args.credits,
    )
    sandbox = Sandbox(config)
    campaign = sandbox.campaign_id
    if args.people:
        rows = generate_people(args.people, seed=args.seed)
        campaign, lead_ids = sandbox.add_campaign_from_people(rows, name="benchmark people")
        if args.leads_file is not None:
            write_leads_file(args.leads_file, lead_ids, rows)
    add_admin_routes(sandbox.app)
    add_bench_route(sandbox)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox.start()
    try:
        print(f"lemlist sandbox running at {sandbox.base_url}", flush=True)
        print(f"Campaign id: {campaign}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
