"""Flow processes of the e2e tier: `python ARGS...` in the repository root, with a sandbox's key
and URL in the environment (the fault matrix, the kill -9 re-runs, the shared-ledger homes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def start_python(
    args: Sequence[str],
    *,
    sandbox: Any = None,
    prefect_home: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    log_level: str | None = "WARNING",
    log: Path | None = None,
) -> subprocess.Popen:
    """Start `sys.executable ARGS...` in the repository root; returns the running process.

    Args:
        args: what follows the interpreter (a script and its arguments, or `-m module ...`).
        sandbox: a running sandbox whose key and URL go in `LEMLIST_API_KEY` / `LEMLIST_BASE_URL`.
        prefect_home: the process's `PREFECT_HOME`.
        env: overrides of this process's environment, applied last; None removes the variable.
        log_level: `PREFECT_LOGGING_LEVEL` (None: left as it is).
        log: write stdout and stderr to this file (its folder is made); None: both are piped
            to the caller as text (read them with `communicate`).
    """
    child_env = dict(os.environ)
    if sandbox is not None:
        child_env["LEMLIST_API_KEY"] = sandbox.api_key
        child_env["LEMLIST_BASE_URL"] = sandbox.base_url
    if log_level is not None:
        child_env["PREFECT_LOGGING_LEVEL"] = log_level
    if prefect_home is not None:
        child_env["PREFECT_HOME"] = str(prefect_home)
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    output: Any = subprocess.PIPE
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        output = open(log, "w")  # closed below: the child keeps its own copy
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=child_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=log is None,
        )
    finally:
        if log is not None:
            output.close()
