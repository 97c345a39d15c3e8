"""Contacts benchmark: `enrich_contacts` (webhook, poll) vs the per-lead path on the same people.

    .venv/bin/python benchmarks/contacts.py --people 10000 --contenders webhook poll leads
    .venv/bin/python benchmarks/contacts.py --people 10000 100000 --contenders webhook \
        --enrichment-seconds 1 5

The same `generate_people(N, seed)` rows for every contender; each contender against its own,
fresh sandbox process (`contacts_sandbox.py`: lemlist's real limit 20 requests / 2 s by default,
latency 50-250 ms, enrichments 5-30 s, seed 1) and in its own process (`contacts_contenders.py`):

- `webhook`, `poll`: `enrich_contacts(path=<people file>)`, find_email, bulk starts (500 people
  per request), results by webhook or by polling;
- `leads` (the baseline): the same rows made lemlist leads of a new campaign in the sandbox
  (`Sandbox.add_campaign_from_people`), enriched with `enrich_leads(path=<lead ids>)`,
  find_email, one `POST /leads/{id}/enrich` per lead, webhook collection.

Measured: requests by route and 429s from the sandbox (`GET /_sandbox/stats`); the slowest
enrichment the sandbox ran and its first-request time (`GET /_bench/contacts`); when each result
reached the flow, on the client side (the sandbox times only leads' results), put on the
sandbox's clock; the contender process's peak RSS and CPU (`resource.getrusage`), its Prefect
task runs, ledger records and write syscalls. Prints a markdown table and writes it, with every
raw figure, to `--out` (default `benchmarks/results/contacts-<people>-<contenders>-e<min>-<max>`
`.{md,json}`; logs and sandbox statistics under `<out>-work/`, the generated people and lead
files and the exports under the git-ignored `<out>-work/out/`). A contender that fails or times
out is listed under the table and the others still run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _bench import (
    BENCH_DIR,
    SandboxProcess,
    SandboxSettings,
    machine,
    machine_busy_seconds,
    process_cpu_seconds,
)

CONTENDERS = ["webhook", "poll", "leads"]
LABELS = {
    "webhook": "`enrich_contacts`, webhook",
    "poll": "`enrich_contacts`, poll",
    "leads": "per-lead baseline: `enrich_leads` on the same people as leads",
}
BULK_SIZE = 500  # people per bulk request (lemlist's maximum, the flow's default)
RSS_LIMIT_MB = 300.0  # the bound, at 10,000 contacts
WALL_BOUND_PEOPLE = 10_000  # the webhook wall-time bound is the at 10,000 contacts


@dataclass
class ContactsSandboxSettings(SandboxSettings):
    """The sandbox knobs, plus the people to add as a campaign (per-lead baseline only)."""

    people: int = 0
    leads_file: str | None = None

    def command(self) -> list[str]:
        """`contacts_sandbox.py` with these settings."""
        command = [
            sys.executable,
            str(BENCH_DIR / "contacts_sandbox.py"),
            "--port",
            "0",
            "--seed",
            str(self.seed),
            "--rate-limit",
            str(self.rate_limit),
            "--rate-window",
            str(self.rate_window),
            "--latency",
            str(self.latency[0]),
            str(self.latency[1]),
            "--enrichment-seconds",
            str(self.enrichment_seconds[0]),
            str(self.enrichment_seconds[1]),
            "--campaign-leads",
            str(self.campaign_leads),
        ]
        if self.people:
            command += ["--people", str(self.people)]
        if self.leads_file:
            command += ["--leads-file", self.leads_file]
        return command


def people_file(work: Path, people: int, seed: int) -> Path:
    """Write `generate_people(people, seed)` as CSV once (the contacts contenders' input)."""
    from prefect_lemlist.sandbox import generate_people, write_people_file

    path = work / f"people-{people}-seed{seed}.csv"
    if not path.exists():
        write_people_file(path, generate_people(people, seed=seed))
    return path


def bench_stats(sandbox: SandboxProcess) -> dict[str, Any]:
    """The launcher's `GET /_bench/contacts` (first-request time, enrichments, webhooks)."""
    with httpx.Client(trust_env=False, timeout=600) as client:
        answer = client.get(f"{sandbox.url}/_bench/contacts")
        answer.raise_for_status()
        return answer.json()


class ContenderFailed(RuntimeError):
    """A contender process failed or timed out (its logs and sandbox statistics are kept)."""


def run_one(
    name: str,
    people: int,
    settings: ContactsSandboxSettings,
    work: Path,
    input_path: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start a fresh sandbox, run one contender in its own process against it, collect stats.

    Raises:
        ContenderFailed: the contender exited with an error, printed no report, or ran longer
            than `--timeout` (the sandbox's statistics are written all the same, if it answers).
    """
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{name}-{people}"
    with SandboxProcess(settings, work / f"{tag}-sandbox.log") as sandbox:
        command = [
            sys.executable,
            str(BENCH_DIR / "contacts_contenders.py"),
            name,
            "--base-url",
            sandbox.url,
            "--input",
            str(input_path),
            "--rate-limit",
            str(settings.rate_limit),
            "--rate-window",
            str(settings.rate_window),
            "--work-dir",
            str(work / tag),
            "--leads-collection",
            args.leads_collection,
            "--collect-timeout",
            str(args.collect_timeout),
        ]
        env = dict(os.environ)
        env["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"lemlist-bench-{tag}-")
        env["LEMLIST_LEDGER_DIR"] = os.path.join(env["PREFECT_HOME"], "ledger")  # a fresh one
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
        env["PREFECT_LOGGING_LEVEL"] = "WARNING"
        env.pop("PREFECT_API_URL", None)
        started = time.monotonic()
        busy_before = machine_busy_seconds()
        sandbox_cpu_before = process_cpu_seconds(sandbox.process.pid)
        failure = ""
        with (work / f"{tag}.log").open("w") as log:
            try:
                done = subprocess.run(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=BENCH_DIR.parent,
                    env=env,
                    timeout=args.timeout,
                )
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if done.returncode != 0 or not lines:
                    failure = f"exit code {done.returncode}"
            except subprocess.TimeoutExpired:
                failure = f"still running after --timeout {args.timeout:g} s (killed)"
        wall = time.monotonic() - started
        busy = machine_busy_seconds() - busy_before
        sandbox_cpu = process_cpu_seconds(sandbox.process.pid) - sandbox_cpu_before
        time.sleep(1.0)  # a last webhook delivery's record
        try:
            stats, extra = sandbox.stats(), bench_stats(sandbox)
        except httpx.HTTPError as exc:
            stats, extra = {}, {"error": f"the sandbox did not answer: {exc!r}"}
    shutil.rmtree(env["PREFECT_HOME"], ignore_errors=True)  # its ledger was counted already
    (work / f"{tag}-sandbox-stats.json").write_text(json.dumps({"stats": stats, "bench": extra}))
    if failure or not stats:
        raise ContenderFailed(f"{tag}: {failure or extra.get('error')}; see {work}/{tag}.log")
    report = json.loads(lines[-1])
    own = report["cpu_seconds"] + report["ephemeral_api"].get("children_cpu_seconds", 0.0)
    report["sandbox_cpu_seconds"] = round(sandbox_cpu, 1)
    report["machine_busy_cpu_seconds"] = round(busy, 1)
    report["other_load_cores"] = round(max(busy - own - sandbox_cpu, 0.0) / wall, 2)
    return {"name": name, "people": people, "process": report, "stats": stats, "bench": extra}


def _rel(value: float | None, t0: float | None) -> float:
    return round(value - t0, 1) if value is not None and t0 is not None else math.nan


def metrics(run: dict[str, Any], settings: ContactsSandboxSettings) -> dict[str, Any]:
    """The table's figures for one contender at one size, and the issue's checks."""
    name, people = run["name"], run["people"]
    stats, bench, proc = run["stats"], run["bench"], run["process"]
    routes = stats["requests_by_route"]
    start_route = "enrich_post" if name == "leads" else "bulk"
    starts = routes.get(start_route, 0)
    requests = stats["total_requests"]
    t0 = bench["t0_monotonic"]
    times = proc["result_times_monotonic"]
    wall = _rel(times["last"], t0)
    slowest = bench["slowest_enrichment_s"] or math.nan
    per_contact = requests / people
    rate = settings.per_second
    if name == "webhook" and people > WALL_BOUND_PEOPLE:
        limit = None  # above 10,000 the issue asks for growth at most linear (see "Growth")
        bound = "≤ 0.01 req/contact; wall and memory at most linear (Growth)"
        misses = [f"{per_contact:.4f} req/contact"] if per_contact > 0.01 else []
    elif name == "webhook":
        limit = slowest + 30
        bound = f"≤ 0.01 req/contact; wall ≤ slowest + 30 = {limit:.1f} s"
        misses = [f"{per_contact:.4f} req/contact"] if per_contact > 0.01 else []
        misses += [f"wall {wall} s"] if not wall <= limit else []
    elif name == "poll":
        limit = requests / (rate * 0.9) + 40  # the issue: requests ÷ 9 + 40 s at 10 req/s
        bound = f"≤ 1.1 req/contact; wall ≤ requests ÷ {rate * 0.9:g} + 40 = {limit:.1f} s"
        misses = [f"{per_contact:.3f} req/contact"] if per_contact > 1.1 else []
        misses += [f"wall {wall} s"] if not wall <= limit else []
    else:
        limit = starts / rate
        bound = f"baseline: ≥ 1 start per row; wall ≥ starts ÷ {rate:g} = {limit:.1f} s"
        misses = [f"{starts} starts"] if starts < people else []
        misses += [f"wall {wall} s"] if not wall >= limit else []
    cpu = proc["cpu_seconds"]
    api = proc["ephemeral_api"]
    server_results = [at for at, _source in stats.get("results", {}).values()]
    task_runs = proc["task_runs"]
    return {
        "name": name,
        "contender": LABELS[name],
        "people": people,
        "start_requests": starts,
        "total_requests": requests,
        "req_per_contact": round(per_contact, 4),
        "polls": routes.get("enrich_get", 0),
        "count_429": stats["count_429"],
        "wall_s": wall,
        "slowest_enrichment_s": round(slowest, 1),
        "bound": bound,
        "bound_value_s": None if limit is None else round(limit, 1),
        "holds": "yes" if not misses else "NO: " + ", ".join(misses),
        "peak_rss_mb": proc["peak_rss_mb"],
        "cpu_s": round(cpu, 1),
        "cpu_s_per_1000": round(1000 * cpu / people, 2),
        "task_runs": sum(task_runs.values()),
        "task_runs_by_name": task_runs,
        "ledger_files": proc["ledger_files"],
        "flow_write_syscalls": proc["flow_io"].get("syscw"),
        "flow_bytes_written": proc["flow_io"].get("wchar"),
        "requests_by_route": routes,
        "max_in_window": stats["max_requests_in_window"],
        "results_known": proc["results_known"],
        "result_p50_s": _rel(times["p50"], t0),
        "result_p95_s": _rel(times["p95"], t0),
        "first_result_s": _rel(times["first"], t0),
        "flow_start_s": _rel(proc["flow_started_monotonic"], t0),
        "flow_end_s": _rel(proc["flow_ended_monotonic"], t0),
        "server_last_lead_result_s": round(max(server_results), 1) if server_results else None,
        "server_last_webhook_s": bench["last_webhook_first_ok_s"],
        "last_enrichment_due_s": bench["last_enrichment_due_s"],
        "enrichments": bench["enrichments"],
        "webhook_deliveries": bench["webhook_deliveries"],
        "webhook_deliveries_ok": bench["webhook_deliveries_ok"],
        "webhook_deliveries_retried": bench["webhook_deliveries_retried"],
        "summary": proc["summary"],
        "api_server_peak_rss_mb": api.get("children_peak_rss_mb"),
        "api_server_cpu_s": api.get("children_cpu_seconds"),
        "sandbox_cpu_s": proc["sandbox_cpu_seconds"],
        "other_load_cores": proc["other_load_cores"],
        "process_seconds": proc["process_seconds"],
        "process": proc,
    }


TABLE_COLUMNS = [
    ("contender", "contender"),
    ("people", "people"),
    ("start_requests", "start requests"),
    ("total_requests", "total requests"),
    ("req_per_contact", "requests / contact"),
    ("polls", "polls"),
    ("count_429", "429s"),
    ("wall_s", "first request → last result s"),
    ("slowest_enrichment_s", "slowest enrichment s"),
    ("bound", "issue's bound"),
    ("holds", "holds"),
    ("peak_rss_mb", "peak RSS MB"),
    ("cpu_s_per_1000", "CPU s / 1k contacts"),
    ("task_runs", "Prefect task runs"),
]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per contender and size."""
    head = "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |"
    left = ("contender", "bound", "holds")
    rule = "| " + " | ".join("---" if k in left else "---:" for k, _ in TABLE_COLUMNS)
    lines = [head, rule + " |"]
    for row in rows:
        cells = [str(row.get(key, "")) for key, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's other targets, one line per contender and size."""
    lines = []
    for row in rows:
        people, name = row["people"], row["name"]
        starts_bound = math.ceil(people / BULK_SIZE)
        parts = [f"429s = 0: {'yes' if row['count_429'] == 0 else 'NO'}"]
        if name != "leads":
            ok = row["start_requests"] <= starts_bound
            parts.append(
                f"start requests {row['start_requests']} ≤ ⌈{people} / {BULK_SIZE}⌉ = "
                f"{starts_bound}: {'yes' if ok else 'NO'}"
            )
        if people <= WALL_BOUND_PEOPLE:
            ok = row["peak_rss_mb"] <= RSS_LIMIT_MB
            parts.append(
                f"peak RSS {row['peak_rss_mb']} MB ≤ {RSS_LIMIT_MB:g}: {'yes' if ok else 'NO'}"
            )
        names = ", ".join(f"{k} x {v}" for k, v in sorted(row["task_runs_by_name"].items()))
        parts.append(f"task runs: {names or 'none'}")
        if row["webhook_deliveries"]:
            parts.append(
                f"webhook deliveries ok {row['webhook_deliveries_ok']} / "
                f"{row['webhook_deliveries']} (retried {row['webhook_deliveries_retried']})"
            )
        parts.append(f"ledger records {row['ledger_files']}")
        parts.append(f"write syscalls {row['flow_write_syscalls']}")
        parts.append(
            f"Prefect API server {row['api_server_peak_rss_mb']} MB / {row['api_server_cpu_s']} "
            f"CPU s; other jobs' load {row['other_load_cores']} cores"
        )
        lines.append(f"- {name}, {people} people: " + "; ".join(parts))
    return lines


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """Wall time and memory between the smallest and largest size of each contender."""
    lines = []
    for name in CONTENDERS:
        mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["people"])
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        scale = large["people"] / small["people"]
        wall = large["wall_s"] / small["wall_s"]
        rss = large["peak_rss_mb"] / small["peak_rss_mb"]
        extra = (large["peak_rss_mb"] - small["peak_rss_mb"]) / (
            (large["people"] - small["people"]) / 1000
        )
        lines.append(
            f"- {name}, {small['people']} → {large['people']} people (x {scale:g}): wall x "
            f"{wall:.2f}, peak RSS x {rss:.2f} ({extra:+.2f} MB per 1k more contacts), CPU s / 1k "
            f"{small['cpu_s_per_1000']} → {large['cpu_s_per_1000']}; at most linear: "
            f"{'yes' if wall <= scale and rss <= scale else 'NO'}"
        )
    return lines


def main() -> None:
    """Run the contenders at each size, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[10000], help="rows per run")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=CONTENDERS)
    parser.add_argument("--seed", type=int, default=1, help="people rows and sandbox seed")
    parser.add_argument("--rate-limit", type=int, default=20, help="sandbox requests per window")
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.25))
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(5.0, 30.0))
    parser.add_argument(
        "--leads-collection",
        choices=["webhook", "poll"],
        default="webhook",
        help="how the per-lead baseline collects (webhook: its fewest requests)",
    )
    parser.add_argument("--collect-timeout", type=float, default=900.0, help="per enrichment, s")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="per contender, s")
    parser.add_argument("--out", type=Path, default=None, help="output path without extension")
    args = parser.parse_args()

    low, high = args.enrichment_seconds
    names = [name for name in CONTENDERS if name in args.contenders]
    stem = f"contacts-{'-'.join(map(str, args.people))}-{'-'.join(names)}-e{low:g}-{high:g}" + (
        f"-r{args.rate_limit}" if args.rate_limit != 20 else ""
    )
    out = args.out or BENCH_DIR / "results" / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f"{out.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    header = (
        f"`generate_people(N, seed={args.seed})`, find_email; each contender against its own "
        f"fresh sandbox: {args.rate_limit} req / {args.rate_window:g} s sliding window, latency "
        f"{args.latency[0]:g}-{args.latency[1]:g} s, enrichments {low:g}-{high:g} s. Per-lead "
        f"baseline collected by {args.leads_collection}."
    )
    print(header, file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    inputs = work / "out"  # generated inputs: git-ignored (`out/`), like the exports
    for people in args.people:
        contacts_input = people_file(inputs, people, args.seed)
        for name in names:
            leads_file = inputs / f"leads-{people}-seed{args.seed}.csv"
            settings = ContactsSandboxSettings(
                campaign_leads=0,
                seed=args.seed,
                rate_limit=args.rate_limit,
                rate_window=args.rate_window,
                latency=tuple(args.latency),
                enrichment_seconds=tuple(args.enrichment_seconds),
                people=people if name == "leads" else 0,
                leads_file=str(leads_file) if name == "leads" else None,
            )
            began = time.monotonic()
            print(f"[{time.strftime('%H:%M:%S')}] {name}, {people} people ...", file=sys.stderr)
            input_path = leads_file if name == "leads" else contacts_input
            try:
                run = run_one(name, people, settings, work, input_path, args)
            except ContenderFailed as exc:
                failures.append(str(exc))
                print(f"FAILED: {exc}", file=sys.stderr, flush=True)
                write_report(out, header, rows, failures, args)
                continue
            row = metrics(run, settings)
            rows.append(row)
            print(
                f"[{time.strftime('%H:%M:%S')}] {name}, {people} people done in "
                f"{time.monotonic() - began:.0f} s: wall {row['wall_s']} s, "
                f"{row['total_requests']} requests, {row['peak_rss_mb']} MB",
                file=sys.stderr,
                flush=True,
            )
            write_report(out, header, rows, failures, args)  # partial results survive a crash
    print(write_report(out, header, rows, failures, args))


NOTES = [
    "- **first request → last result**: from the first request the sandbox received (the "
    "flow's `GET /team`) to the moment the last enrichment result reached the flow (webhook "
    "or poll), measured in the contender process (`time.monotonic()`, the same clock as the "
    "sandbox's on Linux): the sandbox's statistics time leads' results only, not bulk "
    "enrichments'. For the per-lead baseline the sandbox's own last result time is in the "
    "JSON (`server_last_lead_result_s`).",
    "- **slowest enrichment**: the longest enrichment the sandbox ran for this contender "
    "(drawn uniformly in the enrichment range).",
    "- **requests / contact**: every request the sandbox received (429s included) ÷ input "
    "rows. **CPU s / 1k contacts**: the flow process's own user + system CPU ÷ rows x 1000 "
    "(imports, block save, reading the file, the flow and task runs, ledger, exports); "
    "Prefect's ephemeral API server is a child process, reported separately above.",
    "- **Prefect task runs**: task runs of the flow run, read back from its API.",
]


def write_report(
    out: Path,
    header: str,
    rows: list[dict[str, Any]],
    failures: list[str],
    args: argparse.Namespace,
) -> str:
    """Write the table and the raw figures to `<out>.md` / `<out>.json`; return the text."""
    lines = [header, "", markdown_table(rows), "", "Other targets:", *checks(rows)]
    if growth(rows):
        lines += ["", "Growth:", *growth(rows)]
    if failures:
        lines += ["", "Failed contenders:", *(f"- {failure}" for failure in failures)]
    text = "\n".join([*lines, "", *NOTES, ""])
    Path(f"{out}.md").write_text(text)
    Path(f"{out}.json").write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "machine": machine(),
                "settings": {**vars(args), "out": str(out)},
                "rows": rows,
                "failures": failures,
            },
            indent=2,
            default=str,
        )
    )
    return text


if __name__ == "__main__":
    main()
