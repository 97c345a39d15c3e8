"""Checked values: lemlist ids and URLs are validated once, where they enter, then trusted.

`LeadId("lea_…")` raises `ValueError` for anything that could change the meaning of a URL; an
existing `LeadId` passes `LeadId.ensure(...)` without a second check. The id types are `str`
subclasses, so they serialise, compare and hash as plain strings, and work as pydantic fields.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

# Characters that would change the URL, and dot segments ("." or "..") that httpx would resolve.
_FORBIDDEN_IN_ID = re.compile(r"[/?#\\\s]|\.\.|^\.$")
_MAX_SHOWN = 60

_Id = TypeVar("_Id", bound="LemlistId")


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
            f"{kind} {value[:_MAX_SHOWN]!r} is not valid: it must not contain '/', '?', '#', "
            "'\\', whitespace or '..'"
        )
    return value


class LemlistId(str):
    """A lemlist id checked to be one safe URL path segment (base of the typed ids)."""

    kind = "id"

    def __new__(cls, value: object) -> LemlistId:
        """Check `value` (see `validate_id`) and wrap it.

        Raises:
            ValueError: the value cannot be a path segment.
        """
        return super().__new__(cls, validate_id(value, cls.kind))

    @classmethod
    def ensure(cls: type[_Id], value: object) -> _Id:
        """`value` itself when it is already this type (no second check), else a checked one."""
        return value if isinstance(value, cls) else cls(value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls.ensure,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


class LeadId(LemlistId):
    """A lead id (`lea_…`)."""

    kind = "lead id"


class CampaignId(LemlistId):
    """A campaign id (`cam_…`)."""

    kind = "campaign id"


class EnrichmentId(LemlistId):
    """An enrichment id (`enr_…`)."""

    kind = "enrichment id"


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
        shown = str(value)[:80]
        hint = (
            f" (did you mean 'https://{shown}'?)"
            if isinstance(value, str) and "://" not in value and value.strip()
            else ""
        )
        raise ValueError(f"{what} must be an absolute http:// or https:// URL, got {shown!r}{hint}")
    return value.strip()
