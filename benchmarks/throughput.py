"""Throughput benchmark: prefect-lemlist (poll, webhook) vs two hand-written baselines.

    .venv/bin/python benchmarks/throughput.py --leads 1000

For each contender: a fresh sandbox process (same seed, 20 req / 2 s sliding window, latency
50-250 ms, enrichments 5-30 s), then the contender in its own process (`contenders.py`). The
sandbox's `GET /_sandbox/stats` gives requests, 429s and per-lead result times; the contender
process reports its peak RSS and CPU. Prints a markdown table and writes it, with every raw
figure, to `--out` (default `benchmarks/results/throughput-<leads>.{md,json}`).

`--leads` is the size of the selection (the campaign's leads without an email, find_email): the
seeded campaign is sized so that the selection has at least that many leads. The sequential
baseline would take hours at 1,000 leads: it runs on the first `--sequential-sample` selected
leads, stopped after `--sequential-cap` seconds, and by default alongside the other contenders
(it sends about one request per 5 s; its own sandbox) — its table row says so.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from pathlib import Path

from _bench import (
    BENCH_DIR,
    SandboxSettings,
    campaign_size_for,
    machine,
    markdown_table,
    metrics,
    run_contender,
)

CONTENDERS = ["ours-poll", "ours-webhook", "naive-concurrent", "naive-sequential"]
LABELS = {
    "ours-poll": "prefect-lemlist `enrich_campaign`, poll",
    "ours-webhook": "prefect-lemlist `enrich_campaign`, webhook",
    "naive-concurrent": "naive concurrent (asyncio.gather, poll 5 s, Retry-After)",
    "naive-sequential": "naive sequential (httpx loop, poll 5 s, Retry-After)",
}


def targets(row: dict, name: str) -> str:
    """Check the issue's targets for our modes: no 429, requests per lead, span bound."""
    if not name.startswith("ours-"):
        return ""
    limit = 1.05 if name == "ours-webhook" else 2.2
    checks = [
        f"429s = 0: {'yes' if row['count_429'] == 0 else 'NO'}",
        f"req/lead ≤ {limit}: {'yes' if row['req_per_lead'] <= limit else 'NO'}",
        f"span {row['span_s']} s ≤ requests/rate + 35 = {row['span_limit_s']} s: "
        + ("yes" if row["span_s"] <= row["span_limit_s"] else "NO"),
    ]
    return "; ".join(checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=1000, help="leads to enrich (selection)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate-limit", type=int, default=20, help="sandbox requests per window")
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.25))
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(5.0, 30.0))
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=CONTENDERS)
    parser.add_argument("--sequential-sample", type=int, default=100)
    parser.add_argument("--sequential-cap", type=float, default=300.0, help="seconds")
    parser.add_argument("--concurrent-cap", type=float, default=900.0, help="seconds")
    parser.add_argument(
        "--no-overlap",
        action="store_true",
        help="run the sequential baseline after the others instead of alongside them",
    )
    parser.add_argument("--out", type=Path, default=None, help="output path without extension")
    args = parser.parse_args()

    campaign_leads, selected = campaign_size_for(args.leads, args.seed)
    settings = SandboxSettings.from_args(args, campaign_leads)
    out = args.out or BENCH_DIR / "results" / f"throughput-{args.leads}"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f"{out.name}-work"
    print(
        f"campaign of {campaign_leads} leads (seed {args.seed}), {selected} selected; "
        f"sandbox {args.rate_limit} req / {args.rate_window:g} s, latency {args.latency}, "
        f"enrichments {args.enrichment_seconds}",
        file=sys.stderr,
        flush=True,
    )

    extra = {
        "naive-sequential": [
            "--sample",
            str(args.sequential_sample),
            "--cap-seconds",
            str(args.sequential_cap),
        ],
        "naive-concurrent": ["--cap-seconds", str(args.concurrent_cap)],
    }

    def one(name: str):
        begun = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
        run = run_contender(name, LABELS[name], settings, work, extra=extra.get(name))
        print(
            f"[{time.strftime('%H:%M:%S')}] {name} done in {time.monotonic() - begun:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return run

    names = [n for n in CONTENDERS if n in args.contenders]
    overlap = not args.no_overlap and "naive-sequential" in names and len(names) > 1
    runs = {}
    if overlap:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            sequential = pool.submit(one, "naive-sequential")
            for name in names:
                if name != "naive-sequential":
                    runs[name] = one(name)
            runs["naive-sequential"] = sequential.result()
    else:
        for name in names:
            runs[name] = one(name)

    rows = []
    for name in names:
        row = metrics(runs[name])
        row["name"] = name
        row["targets"] = targets(row, name)
        if name == "naive-sequential":
            proc = row["process"]
            row["contender"] += (
                f" — first {proc.get('sample')} selected leads, capped at "
                f"{proc.get('cap_seconds'):g} s" + (", run alongside the others" if overlap else "")
            )
        if name == "naive-concurrent" and row["process"].get("capped"):
            row["contender"] += f" — capped at {row['process']['cap_seconds']:g} s"
        rows.append(row)

    table = markdown_table(rows)
    checks = "\n".join(f"- {row['name']}: {row['targets']}" for row in rows if row["targets"])
    header = (
        f"{selected} selected leads (campaign of {campaign_leads}, seed {args.seed}); sandbox "
        f"{args.rate_limit} req / {args.rate_window:g} s sliding window, latency "
        f"{args.latency[0]:g}-{args.latency[1]:g} s, enrichments "
        f"{args.enrichment_seconds[0]:g}-{args.enrichment_seconds[1]:g} s."
    )
    text = f"{header}\n\n{table}\n\nTargets:\n{checks}\n"
    print(text)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "machine": machine(),
                "settings": vars(settings),
                "selected": selected,
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
