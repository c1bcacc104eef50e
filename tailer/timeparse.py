"""Timestamps as integer nanoseconds since the Unix epoch, UTC.

The API sends ISO 8601 times with `Z` or a numeric offset, with or without a
fraction. Python's `datetime` keeps microseconds only, so two events 300 ns
apart would compare equal; the tailer therefore orders and compares events by
integer nanoseconds, and uses `datetime` only for the calendar arithmetic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "NS_PER_SECOND",
    "TIME_BOUND_FORMS",
    "format_api_time",
    "format_iso",
    "parse_ago",
    "parse_duration",
    "parse_time",
    "parse_time_or_duration",
]

NS_PER_SECOND = 1_000_000_000

# The forms that `--since`, `--until` and a source's `since` accept, for help and errors.
TIME_BOUND_FORMS = (
    "a duration before now (30s, 10m or -10m, 2h, 7d) or an ISO 8601 time (2026-05-10T12:00:00Z)"
)

# Date, time, optional fraction of any length, optional zone. `T`, `t` or a
# space separate date and time, as RFC 3339 allows.
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d+))?"
    r"(Z|z|[+-]\d{2}:?\d{2}|[+-]\d{2})?"
)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS_NS = {
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
    "w": 7 * 86400 * NS_PER_SECOND,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Epoch ns of recently seen "YYYY-MM-DDTHH:MM:SS" prefixes. Events of one page
# share few seconds, so the calendar arithmetic runs once per second, not per event.
_SECONDS_CACHE: dict[str, int] = {}
_SECONDS_CACHE_SIZE = 4096
# ns per unit of the last digit of a fraction with this many digits.
_FRACTION_UNIT_NS: dict[int, int] = {digits: 10 ** (9 - digits) for digits in range(1, 10)}


def parse_time(text: str) -> int:
    """Parse an ISO 8601 date-time into nanoseconds since the epoch.

    A time without a zone is taken as UTC, because the API documents UTC times.
    Digits of the fraction beyond nanoseconds are truncated. Raises ValueError
    naming the text when it is not a date-time.
    """
    # Fast path for the API's usual form, "2026-05-10T12:00:00[.fff]Z".
    if text[-1:] == "Z":
        seconds_ns = _SECONDS_CACHE.get(text[:19])
        if seconds_ns is not None:
            # A cached prefix ends in a digit, so this text has at least 20 characters.
            digits = text[20:-1]
            unit_ns = _FRACTION_UNIT_NS.get(len(digits))
            if unit_ns is not None:
                if text[19] == "." and digits.isascii() and digits.isdigit():
                    return seconds_ns + int(digits) * unit_ns
            elif len(text) == 20:
                return seconds_ns
    return _parse_time_slowly(text)


def _parse_time_slowly(text: str) -> int:
    match = _ISO_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid time {text!r}: expected ISO 8601 such as 2026-05-10T12:00:00Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError as exc:
        raise ValueError(f"invalid time {text!r}: {exc}") from None

    whole_seconds = (moment - _EPOCH) // timedelta(seconds=1)
    if zone in ("Z", "z") and text[10:11] == "T" and len(text) >= 20 and text[19] in ".Z":
        if len(_SECONDS_CACHE) >= _SECONDS_CACHE_SIZE:
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[text[:19]] = whole_seconds * NS_PER_SECOND
    ns = whole_seconds * NS_PER_SECOND
    if fraction:
        ns += int(fraction[:9].ljust(9, "0"))
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours = int(digits[:2])
        minutes = int(digits[2:4]) if len(digits) > 2 else 0
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid time {text!r}: UTC offset {zone} is out of range")
        ns -= sign * (hours * 3600 + minutes * 60) * NS_PER_SECOND
    return ns


def parse_duration(text: str) -> int:
    """Parse a duration such as `30s`, `10m`, `2h`, `7d` or `1h30m` into nanoseconds.

    Raises ValueError naming the text when it is not a duration.
    """
    stripped = text.strip()
    position = 0
    total = 0
    for match in _DURATION_RE.finditer(stripped):
        if match.start() != position:
            break
        total += int(float(match.group(1)) * _DURATION_UNITS_NS[match.group(2)])
        position = match.end()
    if position == 0 or position != len(stripped):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (ms, s, m, h, d, w), "
            "such as 30s, 10m, 2h or 7d"
        )
    return total


def parse_ago(text: str) -> int:
    """Parse how long before now a time bound lies, in nanoseconds: `10m` or `-10m`.

    The minus is optional because users write "ago" both ways. A plus is
    invalid, because a bound after now is not accepted. Raises ValueError like
    `parse_duration`.
    """
    return parse_duration(text[1:] if text[:1] == "-" else text)


def parse_time_or_duration(text: str, now_ns: int) -> int:
    """Parse `--since`/`--until`: a duration before `now_ns`, or an ISO 8601 time."""
    try:
        return now_ns - parse_ago(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"{text!r} is invalid; expected {TIME_BOUND_FORMS}") from None


def format_iso(ns: int, *, digits: int = 9) -> str:
    """Format nanoseconds since the epoch as UTC ISO 8601 with `digits` fraction digits."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if digits > 0:
        text += "." + f"{fraction:09d}"[:digits]
    return text + "Z"


def format_api_time(ns: int, *, round_up: bool = False) -> str:
    """Format a query bound in whole seconds, the form every ISO 8601 parser accepts.

    Rounds down, or up with `round_up`, so the bound never narrows the window.
    """
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    if round_up and fraction:
        seconds += 1
    return format_iso(seconds * NS_PER_SECOND, digits=0)
