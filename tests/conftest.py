"""Shared fixtures: one Prefect test server for the session, and sandboxes on loopback."""

from __future__ import annotations

import os
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

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_test_fixture():
    """Run every test against one throw-away Prefect API server (SQLite in a temp dir)."""
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
