"""The run's Prefect events: which ones, with what payload (pure `run_events`), and emitting
them never fails the run (`emit_run_events` with Prefect's `emit_event` replaced)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import pytest

from prefect_lemlist.pipeline import events
from prefect_lemlist.pipeline.events import (
    CREDITS_LOW,
    RUN_COMPLETED,
    RUN_HALTED,
    RunEventFacts,
    emit_run_events,
    redact_url,
    run_events,
    team_resource,
)

FACTS = RunEventFacts(
    team_id="tea_123",
    team_name="Sales team",
    flow="enrich-campaign",
    source="campaign cam_x (state=all, 200 leads)",
    workflows=["find_email", "find_phone"],
    halted=None,
    halted_message=None,
    counts={"done": 150, "not_found": 40, "failed": 10},
    started=200,
    credits_before=540.0,
    credits_after=420.0,
    destination="/data/out/cam_x.csv",
    credits_alert=None,
)


def facts(**changes) -> RunEventFacts:
    return dataclasses.replace(FACTS, **changes)


def names(run: RunEventFacts) -> list[str]:
    return [name for name, _ in run_events(run)]


def test_a_completed_run_emits_completed_with_the_run_figures():
    [(name, payload)] = run_events(FACTS)
    assert name == RUN_COMPLETED
    assert payload == {
        "flow": "enrich-campaign",
        "source": "campaign cam_x (state=all, 200 leads)",
        "workflows": ["find_email", "find_phone"],
        "counts": {"done": 150, "not_found": 40, "failed": 10},
        "started": 200,
        "credits_before": 540,
        "credits_after": 420,
        "credits_spent": 120,
        "destination": "/data/out/cam_x.csv",
    }


@pytest.mark.parametrize("reason", ["out_of_credits", "key_refused", "unreachable", "cancelled"])
def test_a_halted_run_emits_halted_with_its_reason_and_counts(reason):
    [(name, payload)] = run_events(facts(halted=reason, halted_message="it stopped"))
    assert name == RUN_HALTED
    assert payload["reason"] == reason and payload["message"] == "it stopped"
    assert payload["counts"] == FACTS.counts and payload["started"] == 200
    assert team_resource(facts(halted=reason), RUN_HALTED)["lemlist.halted.reason"] == reason


def test_an_unknown_halt_reason_is_a_caller_bug():
    with pytest.raises(ValueError, match="unknown halt reason"):
        run_events(facts(halted="tired"))


@pytest.mark.parametrize(
    ("after", "alert", "low"),
    [
        (420.0, 500.0, True),  # below the threshold
        (499.5, 500.0, True),
        (500.0, 500.0, False),  # at it: not below
        (501.0, 500.0, False),
        (0.0, 1.0, True),
        (420.0, None, False),  # no threshold: no credit event
        (None, 500.0, False),  # credits unknown: no credit event
        (None, None, False),
    ],
)
def test_credits_low_only_strictly_below_a_known_threshold(after, alert, low):
    run = facts(credits_after=after, credits_alert=alert)
    assert names(run) == ([RUN_COMPLETED, CREDITS_LOW] if low else [RUN_COMPLETED])
    if low:
        assert run_events(run)[1][1] == {"credits": after, "threshold": alert}


def test_a_halted_run_can_also_be_low_on_credits():
    run = facts(
        halted="out_of_credits", halted_message="no credits", credits_after=3, credits_alert=10
    )
    assert names(run) == [RUN_HALTED, CREDITS_LOW]
    assert run_events(run)[1][1] == {"credits": 3, "threshold": 10}


@pytest.mark.parametrize(
    ("before", "after", "spent"),
    [
        (540.0, 420.0, 120),
        (100.0, 100.0, 0),
        (10.5, 10.25, 0.25),
        (None, 420.0, None),
        (5.0, None, None),
    ],
)
def test_credits_spent_is_before_minus_after_when_both_are_known(before, after, spent):
    [(_, payload)] = run_events(facts(credits_before=before, credits_after=after))
    assert payload["credits_spent"] == spent


def test_every_payload_is_json_and_carries_no_secret_field():
    runs = [
        facts(credits_alert=1000.0),
        facts(halted="key_refused", halted_message="401", credits_before=None, credits_after=None),
        facts(credits_before=float("nan"), credits_after=float("inf"), credits_alert=1.0),
    ]
    secretish = re.compile(r"key|token|secret|password|authorization", re.IGNORECASE)
    for run in runs:
        for name, payload in run_events(run):
            text = json.dumps(payload, allow_nan=False)  # NaN / inf would not be JSON
            assert json.loads(text) == payload
            assert not [field for field in payload if secretish.search(field)], (name, payload)


def test_a_database_destination_loses_its_password():
    url = "postgresql://bob:s3cret@db.example:5432/leads"
    [(_, payload)] = run_events(facts(destination=url))
    assert payload["destination"] == "postgresql://bob:***@db.example:5432/leads"
    assert "s3cret" not in json.dumps(payload)
    assert redact_url("duckdb:///data/leads.duckdb") == "duckdb:///data/leads.duckdb"
    assert redact_url("/tmp/out.csv") == "/tmp/out.csv" and redact_url(None) is None


def test_the_resource_is_the_team():
    assert team_resource(FACTS) == {
        "prefect.resource.id": "lemlist.team.tea_123",
        "prefect.resource.name": "Sales team",
        "lemlist.team.id": "tea_123",
    }
    assert team_resource(facts(team_name=None))["prefect.resource.name"] == "tea_123"


# ----------------------------------------------------------------------- emit_run_events


class Recorder:
    """Stands in for `prefect.events.emit_event`."""

    def __init__(self, fail_on: str | None = None, answer_none: bool = False):
        self.calls: list[dict] = []
        self.fail_on = fail_on
        self.answer_none = answer_none

    def __call__(self, event, resource, payload=None, follows=None, **_):
        from prefect.events import Event

        self.calls.append(
            {"event": event, "resource": resource, "payload": payload, "follows": follows}
        )
        if event == self.fail_on:
            raise RuntimeError("the events client broke")
        if self.answer_none:
            return None
        return Event(event=event, resource=resource, payload=payload or {})


def test_emit_sends_every_event_on_the_team_and_the_low_one_follows_the_run(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(events, "emit_event", recorder)
    emitted = emit_run_events(facts(credits_alert=500.0))
    assert [event.event for event in emitted] == [RUN_COMPLETED, CREDITS_LOW]
    assert all(event.resource.id == "lemlist.team.tea_123" for event in emitted)
    assert recorder.calls[0]["follows"] is None
    assert recorder.calls[1]["follows"] is emitted[0]


def test_an_event_prefect_refuses_is_a_warning_not_a_failure(monkeypatch, caplog):
    monkeypatch.setattr(events, "emit_event", Recorder(fail_on=RUN_COMPLETED))
    with caplog.at_level(logging.WARNING, logger=events.__name__):
        emitted = emit_run_events(facts(credits_alert=500.0))  # outside a run: module logger
    assert [event.event for event in emitted] == [CREDITS_LOW]
    assert "lemlist.enrichment.run.completed was not emitted: RuntimeError" in caplog.text


def test_events_off_is_a_warning_not_a_failure(monkeypatch, caplog):
    monkeypatch.setattr(events, "emit_event", Recorder(answer_none=True))
    with caplog.at_level(logging.WARNING, logger=events.__name__):
        assert emit_run_events(FACTS) == []
    assert "events are off" in caplog.text


def test_inside_a_run_the_warning_goes_to_the_run_logger(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(events, "emit_event", Recorder(answer_none=True))
    monkeypatch.setattr(
        events, "run_log", lambda level, message, *args: lines.append(message % args)
    )
    emit_run_events(FACTS)
    assert lines and "lemlist.enrichment.run.completed was not emitted" in lines[0]
