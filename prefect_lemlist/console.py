"""The terminal during a CLI flow run: our own log lines and warnings, a progress bar on a TTY;
no tracebacks and no engine chatter (both still reach the flow run's logs in the Prefect UI).
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class Console:
    """The terminal during a flow run: our own log lines, warnings, a progress bar on a TTY;
    no tracebacks and no engine chatter (both still reach the flow run's logs)."""

    def __init__(self, *, debug: bool) -> None:
        self.debug = debug
        self.bar = None if debug or not sys.stderr.isatty() else _ProgressBar()
        self._filter = _ConsoleFilter(hide_progress=self.bar is not None)
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> Console:
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
