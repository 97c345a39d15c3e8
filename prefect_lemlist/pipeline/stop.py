"""`StopSignal`: the one place a run learns it must stop starting enrichments, and why.

Every stage reads it: the starts (nothing more is sent once it is set), the collector (a refused
key abandons what is pending), the report (the rows left out say why) and the end of the run (a
stopped run ends Failed). Whoever learns a reason sets it: a start that fails (`stop_for`), the
credit watch, a Ctrl-C (`cancel`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from prefect_lemlist.api.exceptions import (
    ClaimedElsewhereError,
    LemlistAuthError,
    LemlistError,
    LemlistOutOfCreditsError,
)


class StopReason(str, Enum):
    """Why a run stopped starting enrichments."""

    KEY_REFUSED = "key_refused"
    OUT_OF_CREDITS = "out_of_credits"
    UNREACHABLE = "unreachable"
    CANCELLED = "cancelled"


NOT_STARTED_BECAUSE = {
    StopReason.KEY_REFUSED: "not started: the API key was refused (re-run with a working key)",
    StopReason.OUT_OF_CREDITS: "not started: the team ran out of credits (re-run after a top-up)",
    StopReason.UNREACHABLE: (
        "not started: lemlist could not be reached, so it was not sent (re-run the same "
        "command when it is reachable)"
    ),
    StopReason.CANCELLED: "not started: the run was interrupted (re-run the same command)",
}
"""What a row that was never started says, per reason."""

StopListener = Callable[["StopSignal"], None]


class StopSignal:
    """Tells every stage of a run that nothing more may be started, and why.

    A plain class on purpose: it is handed to Prefect task runs inside their start context, and
    Prefect rebuilds dataclass parameters whose fields it visits (a copy would not tell the run).

    Attributes:
        reason: why the run stopped starting, or None while it may start enrichments.
        error: the error behind the reason (None for a Ctrl-C).
        cancelled: the run was interrupted: requests not yet sent are not sent, whatever
            stopped the run first.
    """

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self.error: LemlistError | None = None
        self.cancelled = False
        self._listeners: list[StopListener] = []

    def __repr__(self) -> str:
        return f"StopSignal(reason={self.reason}, cancelled={self.cancelled})"

    @property
    def stopped(self) -> bool:
        """Whether the run stopped starting."""
        return self.reason is not None

    @property
    def not_started(self) -> str | None:
        """What the rows left out say, or None while the run may start enrichments."""
        return None if self.reason is None else NOT_STARTED_BECAUSE[self.reason]

    def subscribe(self, listener: StopListener) -> None:
        """Call `listener(signal)` once, when the run stops (at once if it already has)."""
        if self.reason is not None:
            listener(self)
        else:
            self._listeners.append(listener)

    def stop(self, reason: StopReason, error: LemlistError | None = None) -> None:
        """Stop starting for `reason` (the first reason is kept)."""
        if self.reason is not None:
            return
        self.reason, self.error = reason, error
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener(self)

    def stop_for(self, error: LemlistError) -> bool:
        """Stop when `error` means nothing more can be started: a refused key, no credits, or
        a start that could not be sent at all (`delivery == "not_sent"`). Returns whether the
        run is stopped for it."""
        reason = _reason_of(error)
        if reason is None:
            return False
        self.stop(reason, error)
        return True

    def cancel(self) -> None:
        """A Ctrl-C: send nothing more."""
        self.cancelled = True
        self.stop(StopReason.CANCELLED)


def _reason_of(error: LemlistError) -> StopReason | None:
    if isinstance(error, LemlistAuthError):
        return StopReason.KEY_REFUSED
    if isinstance(error, LemlistOutOfCreditsError):
        return StopReason.OUT_OF_CREDITS
    if error.delivery == "not_sent" and not isinstance(error, ClaimedElsewhereError):
        return StopReason.UNREACHABLE
    return None
