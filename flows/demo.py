"""The main job: an enrichment flow against a local lemlist sandbox, on Prefect's local API.

`python3 run.py demo` runs `enrich-campaign` on a seeded campaign of 200 leads;
`python3 run.py demo --contacts` runs `enrich-contacts` on a seeded file of 2,000 people.
The results land in `out/` (CSV, JSON Lines) and are merged into an SQLite database there
(`out/lemlist-demo.sqlite`, tables `lemlist_enrichments` and `lemlist_people`): a second run
updates the same rows.

The sandbox's state (its key, its team, what it enriched, the credits) lives in `.demo/`, and the
enrichment ledger in `.prefect/`, so a second run finds what the first one started or finished:
it spends no credit and says so. `--fresh` starts over with a new sandbox. `--json` prints the
run's summary as JSON (a `PipelineSummary`, as the CLI's `--json`) and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from prefect_lemlist import ContactOptions, EnrichmentOptions, LemlistCredentials
from prefect_lemlist.cli import run_flow
from prefect_lemlist.flows import enrich_campaign, enrich_contacts
from prefect_lemlist.sandbox import SandboxConfig, generate_people, run_sandbox, write_people_file

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / ".demo"
LEADS_TABLE = "lemlist_enrichments"
PEOPLE_TABLE = "lemlist_people"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 run.py demo", description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", action="store_true", help="people who are not leads (bulk)")
    parser.add_argument("--fresh", action="store_true", help="start over with a new sandbox")
    parser.add_argument("--leads", type=int, default=200, help="leads of the seeded campaign")
    parser.add_argument("--people", type=int, default=2000, help="people of the seeded file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sandbox's data")
    parser.add_argument(
        "--collection",
        choices=["poll", "webhook"],
        help="how results come back (default: poll; webhook with --contacts, where one poll "
        "per person at lemlist's rate would take minutes)",
    )
    parser.add_argument("--find-phone", action="store_true", help="also find phone numbers")
    parser.add_argument("--output-dir", default=str(ROOT / "out"), help="export directory")
    parser.add_argument(
        "--database",
        help="where the results are also merged (a SQLAlchemy URL; default: an SQLite file "
        "lemlist-demo.sqlite in the export directory)",
    )
    parser.add_argument(
        "--state-dir", default=str(DEMO_DIR), help="where the demo keeps its sandbox's state"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the run's summary as JSON (PipelineSummary) instead of markdown; the demo's "
        "own lines go to stderr",
    )
    return parser


def _demo_state(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The demo's persistent identity (a new one with `--fresh` or other sandbox data);
    returns it with the number of this run."""
    home = Path(args.state_dir)
    path = home / "demo.json"
    wanted = {"leads": args.leads, "seed": args.seed}
    state = json.loads(path.read_text()) if path.exists() and not args.fresh else None
    if state is None or {k: state.get(k) for k in wanted} != wanted:
        shutil.rmtree(home, ignore_errors=True)
        state = {
            **wanted,
            "api_key": f"sandbox-{secrets.token_hex(8)}",
            "team_id": f"tea_demo{secrets.token_hex(6)}",
            "runs": 0,
        }
    state["runs"] += 1
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return state, state["runs"]


def _options(cls: type[Any], args: argparse.Namespace, table: str) -> Any:
    """The demo's options for either flow (quick first polls: the sandbox takes 1-4 s), the
    results also merged into the demo's database."""
    return cls(
        find_phone=args.find_phone,
        collection=args.collection,
        first_poll_seconds=3.0,
        output_dir=args.output_dir,
        destination={"target": _database(args), "table": table},
    )


def _database(args: argparse.Namespace) -> str:
    if args.database:
        return str(args.database)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(args.output_dir).resolve() / 'lemlist-demo.sqlite'}"


def _show_query(args: argparse.Namespace, table: str) -> None:
    """One command a user can paste to see the rows in the demo's SQLite database."""
    database = _database(args)
    if not database.startswith("sqlite:///"):
        return
    path = database.removeprefix("sqlite:///")
    query = f"select status, count(*) from {table} group by status"  # noqa: S608 - our constant
    _say(
        args,
        f'in the database: python3 -c "import sqlite3; '
        f"print(sqlite3.connect('{path}').execute('{query}').fetchall())\"",
    )


def _say(args: argparse.Namespace, line: str) -> None:
    """One of the demo's own lines: on stdout, or on stderr with `--json` (stdout is the JSON)."""
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    args = _parser().parse_args(argv)
    args.collection = args.collection or ("webhook" if args.contacts else "poll")
    state, run_number = _demo_state(args)
    config = SandboxConfig(
        leads=args.leads,
        seed=args.seed,
        api_keys=[state["api_key"]],
        team_id=state["team_id"],
        enrichment_seconds=(1.0, 4.0),
        state_file=str(Path(args.state_dir) / "sandbox.json"),
    )
    with run_sandbox(config) as sandbox:
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        again = "" if run_number == 1 else ": earlier results are reused, --fresh starts over"
        where = f"run {run_number} on {args.state_dir}{again}"
        _say(args, f"lemlist sandbox on {sandbox.base_url} ({where})")
        if args.contacts:
            return _contacts(args, credentials)
        _say(args, f"campaign {sandbox.campaign_id}: {args.leads} leads (seed {args.seed})")
        options = _options(EnrichmentOptions, args, LEADS_TABLE)
        status = run_flow(
            lambda: enrich_campaign(
                sandbox.campaign_id, credentials, options=options, return_state=True
            ),
            debug=args.debug,
            as_json=args.json,
        )
        _show_query(args, LEADS_TABLE)
        return status


def _contacts(args: argparse.Namespace, credentials: LemlistCredentials) -> int:
    people = Path(args.state_dir) / f"people-{args.people}-seed{args.seed}.csv"
    if not people.exists():
        write_people_file(people, generate_people(args.people, seed=args.seed))
    _say(args, f"people file {people} ({args.people} rows, seed {args.seed})")
    options = _options(ContactOptions, args, PEOPLE_TABLE)
    status = run_flow(
        lambda: enrich_contacts(
            str(people), credentials_block=credentials, options=options, return_state=True
        ),
        debug=args.debug,
        as_json=args.json,
    )
    _show_query(args, PEOPLE_TABLE)
    return status


if __name__ == "__main__":
    sys.exit(main())
