"""One contender of `benchmarks/contacts.py`, in its own process (its peak RSS and CPU are its own).

    python benchmarks/contacts_contenders.py {webhook,poll,leads} --base-url URL --input FILE \
        [--rate-limit 20] [--rate-window 2] [--work-dir DIR] [--leads-collection webhook]

- `webhook`, `poll`: `flows.enrich_contacts(path=FILE)` — the people file of
  `generate_people(N, seed)` — with `ContactOptions(find_email=True, collection=...)` and default
  bulk size (500 per request).
- `leads`: the per-lead path, `flows.enrich_leads(path=FILE)` on the same people as lemlist
  leads (`contacts_sandbox.py --leads-file`), `EnrichmentOptions(find_email=True)`, default batch
  size; collected by webhook unless `--leads-collection poll` (webhook is the per-lead path's
  cheapest mode).

All on Prefect's ephemeral API in a fresh `PREFECT_HOME` (so a fresh ledger), block
`rate_limit` / `rate_window_seconds` = the sandbox's. Prints one JSON line.

Result times are taken on the client side, because the sandbox's statistics time only leads'
results (`benchmark_snapshot()` keys them by lead id; bulk enrichments have none): the flow's
`ResultCollector` is given a wrapped `on_result` (its public constructor argument) that notes
`time.monotonic()` when each result becomes known to the flow, whether by webhook or by poll.
Nothing else is changed. The harness puts these readings on the sandbox's clock.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contenders import _stop_ephemeral_server, _usage  # noqa: E402

API_KEY = "bench-key"
CONTENDERS = ("webhook", "poll", "leads")

RESULT_TIMES = array.array("d")
"""`time.monotonic()` at which each collected result became known to the flow."""


def install_result_clock() -> None:
    """Note the moment each enrichment result reaches the flow (measurement only).

    The pipeline builds its `ResultCollector` as `prefect_lemlist.pipeline.run.ResultCollector`;
    this replaces that name with a subclass whose `on_result` callback first notes the time, then
    calls the pipeline's own callback. Cost: one `time.monotonic()` and 8 bytes per result.
    """
    from prefect_lemlist.pipeline import run as pipeline_run
    from prefect_lemlist.pipeline.collect import ResultCollector

    class TimedResultCollector(ResultCollector):
        def __init__(self, *args: Any, on_result: Any = None, **kwargs: Any) -> None:
            def timed(collected: Any) -> None:
                RESULT_TIMES.append(time.monotonic())
                if on_result is not None:
                    on_result(collected)

            super().__init__(*args, on_result=timed, **kwargs)

    pipeline_run.ResultCollector = TimedResultCollector


async def count_task_runs(flow_run_id: Any) -> dict[str, int]:
    """Task runs of the flow run, by task name (read back from the Prefect API).

    Task runs are recorded by the API from events, so this waits until two reads agree.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    previous: dict[str, int] | None = None
    async with get_client() as client:
        for _ in range(20):
            counts: dict[str, int] = {}
            offset = 0
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=flow_runs, limit=200, offset=offset
                )
                for task_run in page:
                    name = task_run.task_key.rsplit("-", 1)[0]  # the task function's name
                    counts[name] = counts.get(name, 0) + 1
                if len(page) < 200:
                    break
                offset += 200
            if counts == previous:
                return counts
            previous = counts
            await asyncio.sleep(1.0)
    return previous or {}


def _io_counters() -> dict[str, int]:
    """This process's write syscalls and bytes written (`/proc/self/io`; Linux only)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    values = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    return {key: int(values[key]) for key in ("syscw", "wchar") if key in values}


def _ledger_files(prefect_home: Path) -> int:
    """Records in the enrichment ledger (one per lead, or one per bulk chunk)."""
    return sum(1 for path in prefect_home.rglob("*.json") if "lemlist-ledger" in path.parts)


async def run_flow(args: argparse.Namespace) -> dict[str, Any]:
    """Run the contender's flow once; return what the process saw."""
    from prefect_lemlist import LemlistCredentials
    from prefect_lemlist.flows import enrich_contacts, enrich_leads
    from prefect_lemlist.pipeline import ContactOptions, EnrichmentOptions

    await LemlistCredentials(
        api_key=API_KEY,
        base_url=args.base_url,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
    ).save("bench", overwrite=True)
    common = {
        "find_email": True,
        "output_dir": str(Path(args.work_dir) / "out"),
        "collect_timeout_seconds": args.collect_timeout,
    }
    io_before = _io_counters()
    started = time.monotonic()
    if args.contender == "leads":
        options = EnrichmentOptions(collection=args.leads_collection, **common)
        state = await enrich_leads(
            path=args.input, credentials_block="bench", options=options, return_state=True
        )
    else:
        options = ContactOptions(collection=args.contender, **common)
        state = await enrich_contacts(
            path=args.input, credentials_block="bench", options=options, return_state=True
        )
    ended = time.monotonic()
    io_after = _io_counters()
    summary = await state.aresult()
    task_runs = await count_task_runs(state.state_details.flow_run_id)
    times = sorted(RESULT_TIMES)
    return {
        "flow_started_monotonic": started,
        "flow_ended_monotonic": ended,
        "flow_wall_seconds": round(ended - started, 2),
        "results_known": len(times),
        "result_times_monotonic": {
            "first": times[0] if times else None,
            "p50": times[len(times) // 2] if times else None,
            "p95": times[min(len(times) - 1, int(len(times) * 0.95))] if times else None,
            "last": times[-1] if times else None,
        },
        "summary": {
            "input_rows": summary.input_rows,
            "selected": summary.selected,
            "rejected_count": summary.rejected_count,
            "to_start": summary.to_start,
            "started": summary.started,
            "requests_made": summary.requests_made,
            "polls": summary.polls,
            "webhook_results": summary.webhook_results,
            "webhook_confirmations": summary.webhook_confirmations,
            "duration_seconds": round(summary.duration_seconds or 0.0, 2),
            "counts": summary.counts,
            "stopped": summary.stopped,
        },
        "task_runs": task_runs,
        "ledger_files": _ledger_files(Path(os.environ["PREFECT_HOME"])),
        "flow_io": {key: io_after[key] - io_before.get(key, 0) for key in io_after},
    }


def main() -> None:
    """Parse the command line, run the contender, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--input", required=True, help="people file (contacts) or lead file")
    parser.add_argument("--rate-limit", type=int, default=20)
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--work-dir", default=None, help="exports (default: a temp dir)")
    parser.add_argument("--leads-collection", choices=["webhook", "poll"], default="webhook")
    parser.add_argument("--collect-timeout", type=float, default=900.0)
    args = parser.parse_args()
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="lemlist-bench-")
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    if "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="lemlist-bench-")
    os.environ.setdefault("LEMLIST_LEDGER_DIR", os.path.join(os.environ["PREFECT_HOME"], "ledger"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    install_result_clock()
    started = time.monotonic()
    report = asyncio.run(run_flow(args))
    before_stop = _usage()
    _stop_ephemeral_server()
    report["ephemeral_api"] = {k: v for k, v in _usage().items() if k.startswith("children_")}
    report.update({k: v for k, v in before_stop.items() if not k.startswith("children_")})
    report["contender"] = args.contender
    report["process_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
