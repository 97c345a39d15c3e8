"""One benchmark contender, run in its own process so that its peak RSS and CPU are its own.

    python benchmarks/contenders.py {ours-poll,ours-webhook,naive-sequential,naive-concurrent} \
        --base-url URL --campaign CAMPAIGN_ID [--rate-limit 20] [--sample N] [--cap-seconds S]

Started by `benchmarks/throughput.py` / `benchmarks/scale_compare.py` (which start the sandbox
and read its statistics); prints one JSON line with what the process saw and its resource use.
Every contender enriches the same selection: the campaign's leads without an email, find_email.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "bench-key"
POLL_EVERY_SECONDS = 5.0


def _usage() -> dict[str, Any]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "peak_rss_mb": round(me.ru_maxrss / 1024, 1),
        "cpu_seconds": round(me.ru_utime + me.ru_stime, 2),
        "children_peak_rss_mb": round(children.ru_maxrss / 1024, 1),
        "children_cpu_seconds": round(children.ru_utime + children.ru_stime, 2),
    }


# --------------------------------------------------------------------------- ours


async def ours(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from prefect_lemlist import LemlistCredentials
    from prefect_lemlist.flows import enrich_campaign
    from prefect_lemlist.pipeline import EnrichmentOptions

    await LemlistCredentials(
        api_key=API_KEY,
        base_url=args.base_url,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
    ).save("bench", overwrite=True)
    options = EnrichmentOptions(
        find_email=True,
        collection=collection,
        output_dir=str(Path(args.work_dir) / "out"),
        collect_timeout_seconds=900,
    )
    started = time.monotonic()
    summary = await enrich_campaign(args.campaign, "bench", options=options)
    wall = time.monotonic() - started
    return {
        "selected": summary.selected,
        "flow_wall_seconds": round(wall, 1),
        "flow_requests": summary.requests_made,
        "flow_polls": summary.polls,
        "flow_webhook_results": summary.webhook_results,
        "counts": summary.counts,
    }


def _stop_ephemeral_server() -> None:
    """Stop Prefect's ephemeral API subprocess now, so its usage shows in RUSAGE_CHILDREN."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    for server in list(getattr(SubprocessASGIServer, "_instances", {}).values()):
        with contextlib.suppress(Exception):  # a benchmark report must not fail on cleanup
            server.stop()


# --------------------------------------------------------------------------- naive baselines
# Written the way a user writes them by hand: httpx, Basic auth, sleep Retry-After on a 429,
# poll every 5 s. No shared rate limiter.


def _retry_after(answer: Any) -> float:
    try:
        return max(float(answer.headers.get("Retry-After", "2")), 0.0)
    except ValueError:
        return 2.0


def _selection(rows: list[dict[str, Any]]) -> list[str]:
    return [row["_id"] for row in rows if not row.get("email")]


def naive_sequential(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    counters = {"requests": 0, "429": 0, "done": 0}
    deadline = time.monotonic() + args.cap_seconds

    with httpx.Client(base_url=args.base_url, auth=("", API_KEY), timeout=30) as client:

        def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
            while True:
                counters["requests"] += 1
                answer = client.request(method, url, **kwargs)
                if answer.status_code != 429:
                    return answer
                counters["429"] += 1
                time.sleep(_retry_after(answer))

        rows = send(
            "GET",
            f"/campaigns/{args.campaign}/export/leads",
            params={"state": "all", "format": "json"},
        ).json()
        leads = _selection(rows)
        selected = len(leads)
        if args.sample:
            leads = leads[: args.sample]
        attempted = 0
        for lead_id in leads:
            if time.monotonic() >= deadline:
                break
            attempted += 1
            answer = send("POST", f"/leads/{lead_id}/enrich", params={"findEmail": "true"})
            if answer.status_code != 200:  # 404 / 409: nothing to wait for
                counters["done"] += 1
                continue
            enrichment_id = answer.json()["id"]
            while time.monotonic() < deadline:
                time.sleep(POLL_EVERY_SECONDS)
                if send("GET", f"/enrich/{enrichment_id}").status_code == 200:
                    counters["done"] += 1
                    break
    return {
        "selected": selected,
        "attempted": attempted,
        "sample": args.sample,
        "cap_seconds": args.cap_seconds,
        "capped": attempted < len(leads) or counters["done"] < attempted,
        "client_requests": counters["requests"],
        "client_429": counters["429"],
        "client_done": counters["done"],
    }


async def naive_concurrent(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    counters = {"requests": 0, "429": 0, "done": 0, "transport_errors": 0}
    deadline = time.monotonic() + args.cap_seconds

    async with httpx.AsyncClient(base_url=args.base_url, auth=("", API_KEY), timeout=60) as client:

        async def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
            while True:
                counters["requests"] += 1
                try:
                    answer = await client.request(method, url, **kwargs)
                except httpx.TransportError:
                    counters["transport_errors"] += 1
                    await asyncio.sleep(1.0)
                    continue
                if answer.status_code != 429:
                    return answer
                counters["429"] += 1
                await asyncio.sleep(_retry_after(answer))

        rows = (
            await send(
                "GET",
                f"/campaigns/{args.campaign}/export/leads",
                params={"state": "all", "format": "json"},
            )
        ).json()
        leads = _selection(rows)
        if args.sample:
            leads = leads[: args.sample]

        async def one(lead_id: str) -> None:
            answer = await send("POST", f"/leads/{lead_id}/enrich", params={"findEmail": "true"})
            if answer.status_code != 200:
                counters["done"] += 1
                return
            enrichment_id = answer.json()["id"]
            while True:
                await asyncio.sleep(POLL_EVERY_SECONDS)
                if (await send("GET", f"/enrich/{enrichment_id}")).status_code == 200:
                    counters["done"] += 1
                    return

        tasks = [asyncio.ensure_future(one(lead_id)) for lead_id in leads]
        _done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return {
        "selected": len(_selection(rows)),
        "attempted": len(leads),
        "cap_seconds": args.cap_seconds,
        "capped": bool(pending),
        "client_requests": counters["requests"],
        "client_429": counters["429"],
        "client_done": counters["done"],
        "client_transport_errors": counters["transport_errors"],
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "contender", choices=["ours-poll", "ours-webhook", "naive-sequential", "naive-concurrent"]
    )
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--rate-limit", type=int, default=20)
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--work-dir", default=tempfile.mkdtemp(prefix="lemlist-bench-"))
    parser.add_argument("--sample", type=int, default=0, help="only the first N selected leads")
    parser.add_argument("--cap-seconds", type=float, default=3600.0, help="stop after this long")
    args = parser.parse_args()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.contender.startswith("ours-"):
        os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lemlist-bench-"))
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        report = asyncio.run(ours(args, args.contender.removeprefix("ours-")))
        before_stop = _usage()
        _stop_ephemeral_server()
        report["ephemeral_api"] = {k: v for k, v in _usage().items() if k.startswith("children_")}
        report.update({k: v for k, v in before_stop.items() if not k.startswith("children_")})
    elif args.contender == "naive-sequential":
        report = naive_sequential(args)
        report.update(_usage())
    else:
        report = asyncio.run(naive_concurrent(args))
        report.update(_usage())
    report["contender"] = args.contender
    report["process_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
