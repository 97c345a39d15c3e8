"""The `prefect-lemlist` command: the flows, saving credentials, the shared limit, the sandbox.

The flow commands' option flags, their help (description, default, choices, bounds) and their
mapping back to the fields are generated from the options models (`EnrichmentOptions`,
`ContactOptions`, `WebhookSettings`); only the few flags named differently from their field are
listed here (`FLAG_ALIASES`). `--json` prints the run's `PipelineSummary` instead of markdown.

A known failure ends with one `error:` line (and at most one `hint:` line) and exit status 1 (2
for usage errors, 130 after Ctrl-C); tracebacks and Prefect's engine chatter stay in the flow
run's logs (the Prefect UI) unless `--debug`. On a terminal a progress bar follows the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from prefect_lemlist.cli_flags import OPTION_DEST, flag_name, option_flags
from prefect_lemlist.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
RESUME_HINT = "re-run the same command to resume (nothing already started is started again)"


class UsageError(Exception):
    """A command line that cannot run (exit status 2)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[1:] if argv[:1] == ["--debug"] else argv
    if rest[:1] == ["sandbox"]:  # the sandbox parses its own options (`sandbox --help` too)
        return _run_sandbox(argparse.Namespace(sandbox_args=rest[1:]))
    command = next((arg for arg in rest if not arg.startswith("-")), None)
    parser = build_parser(flow_options_of={command} if command else set())
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    if not _debug(args):
        _quiet_engine_services()
    try:
        return args.handler(args)
    except UsageError as exc:
        _error(str(exc), exc.hint)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted", RESUME_HINT)
        return EXIT_INTERRUPTED


def build_parser(flow_options_of: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command.

    Args:
        flow_options_of: the flow commands whose options' flags to declare (default: all);
            they import Prefect, which `prefect-lemlist --help` does not need.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(  # before or after the command: default=SUPPRESS keeps either
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and Prefect's own log lines",
    )
    parser = argparse.ArgumentParser(
        prog="prefect-lemlist",
        description="Enrich leads and people with lemlist, from Prefect flows.",
        parents=[common],
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, add_command in (
        ("enrich-campaign", _campaign_command),
        ("enrich-leads", _leads_command),
        ("enrich-contacts", _contacts_command),
    ):
        flags = flow_options_of is None or name in flow_options_of
        add_command(commands, common, flow_options=flags)
    _save_credentials_command(commands, common)
    _global_limit_command(commands, common)
    _sandbox_command(commands)
    return parser


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False))


_ENGINE_SERVICES = ("EventsWorker", "APILogWorker")
"""Prefect's background services log under their class name (not under `prefect`), e.g.
`EventsWorker - Still processing items` while they deliver the last events at exit."""


def _quiet_engine_services() -> None:
    """Keep the services' warnings and notes off the terminal (they are Prefect's business, and
    came before the `error:` line); their errors still show."""
    for name in _ENGINE_SERVICES:
        logging.getLogger(name).setLevel(logging.ERROR)


# ----------------------------------------------------------------------------- commands


def _campaign_command(
    commands: Any, common: argparse.ArgumentParser, *, flow_options: bool
) -> None:
    parser = commands.add_parser(
        "enrich-campaign",
        help="enrich the leads of a lemlist campaign that need it",
        description="Enrich the leads of a campaign that need it, collect the results, export.",
        parents=[common],
    )
    parser.add_argument("campaign_id", help="the campaign (cam_…, in the campaign's URL)")
    parser.add_argument(
        "--state", default="all", help="lead states to export (default: all; e.g. contacted)"
    )
    parser.add_argument(
        "--lead-id",
        dest="lead_ids",
        action="append",
        metavar="LEAD_ID",
        help="trial: only this lead of the campaign (repeatable)",
    )
    if flow_options:
        _flow_options(parser, "EnrichmentOptions")
    parser.set_defaults(handler=_run_campaign)


def _leads_command(commands: Any, common: argparse.ArgumentParser, *, flow_options: bool) -> None:
    parser = commands.add_parser(
        "enrich-leads",
        help="enrich lead ids, emails of leads, or a file of either",
        description=(
            "Enrich lead ids, emails of people who are leads, or the rows of a CSV / JSON Lines "
            "file with a lead_id (or email) column; other columns are carried into the export."
        ),
        parents=[common],
    )
    parser.add_argument("lead_ids", nargs="*", metavar="LEAD_ID", help="lead ids (lea_…)")
    parser.add_argument("--csv", "--file", dest="path", help="a CSV or JSON Lines file")
    _sql_input_flags(parser)
    parser.add_argument(
        "--email",
        dest="emails",
        action="append",
        metavar="EMAIL",
        help="a lead's email (repeatable)",
    )
    parser.add_argument(
        "--lead-id",
        dest="more_ids",
        action="append",
        metavar="LEAD_ID",
        help="a lead id (repeatable)",
    )
    if flow_options:
        _flow_options(parser, "EnrichmentOptions")
    parser.set_defaults(handler=_run_leads)


def _contacts_command(
    commands: Any, common: argparse.ArgumentParser, *, flow_options: bool
) -> None:
    parser = commands.add_parser(
        "enrich-contacts",
        help="enrich people who are not lemlist leads (500 per bulk request)",
        description=(
            "Enrich the people of a CSV / JSON Lines file (email, linkedin_url, first_name, "
            "last_name, company_name, company_domain, job_title, or lemlist's camelCase names) "
            "through lemlist's bulk endpoint; every row is in the export with its columns."
        ),
        parents=[common],
    )
    parser.add_argument("path", nargs="?", help="the people file (.csv, or .jsonl)")
    _sql_input_flags(parser)
    if flow_options:
        _flow_options(parser, "ContactOptions")
    parser.set_defaults(handler=_run_contacts)


def _sql_input_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-sql",
        dest="sql_query",
        metavar="QUERY",
        help="read the rows from a SQL query (same columns as a file), streamed",
    )
    parser.add_argument(
        "--sql-source",
        metavar="URL_OR_BLOCK",
        help="the database --from-sql reads: a SQLAlchemy URL or a saved SqlAlchemyConnector "
        "block's name (default: the --to database)",
    )


def _save_credentials_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "save-credentials",
        help="save a LemlistCredentials block from LEMLIST_API_KEY",
        description=(
            "Save a LemlistCredentials block. The key is read from LEMLIST_API_KEY only (never "
            "from the command line) and never printed; LEMLIST_BASE_URL or --base-url points it "
            "elsewhere (a proxy, the sandbox). The key is checked with GET /team/credits first."
        ),
        parents=[common],
    )
    parser.add_argument("name", nargs="?", default="lemlist", help="block name (default: lemlist)")
    parser.add_argument("--base-url", help="API base URL (default: LEMLIST_BASE_URL, or lemlist's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing block")
    parser.add_argument("--no-check", action="store_true", help="save without checking the key")
    parser.add_argument(
        "--global-rate-limit",
        help="a Prefect global concurrency limit shared by every process using this key",
    )
    parser.set_defaults(handler=_run_save_credentials)


def _global_limit_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "global-limit",
        help="create the Prefect limit that shares one key's budget between processes",
        description="Create (or update) a key's shared global concurrency limit and its companion.",
        parents=[common],
    )
    parser.add_argument(
        "name", help="the limit's name (then: save-credentials --global-rate-limit)"
    )
    parser.add_argument(
        "--limit", type=int, default=20, help="lemlist's requests per window (default: 20)"
    )
    parser.set_defaults(handler=_run_global_limit)


def _sandbox_command(commands: Any) -> None:
    parser = commands.add_parser(
        "sandbox",
        help="run the local lemlist sandbox (see: prefect-lemlist sandbox -h)",
        add_help=False,
        description="Run the local lemlist sandbox.",
    )
    parser.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=_run_sandbox)


def _flow_options(parser: argparse.ArgumentParser, model_name: str) -> None:
    """The options every flow command takes: `--block`, `--json`, and one flag per field of the
    flow's options model (see `option_flags`)."""
    from prefect_lemlist.pipeline import options

    model: type[BaseModel] = getattr(options, model_name)
    parser.add_argument("--block", help="saved LemlistCredentials block (default: LEMLIST_API_KEY)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the run's summary as JSON (PipelineSummary) instead of markdown",
    )
    group = parser.add_argument_group(f"options ({model.__name__})")
    for option in option_flags(model):
        option.add_to(group)


# ----------------------------------------------------------------------------- flow runs


def _options(args: argparse.Namespace, cls: type[BaseModel]) -> Any:
    """The flow's options from the flags (unset flags keep the model's defaults)."""
    fields: dict[str, Any] = {}
    for key, value in vars(args).items():
        if not key.startswith(OPTION_DEST) or value is None:
            continue
        *parents, name = key.removeprefix(OPTION_DEST).split(".")
        target = fields
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise UsageError(_validation_text(exc, flags=True)) from None


def _validation_text(exc: ValidationError, *, flags: bool = False) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not where:
        return message
    return f"{flag_name(where) if flags else where.replace('_', '-')}: {message}"


def _campaign_check(campaign_id: str) -> str:
    from prefect_lemlist.api.validation import CampaignId

    try:
        return CampaignId(campaign_id)
    except ValueError as exc:
        raise UsageError(
            str(exc), "a campaign id looks like cam_… (the last part of the campaign's URL)"
        ) from None


def _credentials_check(args: argparse.Namespace) -> None:
    if not args.block and not _environment_key():
        raise UsageError(
            "no lemlist credentials: pass --block NAME or set LEMLIST_API_KEY",
            "save a block with `prefect-lemlist save-credentials NAME` (reads LEMLIST_API_KEY)",
        )


def _environment_key() -> str:
    """`LEMLIST_API_KEY` (through the settings), or "" when unset."""
    from prefect_lemlist.settings import lemlist_settings

    key = lemlist_settings().api_key
    return key.get_secret_value().strip() if key is not None else ""


def _file_check(path: str) -> None:
    file = Path(path)
    if not file.exists():
        raise UsageError(f"input file not found: {file}")
    if file.is_dir():
        raise UsageError(f"input path is a directory, not a file: {file}")


def _sql_check(args: argparse.Namespace, options: Any) -> None:
    if args.sql_source is not None and args.sql_query is None:
        raise UsageError("--sql-source is the database of --from-sql: give --from-sql QUERY too")
    if args.sql_query is not None and args.sql_source is None and not options.destination.target:
        raise UsageError(
            "--from-sql needs a database to read",
            hint="add --sql-source URL (e.g. sqlite:///crm.db) or --to URL (read and write there)",
        )


def _run_campaign(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_campaign import enrich_campaign
    from prefect_lemlist.pipeline.options import EnrichmentOptions

    campaign_id = _campaign_check(args.campaign_id)
    options = _options(args, EnrichmentOptions)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_campaign(
            campaign_id,
            args.block,
            state=args.state,
            options=options,
            lead_ids=args.lead_ids,
            return_state=True,
        ),
        debug=_debug(args),
        as_json=args.json,
    )


def _run_leads(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_leads import enrich_leads
    from prefect_lemlist.pipeline.options import EnrichmentOptions

    options = _options(args, EnrichmentOptions)
    ids = [*args.lead_ids, *(args.more_ids or [])]
    given = [bool(ids), args.path is not None, bool(args.emails), args.sql_query is not None]
    if sum(given) != 1:
        raise UsageError(
            "give exactly one of: lead ids, --csv FILE, --email EMAIL, or --from-sql QUERY"
        )
    if args.path is not None:
        _file_check(args.path)
    _sql_check(args, options)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_leads(
            lead_ids=ids or None,
            path=args.path,
            credentials_block=args.block,
            options=options,
            emails=args.emails,
            sql_query=args.sql_query,
            sql_source=args.sql_source,
            return_state=True,
        ),
        debug=_debug(args),
        as_json=args.json,
    )


def _run_contacts(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_contacts import enrich_contacts
    from prefect_lemlist.pipeline.options import ContactOptions

    options = _options(args, ContactOptions)
    if (args.path is None) == (args.sql_query is None):
        raise UsageError("give exactly one of: a people file, or --from-sql QUERY")
    if args.path is not None:
        _file_check(args.path)
    _sql_check(args, options)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_contacts(
            path=args.path,
            credentials_block=args.block,
            options=options,
            sql_query=args.sql_query,
            sql_source=args.sql_source,
            return_state=True,
        ),
        debug=_debug(args),
        as_json=args.json,
    )


def run_flow(start: Callable[[], Any], *, debug: bool = False, as_json: bool = False) -> int:
    """Run a flow (a call with `return_state=True`) and report: the summary, or one error.

    Args:
        start: makes the flow call's coroutine.
        debug: show tracebacks and Prefect's own lines.
        as_json: print the summary as JSON (a `PipelineSummary`) instead of markdown.

    Returns:
        The exit status: 0, 1 (the run failed), 130 (interrupted).
    """
    from prefect_lemlist.flows._common import CANCEL_IS_INTERRUPT
    from prefect_lemlist.local_api import local_api_unless_configured
    from prefect_lemlist.pipeline.report import render_summary

    async def run() -> Any:
        CANCEL_IS_INTERRUPT.set(True)
        state = await start()
        return state, await state.aresult(raise_on_failure=False)

    with local_api_unless_configured(), Console(debug=debug):
        state, result = asyncio.run(run())
    if state.is_cancelled():
        _error("interrupted", RESUME_HINT)
        return EXIT_INTERRUPTED
    if state.is_completed():
        print(result.model_dump_json(indent=2) if as_json else render_summary(result))
        return EXIT_OK
    if isinstance(result, BaseException):
        _error(_one_line(result), getattr(result, "hint", None))
    else:
        _error(f"the flow run ended {state.name}: {_one_line(state.message or '')}")
    return EXIT_FAILED


def _one_line(error: BaseException | str) -> str:
    if isinstance(error, ValidationError):
        return _validation_text(error)
    if isinstance(error, BaseException):
        text = getattr(error, "message", None) or str(error) or type(error).__name__
    else:
        text = error
    return " ".join(str(text).split())


def _error(message: str, hint: str | None = None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


# ----------------------------------------------------------------------------- other commands


def _run_save_credentials(args: argparse.Namespace) -> int:
    from prefect_lemlist.credentials import LemlistCredentials

    api_key = _environment_key()
    if not api_key:
        raise UsageError(
            "set LEMLIST_API_KEY in the environment first",
            "the key is read from the environment only, so it never lands in the shell history",
        )
    fields: dict[str, Any] = {"api_key": api_key}
    from prefect_lemlist.settings import lemlist_settings

    base_url = args.base_url or (lemlist_settings().base_url or "").strip()
    if base_url:
        fields["base_url"] = base_url
    if args.global_rate_limit:
        fields["global_rate_limit"] = args.global_rate_limit
    try:
        block = LemlistCredentials(**fields)
    except ValidationError as exc:
        raise UsageError(_validation_text(exc)) from None
    if not args.no_check and not _key_works(block):
        return EXIT_FAILED
    return _save_block(block, args.name, args.overwrite)


def _key_works(block: Any) -> bool:
    """Check the key with `GET /team/credits`; prints the credits or one error."""
    from prefect_lemlist.api.exceptions import LemlistAuthError, LemlistError

    async def credits() -> float:
        async with block.get_client() as client:
            return (await client.get_credits()).credits

    try:
        balance = asyncio.run(credits())
    except LemlistAuthError as exc:
        _error(
            f"lemlist refused this key: {_one_line(exc)}",
            "check the key, or save it anyway with --no-check",
        )
        return False
    except LemlistError as exc:
        _error(
            _one_line(exc), exc.hint or f"check the base URL ({block.base_url}), or use --no-check"
        )
        return False
    print(f"Key checked at {block.base_url}: the team has {balance:g} credits.")
    return True


def _save_block(block: Any, name: str, overwrite: bool) -> int:
    from prefect_lemlist.local_api import local_api_unless_configured

    try:
        with local_api_unless_configured():  # not Prefect's ephemeral API and its telemetry
            block.save(name, overwrite=overwrite, _sync=True)
    except ValueError as exc:
        if "already" in str(exc):
            _error(
                f"a LemlistCredentials block named {name!r} already exists",
                "add --overwrite to replace it",
            )
            return EXIT_FAILED
        _error(_one_line(exc))
        return EXIT_FAILED
    fingerprint = block.fingerprint()
    print(f"Saved LemlistCredentials block {name!r} for {block.base_url} (key {fingerprint}).")
    print(f'Use it: --block {name}, or `await LemlistCredentials.aload("{name}")` in a flow.')
    return EXIT_OK


def _run_global_limit(args: argparse.Namespace) -> int:
    from prefect_lemlist.local_api import local_api_unless_configured
    from prefect_lemlist.ratelimit.prefect_leases import ensure_global_rate_limit

    try:
        with local_api_unless_configured():
            asyncio.run(ensure_global_rate_limit(args.name, limit=args.limit))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"Global concurrency limit {args.name!r}: {args.limit} slots.")
    print(f"Use it: prefect-lemlist save-credentials NAME --global-rate-limit {args.name}")
    return EXIT_OK


def _run_sandbox(args: argparse.Namespace) -> int:
    from prefect_lemlist.sandbox.__main__ import build_parser as sandbox_parser
    from prefect_lemlist.sandbox.__main__ import main as sandbox_main

    parser = sandbox_parser()  # `--help` and usage errors under this command's name, with defaults
    parser.prog = "prefect-lemlist sandbox"
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.parse_args(args.sandbox_args)
    return sandbox_main(args.sandbox_args)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
