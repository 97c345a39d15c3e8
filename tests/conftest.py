"""Shared by every tier: an isolated Prefect home and ledger, the shared helpers on the path, one
Prefect test server for the session (started only by the tiers that need it: flows, e2e).

Tiers (`python3 run.py test` runs them all; `--fast` all but e2e):
- `unit/`: pure code and respx unit tests, no Prefect server;
- `sandbox/`: the local lemlist and the fault proxy over real loopback HTTP, and a throw-away
  PostgreSQL (`postgres_url`, for `prefect_lemlist.sql`), no Prefect server;
- `flows/`: the package inside real Prefect flows, against the session's test server;
- `e2e/`: own processes, own Prefect servers, kill -9, the CLI, wheel builds, S3 races.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Settings that must exist before Prefect is imported: an isolated Prefect home, test mode,
# and a generous start-up timeout for the server on small CI machines.
os.environ.setdefault("PREFECT_TEST_MODE", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-lemlist-tests-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# The enrichment ledger's default lives outside PREFECT_HOME (shared by every Prefect home of the
# user): keep the tests' ledger inside the session's temporary home instead.
os.environ.setdefault(
    "LEMLIST_LEDGER_DIR", os.path.join(os.environ["PREFECT_HOME"], "lemlist-ledger-dir")
)
sys.path.insert(0, os.path.dirname(__file__))  # `_fault_helpers`, `_sandbox_http` from any tier

import pytest


@pytest.fixture(scope="session")
def prefect_test_server():
    """One throw-away Prefect API server (SQLite in a temp dir) for the session's flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(autouse=True)
def _forget_team_lookups():
    """Each test's sandboxes are new lemlist teams: a loopback port reused by a later sandbox
    with the same default key must not inherit an earlier sandbox's team id (in real use a
    key at a URL always belongs to one team, so the process caches it)."""
    from prefect_lemlist.pipeline import start

    start._teams.clear()
    yield


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL cluster for the session (tests/_postgres.py): its SQLAlchemy URL,
    `postgresql+psycopg://postgres@127.0.0.1:PORT/lemlist_test`. Fails (never skips) when
    PostgreSQL is not installed: the SQL tests are part of the suite."""
    from _postgres import PostgresUnavailable, postgres_cluster

    try:
        cluster = postgres_cluster()
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)
