"""Checks on what users pass in, done before any request is sent."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Characters that would change the URL, and dot segments ("." or "..") that httpx would resolve.
_FORBIDDEN_IN_ID = re.compile(r"[/?#\\\s]|\.\.|^\.$")


def validate_id(value: object, kind: str = "lead id") -> str:
    """Return `value` if it can safely be one path segment of a lemlist URL.

    lemlist ids look like `lea_…`/`enr_…`/`cam_…`, but the format is not guaranteed, so only what
    could change the URL's meaning is refused.

    Args:
        value: the id to check.
        kind: what the id is, for the error message.

    Returns:
        The id, unchanged.

    Raises:
        ValueError: the id is not a string, is empty, or contains `/`, `?`, `#`, `\\`,
            whitespace or `..`, or is `.`.
    """
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{kind} must not be empty")
    if _FORBIDDEN_IN_ID.search(value):
        raise ValueError(
            f"{kind} {value[:60]!r} is not valid: it must not contain '/', '?', '#', '\\', "
            "whitespace or '..'"
        )
    return value


def validate_http_url(value: str, what: str) -> str:
    """Return `value` (stripped of surrounding spaces) if it is an absolute http(s) URL.

    Args:
        value: the URL to check.
        what: what the URL is for, for the error message.

    Raises:
        ValueError: not an absolute http:// or https:// URL with a host.
    """
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"{what} must be an absolute http:// or https:// URL, got {str(value)[:80]!r}"
        )
    return value.strip()
