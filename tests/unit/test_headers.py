"""Unit and property tests of the rate-limit header parsers."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prefect_lemlist.api.headers import (
    DEFAULT_RETRY_AFTER_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    MIN_RETRY_AFTER_SECONDS,
    parse_js_date,
    retry_after_seconds,
)

DOC_RESET = "Thu Jul 25 2024 14:43:48 GMT+0200 (Central European Summer Time)"
DOC_RESET_UTC = datetime(2024, 7, 25, 12, 43, 48, tzinfo=timezone.utc)
JS_FORMAT = "%a %b %d %Y %H:%M:%S GMT%z"

# ------------------------------------------------------------------------- parse_js_date


def test_parse_js_date_doc_example():
    parsed = parse_js_date(DOC_RESET)
    assert parsed == DOC_RESET_UTC
    assert parsed.utcoffset() == timedelta(hours=2)


def test_parse_js_date_other_doc_example():
    parsed = parse_js_date("Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)")
    assert parsed == datetime(2021, 2, 16, 8, 2, 42, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jul 25 2024 14:43:48 GMT+0200", DOC_RESET_UTC),  # no weekday
        ("Thu Jul 25 2024 14:43:48 GMT+02:00", DOC_RESET_UTC),  # colon in the offset
        ("thu jul 25 2024 14:43:48 GMT+0200", DOC_RESET_UTC),  # lower case
        ("Thu Jul 25 2024 08:13:48 GMT-0430 (X)", DOC_RESET_UTC),  # negative offset
        ("Thu Jul 25 2024 12:43:48 GMT+0000", DOC_RESET_UTC),
    ],
)
def test_parse_js_date_variants(value, expected):
    assert parse_js_date(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "2",
        "garbage",
        "2024-07-25T14:43:48+02:00",
        "Thu, 25 Jul 2024 12:43:48 GMT",  # HTTP date, not the JS format
        "Thu Foo 25 2024 14:43:48 GMT+0200",  # unknown month
        "Thu Feb 30 2024 14:43:48 GMT+0200",  # no such day
        "Thu Jul 25 2024 25:43:48 GMT+0200",  # no such hour
        "Thu Jul 25 0000 14:43:48 GMT+0200",  # year 0
        "Thu Jul 25 2024 14:43:48 GMT+2400",  # offset out of range
        "Thu Jul 25 2024 14:43:48",  # no offset
    ],
)
def test_parse_js_date_rejects(value):
    assert parse_js_date(value) is None


@settings(max_examples=300)
@given(st.text())
@example("Thu Jul 25 9999 23:59:59 GMT-2359")
@example("Thu Jul 25 0001 00:00:00 GMT+2359")
@example("Thu Jul 99 2024 99:99:99 GMT+9999")
def test_parse_js_date_never_raises(value):
    result = parse_js_date(value)
    assert result is None or (isinstance(result, datetime) and result.tzinfo is not None)


fixed_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
    fixed_offsets,
    st.sampled_from(["Central European Summer Time", "Coordinated Universal Time", "X"]),
)
def test_parse_js_date_round_trips_js_format(naive, tz, zone_name):
    moment = naive.replace(microsecond=0, tzinfo=tz)
    text = f"{moment.strftime(JS_FORMAT)} ({zone_name})"
    parsed = parse_js_date(text)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()


# ------------------------------------------------------------------------- retry_after_seconds

NOW = datetime(2024, 7, 25, 12, 43, 40, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("2", 2.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", MIN_RETRY_AFTER_SECONDS),  # clamped: no hot loop
        ("0.01", MIN_RETRY_AFTER_SECONDS),
        ("100000", MAX_RETRY_AFTER_SECONDS),  # clamped: no stall
        ("1e300", MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_seconds_numbers(retry_after, expected):
    assert retry_after_seconds(retry_after, now=NOW) == expected


@pytest.mark.parametrize("retry_after", [None, "", "abc", "-5", "-0.1", "nan", "inf", "-inf"])
def test_retry_after_seconds_unusable_falls_back_to_default(retry_after):
    assert retry_after_seconds(retry_after, now=NOW) == DEFAULT_RETRY_AFTER_SECONDS


def test_retry_after_seconds_http_date():
    value = format_datetime(NOW + timedelta(seconds=10), usegmt=True)
    assert retry_after_seconds(value, now=NOW) == pytest.approx(10.0)


def test_retry_after_seconds_http_date_in_the_past_falls_back():
    value = format_datetime(NOW - timedelta(seconds=10), usegmt=True)
    assert retry_after_seconds(value, now=NOW) == DEFAULT_RETRY_AFTER_SECONDS


def test_retry_after_seconds_naive_http_date_falls_back():
    # "-0000" makes parsedate_to_datetime return a naive datetime: unusable.
    assert retry_after_seconds("Thu, 25 Jul 2024 12:43:50 -0000", now=NOW) == 2.0


def test_retry_after_seconds_falls_back_to_rate_limit_reset():
    # DOC_RESET is 12:43:48 UTC, NOW is 12:43:40 UTC.
    assert retry_after_seconds(None, DOC_RESET, now=NOW) == pytest.approx(8.0)
    assert retry_after_seconds("abc", DOC_RESET, now=NOW) == pytest.approx(8.0)
    assert retry_after_seconds("nan", DOC_RESET, now=NOW) == pytest.approx(8.0)


def test_retry_after_wins_over_rate_limit_reset():
    assert retry_after_seconds("3", DOC_RESET, now=NOW) == 3.0


def test_rate_limit_reset_in_the_past_falls_back_to_default():
    later = NOW + timedelta(minutes=5)
    assert retry_after_seconds(None, DOC_RESET, now=later) == DEFAULT_RETRY_AFTER_SECONDS


def test_unparsable_rate_limit_reset_falls_back_to_default():
    assert retry_after_seconds(None, "soon", now=NOW) == DEFAULT_RETRY_AFTER_SECONDS


def test_retry_after_seconds_custom_bounds_and_default():
    assert retry_after_seconds(None, default=9.0, minimum=1.0, maximum=5.0) == 5.0
    assert retry_after_seconds("0", minimum=0.0, maximum=5.0) == 0.0
    assert retry_after_seconds("abc", default=3.0) == 3.0


def test_retry_after_seconds_uses_the_clock_when_now_is_omitted():
    value = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 20.0 <= retry_after_seconds(value) <= 30.0


header_text = (
    st.none()
    | st.text(max_size=60)
    | st.floats().map(repr)
    | st.integers().map(str)
    | st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: format_datetime(d, True))
    | st.datetimes(
        min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=fixed_offsets
    ).map(lambda d: d.strftime(JS_FORMAT))
)
bounds = st.tuples(
    st.floats(min_value=0.0, max_value=100.0), st.floats(min_value=0.0, max_value=100.0)
).map(sorted)


@settings(max_examples=400, deadline=None)
@given(
    header_text,
    header_text,
    st.datetimes(timezones=st.just(timezone.utc)),
    st.floats(min_value=0.0, max_value=100.0),
)
@example("0", None, NOW, 2.0)
@example("1e400", None, NOW, 2.0)
@example("Fri, 31 Dec 9999 23:59:59 GMT", None, datetime(1, 1, 1, tzinfo=timezone.utc), 2.0)
def test_retry_after_seconds_is_always_within_default_bounds(retry_after, reset, now, default):
    result = retry_after_seconds(retry_after, reset, now=now, default=default)
    assert isinstance(result, float)
    assert math.isfinite(result)
    assert MIN_RETRY_AFTER_SECONDS <= result <= MAX_RETRY_AFTER_SECONDS


@settings(max_examples=300, deadline=None)
@given(header_text, header_text, bounds, st.floats(min_value=0.0, max_value=1000.0))
def test_retry_after_seconds_is_always_within_given_bounds(retry_after, reset, lo_hi, default):
    minimum, maximum = lo_hi
    result = retry_after_seconds(
        retry_after, reset, default=default, minimum=minimum, maximum=maximum
    )
    assert minimum <= result <= maximum
