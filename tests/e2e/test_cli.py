"""The `prefect-lemlist` command as a user meets it: real processes against a sandbox and the
session's Prefect server (issue 11: errors, setup, results, CLI).

Every flow command runs in a child process (the console script, `python -m flows...` or
`python blocks/save_credentials.py`) with `PREFECT_API_URL` pointing at the session's server, so
the flow runs it records can be read back here.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from _files import read_csv
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL

from prefect_lemlist.cli import _quiet_engine_services, build_parser
from prefect_lemlist.cli_flags import FLAG_ALIASES, option_flags
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.pipeline.options import (
    ContactOptions,
    DestinationSettings,
    EnrichmentOptions,
    WebhookSettings,
)
from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.pipeline.schema import RESULT_COLUMNS
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox
from prefect_lemlist.sandbox.__main__ import build_parser as sandbox_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).parent / "prefect-lemlist")
COMMANDS = [
    "enrich-campaign",
    "enrich-leads",
    "enrich-contacts",
    "save-credentials",
    "global-limit",
    "sandbox",
]
SUMMARY_HEADING = "# lemlist enrichment:"
LOG_PREFIX = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d+ \| ")
STAMPED_NAME = r"\d{8}T\d{6}Z(-\d+)?"
FAST = {"enrichment_seconds": (0.2, 0.6)}
SECRET = "sandbox-secret-" + "7c1e5a9b3d2f4680"  # keys that must never be printed
WRONG = "wrong-secret-" + "a1b2c3d4e5f60718"
ENGINE_NOISE = ("EventsWorker", "Still processing items", "database is locked", "OperationalError")
TEST_ONLY_VARIABLES = (
    "PREFECT_TEST_MODE",
    "PREFECT_UNIT_TEST_MODE",
    "PREFECT_TESTING_TEST_MODE",
    "PREFECT_TESTING_UNIT_TEST_MODE",
    "PREFECT_LOGGING_LEVEL",
    "PREFECT_DEBUG_MODE",
)


# ----------------------------------------------------------------------------- helpers


@dataclass(repr=False)
class Result:
    """A finished command: exit status, its two streams, and how long it took."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:  # what a failed assertion shows
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def cli_env(sandbox=None, **overrides: str | None) -> dict[str, str]:
    """The child's environment: ours, the session's Prefect server, the sandbox's key and URL;
    an override of None removes the variable."""
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    # a user's process: Prefect's test mode would force DEBUG logging (and its tracebacks)
    for name in (*TEST_ONLY_VARIABLES, "LEMLIST_API_KEY", "LEMLIST_BASE_URL"):
        env.pop(name, None)
    if sandbox is not None:
        env["LEMLIST_API_KEY"] = sandbox.api_key
        env["LEMLIST_BASE_URL"] = sandbox.base_url
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_cli(
    args: list[str],
    env: dict[str, str],
    *,
    command: list[str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 180,
) -> Result:
    start = time.monotonic()
    process = subprocess.run(
        [*(command or [SCRIPT]), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(process.returncode, process.stdout, process.stderr, time.monotonic() - start)


def one_error(result: Result, code: int | set[int]) -> tuple[str, str | None]:
    """Check the contract of a known failure; returns the error message and the hint."""
    codes = code if isinstance(code, set) else {code}
    assert result.code in codes, result
    assert "Traceback" not in result.output, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert len(errors) == 1, result
    assert len(hints) <= 1, result
    for noise in ENGINE_NOISE:  # Prefect's own chatter stays off the terminal
        assert noise not in result.output, (noise, result)
    assert "error:" not in result.stdout, result
    message = errors[0].removeprefix("error: ")
    assert message.strip(), result
    assert result.output.count(message) == 1, f"the error is repeated:\n{result}"
    return message, hints[0].removeprefix("hint: ") if hints else None


def repeated_lines(output: str) -> dict[str, int]:
    """Non-blank lines that appear more than once (log timestamps ignored)."""
    lines = (LOG_PREFIX.sub("", line).strip() for line in output.splitlines())
    counts = Counter(line for line in lines if line)
    return {line: n for line, n in counts.items() if n > 1}


def summary_of(result: Result) -> PipelineSummary:
    """The run's summary, as `--json` printed it (the whole of stdout)."""
    return PipelineSummary.model_validate_json(result.stdout)


def summary_paths(stdout: str) -> dict[str, list[str]]:
    """The export paths of a summary: `--json`'s fields, or the markdown's `- export:` and
    `- rejected rows:` lines."""
    if stdout.lstrip().startswith("{"):
        summary = PipelineSummary.model_validate_json(stdout)
        exports = (summary.csv_path, summary.jsonl_path, summary.parquet_path)
        rejected = [summary.rejected_path] if summary.rejected_path else []
        return {"export": [path for path in exports if path], "rejected": rejected}
    found: dict[str, list[str]] = {"export": [], "rejected": []}
    for line in stdout.splitlines():
        if line.startswith("- export:"):
            found["export"] = re.findall(r"`([^`]+)`", line)
        elif line.startswith("- rejected rows:"):
            found["rejected"] = re.findall(r"`([^`]+)`", line)
    return found


def assert_successful_run(result: Result) -> PipelineSummary:
    """Exit 0; stdout is the `--json` summary and nothing else; no line printed twice."""
    assert result.code == 0, result
    assert "Traceback" not in result.output, result
    summary = summary_of(result)  # the whole of stdout is the summary
    assert summary.csv_path or summary.jsonl_path or summary.parquet_path, result
    assert SUMMARY_HEADING not in result.output, result  # not the markdown too
    assert repeated_lines(result.stderr) == {}, result
    for noise in ENGINE_NOISE:
        assert noise not in result.output, (noise, result)
    return summary


def assert_markdown_summary(result: Result) -> None:
    """Exit 0; stdout is the markdown summary (printed once, last); no line printed twice."""
    assert result.code == 0, result
    assert "Traceback" not in result.output, result
    assert result.output.count(SUMMARY_HEADING) == 1, result
    assert result.stdout.lstrip().startswith(SUMMARY_HEADING), result  # nothing after it
    for item in ("- workflows:", "- rows:", "upper-bound", "- API requests:", "- export:"):
        assert item in result.stdout, (item, result)
    assert repeated_lines(result.output) == {}, result


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


async def flow_runs_for(output_dir: Path | str) -> list:
    """The flow runs of the session's server whose options name this output directory."""
    async with get_client() as client:
        runs = await client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200)
    return [
        run
        for run in runs
        if (run.parameters.get("options") or {}).get("output_dir") == str(output_dir)
    ]


def _default_sigint() -> None:  # a terminal's Ctrl-C, even if pytest was started with it ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sandbox():
    """A small campaign for the failure cases (nothing of it is ever enriched)."""
    with run_sandbox(SandboxConfig(leads=30, seed=11, api_keys=[SECRET], **FAST)) as running:
        yield running


@pytest.fixture(scope="module")
def poor_sandbox():
    """A team with 10 credits: any run of its campaign could cost more."""
    config = SandboxConfig(leads=30, seed=12, api_keys=[SECRET], credits=10, **FAST)
    with run_sandbox(config) as running:
        yield running


# ----------------------------------------------------------------------------- --help


def test_help_lists_every_command():
    result = run_cli(["--help"], cli_env())
    assert result.code == 0, result
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\b", result.stdout, re.MULTILINE), (command, result)
    bare = run_cli([], cli_env())  # no command: the help, as a usage error
    assert bare.code == 2, bare
    assert all(command in bare.output for command in COMMANDS), bare


def _actions(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    seen = {path[0] for path, _ in _actions(parser) if path}
    assert seen == set(COMMANDS)
    missing = [
        (path, action.option_strings or action.dest)
        for path, action in _actions(parser)
        # `sandbox` hands everything after it to the sandbox's own parser (checked below)
        if not (action.help or "").strip() and action.nargs != argparse.REMAINDER
    ]
    missing += [
        (("sandbox",), action.option_strings or action.dest)
        for _, action in _actions(sandbox_parser())
        if not (action.help or "").strip()
    ]
    assert missing == []
    for command in COMMANDS[:-1]:  # and the help text reaches `COMMAND --help`
        text = parser._subparsers._group_actions[0].choices[command].format_help()
        for path, action in _actions(parser):
            if path == (command,) and action.option_strings and action.help:
                assert action.option_strings[0] in text, (command, action.option_strings)


FLOW_COMMANDS = [
    ("enrich-campaign", EnrichmentOptions, ["cam_Trial0001"]),
    ("enrich-leads", EnrichmentOptions, ["lea_Trial0001"]),
    ("enrich-contacts", ContactOptions, ["people.csv"]),
]
KEPT_FLAGS = (  # the flag names users rely on
    "--find-email",
    "--no-find-email",
    "--verify-email",
    "--linkedin-enrichment",
    "--find-phone",
    "--force",
    "--dry-run",
    "--max-credits",
    "--limit",
    "--collection",
    "--collect-timeout",
    "--webhook-public-url",
    "--webhook-port",
    "--confirm-webhooks",
    "--output-dir",
    "--output-name",
    "--format",
)


def _sub_parser(command: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[command]


@pytest.mark.parametrize(("command", "model", "positional"), FLOW_COMMANDS)
def test_the_flow_flags_and_their_help_come_from_the_options_model(command, model, positional):
    by_flag = {
        flag: action for action in _sub_parser(command)._actions for flag in action.option_strings
    }
    nested = {"webhook": WebhookSettings, "destination": DestinationSettings}
    fields = {name: field for name, field in model.model_fields.items() if name not in nested}
    for prefix, settings in nested.items():
        fields |= {f"{prefix}.{name}": field for name, field in settings.model_fields.items()}
    flags = {option.path: option.flag for option in option_flags(model)}
    assert sorted(flags) == sorted(fields)  # every field is a flag, and nothing else is
    for path, flag in flags.items():
        assert flag == "--" + FLAG_ALIASES.get(path, path.replace(".", "-").replace("_", "-"))
        description = (fields[path].description or "").rstrip(".")
        assert by_flag[flag].help.startswith(description), (flag, by_flag[flag].help)
    for flag in KEPT_FLAGS:
        assert flag in by_flag, flag
    size = "--batch-size" if model is EnrichmentOptions else "--bulk-size"
    assert size in by_flag and ({"--batch-size", "--bulk-size"} - {size}).isdisjoint(by_flag)
    # the defaults, choices and bounds shown are the model's
    assert "default: 600" in by_flag["--collect-timeout"].help
    assert "default: lemlist-output" in by_flag["--output-dir"].help
    assert "default: on" in by_flag["--find-email"].help
    assert "default: csv, jsonl" in by_flag["--format"].help
    assert "at least 1" in by_flag["--limit"].help
    assert by_flag["--confirm-webhooks"].choices == ["when_unclear", "always", "never"]
    bound = model.model_fields[size.removeprefix("--").replace("-", "_")].metadata
    assert f"at most {next(m.le for m in bound if getattr(m, 'le', None))}" in by_flag[size].help


@pytest.mark.parametrize(("command", "model", "positional"), FLOW_COMMANDS)
def test_the_flags_map_back_to_the_options_fields(command, model, positional):
    from prefect_lemlist.cli import _options

    args = _sub_parser(command).parse_args(
        [
            *positional,
            "--no-find-email",
            "--verify-email",
            "--dry-run",
            "--limit",
            "5",
            "--max-credits",
            "12.5",
            "--collection",
            "webhook",
            "--collect-timeout",
            "30",
            "--webhook-port",
            "8080",
            "--webhook-public-url",
            "https://tunnel.example.test",
            "--confirm-webhooks",
            "always",
            "--output-dir",
            "out",
            "--output-name",
            "trial",
            "--format",
            "csv",
            "--format",
            "parquet",
        ]
    )
    options = _options(args, model)
    assert isinstance(options, model)
    assert (options.find_email, options.verify_email, options.dry_run) == (False, True, True)
    assert (options.limit, options.max_credits, options.collection) == (5, 12.5, "webhook")
    assert options.collect_timeout_seconds == 30.0
    assert options.webhook.port == 8080 and options.webhook.confirm == "always"
    assert options.webhook.public_url == "https://tunnel.example.test"
    assert (options.output_dir, options.output_name) == ("out", "trial")
    assert options.formats == ["csv", "parquet"]
    assert not options.force  # unset flags keep the model's defaults
    defaults = _options(_sub_parser(command).parse_args(positional), model)
    assert defaults == model()


def test_the_top_level_help_is_quick_and_does_not_import_prefect():
    code = (
        "import contextlib, io, sys\n"
        "from prefect_lemlist.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout  # the flow options are built on demand


def test_debug_goes_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--debug", "enrich-campaign", "cam_1"]).debug is True
    assert parser.parse_args(["enrich-campaign", "cam_1", "--debug"]).debug is True
    assert not getattr(parser.parse_args(["enrich-campaign", "cam_1"]), "debug", False)
    assert parser.parse_args(["save-credentials", "--debug"]).debug is True


def test_prefects_services_stay_quiet_unless_debug():
    _quiet_engine_services()
    for name in ("EventsWorker", "APILogWorker"):
        assert not logging.getLogger(name).isEnabledFor(logging.WARNING)
        assert logging.getLogger(name).isEnabledFor(logging.ERROR)


def test_sandbox_command_passes_its_options_to_the_sandbox(tmp_path):
    people = tmp_path / "people.csv"
    shown = run_cli(["sandbox", "--help"], cli_env(), timeout=60)  # as `--help` advertises
    assert shown.code == 0, shown
    assert "--leads" in shown.stdout, shown
    assert shown.stdout.startswith("usage: prefect-lemlist sandbox"), shown  # not `python -m`
    assert "python -m" not in shown.stdout, shown
    assert "(default: 200)" in shown.stdout and "(default: 8787)" in shown.stdout, shown
    wrong = run_cli(["sandbox", "--leads", "many"], cli_env(), timeout=60)
    assert wrong.code == 2 and "prefect-lemlist sandbox: error:" in wrong.stderr, wrong
    written = run_cli(
        ["sandbox", "--no-serve", "--people", "3", "--people-file", str(people)],
        cli_env(),
        timeout=60,
    )
    assert written.code == 0, written
    assert len(read_csv(people)) == 3


# ----------------------------------------------------------------------------- failures


@dataclass
class Failure:
    args: list[str]
    code: int | set[int]
    says: tuple[str, ...]
    hint_says: str | None = None
    flow_run: bool = True
    env: dict[str, str | None] | None = None
    poor: bool = False
    max_seconds: float | None = None


def _failures(tmp: Path) -> dict[str, Failure]:
    return {
        "credit-guard-team-credits": Failure(
            ["enrich-campaign", "{campaign}"],
            1,
            ("could cost", "credits", "Nothing was spent"),
            "--max-credits",
            poor=True,
        ),
        "credit-guard-max-credits": Failure(
            ["enrich-campaign", "{campaign}", "--max-credits", "1"],
            1,
            ("could cost", "max_credits=1"),
            "--max-credits",
        ),
        "missing-input-file": Failure(
            ["enrich-leads", "--csv", str(tmp / "nowhere.csv")],
            {1, 2},
            ("nowhere.csv", "not found"),
            flow_run=False,
        ),
        "csv-without-id-or-email-column": Failure(
            ["enrich-leads", "--csv", str(tmp / "no-column.csv")],
            1,
            ("no-column.csv", "no lead id column", "email"),
        ),
        "wrong-api-key": Failure(
            ["enrich-campaign", "{campaign}"],
            1,
            ("401",),
            "save-credentials",
            env={"LEMLIST_API_KEY": WRONG},
        ),
        "unknown-campaign": Failure(
            ["enrich-campaign", "cam_NoSuchCampaign0001"],
            1,
            ("404", "Campaign not found"),
            "check the campaign id",
        ),
        "malformed-campaign-id": Failure(
            ["enrich-campaign", "cam_../team/credits"],
            2,
            ("campaign id", "not valid"),
            "cam_",
            flow_run=False,
            max_seconds=15.0,
        ),
        "missing-block": Failure(
            ["enrich-campaign", "{campaign}", "--block", "nope"], 1, ("'nope'",), "save-credentials"
        ),
        "nothing-listens-at-base-url": Failure(
            ["enrich-campaign", "{campaign}"],
            1,
            ("127.0.0.1:9", "not sent"),
            "re-run the same command when lemlist is reachable",
            env={"LEMLIST_BASE_URL": "http://127.0.0.1:9/api"},
            max_seconds=15.0,
        ),
        "no-credentials": Failure(
            ["enrich-campaign", "{campaign}"],
            2,
            ("LEMLIST_API_KEY", "--block"),
            "save-credentials",
            flow_run=False,
            env={"LEMLIST_API_KEY": None, "LEMLIST_BASE_URL": None},
        ),
        "limit-zero": Failure(
            ["enrich-campaign", "{campaign}", "--limit", "0"], 2, ("limit",), flow_run=False
        ),
        "negative-batch-size": Failure(
            ["enrich-campaign", "{campaign}", "--batch-size", "-1"],
            2,
            ("batch-size",),
            flow_run=False,
        ),
    }


FAILURES = list(_failures(Path("unused")))


@pytest.mark.parametrize("case", FAILURES)
async def test_a_known_failure_is_one_error_line_and_a_failed_flow_run(
    case, tmp_path, sandbox, poor_sandbox
):
    (tmp_path / "no-column.csv").write_text("name,company\nAda,Acme\n")
    failure = _failures(tmp_path)[case]
    lemlist = poor_sandbox if failure.poor else sandbox
    out = tmp_path / "out"
    args = [arg.replace("{campaign}", lemlist.campaign_id) for arg in failure.args]
    lemlist.reset_stats()

    result = run_cli([*args, "--output-dir", str(out)], cli_env(lemlist, **(failure.env or {})))

    message, hint = one_error(result, failure.code)
    for text in failure.says:
        assert text in message, (text, result)
    if failure.hint_says:
        assert hint is not None and failure.hint_says in hint, result
    assert lemlist.stats().requests_by_route.get("enrich_post", 0) == 0  # nothing spent
    assert not list(out.glob("*.csv")), "a failed run must not leave an export"
    _secrets_hidden(result)
    if failure.max_seconds is not None:
        assert result.seconds < failure.max_seconds, result
    if case == "nothing-listens-at-base-url":
        assert "ConnectError" in message or "refused" in message.lower(), result
    runs = await flow_runs_for(out)
    if not failure.flow_run:
        assert runs == []
        return
    assert len(runs) == 1, [(run.name, run.state) for run in runs]
    state = runs[0].state
    assert state is not None and state.is_failed(), state
    assert message in " ".join((state.message or "").split()), (message, state.message)


def test_debug_shows_what_the_error_line_hides(tmp_path, sandbox):
    args = ["enrich-campaign", sandbox.campaign_id, "--block", "nope"]
    args += ["--output-dir", str(tmp_path)]
    quiet = run_cli(args, cli_env(sandbox))
    message, _ = one_error(quiet, 1)
    loud = run_cli(["--debug", *args], cli_env(sandbox))
    assert loud.code == 1, loud
    assert f"error: {message}" in loud.stderr.splitlines(), loud
    assert "Traceback" in loud.output, loud
    assert len(loud.output.splitlines()) > len(quiet.output.splitlines()) + 3, loud


# ----------------------------------------------------------------------------- Ctrl-C


async def test_ctrl_c_exits_130_records_cancelled_and_the_same_command_resumes(tmp_path):
    config = SandboxConfig(leads=80, seed=13, latency_seconds=(0.3, 0.3), **FAST)
    out = tmp_path / "out"
    with run_sandbox(config) as lemlist:
        selected = {lead.lead_id for lead in lemlist.leads if not lead.email}
        command = [sys.executable, "-m", "flows.enrich_campaign", lemlist.campaign_id]
        command += ["--output-dir", str(out), "--collection", "webhook", "--json"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=cli_env(lemlist),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        try:
            deadline = time.monotonic() + 90
            # past the first wave: some starts have their answer (the 21st POST of a key can
            # only leave 2 s after an earlier POST's answer), others are in flight
            while lemlist.stats().requests_by_route.get("enrich_post", 0) < 25:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "no enrichment started in time"
                time.sleep(0.02)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        posts_at_interrupt = sum(lemlist.stats().enrich_posts_by_lead.values())
        interrupted = Result(process.returncode, stdout, stderr, 0.0)

        message, hint = one_error(interrupted, 130)
        assert message == "interrupted", interrupted
        assert hint is not None and "re-run the same command to resume" in hint, interrupted
        assert interrupted.output.count("re-run the same command") == 1, interrupted
        assert posts_at_interrupt < len(selected), "interrupted too late to show anything"

        runs = await flow_runs_for(out)
        assert [run.state.type.value for run in runs] == ["CANCELLED"], runs
        assert "re-run the same command" in (runs[0].state.message or "")

        again = run_cli(command[1:], cli_env(lemlist), command=[sys.executable])
        stats = lemlist.stats()

    summary = assert_successful_run(again)
    assert summary.recalled_from_ledger >= 1, again
    assert max(stats.enrichments_started_by_lead.values()) == 1  # nothing started twice
    exports = list(out.glob("*.csv"))
    assert len(exports) == 1, exports
    rows = read_csv(exports[0])
    assert sorted(row["lead_id"] for row in rows) == sorted(selected)
    # the requests on the wire at the Ctrl-C were allowed to finish and be recorded: the re-run
    # collects them (no lead is re-sent after an interruption and left without its result)
    lost = [row for row in rows if "cannot be recovered" in row["note"]]
    assert not lost, lost
    assert "re-sent once without force" not in again.stdout  # no row says so (--json: rows)
    states = {run.state.type.value for run in await flow_runs_for(out)}
    assert states == {"CANCELLED", "COMPLETED"}


@pytest.mark.slow
def test_ctrl_c_without_a_configured_api_is_quick_and_recorded(tmp_path):
    """No PREFECT_API_URL: the CLI serves its own local API from another session, so a
    terminal's Ctrl-C (SIGINT to the whole process group) does not kill the API under the run:
    the run is recorded Cancelled, the CLI exits at once, and no server is left behind."""
    home = tmp_path / "home"
    config = SandboxConfig(leads=120, seed=16, latency_seconds=(0.3, 0.3), **FAST)
    with run_sandbox(config) as lemlist:
        env = cli_env(
            lemlist,
            PREFECT_API_URL=None,
            PREFECT_HOME=str(home),
            PREFECT_SERVER_EPHEMERAL_ENABLED="true",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        )
        command = [sys.executable, "-m", "flows.enrich_campaign", lemlist.campaign_id]
        command += ["--output-dir", str(tmp_path / "out")]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group, so that we can signal the whole group
        )
        try:
            deadline = time.monotonic() + 150
            while lemlist.stats().requests_by_route.get("enrich_post", 0) < 25:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "no enrichment started in time"
                time.sleep(0.05)
            interrupted_at = time.monotonic()
            os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            stdout, stderr = process.communicate(timeout=60)
            took = time.monotonic() - interrupted_at
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    result = Result(process.returncode, stdout, stderr, took)
    message, hint = one_error(result, 130)
    assert message == "interrupted" and hint and "re-run the same command" in hint, result
    assert took < 15, result  # it used to wait minutes for an API Ctrl-C had killed
    import sqlite3

    with sqlite3.connect(home / "prefect.db") as database:
        states = [row[0] for row in database.execute("select state_type from flow_run")]
    assert states == ["CANCELLED"]
    time.sleep(1)
    lingering = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"PREFECT_HOME={home}".encode() in environ.read_bytes().split(b"\0"):
                lingering.append(environ.parent.name)
        except OSError:
            continue
    assert lingering == []  # the local API stopped with the CLI


# ----------------------------------------------------------------------------- save-credentials


def _block_name() -> str:
    return f"cli-test-{uuid.uuid4().hex[:10]}"


def _secrets_hidden(*results: Result) -> None:
    for result in results:
        assert SECRET not in result.output, result
        assert WRONG not in result.output, result


async def test_save_credentials_checks_the_key_reads_the_base_url_and_never_prints_the_key():
    name = _block_name()
    with run_sandbox(SandboxConfig(leads=3, seed=14, api_keys=[SECRET], credits=4321)) as lemlist:
        env = cli_env(lemlist)
        saved = run_cli(["save-credentials", name], env)
        first = await LemlistCredentials.aload(name) if saved.code == 0 else None
        again = run_cli(["save-credentials", name], env)
        proxy = "https://proxy.example.test/lemlist"
        overwritten = run_cli(
            ["save-credentials", name, "--overwrite", "--no-check", "--base-url", proxy], env
        )
        wrapper_name = _block_name()
        wrapper = run_cli(
            [wrapper_name], env, command=[sys.executable, "blocks/save_credentials.py"]
        )
        credits_requests = lemlist.stats().requests_by_route.get("credits", 0)

    _secrets_hidden(saved, again, overwritten, wrapper)
    assert saved.code == 0, saved
    assert "4321" in saved.stdout, saved  # the key was checked: the credits are shown
    assert first is not None and first.base_url == lemlist.base_url  # LEMLIST_BASE_URL
    assert first.api_key.get_secret_value() == SECRET
    # GET /team/credits before saving: save, again, wrapper (--no-check sends nothing)
    assert credits_requests == 3

    message, hint = one_error(again, 1)
    assert name in message and "already exists" in message, again
    assert hint is not None and "--overwrite" in hint, again

    assert overwritten.code == 0, overwritten
    block = await LemlistCredentials.aload(name)
    assert block.base_url == proxy  # --base-url wins over LEMLIST_BASE_URL
    assert block.api_key.get_secret_value() == SECRET

    assert wrapper.code == 0, wrapper
    assert "4321" in wrapper.stdout, wrapper
    block = await LemlistCredentials.aload(wrapper_name)
    assert block.base_url == lemlist.base_url  # LEMLIST_BASE_URL was read
    assert block.api_key.get_secret_value() == SECRET


async def test_save_credentials_refuses_a_wrong_key_unless_no_check_and_a_url_without_scheme():
    refused_name, forced_name, bad_url_name = _block_name(), _block_name(), _block_name()
    with run_sandbox(SandboxConfig(leads=3, seed=15, api_keys=[SECRET])) as lemlist:
        env = cli_env(lemlist, LEMLIST_API_KEY=WRONG)
        refused = run_cli(["save-credentials", refused_name], env)
        forced = run_cli(["save-credentials", forced_name, "--no-check"], env)
        no_scheme = run_cli(
            ["save-credentials", bad_url_name, "--base-url", "api.lemlist.com/api"],
            cli_env(lemlist),
        )

    _secrets_hidden(refused, forced, no_scheme)
    message, hint = one_error(refused, 1)
    assert "401" in message or "refused" in message, refused
    assert hint is not None and "--no-check" in hint, refused
    with pytest.raises(ValueError):
        await LemlistCredentials.aload(refused_name)  # not saved

    assert forced.code == 0, forced
    assert (await LemlistCredentials.aload(forced_name)).api_key.get_secret_value() == WRONG

    message, _ = one_error(no_scheme, {1, 2})
    assert "https://" in message, no_scheme
    with pytest.raises(ValueError):
        await LemlistCredentials.aload(bad_url_name)


def test_save_credentials_on_the_default_local_api_is_quiet(tmp_path):
    """No PREFECT_API_URL and Prefect's defaults (analytics on): the CLI's own local API saves
    the block; no telemetry traceback (`database is locked`), no engine line, and the errors
    that need no API come at once."""
    name = _block_name()
    env = cli_env(
        PREFECT_API_URL=None,
        PREFECT_SERVER_ANALYTICS_ENABLED=None,
        PREFECT_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_EPHEMERAL_ENABLED="true",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        LEMLIST_API_KEY=SECRET,
    )
    saved = run_cli(["save-credentials", name, "--no-check"], env)
    again = run_cli(["save-credentials", name, "--no-check"], env)
    no_key = run_cli(["save-credentials", name], {**env, "LEMLIST_API_KEY": ""})

    _secrets_hidden(saved, again, no_key)
    assert saved.code == 0, saved
    assert saved.stderr == "", saved  # not one line of Prefect's
    assert [line.split()[0] for line in saved.stdout.splitlines()] == ["Saved", "Use"], saved
    message, hint = one_error(again, 1)
    assert "already exists" in message and hint and "--overwrite" in hint, again
    one_error(no_key, 2)
    assert no_key.seconds < 10, no_key  # refused before any Prefect API is started


# ----------------------------------------------------------------------------- results


INPUT_COLUMNS = ["lead_id", "crm_id", "owner", "score"]
EXPORTED_INPUTS = ["input_lead_id", "crm_id", "owner", "score"]  # lead_id is a fixed column
FIXED = [column for column in RESULT_COLUMNS if column != "raw_result"]


@pytest.fixture(scope="module")
def leads_file_runs(tmp_path_factory):
    """`enrich-leads --csv` run twice from the same directory with default names, then once with
    `--output-name` and Parquet."""
    work = tmp_path_factory.mktemp("leads-file")
    with run_sandbox(SandboxConfig(leads=30, seed=16, **FAST)) as lemlist:
        findable = [lead.lead_id for lead in lemlist.leads if lead.kind is LeadKind.FINDABLE]
        first, second = findable[:2]
        lines = [
            INPUT_COLUMNS,
            [first, "crm-1", "alice", "10"],
            [second, "crm-2", "bob", "20"],
            [first, "crm-3", "carol", "30"],  # the same lead again: one enrichment, two rows
            ["", "crm-4", "dave", "40"],  # missing id
            ["lea bad id", "crm-5", "erin", "50"],  # malformed id
        ]
        with (work / "crm-export.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows(lines)
        env = cli_env(lemlist)
        base = ["enrich-leads", "--csv", "crm-export.csv", "--collection", "webhook"]
        runs = {"a": run_cli([*base, "--output-dir", "out", "--json"], env, cwd=work)}
        # an earlier export made in "the same second" as the next run: the next run's default
        # name must not reuse it (placeholders for every second the run may end in)
        now = datetime.now(timezone.utc)
        placeholders = {}
        for second in range(120):
            stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
            path = work / "out" / f"crm-export-{stamp}.csv"
            if not path.exists():
                path.write_text("earlier export\n")
                placeholders[path] = "earlier export\n"
        runs["b"] = run_cli([*base, "--output-dir", "out"], env, cwd=work)  # markdown summary
        named = [*base, "--output-dir", str(work / "named"), "--output-name", "trial"]
        named += ["--format", "csv", "--format", "parquet", "--json"]
        runs["named"] = run_cli(named, env, cwd=work)
        stats = lemlist.stats()
    return {"work": work, "runs": runs, "placeholders": placeholders, "stats": stats}


def test_leads_file_export_keeps_every_input_column_and_rejects_bad_rows(leads_file_runs):
    result = leads_file_runs["runs"]["a"]
    work = leads_file_runs["work"]
    summary = assert_successful_run(result)
    assert (summary.input_rows, summary.selected, summary.rejected_count) == (5, 2, 2), summary
    assert summary.total_rows == sum(summary.row_breakdown.values()) == 5
    assert summary.row_breakdown["repeats"] == 1  # the same lead twice: enriched once
    paths = summary_paths(result.stdout)
    csv_path = next(Path(p) for p in paths["export"] if p.endswith(".csv"))
    rows = read_csv(csv_path)
    header = list(rows[0])
    # the fixed columns, every input column (lead_id carried as input_lead_id), the raw result
    assert header == [*FIXED, *EXPORTED_INPUTS, "raw_result"], header
    given = [
        r for r in csv.reader((work / "crm-export.csv").open(newline="")) if r != INPUT_COLUMNS
    ]
    assert [tuple(r[c] for c in EXPORTED_INPUTS) for r in rows] == [tuple(r) for r in given]
    # the fixed lead_id is the lead enriched: the valid ids; empty for the rejected rows
    assert [r["lead_id"] for r in rows] == [r[0] for r in given[:3]] + ["", ""], rows
    statuses = [row["status"] for row in rows]
    assert statuses[3:] == ["rejected", "rejected"], rows
    assert "rejected" not in statuses[:3], rows
    rejected = read_csv(paths["rejected"][0])
    assert Path(paths["rejected"][0]).name == csv_path.name.replace(".csv", ".rejected.csv")
    assert list(rejected[0]) == ["line", "reason", *EXPORTED_INPUTS], rejected
    assert [row["line"] for row in rejected] == ["5", "6"], rejected
    assert all(row["reason"] for row in rejected), rejected
    assert [(row["input_lead_id"], row["crm_id"]) for row in rejected] == [
        ("", "crm-4"),
        ("lea bad id", "crm-5"),
    ], rejected


def test_summary_paths_are_absolute_and_default_names_carry_input_and_time(leads_file_runs):
    work = leads_file_runs["work"]
    for key in ("a", "b"):
        result = leads_file_runs["runs"][key]
        if key == "a":
            assert_successful_run(result)
        else:
            assert_markdown_summary(result)
        paths = summary_paths(result.stdout)
        assert len(paths["export"]) == 2 and len(paths["rejected"]) == 1, result
        for path in (*paths["export"], *paths["rejected"]):
            assert Path(path).is_absolute(), path  # --output-dir out was relative
            assert Path(path).parent == (work / "out").resolve(), path
            assert Path(path).exists(), path
            pattern = rf"crm-export-{STAMPED_NAME}(\.rejected)?\.(csv|jsonl)"
            assert re.fullmatch(pattern, Path(path).name), path


def test_running_the_same_command_twice_never_overwrites_an_export(leads_file_runs):
    runs = leads_file_runs["runs"]
    first = set(summary_paths(runs["a"].stdout)["export"])
    second = set(summary_paths(runs["b"].stdout)["export"])
    assert first and second and not first & second
    for path in first:  # the first export is still there, whole
        assert Path(path).exists()
        if path.endswith(".csv"):
            assert len(read_csv(path)) == 5
    for path, text in leads_file_runs["placeholders"].items():
        assert path.read_text() == text, f"{path} was overwritten"
    # the second run found the results in the ledger: nothing started twice
    assert max(leads_file_runs["stats"].enrichments_started_by_lead.values()) == 1


def test_output_name_and_parquet_export_hold_the_csv_rows(leads_file_runs):
    import pyarrow.parquet as pq

    result = leads_file_runs["runs"]["named"]
    named = (leads_file_runs["work"] / "named").resolve()
    assert_successful_run(result)
    assert summary_of(result).parquet_path == str(named / "trial.parquet")
    paths = summary_paths(result.stdout)
    assert sorted(paths["export"]) == [str(named / "trial.csv"), str(named / "trial.parquet")]
    assert paths["rejected"] == [str(named / "trial.rejected.csv")]
    rows = read_csv(named / "trial.csv")
    table = pq.read_table(named / "trial.parquet").to_pylist()
    assert list(table[0]) == list(rows[0])  # same columns, same order
    as_csv = [{k: "" if v is None else str(v) for k, v in row.items()} for row in table]
    assert as_csv == rows


def test_a_parquet_only_export_never_overwrites_one_of_the_same_second(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    people = tmp_path / "ids.csv"
    with run_sandbox(SandboxConfig(leads=10, seed=17, **FAST)) as lemlist:
        people.write_text(f"lead_id\n{lemlist.leads[0].lead_id}\n")
        now = datetime.now(timezone.utc)
        earlier = []
        for second in range(120):  # an earlier Parquet export for every second the run may end in
            stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
            path = out / f"ids-{stamp}.parquet"
            path.write_bytes(b"earlier export")
            earlier.append(path)
        args = ["enrich-leads", "--csv", str(people), "--format", "parquet"]
        args += ["--output-dir", str(out), "--collection", "webhook", "--json"]
        result = run_cli(args, cli_env(lemlist))
    assert_successful_run(result)
    overwritten = [path.name for path in earlier if path.read_bytes() != b"earlier export"]
    assert overwritten == []


# ----------------------------------------------------------------------------- trials


def test_limit_starts_at_most_n_enrichments(tmp_path):
    with run_sandbox(SandboxConfig(leads=30, seed=18, **FAST)) as lemlist:
        needing = [lead for lead in lemlist.leads if not lead.email]
        assert len(needing) > 3
        args = ["enrich-campaign", lemlist.campaign_id, "--limit", "3"]
        args += ["--output-dir", str(tmp_path), "--collection", "webhook", "--json"]
        result = run_cli(args, cli_env(lemlist))
        stats = lemlist.stats()
        with_email = sum(1 for lead in lemlist.leads if lead.email)
    summary = assert_successful_run(result)
    assert summary.selected == summary.input_rows == 3, summary  # the trial's 3 leads only
    assert summary.not_needed == with_email, summary
    # the summary adds up: rows = to enrich + not needing it + rejected (+ left out by --limit)
    assert summary.total_rows == sum(summary.row_breakdown.values()), summary
    assert 1 <= sum(stats.enrich_posts_by_lead.values()) <= 3, stats.enrich_posts_by_lead
    assert stats.enrichments_started <= 3
    exports = list(tmp_path.glob("*.csv"))
    assert len(exports) == 1
    name = exports[0].name
    assert re.fullmatch(rf"{slug(lemlist.campaign_id)}-{STAMPED_NAME}\.csv", name), name
    assert {row["lead_id"] for row in read_csv(exports[0])} >= set(stats.enrich_posts_by_lead)


UNKNOWN_LEAD = "lea_NotInThisCampaign1"


@pytest.fixture(scope="module")
def lead_id_trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("lead-id-trial")
    with run_sandbox(SandboxConfig(leads=30, seed=19, **FAST)) as lemlist:
        chosen = [lead.lead_id for lead in lemlist.leads if lead.kind is LeadKind.FINDABLE][:2]
        args = ["enrich-campaign", lemlist.campaign_id, "--output-dir", str(out)]
        for lead_id in [*chosen, UNKNOWN_LEAD]:
            args += ["--lead-id", lead_id]
        result = run_cli([*args, "--collection", "webhook", "--json"], cli_env(lemlist))
        stats = lemlist.stats()
    return {"result": result, "stats": stats, "chosen": chosen, "out": out}


def test_lead_id_enriches_only_those_leads_and_reports_an_unknown_one(lead_id_trial):
    result, stats, chosen = lead_id_trial["result"], lead_id_trial["stats"], lead_id_trial["chosen"]
    assert_successful_run(result)
    assert set(stats.enrich_posts_by_lead) == set(chosen)
    assert set(stats.enrichments_started_by_lead) <= set(chosen)
    paths = summary_paths(result.stdout)
    rows = read_csv(next(p for p in paths["export"] if p.endswith(".csv")))
    by_id = {row["lead_id"]: row for row in rows}
    assert set(by_id) == {*chosen, UNKNOWN_LEAD}, rows
    assert all(by_id[lead_id]["status"] != "rejected" for lead_id in chosen)
    assert by_id[UNKNOWN_LEAD]["status"] == "rejected"
    assert "not a lead of campaign" in by_id[UNKNOWN_LEAD]["error"], by_id[UNKNOWN_LEAD]
    assert len(paths["rejected"]) == 1 and len(read_csv(paths["rejected"][0])) == 1
    assert summary_of(result).rejected_count == 1


def test_an_unknown_lead_id_is_named_in_the_rejected_file_and_summary(lead_id_trial):
    result = lead_id_trial["result"]
    paths = summary_paths(result.stdout)
    rejected = read_csv(paths["rejected"][0])
    # rejected.csv holds the line, the reason and the row's input columns: a chosen lead the
    # campaign export lacks has no campaign columns, so its id is named by the export's row
    # of the same line (the fixed lead_id column)
    [line] = [row["line"] for row in rejected]
    assert "not a lead of campaign" in rejected[0]["reason"], rejected
    rows = read_csv(next(p for p in paths["export"] if p.endswith(".csv")))
    named = [r["lead_id"] for r in rows if r["status"] == "rejected" and r["input_line"] == line]
    assert named == [UNKNOWN_LEAD], rows
    listed = summary_of(result).rejected
    assert [item.value for item in listed] == [UNKNOWN_LEAD], result
    assert "not a lead of campaign" in listed[0].reason, result


# ----------------------------------------------------------------------------- the main job


DEMO = [sys.executable, str(ROOT / "run.py"), "demo"]


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The demo's environment: its own Prefect home (and the ephemeral API), no session server."""
    return cli_env(
        PREFECT_API_URL=None,
        PREFECT_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )


def demo_summary(result: Result) -> PipelineSummary:
    """Exit 0, no traceback; the run's summary, as `--json` printed it (the whole of stdout)."""
    assert result.code == 0 and "Traceback" not in result.output, result
    assert SUMMARY_HEADING not in result.output, result  # not the markdown too
    return summary_of(result)


@pytest.mark.slow
def test_the_main_job_spends_nothing_the_second_time(tmp_path):
    """`python3 run.py demo` (smaller), on its own Prefect home and state folder, twice with
    `--json`: the first run enriches, the second starts nothing, spends nothing, and says so;
    a third run without `--json` prints the readable summary."""
    env = demo_env(tmp_path)
    args = ["--leads", "40", "--state-dir", str(tmp_path / "demo")]
    args += ["--output-dir", str(tmp_path / "out")]
    first = run_cli([*args, "--json"], env, command=DEMO, timeout=300)
    second = run_cli([*args, "--json"], env, command=DEMO, timeout=300)
    first_summary, second_summary = demo_summary(first), demo_summary(second)
    assert first_summary.started > 0 and first_summary.selected > 0, first
    # every lead has a record: the started ones and those lemlist answered with a 409
    assert second_summary.started == 0, second
    assert second_summary.recalled_from_ledger == first_summary.selected, second
    assert second_summary.credits_before is not None, second
    assert second_summary.credits_spent == 0, second
    # the demo's own lines go to stderr with --json
    assert "run 2 on" in second.stderr and "earlier results are reused" in second.stderr
    exports = sorted((tmp_path / "out").glob("cam-*.csv"))
    assert [str(path) for path in exports] == sorted(
        [first_summary.csv_path, second_summary.csv_path]
    )  # never overwritten
    first_rows, second_rows = (list(csv.DictReader(path.open())) for path in exports)
    assert [r["enrichment_id"] for r in second_rows] == [r["enrichment_id"] for r in first_rows]
    # the rows are also merged into the demo's SQLite database: the second run updates them
    database = tmp_path / "out" / "lemlist-demo.sqlite"
    with sqlite3.connect(database) as conn:
        [(count,)] = conn.execute("select count(*) from lemlist_enrichments").fetchall()
    assert count == len(first_rows) == first_summary.table_inserted, first
    assert (second_summary.table_inserted, second_summary.table_updated) == (0, count), second
    [pasted] = [line for line in second.stderr.splitlines() if "python3 -c" in line]
    command = pasted.split(": ", 1)[1]  # the query the demo prints, as a user pastes it
    shown = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert "('done', " in shown.stdout, shown

    human = run_cli(args, env, command=DEMO, timeout=300)  # without --json: for a person
    assert human.code == 0 and "Traceback" not in human.output, human
    assert human.stdout.count(SUMMARY_HEADING) == 1, human
    assert "run 3 on" in human.stdout and "earlier results are reused" in human.stdout, human
    printed = [Path(path) for path in summary_paths(human.stdout)["export"]]  # `- export:`
    assert printed and all(path.is_file() for path in printed), human
    [export] = [path for path in printed if path.suffix == ".csv"]
    assert sorted((tmp_path / "out").glob("cam-*.csv")) == sorted([*exports, export])


@pytest.mark.slow
def test_the_contacts_demo_enriches_a_people_file_by_webhook(tmp_path):
    args = ["--contacts", "--people", "300", "--state-dir", str(tmp_path / "demo")]
    args += ["--output-dir", str(tmp_path / "out"), "--json"]
    result = run_cli(args, demo_env(tmp_path), command=DEMO, timeout=300)
    summary = demo_summary(result)
    assert summary.polls == 0, result
    [export] = [
        path
        for path in (tmp_path / "out").glob("people-300-*.csv")
        if not path.name.endswith(".rejected.csv")  # the rejected rows' own file
    ]
    assert str(export) == summary.csv_path, result
    rows = list(csv.DictReader(export.open()))
    assert len(rows) == 300
    assert {row["status"] for row in rows} <= {"done", "not_found", "rejected", "skipped_has_email"}
    # find_email alone: exactly the well-formed rows that have an email are not sent
    for row in rows:
        if row["status"] != "rejected":
            assert (row["status"] == "skipped_has_email") == bool(row["input_email"].strip()), row


@pytest.mark.slow
async def test_the_local_api_is_never_another_program_on_its_port(tmp_path):
    """A program that took the chosen port first (and answers 200 to anything, as the sandbox
    does) is not taken for the CLI's local API: the server starts again on another port."""
    import http.server
    import threading

    from prefect_lemlist.local_api import PrefectServer

    class AnswersEverything(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not prefect</html>")

        def log_message(self, *args: object) -> None:
            pass

    squatter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AnswersEverything)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    server = PrefectServer(tmp_path / "home")
    taken = squatter.server_address[1]
    server.port, server.url = taken, f"http://127.0.0.1:{taken}/api"
    try:
        await server.start(timeout=120)
        assert server.port != taken and server.starts == 2
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/health")).text == "true"
    finally:
        await server.stop()
        squatter.shutdown()
