"""Prefect events at the end of a run, for Automations ("notify me when credits run low").

Every run that got as far as enriching (not a dry run, not a run refused before it starts for
its cost or a refused key) ends with one event on its lemlist team:
`lemlist.enrichment.run.completed` or `lemlist.enrichment.run.halted`, and, when a credit
threshold is set and the team's credits after the run are below it, `lemlist.credits.low`.
Prefect triggers match event names and resource labels, never numbers in a payload: the
threshold is compared here, so an automation only has to expect `lemlist.credits.low` on
`lemlist.team.*`. Inside a flow run, Prefect's events worker relates each event to the flow run
(and its flow, deployment, tags) by itself.

Emitting never fails the run: an event Prefect refuses, or events being off, is a warning in the
run's log. No event carries a secret: the facts hold no API key, and a destination URL loses its
password. See `docs/recipes/credits-alert.md` for an automation built on these events.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefect.context import FlowRunContext
from prefect.events import Event, emit_event
from prefect.exceptions import MissingContextError

from prefect_lemlist.pipeline.report import PipelineSummary, run_log

RUN_COMPLETED = "lemlist.enrichment.run.completed"
RUN_HALTED = "lemlist.enrichment.run.halted"
CREDITS_LOW = "lemlist.credits.low"
EVENT_NAMES = (RUN_COMPLETED, RUN_HALTED, CREDITS_LOW)
"""Every event a run may emit."""
HALT_REASONS = frozenset({"out_of_credits", "key_refused", "unreachable", "cancelled"})
"""The values of `RunEventFacts.halted` (`StopReason`'s values)."""
TEAM_LABEL = "lemlist.team.id"
HALT_REASON_LABEL = "lemlist.halted.reason"
"""On a halted run's resource: lets a trigger match one reason (`match` sees labels only)."""

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEventFacts:
    """What a finished run tells its events: the flows build it from their summary.

    Attributes:
        team_id: the lemlist team id (the events' resource is `lemlist.team.<team_id>`).
        team_name: the team's name (shown as the resource's name), or None.
        flow: the flow's name, e.g. `enrich-campaign`.
        source: where the rows came from, e.g. `campaign cam_x (state=all, 200 leads)`.
        workflows: the requested workflows.
        halted: None when the run completed, else why it stopped starting enrichments:
            `out_of_credits`, `key_refused`, `unreachable` or `cancelled`.
        halted_message: what the halt said (for a halted run), or None.
        counts: rows per status.
        started: enrichments lemlist accepted in the run.
        credits_before: the team's credits before the run, or None when unknown.
        credits_after: the team's credits after the run, or None when unknown.
        destination: where the results landed (a file path, or a database URL: its password
            is dropped from the events), or None.
        credits_alert: emit `lemlist.credits.low` when `credits_after` is below this; None
            for no credit event.
    """

    team_id: str
    team_name: str | None
    flow: str
    source: str
    workflows: list[str]
    halted: str | None
    halted_message: str | None
    counts: dict[str, int]
    started: int
    credits_before: float | None
    credits_after: float | None
    destination: str | None
    credits_alert: float | None


def facts_of_run(
    summary: PipelineSummary,
    *,
    team_id: str,
    team_name: str | None,
    halted: str | None,
    halted_message: str | None,
    credits_alert: float | None,
) -> RunEventFacts:
    """The facts of a finished run, from its summary (the flow's name from the run context).

    Example:
        >>> facts = facts_of_run(summary, team_id="tea_1", team_name=None, halted=None,
        ...                      halted_message=None, credits_alert=500)  # doctest: +SKIP
    """
    context = FlowRunContext.get()
    return RunEventFacts(
        team_id=team_id,
        team_name=team_name,
        flow=context.flow.name if context is not None and context.flow else "enrichment",
        source=summary.source,
        workflows=summary.workflows,
        halted=halted,
        halted_message=halted_message,
        counts=summary.counts,
        started=summary.started,
        credits_before=summary.credits_before,
        credits_after=summary.credits_after,
        destination=summary.table or summary.csv_path or summary.jsonl_path or summary.parquet_path,
        credits_alert=credits_alert,
    )


def _number(value: float | None) -> float | int | None:
    """A credit figure as JSON likes it: whole numbers as int, NaN/inf as None."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def redact_url(destination: str | None) -> str | None:
    """A destination without the password a database URL may carry.

    Args:
        destination: a file path or a URL, or None.

    Returns:
        The same text, with `user:password@` turned into `user:***@`; None stays None.

    Examples:
        ```python
        redact_url("postgresql://bob:s3cret@db:5432/leads")  # 'postgresql://bob:***@db:5432/leads'
        ```
    """
    if not destination or "://" not in destination:
        return destination
    parts = urlsplit(destination)
    if parts.password is None:
        return destination
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def credits_spent(facts: RunEventFacts) -> float | int | None:
    """Credits the team's balance went down by during the run.

    Args:
        facts: the run's facts.

    Returns:
        `credits_before - credits_after`, or None when either is unknown.

    Examples:
        ```python
        credits_spent(facts)  # 12 for credits_before=100, credits_after=88
        ```
    """
    if facts.credits_before is None or facts.credits_after is None:
        return None
    return _number(facts.credits_before - facts.credits_after)


def credits_are_low(facts: RunEventFacts) -> bool:
    """Whether the run ends below its credit threshold (strictly below; unknown is not low).

    Args:
        facts: the run's facts.

    Returns:
        True when `credits_alert` and `credits_after` are both known and
        `credits_after < credits_alert`.

    Examples:
        ```python
        credits_are_low(facts)  # True for credits_after=40, credits_alert=100
        ```
    """
    if facts.credits_alert is None or facts.credits_after is None:
        return False
    return facts.credits_after < facts.credits_alert


def _run_payload(facts: RunEventFacts) -> dict[str, Any]:
    """The fields both run events carry."""
    return {
        "flow": facts.flow,
        "source": facts.source,
        "workflows": list(facts.workflows),
        "counts": dict(facts.counts),
        "started": facts.started,
        "credits_before": _number(facts.credits_before),
        "credits_after": _number(facts.credits_after),
        "credits_spent": credits_spent(facts),
        "destination": redact_url(facts.destination),
    }


def run_events(facts: RunEventFacts) -> list[tuple[str, dict[str, Any]]]:
    """The events a finished run emits, as (event name, payload) pairs; pure (no Prefect).

    Args:
        facts: the run's facts.

    Returns:
        `lemlist.enrichment.run.completed` (when `halted` is None) or
        `lemlist.enrichment.run.halted` (with `reason` and `message`), then
        `lemlist.credits.low` (`credits`, `threshold`) when the credits end below
        `credits_alert`. Every payload is JSON-serialisable.

    Raises:
        ValueError: `halted` is not one of `HALT_REASONS`.

    Examples:
        ```python
        for name, payload in run_events(facts):
            print(name, payload.get("credits_spent"))
        ```
    """
    payload = _run_payload(facts)
    if facts.halted is None:
        events = [(RUN_COMPLETED, payload)]
    elif facts.halted in HALT_REASONS:
        halted = {"reason": facts.halted, "message": facts.halted_message, **payload}
        events = [(RUN_HALTED, halted)]
    else:
        raise ValueError(f"unknown halt reason {facts.halted!r}: one of {sorted(HALT_REASONS)}")
    if credits_are_low(facts):
        low = {"credits": _number(facts.credits_after), "threshold": _number(facts.credits_alert)}
        events.append((CREDITS_LOW, low))
    return events


def team_resource(facts: RunEventFacts, event: str = RUN_COMPLETED) -> dict[str, str]:
    """The resource an event is about: the lemlist team (label values are strings).

    Args:
        facts: the run's facts.
        event: the event's name: a halted run's resource also carries
            `lemlist.halted.reason`.

    Returns:
        `prefect.resource.id` `lemlist.team.<team_id>`, `prefect.resource.name` (the team's
        name, else its id) and `lemlist.team.id`.

    Examples:
        ```python
        team_resource(facts)["prefect.resource.id"]  # 'lemlist.team.tea_123'
        ```
    """
    resource = {
        "prefect.resource.id": f"lemlist.team.{facts.team_id}",
        "prefect.resource.name": facts.team_name or facts.team_id,
        TEAM_LABEL: facts.team_id,
    }
    if event == RUN_HALTED and facts.halted is not None:
        resource[HALT_REASON_LABEL] = facts.halted
    return resource


def _warn(message: str, *args: object) -> None:
    """A warning in the run's log; outside a run, in this module's logger."""
    try:
        run_log(logging.WARNING, message, *args)
    except MissingContextError:
        _logger.warning(message, *args)


def _emit(
    name: str, facts: RunEventFacts, payload: dict[str, Any], follows: Event | None
) -> Event | None:
    """Emit one event; None (after a warning) when Prefect raised or did not take it."""
    try:
        event = emit_event(
            name, resource=team_resource(facts, name), payload=payload, follows=follows
        )
    except Exception as error:  # a run's result matters more than its event
        _warn("Prefect event %s was not emitted: %s: %s", name, type(error).__name__, error)
        return None
    if event is None:  # events are off for this API, or Prefect logged its own error
        _warn(
            "Prefect event %s was not emitted (events are off for this Prefect API, or "
            "Prefect's events client failed: see the prefect.events log)",
            name,
        )
    return event


def emit_run_events(facts: RunEventFacts) -> list[Event]:
    """Emit the run's events (see `run_events`) with Prefect; never raises for Prefect's sake.

    Inside a flow run, Prefect's events worker adds the flow run (and its flow, deployment
    and tags) to each event's `related` resources when it sends the event. `lemlist.credits.low`
    follows the run's event.

    Args:
        facts: the run's facts.

    Returns:
        The events handed to Prefect, in order; fewer (or none) when Prefect refused one or
        events are off (both logged as a warning, through the run logger inside a run).

    Raises:
        ValueError: `halted` is not one of `HALT_REASONS` (a caller bug, not Prefect's).

    Examples:
        ```python
        from prefect_lemlist.pipeline.events import RunEventFacts, emit_run_events

        facts = RunEventFacts(
            team_id="tea_123", team_name="Sales", flow="enrich-campaign",
            source="campaign cam_x (state=all, 200 leads)", workflows=["find_email"],
            halted=None, halted_message=None, counts={"done": 180, "not_found": 20},
            started=200, credits_before=540.0, credits_after=420.0,
            destination="/data/out/cam_x.csv", credits_alert=500.0,
        )
        emit_run_events(facts)  # run.completed, then credits.low (420 < 500)
        ```
    """
    emitted: list[Event] = []
    for name, payload in run_events(facts):
        event = _emit(name, facts, payload, emitted[0] if emitted else None)
        if event is not None:
            emitted.append(event)
    return emitted
