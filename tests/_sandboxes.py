"""A sandbox for flow tests that are not about the rate limit: lemlist's 20 requests per window,
with a window ten times shorter (0.2 s), and credentials whose client paces to the same window.
Tests of the limiter itself keep lemlist's real 2 s window."""

from __future__ import annotations

from typing import Any

from prefect_lemlist import LemlistCredentials

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
