"""Sandboxes for the tests: a module's `sandbox` fixture (`sandbox_fixture`), and a fast sandbox
for flow tests that are not about the rate limit: lemlist's 20 requests per window, with a window
ten times shorter (0.2 s), and credentials whose client paces to the same window. Tests of the
limiter itself keep lemlist's real 2 s window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest

from prefect_lemlist import LemlistCredentials
from prefect_lemlist.sandbox import Sandbox, SandboxConfig, run_sandbox

FAST_WINDOW: dict[str, Any] = {"rate_window_seconds": 0.2}
"""`SandboxConfig` fields of a fast sandbox (20 requests per 0.2 s)."""


def credentials_for(sandbox: Any, **overrides: Any) -> LemlistCredentials:
    """Credentials for `sandbox` whose client keeps to the sandbox's own rate window."""
    config = sandbox.config
    return LemlistCredentials(
        api_key=sandbox.api_key,
        base_url=sandbox.base_url,
        rate_limit=config.rate_limit,
        rate_window_seconds=config.rate_window_seconds,
        **overrides,
    )


def sandbox_fixture(scope: Literal["function", "module"] = "function", **config: Any) -> Any:
    """A `sandbox` fixture for a test module: a running sandbox of `SandboxConfig(**config)`, new
    for each test (`scope="function"`) or shared by the module's tests (`scope="module"`).

    Use: `sandbox = sandbox_fixture("module", leads=5)` at the top level of the module.
    """

    @pytest.fixture(scope=scope, name="sandbox")
    def sandbox() -> Iterator[Sandbox]:
        with run_sandbox(SandboxConfig(**config)) as running:
            yield running

    return sandbox
