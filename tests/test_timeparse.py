from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailer.timeparse import (
    NS_PER_SECOND,
    _parse_time_slowly,
    format_api_time,
    format_iso,
    parse_ago,
    parse_duration,
    parse_time,
    parse_time_or_duration,
)

BASE_NS = 1_778_414_400 * NS_PER_SECOND  # 2026-05-10T12:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-10T12:00:00Z", BASE_NS),
        ("2026-05-10T12:00:00z", BASE_NS),
        ("2026-05-10t12:00:00Z", BASE_NS),
        ("2026-05-10 12:00:00Z", BASE_NS),
        ("2026-05-10T12:00:00.5Z", BASE_NS + 500_000_000),
        ("2026-05-10T12:00:00.123Z", BASE_NS + 123_000_000),
        ("2026-05-10T12:00:00.123456Z", BASE_NS + 123_456_000),
        ("2026-05-10T12:00:00.123456789Z", BASE_NS + 123_456_789),
        ("2026-05-10T12:00:00.1234567891Z", BASE_NS + 123_456_789),
        ("2026-05-10T12:00:00,25Z", BASE_NS + 250_000_000),
        ("2026-05-10T14:00:00+02:00", BASE_NS),
        ("2026-05-10T14:00:00+0200", BASE_NS),
        ("2026-05-10T14:00:00+02", BASE_NS),
        ("2026-05-10T06:30:00-05:30", BASE_NS),
        ("2026-05-10T12:00:00+00:00", BASE_NS),
        ("2026-05-10T12:00:00-00:00", BASE_NS),
        ("2026-05-10T12:00:00", BASE_NS),
        ("2026-05-10T12:00:00.000000001", BASE_NS + 1),
        ("  2026-05-10T12:00:00Z  ", BASE_NS),
    ],
)
def test_parse_time_forms(text: str, expected: int) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-05-10",
        "2026-13-10T12:00:00Z",
        "2026-02-30T12:00:00Z",
        "2026-05-10T25:00:00Z",
        "2026-05-10T12:00:00+25:00",
        "2026-05-10T12:00:00Zjunk",
        "1778414400",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_time(text)


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    fraction=st.integers(min_value=0, max_value=999_999_999),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_parse_time_matches_datetime(moment: datetime, fraction: int, offset_minutes: int) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}{sign}{hours:02d}:{minutes:02d}"

    zone = timezone(timedelta(minutes=offset_minutes))
    whole_seconds = int(moment.replace(microsecond=0, tzinfo=zone).timestamp())

    assert parse_time(text) == whole_seconds * NS_PER_SECOND + fraction


@given(st.integers(min_value=0, max_value=4_000_000_000 * NS_PER_SECOND))
def test_format_iso_round_trips(ns: int) -> None:
    assert parse_time(format_iso(ns)) == ns


def test_format_iso_digits() -> None:
    assert format_iso(BASE_NS + 123_456_789, digits=3) == "2026-05-10T12:00:00.123Z"
    assert format_iso(BASE_NS, digits=0) == "2026-05-10T12:00:00Z"


def test_format_api_time_rounds_outward() -> None:
    assert format_api_time(BASE_NS + 1) == "2026-05-10T12:00:00Z"
    assert format_api_time(BASE_NS + 1, round_up=True) == "2026-05-10T12:00:01Z"
    assert format_api_time(BASE_NS, round_up=True) == "2026-05-10T12:00:00Z"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds * NS_PER_SECOND


def test_parse_duration_milliseconds() -> None:
    assert parse_duration("250ms") == 250_000_000


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "-5m", "10m junk", "h10"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_relative_since_uses_given_now() -> None:
    assert parse_time_or_duration("10m", BASE_NS) == BASE_NS - 600 * NS_PER_SECOND
    assert parse_time_or_duration("2026-05-10T12:00:00Z", 0) == BASE_NS


@pytest.mark.parametrize("text", ["10m", "-10m"])
def test_ago_takes_an_optional_minus(text: str) -> None:
    assert parse_ago(text) == 600 * NS_PER_SECOND
    assert parse_time_or_duration(text, BASE_NS) == BASE_NS - 600 * NS_PER_SECOND


@pytest.mark.parametrize("text", ["+10m", "--10m", "-", "-+10m"])
def test_ago_rejects_other_signs(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_ago(text)


def test_relative_since_rejects_with_both_forms_named() -> None:
    with pytest.raises(ValueError, match="is invalid") as caught:
        parse_time_or_duration("soon", BASE_NS)

    assert str(caught.value) == (
        "'soon' is invalid; expected a duration before now (30s, 10m or -10m, 2h, 7d) "
        "or an ISO 8601 time (2026-05-10T12:00:00Z)"
    )


@given(
    second=st.integers(min_value=0, max_value=3),
    # Besides the usual characters: what int() accepts but a time must not have
    # (underscore, sign, space, non-ASCII digits) and the other separator.
    fraction=st.text(alphabet="0123456789.Za,_+ \u0663\u00b2", max_size=12),
)
def test_cached_seconds_agree_with_full_parse(second: int, fraction: str) -> None:
    text = f"2026-05-10T12:00:0{second}{fraction}Z"
    parse_time(f"2026-05-10T12:00:0{second}Z")  # puts the second in the cache

    try:
        expected: int | str = _parse_time_slowly(text)
    except ValueError:
        expected = "invalid"
    try:
        actual: int | str = parse_time(text)
    except ValueError:
        actual = "invalid"

    assert actual == expected
