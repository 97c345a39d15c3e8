"""Command line: `python -m prefect_lemlist.sandbox --port 8787 --leads 200 --seed 1`.

Starts a sandbox, prints how to reach it, and serves until Ctrl-C (or SIGTERM).
`--people N --people-file PATH` also writes a seeded people file (CSV or JSON Lines); with
`--no-serve` it only writes that file and exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from prefect_lemlist.sandbox.app import add_admin_routes
from prefect_lemlist.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from prefect_lemlist.sandbox.people import generate_people, write_people_file
from prefect_lemlist.sandbox.server import Sandbox


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser.

    Returns:
        An `argparse.ArgumentParser` for the sandbox's main knobs.
    """
    parser = argparse.ArgumentParser(
        prog="python -m prefect_lemlist.sandbox",
        description="Run a local emulation of lemlist's lead-enrichment API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8787, help="TCP port (0: any free port)")
    parser.add_argument("--leads", type=int, default=200, help="leads in the seeded campaign")
    parser.add_argument("--seed", type=int, default=1, help="seed of data, timing and faults")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the accepted API key")
    parser.add_argument("--rate-limit", type=int, default=20, help="requests per window")
    parser.add_argument("--rate-window", type=float, default=2.0, help="window in seconds")
    parser.add_argument(
        "--enrichment-seconds",
        type=float,
        nargs=2,
        default=(1.0, 4.0),
        metavar=("MIN", "MAX"),
        help="duration range of an enrichment",
    )
    parser.add_argument(
        "--latency",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("MIN", "MAX"),
        help="extra delay range before each answer",
    )
    parser.add_argument("--credits", type=int, default=100_000, help="team credits at start")
    parser.add_argument("--fault-5xx-rate", type=float, default=0.0, help="chance of a 500")
    parser.add_argument(
        "--fault-drop-rate",
        type=float,
        default=0.0,
        help="chance of closing the connection without answering",
    )
    parser.add_argument(
        "--fault-429-rate", type=float, default=0.0, help="chance of an injected 429"
    )
    parser.add_argument(
        "--fault-slow-rate", type=float, default=0.0, help="chance of a slow answer"
    )
    parser.add_argument(
        "--people",
        type=int,
        default=None,
        metavar="N",
        help="write N seeded people (CRM-like rows) to --people-file",
    )
    parser.add_argument("--people-file", default=None, metavar="PATH", help="people file path")
    parser.add_argument(
        "--people-format",
        choices=("csv", "jsonl"),
        default="csv",
        help="people file format (default csv)",
    )
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="only write the people file, then exit (needs --people and --people-file)",
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="load the sandbox's world from this JSON file if it exists, save it on exit",
    )
    parser.add_argument("--team-id", default=None, help="team id of GET /team (tea_...)")
    parser.add_argument(
        "--admin",
        action="store_true",
        help="also serve GET /_sandbox/stats (unauthenticated JSON statistics, for benchmarks)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Turn parsed arguments into a validated `SandboxConfig`.

    Args:
        args: the parsed CLI arguments.

    Returns:
        The configuration.
    """
    return SandboxConfig(
        host=args.host,
        port=args.port,
        leads=args.leads,
        seed=args.seed,
        api_keys=[args.api_key],
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
        enrichment_seconds=tuple(args.enrichment_seconds),
        latency_seconds=tuple(args.latency),
        credits=args.credits,
        fault_5xx_rate=args.fault_5xx_rate,
        fault_drop_rate=args.fault_drop_rate,
        fault_429_rate=args.fault_429_rate,
        fault_slow_rate=args.fault_slow_rate,
        state_file=args.state_file,
        team_id=args.team_id,
    )


def write_people(args: argparse.Namespace) -> str | None:
    """Write the people file asked for by `--people` / `--people-file`, if any.

    Args:
        args: the parsed CLI arguments.

    Returns:
        The written path, or None when no people file was asked for.
    """
    if args.people is None:
        return None
    rows = generate_people(args.people, seed=args.seed)
    path = write_people_file(args.people_file, rows, format=args.people_format)
    print(
        f"Wrote {len(rows)} people ({args.people_format}, seed {args.seed}) to {path}", flush=True
    )
    return str(path)


def _print_banner(sandbox: Sandbox) -> None:
    """Print how to reach a started sandbox (URL, key, campaign, example calls)."""
    lead = next((lead.lead_id for lead in sandbox.leads if lead.has_contact), "lea_...")
    lines = [
        f"lemlist sandbox running at {sandbox.base_url}",
        f"API key:     {sandbox.api_key}",
        f"Campaign id: {sandbox.campaign_id}",
        f"Leads:       {len(sandbox.leads)} (seed {sandbox.config.seed})",
        f"Team id:     {sandbox.team_id}",
        "Example:",
        f'  curl -u ":{sandbox.api_key}" "{sandbox.base_url}/campaigns/{sandbox.campaign_id}'
        f'/export/leads?state=all&format=json"',
        f'  curl -X POST -u ":{sandbox.api_key}" '
        f'"{sandbox.base_url}/leads/{lead}/enrich?findEmail=true"',
        "Press Ctrl-C to stop.",
    ]
    if sandbox.config.state_file:
        lines.insert(-1, f"State file:  {sandbox.config.state_file} (saved on exit)")
    for line in lines:
        print(line, flush=True)


def _usage_error(args: argparse.Namespace) -> str | None:
    """The message of a bad flag combination, or None."""
    if args.people is not None and (args.people < 0 or not args.people_file):
        return "--people needs N >= 0 and --people-file PATH"
    if args.no_serve and args.people is None:
        return "--no-serve only makes sense with --people and --people-file"
    return None


def _serve(args: argparse.Namespace, config: SandboxConfig) -> int:
    """Build and start the sandbox, serve until SIGINT/SIGTERM; returns the exit code."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        sandbox = Sandbox(config)
    except ValueError as exc:
        print(f"cannot load the sandbox state: {exc}", file=sys.stderr)
        return 2
    if args.admin:
        add_admin_routes(sandbox.app)
    try:
        sandbox.start()
    except (OSError, RuntimeError) as exc:
        print(
            f"cannot start the lemlist sandbox on {config.host}:{config.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        _print_banner(sandbox)
        while not stop.wait(0.5):
            pass
        print("Stopping the lemlist sandbox.", flush=True)
    finally:
        sandbox.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until interrupted.

    Args:
        argv: arguments (default: `sys.argv[1:]`).

    Returns:
        The exit code (0 after Ctrl-C/SIGTERM, or once the people file is written with
        `--no-serve`; 1 when it cannot start or write; 2 on a bad configuration or state file).
    """
    args = build_parser().parse_args(argv)
    usage = _usage_error(args)
    if usage is not None:
        print(usage, file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        print(f"invalid sandbox configuration:\n{exc}", file=sys.stderr)
        return 2
    try:
        write_people(args)
    except OSError as exc:
        print(f"cannot write the people file {args.people_file}: {exc}", file=sys.stderr)
        return 1
    if args.no_serve:
        return 0
    return _serve(args, config)


if __name__ == "__main__":
    sys.exit(main())
