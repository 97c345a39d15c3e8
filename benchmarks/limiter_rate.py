"""The client limiter's steady request rate against lemlist's 20 / 2 s, measured.

    .venv/bin/python benchmarks/limiter_rate.py --requests 400

`LemlistClient`'s budget counts a request from its send until 2.05 s after its response, so
with response latency L the steady rate is about limit / (2.05 s + L): with 50-250 ms latency
(mean 150 ms) ~9.1 req/s rather than 10. This sends `--requests` cheap requests
(`GET /team/credits`) with many callers waiting at once, against a fresh sandbox (20 / 2 s,
latency 50-250 ms), and prints the rate seen by the sandbox, its 429s and its largest number of
requests in any 2 s window, next to the formula.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from _bench import API_KEY, BENCH_DIR, SandboxProcess, SandboxSettings


async def hammer(url: str, count: int, concurrency: int) -> tuple[float, float]:
    from prefect_lemlist.api.client import LemlistClient

    async with LemlistClient(API_KEY, base_url=url) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)
        latencies: list[float] = []

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                begun = time.monotonic()
                await client.get_credits()
                latencies.append(time.monotonic() - begun)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started, sum(latencies) / len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.25))
    args = parser.parse_args()
    settings = SandboxSettings(campaign_leads=10, latency=tuple(args.latency))
    out = BENCH_DIR / "results" / "limiter-rate"
    out.parent.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(settings, out.with_suffix(".sandbox.log")) as sandbox:
        wall, _ = asyncio.run(hammer(sandbox.url, args.requests, args.concurrency))
        stats = sandbox.stats()
    span = stats["last_request"]
    mean_latency = sum(args.latency) / 2
    report = {
        "requests": stats["total_requests"],
        "sandbox_span_s": span,
        "rate_req_per_s": round((stats["total_requests"] - 1) / span, 2),
        "count_429": stats["count_429"],
        "max_requests_in_any_2s_window": stats["max_requests_in_window"],
        "formula_20_over_2.05_plus_mean_latency": round(20 / (2.05 + mean_latency), 2),
        "client_wall_s": round(wall, 1),
    }
    print(json.dumps(report))
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
