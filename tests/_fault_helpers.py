"""Helpers of `test_fault_matrix.py`: a flow runner for subprocesses, and process plumbing.

Run as a script, it is the flow process of the kill -9 and Prefect-API-outage tests:

    python tests/_fault_helpers.py CAMPAIGN_ID OUTPUT_DIR NAME

It runs `enrich-campaign` with credentials from `LEMLIST_API_KEY` / `LEMLIST_BASE_URL`, fast
polling (the CLI has no flag for it), and writes the summary to `OUTPUT_DIR/NAME.summary.json`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _processes import start_python

from prefect_lemlist import local_api

STARTED: list[subprocess.Popen] = []  # every process started here, for `kill_leftovers`


def start_flow(
    sandbox, output_dir: Path, name: str, extra_env: dict[str, str | None] | None = None
) -> subprocess.Popen:
    """Start this file as a flow process against `sandbox`; output and log in `output_dir`.

    `extra_env` values override the environment; None removes the variable.
    """
    process = start_python(
        [__file__, sandbox.campaign_id, str(output_dir), name],
        sandbox=sandbox,
        env=extra_env,
        log=output_dir / f"{name}.log",
    )
    STARTED.append(process)
    return process


def kill_leftovers() -> None:
    """Kill the processes started here that still run (a test failed or was interrupted)."""
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    STARTED.clear()


def log_tail(output_dir: Path, name: str, chars: int = 3000) -> str:
    path = output_dir / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


async def wait_process(process: subprocess.Popen, timeout: float) -> int:
    """Wait for a process without blocking the event loop; kill it after `timeout`."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait(10)
            raise AssertionError(f"process {process.args} did not finish in {timeout:g}s")
        await asyncio.sleep(0.1)
    return process.returncode


async def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 120.0):
    """Poll `condition` (cheap, sync) until true; fail if `process` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the flow ended (rc={process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{what}: not reached in {timeout:g}s")
        await asyncio.sleep(0.02)


def kill9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)


class PrefectServer(local_api.PrefectServer):
    """`prefect_lemlist.local_api.PrefectServer`, with its processes killed by `kill_leftovers`."""

    async def start(self, timeout: float = 120.0) -> None:
        try:
            await super().start(timeout)
        finally:
            if self.process is not None:
                STARTED.append(self.process)


async def _run(campaign_id: str, output_dir: str, name: str) -> None:
    from prefect_lemlist.flows import enrich_campaign
    from prefect_lemlist.pipeline import EnrichmentOptions

    options = EnrichmentOptions(
        output_dir=output_dir,
        output_name=name,
        first_poll_seconds=0.5,
        collect_timeout_seconds=float(os.environ.get("FAULT_COLLECT_TIMEOUT", "120")),
        batch_size=20,
    )
    summary = await enrich_campaign(campaign_id, None, options=options)
    Path(output_dir, f"{name}.summary.json").write_text(summary.model_dump_json())


if __name__ == "__main__":
    asyncio.run(_run(*sys.argv[1:4]))
