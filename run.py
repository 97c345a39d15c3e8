#!/usr/bin/env python3
"""One entry point for the two Quick start commands.

    python3 run.py demo   # the example enrichment flow against the local lemlist sandbox
    python3 run.py test   # lint, layering, types and the full test suite (what CI runs)
    python3 run.py test --fast   # the same without the e2e tier (own processes and servers)

Needs only Python >= 3.10. On first use it creates `.venv/` next to this file and installs the
package with its dev extras into it; later runs reuse it (reinstalling only when `pyproject.toml`
changes). Any extra arguments are passed on: `python3 run.py test -k limiter`,
`python3 run.py demo --contacts`, `python3 run.py demo --fresh`. Tests run in 3 processes
(`-n 1` or `-p no:xdist` for one).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".install-stamp"


def _venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def _ensure_environment() -> Path:
    """Create the virtual environment and install the project into it when needed."""
    python = _venv_python()
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(
        "Installing prefect-lemlist and its dev tools (first run only) ...",
        file=sys.stderr,
        flush=True,
    )
    quiet = [] if os.environ.get("CI") else ["-q"]
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            *quiet,
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[dev]",
        ],
        check=True,
    )
    STAMP.write_text(wanted)
    return python


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # A brand-new ephemeral Prefect database takes ~16 s to migrate on a small machine, close to
    # Prefect's 20 s default start-up timeout; give it room.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The ephemeral server's telemetry service writes to SQLite at start-up and prints "database is
    # locked" tracebacks while the first migrations run; it sends nothing useful offline anyway.
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def main(argv: list[str]) -> int:
    """Dispatch `demo` or `test`; returns the child's exit code."""
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    command, extra = argv[0], argv[1:]
    python = _ensure_environment()
    env = _base_env()
    if command == "demo":
        # The demo keeps its own Prefect home (database, persisted results) inside the checkout,
        # so it never touches ~/.prefect and a re-run resumes from what the last one stored.
        env.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
        env.setdefault("LEMLIST_LEDGER_DIR", str(ROOT / ".prefect" / "lemlist-ledger"))
        env.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
        cmd = [str(python), "-m", "flows.demo", *extra]
        return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    env["PREFECT_TEST_MODE"] = "1"
    bin_dir = python.parent
    for name, check in _CHECKS:
        print(f"{name} ...", flush=True)
        code = subprocess.run([str(bin_dir / check[0]), *check[1:]], cwd=ROOT, env=env, check=False)
        if code.returncode:
            return code.returncode
    if "--fast" in extra:  # every tier but e2e (own processes and servers): the daily loop
        extra = [arg for arg in extra if arg != "--fast"] + FAST_TIERS
    if not any(arg.startswith(("-n", "--numprocesses")) or arg == "no:xdist" for arg in extra):
        # three processes, each module in one of them (module fixtures stay whole): most tests
        # wait on lemlist's rate window or on subprocesses, so 3 fit on 2 cores
        extra = ["--numprocesses", "3", "--dist", "loadfile", *extra]
    cmd = [str(python), "-m", "pytest", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


FAST_TIERS = ["tests/unit", "tests/sandbox", "tests/flows"]

_CHECKS = (
    ("ruff: style, bugs, complexity <= 10", ["ruff", "check", "--quiet", "."]),
    ("ruff format", ["ruff", "format", "--check", "--quiet", "."]),
    ("import-linter: layers, no cycles", ["lint-imports", "--no-cache"]),
    ("mypy: types", ["mypy"]),
)


if __name__ == "__main__":
    if sys.version_info < (3, 10):  # noqa: UP036 - this file must explain itself on old Pythons
        sys.exit(f"prefect-lemlist needs Python >= 3.10 (this is {sys.version.split()[0]}).")
    sys.exit(main(sys.argv[1:]))
