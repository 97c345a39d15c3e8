"""50 concurrent `enrich_lead` task calls in one flow against the sandbox: wall time and 429s.

.venv/bin/python benchmarks/concurrent_enrich.py [--leads 50] [--latency 0.05 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time


async def run(args: argparse.Namespace) -> dict:
    from prefect import flow

    from prefect_lemlist import LemlistCredentials, enrich_lead
    from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig(leads=args.leads * 2, seed=5, latency_seconds=tuple(args.latency))
    with run_sandbox(config) as sandbox:
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        lead_ids = [lead.lead_id for lead in sandbox.leads][: args.leads]

        @flow
        async def many():
            start = time.monotonic()
            await asyncio.gather(
                *(enrich_lead(lead_id, credentials, verify_email=True) for lead_id in lead_ids),
                return_exceptions=True,
            )
            return time.monotonic() - start

        seconds = await many()
        stats = sandbox.stats()
    return {
        "enrich_lead_calls": len(lead_ids),
        "latency_s": args.latency,
        "seconds": round(seconds, 2),
        "requests": stats.total_requests,
        "429s": stats.responses_by_status.get(429, 0),
        "max_in_2s": stats.max_requests_in_window(2.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.0, 0.0))
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lemlist-bench-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
