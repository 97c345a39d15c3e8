"""This tier runs against the session's Prefect test server (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _on_the_prefect_test_server(prefect_test_server):
    """Every test of this tier talks to the session's Prefect test server."""
    yield
