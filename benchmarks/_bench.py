"""Shared machinery of the benchmarks: a sandbox per contender, a process per contender, metrics.

Every contender runs in its own process (`benchmarks/contenders.py`) against its own, fresh
sandbox process (`python -m prefect_lemlist.sandbox --admin`, same seed and settings). The
numbers come from two sides:

- the sandbox (what lemlist saw): every request, every 429, and for every lead the moment its
  final answer was first served (first 200 on `GET /enrich/{id}`, first 2xx webhook delivery, or
  a final 400/404/409 on the enrich POST), relative to the contender's first request;
- the contender process itself: peak RSS and CPU (`resource.getrusage`).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
API_KEY = "bench-key"
sys.path.insert(0, str(ROOT))


@dataclass
class SandboxSettings:
    """The sandbox's knobs, identical for every contender of a run."""

    campaign_leads: int
    seed: int = 1
    rate_limit: int = 20
    rate_window: float = 2.0
    latency: tuple[float, float] = (0.05, 0.25)
    enrichment_seconds: tuple[float, float] = (5.0, 30.0)

    @classmethod
    def from_args(cls, args: Any, campaign_leads: int) -> SandboxSettings:
        """The settings given on a benchmark's command line (seed, rate, latency, durations)."""
        return cls(
            campaign_leads=campaign_leads,
            seed=args.seed,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
            latency=tuple(args.latency),
            enrichment_seconds=tuple(args.enrichment_seconds),
        )

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "prefect_lemlist.sandbox",
            "--admin",
            "--port",
            "0",
            "--leads",
            str(self.campaign_leads),
            "--seed",
            str(self.seed),
            "--api-key",
            API_KEY,
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
            "--credits",
            "100000000",
        ]

    @property
    def per_second(self) -> float:
        """The sandbox's physical request rate (lemlist: 20 / 2 s = 10 req/s)."""
        return self.rate_limit / self.rate_window


def campaign_size_for(selected: int, seed: int) -> tuple[int, int]:
    """A seeded campaign size whose find_email selection (leads without email) has at least
    `selected` leads (a few more at most).

    Returns:
        (campaign leads, selected leads).
    """
    from prefect_lemlist.sandbox.data import seed_campaign

    def count(size: int) -> int:
        return sum(1 for lead in seed_campaign(size, seed).leads if not lead.email)

    ratio = 0.578  # about this share of a seeded campaign has no email
    size = max(1, int(selected / ratio * 0.995))
    found = count(size)
    while found < selected:
        size += max(1, math.ceil((selected - found) / ratio))
        found = count(size)
    return size, found


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SandboxProcess:
    """A sandbox CLI process (started by `with`), its URL, campaign and `/_sandbox/stats`."""

    def __init__(self, settings: SandboxSettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.campaign = ""

    def __enter__(self) -> SandboxProcess:
        self.process = subprocess.Popen(
            self.settings.command(),
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("w"),
            text=True,
            cwd=ROOT,
        )
        banner = ""
        while "Campaign id" not in banner:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"the sandbox did not start; see {self.log_path}")
            banner += line
        self.url = re.search(r"running at (\S+)", banner).group(1)
        self.campaign = re.search(r"Campaign id: (\S+)", banner).group(1)
        return self

    def stats(self) -> dict[str, Any]:
        with httpx.Client(trust_env=False, timeout=60) as client:
            answer = client.get(f"{self.url}/_sandbox/stats")
            answer.raise_for_status()
            return answer.json()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class ContenderRun:
    """One contender's raw outcome: the sandbox's view and the process's own report."""

    name: str
    label: str
    sandbox: dict[str, Any]
    process: dict[str, Any]
    settings: SandboxSettings
    wall_seconds: float
    notes: list[str] = field(default_factory=list)


def run_contender(
    name: str,
    label: str,
    settings: SandboxSettings,
    work_dir: Path,
    *,
    extra: list[str] | None = None,
    timeout: float = 3600.0,
) -> ContenderRun:
    """Start a fresh sandbox, run one contender in its own process against it, collect stats."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(settings, work_dir / f"{name}-sandbox.log") as sandbox:
        command = [
            sys.executable,
            str(BENCH_DIR / "contenders.py"),
            name,
            "--base-url",
            sandbox.url,
            "--campaign",
            sandbox.campaign,
            "--rate-limit",
            str(settings.rate_limit),
            "--rate-window",
            str(settings.rate_window),
            "--work-dir",
            str(work_dir / name),
            *(extra or []),
        ]
        env = dict(os.environ)
        env["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"lemlist-bench-{name}-")
        env["LEMLIST_LEDGER_DIR"] = os.path.join(env["PREFECT_HOME"], "ledger")  # a fresh one
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
        env["PREFECT_LOGGING_LEVEL"] = "WARNING"
        env.pop("PREFECT_API_URL", None)
        started = time.monotonic()
        busy_before = machine_busy_seconds()
        with (work_dir / f"{name}.log").open("w") as log:
            done = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
                env=env,
                timeout=timeout,
            )
        wall = time.monotonic() - started
        busy = machine_busy_seconds() - busy_before
        sandbox_cpu = process_cpu_seconds(sandbox.process.pid)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"contender {name} failed (rc {done.returncode}); see {work_dir}")
        report = json.loads(lines[-1])
        own = report["cpu_seconds"] + report.get("ephemeral_api", {}).get(
            "children_cpu_seconds", 0.0
        )
        report["sandbox_cpu_seconds"] = round(sandbox_cpu, 1)
        report["machine_busy_cpu_seconds"] = round(busy, 1)
        # CPU used meanwhile by everything else on the machine (other jobs), per second of run.
        report["other_load_cores"] = round(max(busy - own - sandbox_cpu, 0.0) / wall, 2)
        time.sleep(1.0)  # let a last webhook delivery be recorded
        stats = sandbox.stats()
    (work_dir / f"{name}-sandbox-stats.json").write_text(json.dumps(stats))
    return ContenderRun(name, label, stats, report, settings, wall)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def metrics(run: ContenderRun) -> dict[str, Any]:
    """The table's figures for one contender.

    `span` is the time from the contender's first request to the last lead's result, as the
    sandbox saw it. Budget use is requests per second over that span divided by the sandbox's
    physical rate (10 req/s at lemlist's 20 / 2 s).
    """
    stats, proc = run.sandbox, run.process
    times = [at for at, _source in stats["results"].values()]
    completed = len(times)
    span = max(times) if times else math.nan
    requests = stats["total_requests"]
    rate = run.settings.per_second
    cpu = proc["cpu_seconds"]
    sources: dict[str, int] = {}
    for _at, source in stats["results"].values():
        sources[source] = sources.get(source, 0) + 1
    per_second = stats.get("arrivals_per_second") or []
    busy = [count for count in per_second[1:-1] if count]  # whole seconds with requests
    return {
        "contender": run.label,
        "selected": proc.get("selected"),
        "attempted": proc.get("attempted", proc.get("selected")),
        "completed": completed,
        "span_s": round(span, 1),
        "leads_per_s": round(completed / span, 2) if completed else 0.0,
        "requests": requests,
        "req_per_s": round(requests / span, 2) if completed else math.nan,
        "budget_use": round(requests / span / rate, 3) if completed else math.nan,
        "count_429": stats["count_429"],
        "req_per_lead": round(requests / completed, 3) if completed else math.nan,
        "p50_s": round(percentile(times, 50), 1),
        "p95_s": round(percentile(times, 95), 1),
        "peak_rss_mb": proc["peak_rss_mb"],
        "cpu_s": round(cpu, 1),
        "cpu_s_per_1000": round(1000 * cpu / completed, 1) if completed else math.nan,
        "span_limit_s": round(requests / rate + 35, 1),
        "max_in_window": stats["max_requests_in_window"],
        # Mean arrivals per second over the seconds that had any (the sending rate while busy).
        "busy_req_per_s": round(sum(busy) / len(busy), 2) if busy else None,
        "busy_seconds": len(busy),
        "requests_by_route": stats["requests_by_route"],
        "result_sources": sources,
        "enrichments_started": stats["enrichments_started"],
        "webhook_deliveries_ok": stats["webhook_deliveries_ok"],
        "process": proc,
        "process_wall_s": round(run.wall_seconds, 1),
        "other_load_cores": proc.get("other_load_cores"),
        "sandbox_cpu_s": proc.get("sandbox_cpu_seconds"),
        "rate_limit": run.settings.rate_limit,
        "rate_window": run.settings.rate_window,
    }


TABLE_COLUMNS = [
    ("contender", "contender"),
    ("completed", "leads done"),
    ("leads_per_s", "leads/s"),
    ("budget_use", "req/s ÷ limit"),
    ("count_429", "429s"),
    ("req_per_lead", "req/lead"),
    ("p50_s", "p50 s"),
    ("p95_s", "p95 s"),
    ("span_s", "first req → last result s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("cpu_s_per_1000", "CPU s / 1k leads"),
    ("other_load_cores", "other jobs' load, cores"),
]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The main table, one row per contender."""
    head = "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |"
    rule = "| " + " | ".join("---" if k == "contender" else "---:" for k, _ in TABLE_COLUMNS)
    lines = [head, rule + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in TABLE_COLUMNS) + " |")
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model, Python and prefect versions."""
    import platform

    import prefect

    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "cpu": model,
        "python": platform.python_version(),
        "prefect": prefect.__version__,
        "httpx": httpx.__version__,
        "platform": platform.platform(),
    }
