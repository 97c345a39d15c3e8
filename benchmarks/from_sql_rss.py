"""`enrich-contacts --from-sql` on PostgreSQL vs the same people from a CSV: peak RSS of the CLI.

    .venv/bin/python benchmarks/from_sql_rss.py               # 100,000 people, --dry-run, 2 rounds
    .venv/bin/python benchmarks/from_sql_rss.py --limit 2000  # + a real trial of 2,000

The same `generate_people(N, seed)` rows go to a CSV file (`write_people_file`) and, with COPY, to
a table `people` (the same text, empty strings included) in a throw-away PostgreSQL cluster
(tests/_postgres.py). The CLI then runs as a subprocess, `python -m prefect_lemlist.cli
enrich-contacts`, once per mode and round, the order alternating (csv, sql; then sql, csv; ...):

- `csv`: `enrich-contacts people.csv <options>`
- `sql`: `enrich-contacts --from-sql "select * from people" --sql-source <url> <options>`

with the same options: `--dry-run` (every row is read, validated, planned and reported, nothing
is enriched), and with `--limit N` a real trial that enriches the first N people (the whole
input is still read and exported). Each run has its own PREFECT_HOME, ledger and output
directory; all use one Prefect API started here (`prefect_lemlist.local_api.PrefectServer`), so
the CLI has no child process and `os.wait4`'s `ru_maxrss` is the CLI process's own peak RSS
(Linux reports the maximum over a process and its reaped children, which would otherwise be the
Prefect server the CLI starts). `/proc/<pid>/status` `VmHWM` is also sampled every 50 ms as a
cross-check. The sandbox runs in this process (`run_sandbox`, no campaign leads).

Writes `benchmarks/results/from-sql-rss-<people>.{md,json}` (logs and the CLI's outputs under
the git-ignored `…-work/out/`) and prints the table. The requirement: the SQL run's peak RSS is
within 50 MB of the CSV run's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from prefect_lemlist.sandbox import (  # noqa: E402
    SandboxConfig,
    generate_people,
    run_sandbox,
    write_people_file,
)
from prefect_lemlist.sandbox.people import PEOPLE_COLUMNS  # noqa: E402

BOUND_MB = 50.0


def load_postgres(url: str, rows: list[dict[str, str]]) -> float:
    """Create table `people` (every column text) and COPY the rows into it; returns seconds."""
    import psycopg

    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    columns = ", ".join(f"{name} text" for name in PEOPLE_COLUMNS)
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS people")
        conn.execute(f"CREATE TABLE people ({columns})")  # the CSV's columns, no more
        names = ", ".join(PEOPLE_COLUMNS)
        with conn.cursor().copy(f"COPY people ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in PEOPLE_COLUMNS])
        count = conn.execute("SELECT count(*) FROM people").fetchone()[0]
    assert count == len(rows), count
    return time.perf_counter() - started


def vm_hwm_kib(pid: int) -> int | None:
    """The process's own peak RSS so far (`VmHWM`), KiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_cli(
    label: str, args: list[str], env: dict[str, str], work: Path, timeout: float
) -> dict[str, Any]:
    """One CLI subprocess: its exit code, wall time, peak RSS (wait4 and sampled VmHWM)."""
    out = work / "out" / label
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"lemlist-rss-{label}-"))
    run_env = {
        **env,
        "PREFECT_HOME": str(home),
        "LEMLIST_LEDGER_DIR": str(home / "ledger"),
    }
    command = [sys.executable, "-m", "prefect_lemlist.cli", "enrich-contacts", *args]
    command += ["--output-dir", str(out), "--json"]
    stdout_path, stderr_path = work / f"{label}.stdout", work / f"{label}.stderr"
    sampled = [0]
    started = time.monotonic()
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=run_env, stdout=stdout, stderr=stderr)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                value = vm_hwm_kib(process.pid)
                if value is not None:
                    sampled[0] = max(sampled[0], value)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            done.set()
            sampler.join()
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(home, ignore_errors=True)
    summary: dict[str, Any] = {}
    text = stdout_path.read_text()
    start = text.find("{")
    if start >= 0:
        try:
            summary = json.loads(text[start:])
        except ValueError:
            summary = {}
    return {
        "label": label,
        "code": process.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "sampled_vmhwm_mb": round(sampled[0] / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "summary": summary,
        "command": command,
    }


def counts(summary: dict[str, Any]) -> str:
    """A few of the run's own counts from its JSON summary (what it read and did)."""
    keys = ("input_rows", "selected", "rejected_count", "to_start", "started")
    found = {key: summary[key] for key in keys if isinstance(summary.get(key), int)}
    return ", ".join(f"{key} {value}" for key, value in found.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, order alternated")
    parser.add_argument(
        "--limit", type=int, default=0, help="also real trials enriching the first N (0: none)"
    )
    parser.add_argument("--limit-rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(1.0, 3.0))
    args = parser.parse_args()

    from _bench import machine
    from _postgres import postgres_cluster

    from prefect_lemlist.local_api import PrefectServer

    name = f"from-sql-rss-{args.people}"
    work = BENCH_DIR / "results" / f"{name}-work"
    work.mkdir(parents=True, exist_ok=True)
    rows = generate_people(args.people, seed=args.seed)
    csv_path = write_people_file(work / "out" / "people.csv", rows)
    csv_mb = csv_path.stat().st_size / 2**20
    print(f"{len(rows):,} people, CSV {csv_mb:.1f} MB", flush=True)

    config = SandboxConfig(
        leads=0,
        seed=args.seed,
        enrichment_seconds=tuple(args.enrichment_seconds),
        latency_seconds=(0.0, 0.0),
        credits=100_000_000,
    )
    runs: list[dict[str, Any]] = []
    server = PrefectServer(work / "server-home", own_session=True)
    import asyncio

    asyncio.run(server.start(timeout=120))
    try:
        with postgres_cluster("lemlist_bench") as url, run_sandbox(config) as sandbox:
            copy_s = load_postgres(url, rows)
            print(f"COPY into people: {copy_s:.1f} s", flush=True)
            env = {**os.environ}
            for variable in ("PREFECT_TEST_MODE", "PREFECT_UNIT_TEST_MODE"):
                env.pop(variable, None)
            env.update(
                LEMLIST_API_KEY=sandbox.api_key,
                LEMLIST_BASE_URL=sandbox.base_url,
                PREFECT_API_URL=server.url,
                PREFECT_SERVER_ANALYTICS_ENABLED="false",
                PREFECT_LOGGING_LEVEL="WARNING",
            )
            inputs = {
                "csv": [str(csv_path)],
                "sql": ["--from-sql", "select * from people", "--sql-source", url],
            }
            plans = [("dry-run", ["--dry-run"], args.rounds)]
            if args.limit:
                plans.append(
                    (f"limit-{args.limit}", ["--limit", str(args.limit)], args.limit_rounds)
                )
            for kind, options, rounds in plans:
                for round_no in range(1, rounds + 1):
                    order = ["csv", "sql"] if round_no % 2 else ["sql", "csv"]
                    for mode in order:
                        label = f"{kind}-{mode}-{round_no}"
                        run = run_cli(label, [*inputs[mode], *options], env, work, args.timeout)
                        run.update(kind=kind, mode=mode, round=round_no)
                        runs.append(run)
                        print(
                            f"{label:22} exit {run['code']}  {run['wall_s']:6.1f} s  "
                            f"peak RSS {run['peak_rss_mb']:6.1f} MB "
                            f"(VmHWM {run['sampled_vmhwm_mb']:6.1f})  CPU {run['cpu_s']} s  "
                            f"{counts(run['summary'])}",
                            flush=True,
                        )
    finally:
        asyncio.run(server.stop())

    lines = [
        "| run | mode | exit | wall s | CPU s | peak RSS MB (wait4) | VmHWM MB (sampled) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run['kind']} #{run['round']} | {run['mode']} | {run['code']} | {run['wall_s']} "
            f"| {run['cpu_s']} | {run['peak_rss_mb']} | {run['sampled_vmhwm_mb']} |"
        )
    verdicts = []
    for kind in dict.fromkeys(run["kind"] for run in runs):
        peaks = {
            mode: [
                run["peak_rss_mb"] for run in runs if run["kind"] == kind and run["mode"] == mode
            ]
            for mode in ("csv", "sql")
        }
        csv_median, sql_median = statistics.median(peaks["csv"]), statistics.median(peaks["sql"])
        worst = max(peaks["sql"]) - min(peaks["csv"])
        diff = sql_median - csv_median
        verdicts.append(
            {
                "kind": kind,
                "csv_mb": peaks["csv"],
                "sql_mb": peaks["sql"],
                "median_diff_mb": round(diff, 1),
                "worst_diff_mb": round(worst, 1),
                "within_bound": worst <= BOUND_MB,
            }
        )
        lines.append("")
        lines.append(
            f"{kind}: median peak RSS csv {csv_median:.1f} MB, sql {sql_median:.1f} MB, "
            f"sql - csv {diff:+.1f} MB (worst pair {worst:+.1f} MB): "
            f"{'within' if worst <= BOUND_MB else 'NOT within'} {BOUND_MB:.0f} MB"
        )
    table = "\n".join(lines)
    print()
    print(table)
    report = {
        "people": args.people,
        "seed": args.seed,
        "csv_mb": round(csv_mb, 1),
        "copy_s": round(copy_s, 1),
        "runs": runs,
        "verdicts": verdicts,
        "machine": machine(),
    }
    (BENCH_DIR / "results" / f"{name}.json").write_text(json.dumps(report, indent=1, default=str))
    (BENCH_DIR / "results" / f"{name}.md").write_text(table + "\n")
    return 0 if all(run["code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
