from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailer.retry import RetryPolicy, is_retriable_status, parse_http_date, parse_retry_after

# One instant, 1994-11-06T08:49:37Z, in the three date formats HTTP allows.
IMF_FIXDATE = "Sun, 06 Nov 1994 08:49:37 GMT"
RFC_850_DATE = "Sunday, 06-Nov-94 08:49:37 GMT"
ASCTIME_DATE = "Sun Nov  6 08:49:37 1994"
EPOCH_SECONDS = 784111777.0

# The same instant plus 30 seconds, for Retry-After dates measured against IMF_FIXDATE.
RETRY_DATES = {
    "imf-fixdate": "Sun, 06 Nov 1994 08:50:07 GMT",
    "rfc-850": "Sunday, 06-Nov-94 08:50:07 GMT",
    "asctime": "Sun Nov  6 08:50:07 1994",
}


class UpperBoundRandom(random.Random):
    """A Random whose `uniform` returns the upper bound, so a jittered wait equals its cap."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


RETRIED_STATUSES = [408, 429, 500, 502, 503, 504, 505, 507, 511, 599]
FINAL_STATUSES = [100, 200, 204, 301, 304, 400, 401, 403, 404, 405, 409, 410, 422, 425, 499, 501]


@pytest.mark.parametrize(
    ("status", "retried"),
    [(status, True) for status in RETRIED_STATUSES]
    + [(status, False) for status in FINAL_STATUSES],
)
def test_status_rule(status: int, retried: bool) -> None:
    assert is_retriable_status(status) is retried


def test_status_rule_over_whole_range() -> None:
    retried = [status for status in range(100, 600) if is_retriable_status(status)]

    assert retried == [408, 429, 500, *range(502, 600)]


@pytest.mark.parametrize(
    ("failures", "bound"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 32.0), (8, 60.0), (9, 60.0)],
)
def test_backoff_doubles_up_to_max_delay(failures: int, bound: float) -> None:
    rng = UpperBoundRandom()

    wait = RetryPolicy(base_delay=0.5, max_delay=60.0).backoff(failures, rng)

    assert wait == bound
    assert rng.ranges == [(0.0, bound)]


def test_backoff_zero_failures_uses_base_delay() -> None:
    rng = UpperBoundRandom()

    assert RetryPolicy(base_delay=0.25).backoff(0, rng) == 0.25


def test_backoff_huge_failure_count_stays_capped() -> None:
    rng = UpperBoundRandom()

    assert RetryPolicy(base_delay=0.5, max_delay=7.0).backoff(100_000, rng) == 7.0


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    base_delay=st.floats(min_value=0.001, max_value=10.0),
    max_delay=st.floats(min_value=0.0, max_value=600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_within_full_jitter_range(
    failures: int, base_delay: float, max_delay: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base_delay, max_delay=max_delay)

    wait = policy.backoff(failures, random.Random(seed))

    assert 0.0 <= wait <= min(max_delay, base_delay * 2.0 ** min(failures - 1, 62))


def test_backoff_same_seed_same_wait() -> None:
    policy = RetryPolicy()

    first = [policy.backoff(failures, random.Random(7)) for failures in range(1, 6)]
    second = [policy.backoff(failures, random.Random(7)) for failures in range(1, 6)]

    assert first == second


@pytest.mark.parametrize(
    ("seconds", "clamped"),
    [(-5.0, 0.0), (0.0, 0.0), (12.5, 12.5), (60.0, 60.0), (61.0, 60.0), (math.inf, 60.0)],
)
def test_clamp_keeps_wait_in_range(seconds: float, clamped: float) -> None:
    assert RetryPolicy(max_delay=60.0).clamp(seconds) == clamped


def test_gives_up_after_counts_every_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert [policy.gives_up_after(attempts) for attempts in (1, 2, 3, 4)] == [
        False,
        False,
        True,
        True,
    ]


def test_gives_up_never_without_budget() -> None:
    policy = RetryPolicy(max_attempts=None)

    assert policy.gives_up_after(1) is False
    assert policy.gives_up_after(1_000_000) is False


@pytest.mark.parametrize(
    "value",
    [IMF_FIXDATE, RFC_850_DATE, ASCTIME_DATE, f"  {IMF_FIXDATE} ", "Sun Nov 6 08:49:37 1994"],
)
def test_http_date_forms(value: str) -> None:
    assert parse_http_date(value) == EPOCH_SECONDS


def test_http_date_numeric_offset() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100") == EPOCH_SECONDS


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "garbage",
        "1994",
        "0",
        "Sun, 32 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_http_date_invalid(value: str | None) -> None:
    assert parse_http_date(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("0", 0.0), ("7", 7.0), (" 7 ", 7.0), ("120", 120.0), ("007", 7.0)]
)
def test_retry_after_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, server_date=None, now=0.0) == seconds


def test_retry_after_huge_delta_is_infinite() -> None:
    # Longer than int() accepts by default (4300 digits). The caller clamps it to max_delay.
    assert parse_retry_after("9" * 5000, server_date=None, now=0.0) == math.inf


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "soon",
        "-5",
        "1.5",
        "+3",
        "1e3",
        "7 seconds",
        "\u00b2",
        "\u0661\u0662",
        "0x10",
    ],
)
def test_retry_after_invalid(value: str | None) -> None:
    assert parse_retry_after(value, server_date=IMF_FIXDATE, now=0.0) is None


@pytest.mark.parametrize("form", sorted(RETRY_DATES))
def test_retry_after_date_against_server_date(form: str) -> None:
    # The local clock is an hour ahead; the response's Date header decides.
    wait = parse_retry_after(RETRY_DATES[form], server_date=IMF_FIXDATE, now=EPOCH_SECONDS + 3600.0)

    assert wait == 30.0


def test_retry_after_date_without_server_date_uses_now() -> None:
    wait = parse_retry_after(RETRY_DATES["imf-fixdate"], server_date=None, now=EPOCH_SECONDS + 18.0)

    assert wait == 12.0


def test_retry_after_date_invalid_server_date_uses_now() -> None:
    wait = parse_retry_after(
        RETRY_DATES["imf-fixdate"], server_date="yesterday", now=EPOCH_SECONDS + 25.0
    )

    assert wait == 5.0


def test_retry_after_past_date_is_zero() -> None:
    wait = parse_retry_after(IMF_FIXDATE, server_date=RETRY_DATES["imf-fixdate"], now=0.0)

    assert wait == 0.0


@given(
    value=st.text(max_size=60),
    server_date=st.none() | st.text(max_size=40),
    now=st.floats(allow_nan=False, allow_infinity=False),
)
def test_retry_after_never_raises_or_negative(
    value: str, server_date: str | None, now: float
) -> None:
    wait = parse_retry_after(value, server_date=server_date, now=now)

    assert wait is None or wait >= 0.0
