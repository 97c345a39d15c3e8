"""The run events reach a real Prefect server and fire a real Automation: the credits-alert
recipe (`docs/recipes/credits-alert.md`, its Python block run as written) creates a webhook block
and an automation on `lemlist.credits.low`; a flow process reads its team and credits from the
sandbox and emits the run's events; a local HTTP receiver gets the notification. Own processes
and server: the e2e tier, but not the session's test server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from _fault_helpers import PrefectServer, kill_leftovers

from prefect_lemlist.sandbox import SandboxConfig, run_sandbox

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "recipes" / "credits-alert.md"
FAKE_KEY = "lemlist-test-key-7c1e0b95d2"  # must appear in no event
SANDBOX_CREDITS = 40

FLOW = """
import asyncio, json, os, sys

from prefect import flow
from prefect.runtime import flow_run

from prefect_lemlist import LemlistCredentials
from prefect_lemlist.pipeline.events import RunEventFacts, emit_run_events


@flow(name="events-check")
async def events_check(credentials: LemlistCredentials, alert: float) -> dict:
    async with credentials.get_client() as client:
        team = await client.get_team()
        credits = (await client.get_credits()).credits
    facts = RunEventFacts(
        team_id=team.team_id, team_name=team.name, flow="enrich-campaign",
        source="campaign cam_x (state=all, 3 leads)", workflows=["find_email"],
        halted=None, halted_message=None, counts={"done": 2, "not_found": 1}, started=3,
        credits_before=credits + 6, credits_after=credits,
        destination="postgresql://bob:db-password-1@db:5432/leads", credits_alert=alert,
    )
    emitted = emit_run_events(facts)
    return {"flow_run_id": str(flow_run.id), "team_id": team.team_id, "team_name": team.name,
            "events": [event.event for event in emitted]}


if __name__ == "__main__":
    credentials = LemlistCredentials(
        api_key=os.environ["LEMLIST_API_KEY"], base_url=os.environ["LEMLIST_BASE_URL"]
    )
    print("RESULT " + json.dumps(asyncio.run(events_check(credentials, float(sys.argv[1])))))
"""


@pytest.fixture(autouse=True)
def _on_the_prefect_test_server():
    """Not the session's test server: this module starts its own `prefect server start`."""
    yield


def recipe_code() -> str:
    """The recipe's Python block that creates the block and the automation, as published."""
    text = RECIPE.read_text(encoding="utf-8")
    marker = text.index("<!-- credits-alert-recipe:")
    return re.search(r"```python\n(.*?)```", text[marker:], re.DOTALL).group(1)


class Receiver:
    """A local webhook: records the bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def client_env(server: PrefectServer, home: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **extra,
    }
    env.pop("PREFECT_TEST_MODE", None)
    return env


def run_python(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def read_events(server: PrefectServer, **filters) -> list[dict]:
    """Events stored by the server (`POST /events/filter`, then its next pages), oldest first."""
    body = {"filter": {"order": "ASC", **filters}, "limit": 50}  # 50: the most a page holds
    response = httpx.post(f"{server.url}/events/filter", json=body, timeout=10)
    events: list[dict] = []
    while True:
        response.raise_for_status()
        page = response.json()
        events += page["events"]
        if not page.get("next_page"):
            return events
        response = httpx.get(page["next_page"], timeout=10)


def wait_for(condition, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def run_events_of(server: PrefectServer, flow_run_id: str) -> list[dict]:
    """The lemlist events related to one flow run."""
    related = {"id": [f"prefect.flow-run.{flow_run_id}"]}
    return read_events(server, event={"prefix": ["lemlist."]}, related=related)


@pytest.fixture(scope="module")
async def setup(tmp_path_factory):
    """A Prefect server with the recipe's automation, a webhook receiver and a sandbox team."""
    tmp = tmp_path_factory.mktemp("events")
    server = PrefectServer(tmp / "server-home")
    await server.start()
    try:
        with (
            Receiver() as receiver,
            run_sandbox(
                SandboxConfig(leads=3, seed=5, credits=SANDBOX_CREDITS, api_keys=[FAKE_KEY])
            ) as sandbox,
        ):
            (tmp / "credits_alert.py").write_text(recipe_code())
            (tmp / "flow.py").write_text(FLOW)
            env = client_env(server, tmp / "client-home", ALERT_WEBHOOK_URL=receiver.url)
            for _ in range(2):  # run again, it replaces the automation (one notification)
                created = run_python([str(tmp / "credits_alert.py")], env)
                assert "automation lemlist-credits-low" in created
            env.update(LEMLIST_API_KEY=sandbox.api_key, LEMLIST_BASE_URL=sandbox.base_url)
            yield {"server": server, "receiver": receiver, "env": env, "tmp": tmp}
    finally:
        await server.stop()
        kill_leftovers()


def run_flow(setup, alert: float) -> dict:
    output = run_python([str(setup["tmp"] / "flow.py"), str(alert)], setup["env"])
    return json.loads(output.split("RESULT ", 1)[1])


@pytest.mark.slow
def test_credits_below_the_alert_notify_through_the_automation(setup):
    server, receiver = setup["server"], setup["receiver"]
    result = run_flow(setup, alert=100)  # the sandbox team has 40 credits
    assert result["events"] == ["lemlist.enrichment.run.completed", "lemlist.credits.low"]

    [body] = wait_for(lambda: receiver.bodies, "the webhook's notification", timeout=60)
    text = json.loads(body)["text"]
    assert text.startswith("lemlist credits low: lemlist team ")
    assert f"{result['team_name'] or result['team_id']} has {SANDBOX_CREDITS} credits" in text
    assert "alert below 100" in text

    stored = wait_for(
        lambda: (
            (found := run_events_of(server, result["flow_run_id"])) and len(found) == 2 and found
        ),
        "the run's two events on the server",
        timeout=30,
    )
    assert [event["event"] for event in stored] == [
        "lemlist.enrichment.run.completed",
        "lemlist.credits.low",
    ]
    team = f"lemlist.team.{result['team_id']}"
    for event in stored:
        assert event["resource"]["prefect.resource.id"] == team
        assert event["resource"]["lemlist.team.id"] == result["team_id"]
        roles = {related["prefect.resource.role"] for related in event["related"]}
        assert {"flow-run", "flow"} <= roles
    completed, low = stored
    assert low["payload"] == {"credits": SANDBOX_CREDITS, "threshold": 100}
    assert low["follows"] == completed["id"]
    assert completed["payload"]["credits_spent"] == 6
    assert completed["payload"]["destination"] == "postgresql://bob:***@db:5432/leads"

    # the automation ran its action on this event
    executed = wait_for(
        lambda: read_events(server, event={"name": ["prefect.automation.action.executed"]}),
        "the automation's action.executed event",
        timeout=30,
    )
    assert executed
    # no secret anywhere in what the server stored: the key (a flow parameter) and the password
    everything = json.dumps(read_events(server))
    assert FAKE_KEY not in everything and "db-password-1" not in everything


@pytest.mark.slow
def test_credits_above_the_alert_emit_no_credit_event(setup):
    server, receiver = setup["server"], setup["receiver"]
    notified = len(receiver.bodies)
    result = run_flow(setup, alert=10)  # 40 credits: not below 10
    assert result["events"] == ["lemlist.enrichment.run.completed"]
    stored = wait_for(
        lambda: run_events_of(server, result["flow_run_id"]), "the run's event", timeout=30
    )
    time.sleep(2)  # an event sent after the first one would be stored by now
    stored = run_events_of(server, result["flow_run_id"])
    assert [event["event"] for event in stored] == ["lemlist.enrichment.run.completed"]
    assert len(receiver.bodies) == notified
