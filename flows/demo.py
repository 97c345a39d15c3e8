"""The main job: the `enrich-campaign` flow against a local lemlist sandbox.

`python3 run.py demo` runs this module. It starts the sandbox (a real HTTP server on loopback
with a seeded campaign of 200 leads), saves a `LemlistCredentials` block pointing at it on
Prefect's local ephemeral API, runs `enrich_campaign` (find emails), prints the summary and writes
the export files under `out/`. Options: `--leads N --seed S --collection poll|webhook
--find-phone --output-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys

from flows.enrich_campaign import enrich_campaign
from prefect_lemlist import LemlistCredentials
from prefect_lemlist.pipeline import EnrichmentOptions, PipelineSummary, render_summary
from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

BLOCK_NAME = "lemlist-sandbox"


async def run_demo(args: argparse.Namespace) -> PipelineSummary:
    """Start the sandbox, save the block, run the flow; returns its summary."""
    # A fresh key per sandbox: its ledger records never mix with another sandbox's.
    config = SandboxConfig(
        leads=args.leads,
        seed=args.seed,
        api_keys=[f"sandbox-{secrets.token_hex(8)}"],
        enrichment_seconds=(1.0, 4.0),
    )
    with run_sandbox(config) as sandbox:
        print(
            f"lemlist sandbox on {sandbox.base_url}, campaign {sandbox.campaign_id} "
            f"({args.leads} leads, seed {args.seed})",
            flush=True,
        )
        await LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url).save(
            BLOCK_NAME, overwrite=True
        )
        options = EnrichmentOptions(
            find_email=True,
            find_phone=args.find_phone,
            collection=args.collection,
            first_poll_seconds=3.0,
            output_dir=args.output_dir,
            output_name=f"{sandbox.campaign_id}-{args.collection}",
        )
        return await enrich_campaign(sandbox.campaign_id, BLOCK_NAME, options=options)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the demo, print the summary; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python3 run.py demo", description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--collection", choices=["poll", "webhook"], default="poll")
    parser.add_argument("--find-phone", action="store_true")
    parser.add_argument("--output-dir", default="out")
    args = parser.parse_args(argv)
    summary = asyncio.run(run_demo(args))
    print()
    print(render_summary(summary))
    return 0


if __name__ == "__main__":
    logging.getLogger("prefect").setLevel(logging.WARNING)
    sys.exit(main())
