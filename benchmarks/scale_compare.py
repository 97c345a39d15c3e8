"""Scale benchmark: `enrich_campaign` at 1,000 and 10,000 leads under the same scaled-up limit.

    .venv/bin/python benchmarks/scale_compare.py --sizes 1000 10000 --rate-limit 200

Same machinery as `throughput.py` (a fresh sandbox process per run, the flow in its own process
on Prefect's ephemeral API, the block's `rate_limit` set to the sandbox's), with the sandbox
limit scaled up (200 per 2 s by default: 10x lemlist). Reports, per size: time per lead (from
the first request to the last result, as the sandbox saw it), requests, 429s, peak RSS and CPU
of the flow process, and the ratio of time per lead between the largest and the smallest size.
Writes `benchmarks/results/scale-<sizes>-<limit>.{md,json}`.

(`benchmarks/scale.py` is the older single-run variant: flow and sandbox split the same way,
but the flow runs in the calling process and selects every lead with find_email + LinkedIn.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _bench import BENCH_DIR, SandboxSettings, campaign_size_for, machine, metrics, run_contender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rate-limit", type=int, default=200, help="sandbox and block limit")
    parser.add_argument("--rate-window", type=float, default=2.0)
    parser.add_argument("--modes", nargs="+", choices=["poll", "webhook"], default=["poll"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.25))
    parser.add_argument("--enrichment-seconds", type=float, nargs=2, default=(5.0, 30.0))
    args = parser.parse_args()

    tag = f"scale-{'-'.join(args.modes)}-{'-'.join(map(str, args.sizes))}-{args.rate_limit}"
    out = BENCH_DIR / "results" / tag
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode in args.modes:
        for size in args.sizes:
            campaign_leads, selected = campaign_size_for(size, args.seed)
            settings = SandboxSettings.from_args(args, campaign_leads)
            name = f"ours-{mode}"
            print(
                f"[{time.strftime('%H:%M:%S')}] {name}, {selected} leads "
                f"(campaign {campaign_leads}), limit {args.rate_limit}/{args.rate_window:g} s",
                file=sys.stderr,
                flush=True,
            )
            run = run_contender(name, name, settings, out.parent / f"{tag}-work" / str(size))
            row = metrics(run)
            row.update(mode=mode, size=size, campaign_leads=campaign_leads)
            row["ms_per_lead"] = round(1000 * row["span_s"] / row["completed"], 2)
            row["flow_ms_per_lead"] = round(
                1000 * run.process["flow_wall_seconds"] / run.process["selected"], 2
            )
            rows.append(row)

    lines = [
        f"Sandbox {args.rate_limit} req / {args.rate_window:g} s (block `rate_limit` the same), "
        f"latency {args.latency[0]:g}-{args.latency[1]:g} s, enrichments "
        f"{args.enrichment_seconds[0]:g}-{args.enrichment_seconds[1]:g} s, find_email on the "
        "leads without email.",
        "",
        "| mode | leads | first req → last result s | ms / lead | flow wall ms / lead | "
        "requests | req/lead | req/s ÷ limit | 429s | p95 s | peak RSS MB | CPU s | "
        "Prefect API server RSS MB / CPU s |",
        "| --- |" + " ---: |" * 12,
    ]
    for row in rows:
        api = row["process"].get("ephemeral_api", {})
        lines.append(
            f"| {row['mode']} | {row['completed']} | {row['span_s']} | {row['ms_per_lead']} | "
            f"{row['flow_ms_per_lead']} | {row['requests']} | {row['req_per_lead']} | "
            f"{row['budget_use']} | {row['count_429']} | {row['p95_s']} | {row['peak_rss_mb']} | "
            f"{row['cpu_s']} | {api.get('children_peak_rss_mb')} / "
            f"{api.get('children_cpu_seconds')} |"
        )
    lines.append("")
    for mode in args.modes:
        of_mode = [row for row in rows if row["mode"] == mode]
        if len(of_mode) >= 2:
            small, large = of_mode[0], of_mode[-1]
            ratio = large["ms_per_lead"] / small["ms_per_lead"]
            lines.append(
                f"- {mode}: time per lead at {large['size']} / at {small['size']} = {ratio:.2f} "
                f"(target ≤ 1.10: {'yes' if ratio <= 1.10 else 'NO'}); peak RSS at "
                f"{large['size']}: {large['peak_rss_mb']} MB (target ≤ 400: "
                f"{'yes' if large['peak_rss_mb'] <= 400 else 'NO'})"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {"command": " ".join(sys.argv), "machine": machine(), "rows": rows},
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
