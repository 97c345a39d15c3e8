"""Scale benchmark: one `enrich-campaign` run over a big sandbox campaign; peak memory and time.

    .venv/bin/python benchmarks/scale.py --leads 10000 --rate-limit 400

The sandbox runs in its own process (so its memory is not counted); the flow runs in this one,
on Prefect's ephemeral API, with `find_email` + `linkedin_enrichment` so that every lead is
selected. Prints one JSON line: leads, wall time, time per lead, requests, peak RSS (MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_sandbox(args: argparse.Namespace) -> tuple[subprocess.Popen, str, str, str]:
    command = [
        sys.executable,
        "-m",
        "prefect_lemlist.sandbox",
        "--port",
        "0",
        "--leads",
        str(args.leads),
        "--seed",
        "1",
        "--rate-limit",
        str(args.rate_limit),
        "--api-key",
        "bench-key",
        "--enrichment-seconds",
        str(args.enrichment_min),
        str(args.enrichment_max),
        "--credits",
        "100000000",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    banner = ""
    while "Campaign id" not in banner:
        line = process.stdout.readline()
        if not line:
            raise SystemExit("the sandbox did not start")
        banner += line
    url = re.search(r"running at (\S+)", banner).group(1)
    campaign = re.search(r"Campaign id: (\S+)", banner).group(1)
    return process, url, "bench-key", campaign


async def run(args: argparse.Namespace) -> dict:
    from prefect_lemlist import LemlistCredentials
    from prefect_lemlist.flows import enrich_campaign
    from prefect_lemlist.pipeline import EnrichmentOptions

    sandbox, url, key, campaign = start_sandbox(args)
    try:
        await LemlistCredentials(api_key=key, base_url=url, rate_limit=args.rate_limit).save(
            "bench", overwrite=True
        )
        options = EnrichmentOptions(
            find_email=True,
            linkedin_enrichment=True,
            batch_size=args.batch_size,
            first_poll_seconds=args.enrichment_max,
            output_dir=tempfile.mkdtemp(),
            collect_timeout_seconds=900,
        )
        start = time.monotonic()
        summary = await enrich_campaign(campaign, "bench", options=options)
        wall = time.monotonic() - start
    finally:
        sandbox.terminate()
        sandbox.wait(30)
    return {
        "leads": summary.selected,
        "rate_limit_per_2s": args.rate_limit,
        "wall_seconds": round(wall, 1),
        "ms_per_lead": round(1000 * wall / max(summary.selected, 1), 2),
        "requests": summary.requests_made,
        "requests_per_lead": round(summary.requests_per_lead, 3),
        "counts": summary.counts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_seconds": round(time.process_time(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rate-limit", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--enrichment-min", type=float, default=5.0)
    parser.add_argument("--enrichment-max", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lemlist-bench-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
