"""Command-line entry points for the flows (`python -m flows.enrich_campaign …`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from prefect_lemlist.pipeline import EnrichmentOptions, PipelineSummary, render_summary


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The `EnrichmentOptions` as command-line flags."""
    parser.add_argument("--block", dest="credentials_block", help="saved LemlistCredentials block")
    for flag in ("find-email", "verify-email", "linkedin-enrichment", "find-phone"):
        parser.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--force", action="store_true", help="re-enrich (spends credits again)")
    parser.add_argument("--dry-run", action="store_true", help="report only, enrich nothing")
    parser.add_argument("--max-credits", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--collection", choices=["poll", "webhook"])
    parser.add_argument("--output-dir")


def options_from_args(args: argparse.Namespace) -> EnrichmentOptions:
    """Build `EnrichmentOptions` from parsed flags (unset flags keep their defaults)."""
    fields = {
        name: getattr(args, name)
        for name in (
            "find_email",
            "verify_email",
            "linkedin_enrichment",
            "find_phone",
            "max_credits",
            "batch_size",
            "collection",
            "output_dir",
        )
        if getattr(args, name, None) is not None
    }
    fields["force"] = args.force
    fields["dry_run"] = args.dry_run
    return EnrichmentOptions(**fields)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse the command line and the options; exits with a one-line error on bad input."""
    add_option_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args, options_from_args(args)
    except ValueError as exc:
        sys.exit(f"error: {exc}")


def _run(flow_call) -> None:
    """Run a flow (called with `return_state=True`); print its summary, or its error and exit 1."""
    state = asyncio.run(flow_call)
    if not state.is_completed():
        sys.exit(f"error: the flow run ended {state.name}: {state.message}")
    summary: PipelineSummary = asyncio.run(state.aresult())
    print(render_summary(summary))


def main_campaign(argv: list[str] | None = None) -> None:
    """`python -m flows.enrich_campaign CAMPAIGN_ID [options]`."""
    from flows.enrich_campaign import enrich_campaign

    parser = argparse.ArgumentParser(prog="python -m flows.enrich_campaign")
    parser.add_argument("campaign_id")
    parser.add_argument("--state", default="all")
    args, options = _parse(parser, argv)
    _run(
        enrich_campaign(
            args.campaign_id,
            args.credentials_block,
            state=args.state,
            options=options,
            return_state=True,
        )
    )


def main_leads(argv: list[str] | None = None) -> None:
    """`python -m flows.enrich_leads (--csv FILE | LEAD_ID ...) [options]`."""
    from flows.enrich_leads import enrich_leads

    parser = argparse.ArgumentParser(prog="python -m flows.enrich_leads")
    parser.add_argument("lead_ids", nargs="*")
    parser.add_argument("--csv", dest="csv_path")
    args, options = _parse(parser, argv)
    _run(
        enrich_leads(
            lead_ids=args.lead_ids or None,
            csv_path=args.csv_path,
            credentials_block=args.credentials_block,
            options=options,
            return_state=True,
        )
    )
