"""Parsers for lemlist's rate-limit headers (`Retry-After`, `X-RateLimit-Reset`)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

DEFAULT_RETRY_AFTER_SECONDS = 2.0  # lemlist's window: waiting one full window always helps
MIN_RETRY_AFTER_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 60.0

_JS_DATE = re.compile(
    r"^\s*(?:[A-Za-z]{3}\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
    r"\s+GMT([+-])(\d{2}):?(\d{2})"
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}


def parse_js_date(value: str | None) -> datetime | None:
    """Parse JavaScript's `Date.toString()` format, as lemlist sends in `X-RateLimit-Reset`.

    Example: `Thu Jul 25 2024 14:43:48 GMT+0200 (Central European Summer Time)`.

    Args:
        value: the header value.

    Returns:
        An aware datetime, or None when the value is missing or not in that format.
    """
    if not value:
        return None
    match = _JS_DATE.match(value)
    if not match:
        return None
    month, day, year, hh, mm, ss, sign, off_h, off_m = match.groups()
    try:
        naive = datetime(int(year), _MONTHS[month.lower()], int(day), int(hh), int(mm), int(ss))
        offset_minutes = (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
        tz = timezone(timedelta(minutes=offset_minutes))
    except (KeyError, ValueError, OverflowError):
        return None
    return naive.replace(tzinfo=tz)


def retry_after_seconds(
    retry_after: str | None,
    rate_limit_reset: str | None = None,
    *,
    now: datetime | None = None,
    default: float = DEFAULT_RETRY_AFTER_SECONDS,
    minimum: float = MIN_RETRY_AFTER_SECONDS,
    maximum: float = MAX_RETRY_AFTER_SECONDS,
) -> float:
    """How long to wait after a 429, from the headers lemlist sent.

    `Retry-After` (seconds, or an HTTP date) wins; otherwise `X-RateLimit-Reset`; otherwise
    `default`. Garbage, negative, NaN or infinite values fall back to the next source, and the
    result is clamped to `[minimum, maximum]` so that a `0` cannot cause a hot loop and a huge
    value cannot stall a run for hours.

    Args:
        retry_after: the `Retry-After` header, if any.
        rate_limit_reset: the `X-RateLimit-Reset` header, if any.
        now: the current time (for tests); defaults to the clock.
        default: the wait when no header is usable.
        minimum: the shortest wait returned.
        maximum: the longest wait returned.

    Returns:
        Seconds to wait.
    """
    now = now or datetime.now(timezone.utc)
    seconds: float | None = None
    if retry_after is not None:
        text = retry_after.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
                seconds = (when - now).total_seconds() if when.tzinfo else None
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = None
        if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
            seconds = None
    if seconds is None:
        reset = parse_js_date(rate_limit_reset)
        if reset is not None:
            candidate = (reset - now).total_seconds()
            if candidate >= 0:
                seconds = candidate
    if seconds is None:
        seconds = default
    return min(max(seconds, minimum), maximum)
