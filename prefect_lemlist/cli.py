"""The `prefect-lemlist` command: the flows, saving credentials, the shared limit, the sandbox.

A known failure ends with one `error:` line (and at most one `hint:` line) and exit status 1 (2
for usage errors, 130 after Ctrl-C); tracebacks and Prefect's engine chatter stay in the flow
run's logs (the Prefect UI) unless `--debug`. On a terminal a progress bar follows the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from prefect_lemlist.api.workflows import WORKFLOWS

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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except UsageError as exc:
        _error(str(exc), exc.hint)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted", RESUME_HINT)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="prefect-lemlist",
        description="Enrich leads and people with lemlist, from Prefect flows.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and Prefect's own log lines"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _campaign_command(commands)
    _leads_command(commands)
    _contacts_command(commands)
    _save_credentials_command(commands)
    _global_limit_command(commands)
    _sandbox_command(commands)
    return parser


# ----------------------------------------------------------------------------- commands


def _campaign_command(commands: Any) -> None:
    parser = commands.add_parser(
        "enrich-campaign",
        help="enrich the leads of a lemlist campaign that need it",
        description="Enrich the leads of a campaign that need it, collect the results, export.",
    )
    parser.add_argument("campaign_id", help="the campaign (cam_…)")
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
    _flow_options(parser, leads=True)
    parser.set_defaults(handler=_run_campaign)


def _leads_command(commands: Any) -> None:
    parser = commands.add_parser(
        "enrich-leads",
        help="enrich lead ids, emails of leads, or a file of either",
        description=(
            "Enrich lead ids, emails of people who are leads, or the rows of a CSV / JSON Lines "
            "file with a lead_id (or email) column; other columns are carried into the export."
        ),
    )
    parser.add_argument("lead_ids", nargs="*", metavar="LEAD_ID", help="lead ids (lea_…)")
    parser.add_argument("--csv", "--file", dest="path", help="a CSV or JSON Lines file")
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
    _flow_options(parser, leads=True)
    parser.set_defaults(handler=_run_leads)


def _contacts_command(commands: Any) -> None:
    parser = commands.add_parser(
        "enrich-contacts",
        help="enrich people who are not lemlist leads (500 per bulk request)",
        description=(
            "Enrich the people of a CSV / JSON Lines file (email, linkedin_url, first_name, "
            "last_name, company_name, company_domain, job_title, or lemlist's camelCase names) "
            "through lemlist's bulk endpoint; every row is in the export with its columns."
        ),
    )
    parser.add_argument("path", help="the people file (.csv, or .jsonl)")
    _flow_options(parser, leads=False)
    parser.set_defaults(handler=_run_contacts)


def _save_credentials_command(commands: Any) -> None:
    parser = commands.add_parser(
        "save-credentials",
        help="save a LemlistCredentials block from LEMLIST_API_KEY",
        description=(
            "Save a LemlistCredentials block. The key is read from LEMLIST_API_KEY only (never "
            "from the command line) and never printed; LEMLIST_BASE_URL or --base-url points it "
            "elsewhere (a proxy, the sandbox). The key is checked with GET /team/credits first."
        ),
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


def _global_limit_command(commands: Any) -> None:
    parser = commands.add_parser(
        "global-limit",
        help="create the Prefect limit that shares one key's budget between processes",
        description="Create (or update) a key's shared global concurrency limit and its companion.",
    )
    parser.add_argument(
        "name", help="the limit's name (then: save-credentials --global-rate-limit)"
    )
    parser.add_argument("--limit", type=int, default=20, help="lemlist's requests per window (20)")
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


def _flow_options(parser: argparse.ArgumentParser, *, leads: bool) -> None:
    """The options every flow command takes (the fields of the flow's options)."""
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser.add_argument("--block", help="saved LemlistCredentials block (default: LEMLIST_API_KEY)")
    for row in WORKFLOWS.values():
        flag = row.option.replace("_", "-")
        default = (
            f" (on by default; --no-{flag} turns it off)" if row.option == "find_email" else ""
        )
        parser.add_argument(
            f"--{flag}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=row.action + default,
        )
    parser.add_argument(
        "--force", action="store_true", help="enrich again what was done (costs again)"
    )
    parser.add_argument("--dry-run", action="store_true", help="report what would run and its cost")
    parser.add_argument("--max-credits", type=float, help="refuse to start above this cost")
    parser.add_argument("--limit", type=int, help="trial: enrich only the first N")
    if leads:
        parser.add_argument("--batch-size", type=int, help="leads per task run (default 100)")
    else:
        parser.add_argument("--bulk-size", type=int, help="people per bulk request (max 500)")
    parser.add_argument("--collection", choices=["poll", "webhook"], help="how to collect results")
    parser.add_argument("--webhook-public-url", help="URL where lemlist reaches the receiver")
    parser.add_argument("--webhook-port", type=int, help="receiver port (default: any free)")
    parser.add_argument(
        "--confirm-webhooks",
        choices=["when_unclear", "always", "never"],
        help="confirm webhook results with one poll (default: when_unclear)",
    )
    parser.add_argument("--collect-timeout", type=float, help="seconds before timed_out (600)")
    parser.add_argument("--output-dir", help="export directory (default: lemlist-output)")
    parser.add_argument("--output-name", help="export file name without extension")
    parser.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=["csv", "jsonl", "parquet"],
        help="export format (repeatable; default: csv and jsonl)",
    )


# ----------------------------------------------------------------------------- flow runs


def _options(args: argparse.Namespace, cls: type[BaseModel]) -> Any:
    """The flow's options from the flags (unset flags keep the defaults)."""
    names = {row.option: row.option for row in WORKFLOWS.values()} | {
        "max_credits": "max_credits",
        "limit": "limit",
        "batch_size": "batch_size",
        "bulk_size": "bulk_size",
        "collection": "collection",
        "collect_timeout": "collect_timeout_seconds",
        "output_dir": "output_dir",
        "output_name": "output_name",
        "formats": "formats",
    }
    fields = {
        field: getattr(args, name)
        for name, field in names.items()
        if getattr(args, name, None) is not None
    }
    fields["force"], fields["dry_run"] = args.force, args.dry_run
    webhook = {
        key: value
        for key, value in (
            ("public_url", args.webhook_public_url),
            ("port", args.webhook_port),
            ("confirm", args.confirm_webhooks),
        )
        if value is not None
    }
    if webhook:
        fields["webhook"] = webhook
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise UsageError(_validation_text(exc)) from None


def _validation_text(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where.replace('_', '-')}: {message}" if where else message


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


def _run_campaign(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_campaign import enrich_campaign
    from prefect_lemlist.pipeline.options import EnrichmentOptions

    options = _options(args, EnrichmentOptions)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_campaign(
            args.campaign_id,
            args.block,
            state=args.state,
            options=options,
            lead_ids=args.lead_ids,
            return_state=True,
        ),
        debug=args.debug,
    )


def _run_leads(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_leads import enrich_leads
    from prefect_lemlist.pipeline.options import EnrichmentOptions

    options = _options(args, EnrichmentOptions)
    ids = [*args.lead_ids, *(args.more_ids or [])]
    given = [bool(ids), args.path is not None, bool(args.emails)]
    if sum(given) != 1:
        raise UsageError("give exactly one of: lead ids, --csv FILE, or --email EMAIL")
    if args.path is not None:
        _file_check(args.path)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_leads(
            lead_ids=ids or None,
            csv_path=args.path,
            credentials_block=args.block,
            options=options,
            emails=args.emails,
            return_state=True,
        ),
        debug=args.debug,
    )


def _run_contacts(args: argparse.Namespace) -> int:
    from prefect_lemlist.flows.enrich_contacts import enrich_contacts
    from prefect_lemlist.pipeline.options import ContactOptions

    options = _options(args, ContactOptions)
    _file_check(args.path)
    _credentials_check(args)
    return run_flow(
        lambda: enrich_contacts(
            path=args.path, credentials_block=args.block, options=options, return_state=True
        ),
        debug=args.debug,
    )


def run_flow(start: Callable[[], Any], *, debug: bool = False) -> int:
    """Run a flow (a call with `return_state=True`) and report: the summary, or one error.

    Args:
        start: makes the flow call's coroutine.
        debug: show tracebacks and Prefect's own lines.

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

    with local_api_unless_configured(), _Console(debug=debug):
        state, result = asyncio.run(run())
    if state.is_cancelled():
        _error("interrupted", RESUME_HINT)
        return EXIT_INTERRUPTED
    if state.is_completed():
        print(render_summary(result))
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


class _Console:
    """The terminal during a flow run: our own log lines, warnings, a progress bar on a TTY;
    no tracebacks and no engine chatter (both still reach the flow run's logs)."""

    def __init__(self, *, debug: bool) -> None:
        self.debug = debug
        self.bar = None if debug or not sys.stderr.isatty() else _ProgressBar()
        self._filter = _ConsoleFilter(hide_progress=self.bar is not None)
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> _Console:
        from prefect.logging.handlers import PrefectConsoleHandler

        from prefect_lemlist.pipeline.report import add_progress_listener

        if not self.debug:
            loggers = [logging.getLogger(), logging.getLogger("prefect")]
            self._handlers = [
                h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)
            ]
            for handler in self._handlers:
                handler.addFilter(self._filter)
        if self.bar is not None:
            add_progress_listener(self.bar.update)
        return self

    def __exit__(self, *exc_info: object) -> None:
        from prefect_lemlist.pipeline.report import remove_progress_listener

        for handler in self._handlers:
            handler.removeFilter(self._filter)
        if self.bar is not None:
            remove_progress_listener(self.bar.update)
            self.bar.stop()


_QUIET_LOGGERS = ("prefect_lemlist.client",)
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _ConsoleFilter(logging.Filter):
    """Keeps prefect-lemlist's lines and warnings; drops tracebacks, Prefect's INFO chatter,
    failure lines the CLI reports itself, the client's retry notes (the error, if any, says what
    happened), the summary (printed at the end) and, under a progress bar, the progress lines."""

    def __init__(self, *, hide_progress: bool) -> None:
        super().__init__()
        self.hide_progress = hide_progress

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        if "Traceback (most recent call last)" in record.getMessage():
            return False
        kind = getattr(record, "lemlist_kind", None)
        if kind is not None:
            return kind != "summary" and not (kind == "progress" and self.hide_progress)
        if record.name.startswith(_QUIET_LOGGERS):
            return False  # retries the run recovers from (an error says what happened)
        if record.name.startswith("prefect"):  # the engine: its warnings about the run only
            return record.name in _RUN_LOGGERS and record.levelno == logging.WARNING
        return True


class _ProgressBar:
    """A rich progress bar fed by the runs' progress events."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._phase: str | None = None

    def update(self, event: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                transient=False,
            )
            self._progress.start()
        if event.phase != self._phase and event.phase != "done":
            self._phase = event.phase
            text = "lemlist: starting" if event.phase == "start" else "lemlist: results"
            self._task = self._progress.add_task(text, total=max(event.total, 1))
        count = event.started if event.phase == "start" else event.finished
        self._progress.update(self._task, completed=min(count, event.total))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


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
    try:
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
    from prefect_lemlist.ratelimit.prefect_leases import ensure_global_rate_limit

    try:
        asyncio.run(ensure_global_rate_limit(args.name, limit=args.limit))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"Global concurrency limit {args.name!r}: {args.limit} slots.")
    print(f"Use it: prefect-lemlist save-credentials NAME --global-rate-limit {args.name}")
    return EXIT_OK


def _run_sandbox(args: argparse.Namespace) -> int:
    from prefect_lemlist.sandbox.__main__ import main as sandbox_main

    return sandbox_main(args.sandbox_args)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
