"""The run events reach a real Prefect server and fire a real Automation: the credits-alert
recipe (`docs/recipes/credits-alert.md`, run as written) creates a webhook block and an
automation on `lemlist.credits.low` with its Python block, then runs its `prefect-lemlist
enrich-campaign … --credits-alert N` command (the real CLI, in its own process) against a sandbox
team and a PostgreSQL table; a local HTTP receiver gets the notification. A key refused mid-run
ends the run halted, with its `lemlist.enrichment.run.halted` event. Own processes and server:
the e2e tier, but not the session's test server."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from _fault_helpers import PrefectServer, kill_leftovers

from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "recipes" / "credits-alert.md"
FAKE_KEY = "lemlist-test-key-7c1e0b95d2"  # must appear in no event
DB_PASSWORD = "db-password-1"  # in the `--to` URL; must appear in no event
LEADS = 20
SANDBOX_CREDITS = 120  # 20 leads: find_email costs at most 100, so every run may start
FAST_ENRICHMENTS = (0.2, 0.6)  # seconds an enrichment takes in the sandbox
# the placeholders of the recipe's command, and what this test puts in their place
CAMPAIGN_PLACEHOLDER = "cam_XXXXXXXXXXXXXXXXX"
ALERT_PLACEHOLDER = "500"
URL_PLACEHOLDER = "postgresql+psycopg://enricher:PASSWORD@db:5432/crm"
TEST_ONLY_VARIABLES = (
    "PREFECT_TEST_MODE",
    "PREFECT_UNIT_TEST_MODE",
    "PREFECT_TESTING_TEST_MODE",
    "PREFECT_TESTING_UNIT_TEST_MODE",
    "PREFECT_DEBUG_MODE",
    "LEMLIST_API_KEY",
    "LEMLIST_BASE_URL",
    "LEMLIST_LEDGER_DIR",
)

T = TypeVar("T")
Event = dict[str, Any]


@pytest.fixture(autouse=True)
def _on_the_prefect_test_server() -> Iterator[None]:
    """Not the session's test server: this module starts its own `prefect server start`."""
    yield


def recipe_block(marker: str, language: str) -> str:
    """The first `language` code block after the recipe's `<!-- marker:` comment."""
    text = RECIPE.read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker}:")
    found = re.search(rf"```{language}\n(.*?)```", text[start:], re.DOTALL)
    assert found, f"no {language} block after {marker} in {RECIPE}"
    return found.group(1)


def recipe_code() -> str:
    """The recipe's Python block that creates the block and the automation, as published."""
    return recipe_block("credits-alert-recipe", "python")


def recipe_command(campaign: str, alert: int, database_url: str) -> list[str]:
    """The recipe's `prefect-lemlist` command line, its placeholders filled in, run as
    `python -m prefect_lemlist.cli` (the console script's module)."""
    words = shlex.split(recipe_block("credits-alert-command", "bash"))
    assert words[:2] == ["prefect-lemlist", "enrich-campaign"], words
    filled = {CAMPAIGN_PLACEHOLDER: campaign, ALERT_PLACEHOLDER: str(alert)}
    filled[URL_PLACEHOLDER] = database_url
    for placeholder in filled:
        assert words.count(placeholder) == 1, (placeholder, words)
    assert words[words.index(ALERT_PLACEHOLDER) - 1] == "--credits-alert", words
    return [sys.executable, "-m", "prefect_lemlist.cli", *(filled.get(w, w) for w in words[1:])]


class Receiver:
    """A local webhook: records the bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def client_env(server: PrefectServer, home: Path, **extra: str) -> dict[str, str]:
    """A user's process on this module's server: no test-mode variable, no lemlist key."""
    env = {
        **os.environ,
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    for name in TEST_ONLY_VARIABLES:
        env.pop(name, None)
    return {**env, **extra}


def run_python(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def read_events(server: PrefectServer, **filters: Any) -> list[Event]:
    """Events stored by the server (`POST /events/filter`, then its next pages), oldest first."""
    body = {"filter": {"order": "ASC", **filters}, "limit": 50}  # 50: the most a page holds
    response = httpx.post(f"{server.url}/events/filter", json=body, timeout=10)
    events: list[Event] = []
    while True:
        response.raise_for_status()
        page = response.json()
        events += page["events"]
        if not page.get("next_page"):
            return events
        response = httpx.get(page["next_page"], timeout=10)


def wait_for(condition: Callable[[], T], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def run_events_of(server: PrefectServer, flow_run_id: str) -> list[Event]:
    """The lemlist events related to one flow run."""
    related = {"id": [f"prefect.flow-run.{flow_run_id}"]}
    return read_events(server, event={"prefix": ["lemlist."]}, related=related)


def team_events(server: PrefectServer, team_id: str) -> list[Event]:
    """The lemlist events about one team (each run below has a sandbox team of its own)."""
    resource = {"id": [f"lemlist.team.{team_id}"]}
    return read_events(server, event={"prefix": ["lemlist."]}, resource=resource)


def stored_run_events(server: PrefectServer, team_id: str, count: int) -> list[Event]:
    """The team's events once `count` are stored; then 2 s more, and none may have followed."""
    wait_for(lambda: len(team_events(server, team_id)) >= count, f"{count} event(s)", timeout=30)
    time.sleep(2)  # an event sent after these would be stored by now
    return team_events(server, team_id)


@dataclass(repr=False)
class CliRun:
    """A finished `prefect-lemlist enrich-campaign` process and its sandbox team."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    team_id: str
    workdir: Path

    def __repr__(self) -> str:  # what a failed assertion shows
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-3000:]}"

    def summary(self) -> PipelineSummary:
        """The `--json` summary: the whole of stdout."""
        return PipelineSummary.model_validate_json(self.stdout)

    def exported_counts(self) -> Counter[str]:
        """Rows per status in the run's CSV export (written by failed runs too)."""
        [export] = (self.workdir / "lemlist-output").glob("*.csv")
        with export.open(newline="", encoding="utf-8") as file:
            return Counter(row["status"] for row in csv.DictReader(file))


@pytest.fixture(scope="module")
async def setup(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> AsyncIterator[dict[str, Any]]:
    """A Prefect server with the recipe's automation, a webhook receiver, and the `--to` URL of
    a PostgreSQL database with a password in it (trust authentication ignores it)."""
    tmp = tmp_path_factory.mktemp("events")
    server = PrefectServer(tmp / "server-home")
    await server.start()
    try:
        with Receiver() as receiver:
            (tmp / "credits_alert.py").write_text(recipe_code())
            env = client_env(server, tmp / "client-home", ALERT_WEBHOOK_URL=receiver.url)
            for _ in range(2):  # run again, it replaces the automation (one notification)
                created = run_python([str(tmp / "credits_alert.py")], env)
                assert "automation lemlist-credits-low" in created
            database_url = postgres_url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
            assert DB_PASSWORD in database_url, postgres_url
            yield {
                "server": server,
                "receiver": receiver,
                "env": env,
                "tmp": tmp,
                "database_url": database_url,
            }
    finally:
        await server.stop()
        kill_leftovers()


def run_recipe_command(setup: dict[str, Any], name: str, alert: int, **config: Any) -> CliRun:
    """The recipe's command against a sandbox team of its own (`config`), in its own working
    directory (the exports) and ledger."""
    workdir = setup["tmp"] / name
    workdir.mkdir()
    sandbox_config = SandboxConfig(
        leads=LEADS,
        credits=SANDBOX_CREDITS,
        api_keys=[FAKE_KEY],
        enrichment_seconds=FAST_ENRICHMENTS,
        **config,
    )
    with run_sandbox(sandbox_config) as sandbox:
        command = recipe_command(sandbox.campaign_id, alert, setup["database_url"])
        env = {
            **setup["env"],
            "LEMLIST_API_KEY": sandbox.api_key,
            "LEMLIST_BASE_URL": sandbox.base_url,
            "LEMLIST_LEDGER_DIR": str(workdir / "ledger"),
        }
        start = time.monotonic()
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120
        )
        seconds = time.monotonic() - start
        return CliRun(done.returncode, done.stdout, done.stderr, seconds, sandbox.team_id, workdir)


def the_flow_run(server: PrefectServer, events: list[Event]) -> dict[str, Any]:
    """The one `enrich-campaign` flow run every event is related to (read from the server)."""
    ids = {
        related["prefect.resource.id"].removeprefix("prefect.flow-run.")
        for event in events
        for related in event["related"]
        if related["prefect.resource.role"] == "flow-run"
    }
    assert len(ids) == 1, events
    [flow_run_id] = ids
    flow_run = httpx.get(f"{server.url}/flow_runs/{flow_run_id}", timeout=10).json()
    flow = httpx.get(f"{server.url}/flows/{flow_run['flow_id']}", timeout=10).json()
    assert flow["name"] == "enrich-campaign", flow
    # the same events, found through the flow run
    assert [e["id"] for e in run_events_of(server, flow_run_id)] == [e["id"] for e in events]
    return flow_run


def assert_about_the_team(events: list[Event], team_id: str) -> None:
    for event in events:
        assert event["resource"]["prefect.resource.id"] == f"lemlist.team.{team_id}"
        assert event["resource"]["lemlist.team.id"] == team_id
        assert event["resource"]["prefect.resource.name"] == "Sandbox team"  # the team's name
        roles = {related["prefect.resource.role"] for related in event["related"]}
        assert {"flow-run", "flow"} <= roles


def assert_run_payload(payload: dict[str, Any], summary: PipelineSummary) -> None:
    """The run event's payload is the run's summary (the `--json` one)."""
    assert payload["flow"] == "enrich-campaign"
    assert payload["counts"] == summary.counts
    assert payload["started"] == summary.started
    assert payload["workflows"] == summary.workflows
    assert payload["source"] == summary.source
    assert payload["credits_before"] == summary.credits_before
    assert payload["credits_after"] == summary.credits_after
    assert payload["credits_spent"] == summary.credits_spent
    # the table, its URL without the password
    assert payload["destination"] == summary.table
    assert payload["destination"].startswith("postgresql+psycopg://postgres:***@127.0.0.1:")
    assert payload["destination"].endswith(" table lemlist_enrichments")


@pytest.mark.slow
def test_credits_below_the_alert_notify_through_the_automation(setup: dict[str, Any]) -> None:
    server, receiver = setup["server"], setup["receiver"]
    run = run_recipe_command(setup, "below", alert=1000, seed=5)  # 120 credits at most
    assert run.code == 0, run
    summary = run.summary()
    assert summary.started > 0 and summary.credits_after is not None, run
    assert summary.credits_after < 1000, run

    [body] = wait_for(lambda: receiver.bodies, "the webhook's notification", timeout=60)
    text = json.loads(body)["text"]
    assert text.startswith("lemlist credits low: lemlist team ")
    assert f"Sandbox team has {summary.credits_after:g} credits" in text
    assert "alert below 1000" in text

    stored = stored_run_events(server, run.team_id, 2)
    assert [event["event"] for event in stored] == [
        "lemlist.enrichment.run.completed",
        "lemlist.credits.low",
    ]
    assert_about_the_team(stored, run.team_id)
    assert the_flow_run(server, stored)["state_type"] == "COMPLETED"
    completed, low = stored
    assert low["payload"] == {"credits": summary.credits_after, "threshold": 1000}
    assert low["follows"] == completed["id"]
    assert_run_payload(completed["payload"], summary)
    assert completed["payload"]["credits_before"] == SANDBOX_CREDITS

    # the automation ran its action on this event
    executed = wait_for(
        lambda: read_events(server, event={"name": ["prefect.automation.action.executed"]}),
        "the automation's action.executed event",
        timeout=30,
    )
    assert executed
    # no secret anywhere in what the server stored: the API key and the database's password
    everything = json.dumps(read_events(server))
    assert FAKE_KEY not in everything and DB_PASSWORD not in everything
    print(f"\nbelow the alert: the CLI ran {run.seconds:.1f}s")


@pytest.mark.slow
def test_credits_above_the_alert_emit_no_credit_event(setup: dict[str, Any]) -> None:
    server, receiver = setup["server"], setup["receiver"]
    notified = len(receiver.bodies)
    run = run_recipe_command(setup, "above", alert=10, seed=6)  # 20 credits left at least
    assert run.code == 0, run
    summary = run.summary()
    assert summary.started > 0 and summary.credits_after is not None, run
    assert summary.credits_after >= 10, run

    stored = stored_run_events(server, run.team_id, 1)
    assert [event["event"] for event in stored] == ["lemlist.enrichment.run.completed"]
    assert_about_the_team(stored, run.team_id)
    assert the_flow_run(server, stored)["state_type"] == "COMPLETED"
    assert_run_payload(stored[0]["payload"], summary)
    assert len(receiver.bodies) == notified
    print(f"\nabove the alert: the CLI ran {run.seconds:.1f}s")


@pytest.mark.slow
def test_a_key_refused_mid_run_emits_the_halted_event(setup: dict[str, Any]) -> None:
    """The key answers 401 after a few starts: exit 1, one `error:` line, and a stored
    `lemlist.enrichment.run.halted` (reason `key_refused`, also a label) whose counts are the
    exported rows'; the credits after the run are unknown, so no `lemlist.credits.low`."""
    server, receiver = setup["server"], setup["receiver"]
    notified = len(receiver.bodies)
    run = run_recipe_command(setup, "halted", alert=1000, seed=7, revoke_key_after_requests=6)
    assert run.code == 1, run
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and run.stdout == "", run

    stored = stored_run_events(server, run.team_id, 1)
    assert [event["event"] for event in stored] == ["lemlist.enrichment.run.halted"], stored
    assert_about_the_team(stored, run.team_id)
    assert the_flow_run(server, stored)["state_type"] == "FAILED"
    [halted] = stored
    assert halted["resource"]["lemlist.halted.reason"] == "key_refused"
    payload = halted["payload"]
    assert payload["reason"] == "key_refused"
    assert payload["message"] and payload["message"] in errors[0], (payload, errors)
    assert payload["flow"] == "enrich-campaign"
    assert payload["started"] > 0, payload  # refused mid-run, not before the first start
    # every status the summary knows, 0 included; the export has the rows of the others
    assert {status: n for status, n in payload["counts"].items() if n} == run.exported_counts()
    assert payload["credits_before"] == SANDBOX_CREDITS
    assert payload["credits_after"] is None and payload["credits_spent"] is None
    assert payload["destination"].startswith("postgresql+psycopg://postgres:***@127.0.0.1:")
    assert len(receiver.bodies) == notified
    everything = json.dumps(read_events(server))
    assert FAKE_KEY not in everything and DB_PASSWORD not in everything
    print(f"\nkey refused: the CLI ran {run.seconds:.1f}s")
