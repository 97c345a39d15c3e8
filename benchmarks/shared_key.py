"""Several flow processes, one API key: the shared budget (global concurrency limit) measured.

    .venv/bin/python benchmarks/shared_key.py                     # 3 processes x 80 leads
    .venv/bin/python benchmarks/shared_key.py --leads-per-process 150 --latency 0.05 0.25

Starts a real `prefect server start` (its own home, SQLite), creates the shared limit with
`ensure_global_rate_limit`, saves a credentials block with `global_rate_limit` set, starts an
in-process sandbox at lemlist's limit (20 / 2 s), then starts `--processes` `enrich-leads` flow
processes at once, each with its own leads. Reported, from the sandbox's side:

- the largest number of requests in any 2 s window (must be <= 20) and the 429s (must be 0);
- budget use: requests received from the first request to the last enrichment POST, divided by
  (that time x 10 req/s). After the last POST only the polls of the last enrichments remain, and
  the workload, not the limiter, sets their pace;
- POSTs per lead (must be exactly 1) and the requests per second while POSTs remained;
- from each process's debug log, how often it took, gave back and shed slots.

With `--json FILE` the report is also written as JSON (the test suite runs this benchmark's
`run_shared_key` and asserts on that report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMIT_NAME = "lemlist-shared-bench"
BLOCK_NAME = "lemlist-shared-bench"

# Run one flow process with the global limit's debug log (timestamps on the monotonic clock the
# sandbox also uses) written to the file named by the first argument.
_FLOW_PROCESS = """
import logging, sys
from prefect_lemlist.cli import main
handler = logging.FileHandler(sys.argv[1])
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("prefect_lemlist.global_limit")
log.addHandler(handler)
log.setLevel(logging.DEBUG)
log.propagate = False
sys.exit(main(["enrich-leads", *sys.argv[2:]]))
"""
_EVENT = re.compile(r"^t=(?P<t>[\d.]+) \S+: (?P<what>took|gave back|shedding|starved)")


def _client_env(api_url: str, home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_TEST_MODE", None)
    return env


def _events(log_path: Path) -> dict[str, int]:
    counts = {"took": 0, "gave back": 0, "shedding": 0, "starved": 0}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            match = _EVENT.match(line)
            if match:
                counts[match["what"]] += 1
    return counts


def run_shared_key(
    workdir: Path,
    *,
    processes: int = 3,
    leads_per_process: int = 80,
    latency: tuple[float, float] = (0.0, 0.0),
    enrichment_seconds: tuple[float, float] = (0.3, 1.0),
    seed: int = 31,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run `processes` enrich-leads flow processes sharing one key through the global limit.

    Args:
        workdir: where the Prefect homes, logs and outputs go.
        processes: flow processes started together.
        leads_per_process: distinct leads each process enriches (`linkedin_enrichment`).
        latency: the sandbox's (min, max) answer latency.
        enrichment_seconds: the sandbox's (min, max) enrichment duration.
        seed: the sandbox's seed.
        timeout: seconds each flow process may take.

    Returns:
        The report (see the module docstring); `failures` lists processes that did not exit 0,
        with the end of their output.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_lemlist.local_api import PrefectServer
    from prefect_lemlist.ratelimit.prefect_leases import ensure_global_rate_limit
    from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig(
        leads=max(200, processes * leads_per_process * 2),
        seed=seed,
        enrichment_seconds=enrichment_seconds,
        latency_seconds=latency,
        credits=10_000_000,
    )
    server = PrefectServer(workdir / "server-home")
    asyncio.run(server.start())
    try:
        with temporary_settings({PREFECT_API_URL: server.url}):
            asyncio.run(ensure_global_rate_limit(LIMIT_NAME))
        env = _client_env(server.url, workdir / "client-home")
        with run_sandbox(config) as sandbox:
            saved = subprocess.run(
                [
                    sys.executable,
                    "blocks/save_credentials.py",
                    BLOCK_NAME,
                    "--overwrite",
                    "--no-check",  # a key check is a request: it would start the measured span
                    "--base-url",
                    sandbox.base_url,
                    "--global-rate-limit",
                    LIMIT_NAME,
                ],
                cwd=ROOT,
                env={**env, "LEMLIST_API_KEY": sandbox.api_key},
                capture_output=True,
                text=True,
                timeout=120,
            )
            if saved.returncode != 0:
                raise RuntimeError("saving the block failed:\n" + saved.stdout + saved.stderr)
            # Leads the sandbox can enrich with linkedin_enrichment, distinct per process.
            lead_ids = [lead.lead_id for lead in sandbox.leads][: processes * leads_per_process]
            started, logs, debug_logs = [], [], []
            for index in range(processes):
                mine = lead_ids[index * leads_per_process : (index + 1) * leads_per_process]
                logs.append(workdir / f"run-{index}.log")
                debug_logs.append(workdir / f"run-{index}.global-limit.log")
                with logs[-1].open("w") as log:
                    started.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-c",
                                _FLOW_PROCESS,
                                str(debug_logs[-1]),
                                *mine,
                                "--block",
                                BLOCK_NAME,
                                "--linkedin-enrichment",
                                "--no-find-email",
                                "--output-dir",
                                str(workdir / f"out-{index}"),
                            ],
                            cwd=ROOT,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            failures = []
            for index, process in enumerate(started):
                try:
                    code = process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    code = -9
                if code != 0:
                    failures.append({"process": index, "tail": logs[index].read_text()[-3000:]})
            stats = sandbox.stats()
            posts = [e.started_at for e in sandbox.state._enrichments.values() if not e.from_app]
            outputs = [path.read_text() for path in [*logs, *debug_logs] if path.exists()]
            credentials_leaked = any(sandbox.api_key in text for text in outputs)
    finally:
        asyncio.run(server.stop())

    arrivals = sorted(stats.arrival_times.get(sandbox.api_key, []))
    last_post = max(posts) if posts else (arrivals[-1] if arrivals else 0.0)
    working = [t for t in arrivals if t <= last_post]
    span = working[-1] - working[0] if len(working) > 1 else 0.0
    per_second = [0] * (int(span) + 1)
    for t in working:
        per_second[int(t - working[0])] += 1
    posts_by_lead = stats.enrich_posts_processed_by_lead
    return {
        "processes": processes,
        "leads_per_process": leads_per_process,
        "latency": list(latency),
        "enrichment_seconds": list(enrichment_seconds),
        "requests": len(arrivals),
        "requests_while_posting": len(working),
        "posting_seconds": round(span, 2),
        "budget_use": round(len(working) / (span * 10), 3) if span else 0.0,
        "max_in_2s": stats.max_requests_in_window(2.0),
        "429s": stats.responses_by_status.get(429, 0),
        "leads_posted": len(posts_by_lead),
        "max_posts_per_lead": max(posts_by_lead.values(), default=0),
        "per_second_while_posting": per_second,
        "slot_events": [_events(path) for path in debug_logs],
        "credentials_leaked": credentials_leaked,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--leads-per-process", type=int, default=80)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.0, 0.0))
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(0.3, 1.0))
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    reports = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="lemlist-mp-") as workdir:
            report = run_shared_key(
                Path(workdir),
                processes=args.processes,
                leads_per_process=args.leads_per_process,
                latency=tuple(args.latency),
                enrichment_seconds=tuple(args.enrichment_seconds),
                seed=args.seed,
            )
        reports.append(report)
        print(
            f"budget use {report['budget_use']:.3f} | {report['requests_while_posting']} requests "
            f"in {report['posting_seconds']} s while POSTs remained ({report['requests']} in all)"
            f" | max in 2 s {report['max_in_2s']} | 429s {report['429s']} | max POSTs per lead "
            f"{report['max_posts_per_lead']} | failures {len(report['failures'])}"
        )
        print("  per second:", report["per_second_while_posting"])
        print("  slot events per process:", report["slot_events"])
        for failure in report["failures"]:
            print(f"  process {failure['process']} failed:\n{failure['tail']}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    if any(r["failures"] or r["429s"] or r["max_in_2s"] > 20 for r in reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
