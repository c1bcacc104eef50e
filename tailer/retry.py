"""One retry rule for every HTTP conversation: which statuses to retry, and how long to wait.

2xx is done; 408, 429 and 5xx other than 501 are retried with exponential
backoff and full jitter (a uniform wait between zero and the exponential
bound, so many clients that failed together do not retry together); every
other status is final. A `Retry-After` header replaces the computed wait.
Every wait is clamped to `[0, max_delay]`, so a hostile or broken header can
neither make a wait negative nor park the tailer for a day.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "is_retriable_status", "parse_http_date", "parse_retry_after"]


def is_retriable_status(status: int) -> bool:
    """Tell whether a response status may succeed if the same request is sent again."""
    return status in (408, 429) or (500 <= status <= 599 and status != 501)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings shared by the API client and the sinks.

    `base_delay` and `max_delay` are seconds. `max_attempts` counts every try,
    the first included; None retries until the caller gives up.
    """

    base_delay: float = 0.5
    max_delay: float = 60.0
    max_attempts: int | None = None

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Return the wait in seconds after `failures` consecutive failures (1 or more)."""
        exponent = min(max(failures - 1, 0), 62)
        bound = min(self.max_delay, self.base_delay * (2**exponent))
        return rng.uniform(0.0, bound)

    def clamp(self, seconds: float) -> float:
        """Clamp a server-requested wait to `[0, max_delay]`."""
        return min(max(seconds, 0.0), self.max_delay)

    def gives_up_after(self, attempts: int) -> bool:
        """Tell whether `attempts` tries used up the budget."""
        return self.max_attempts is not None and attempts >= self.max_attempts


# Responses of one second carry the same Date header, so most parses are repeats.
@functools.lru_cache(maxsize=16)
def parse_http_date(value: str | None) -> float | None:
    """Parse an HTTP date (IMF-fixdate, RFC 850 or asctime) into epoch seconds, or None."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # HTTP dates are always GMT; asctime has no zone marker.
        return moment.replace(tzinfo=UTC).timestamp()
    return moment.timestamp()


def parse_retry_after(value: str | None, *, server_date: str | None, now: float) -> float | None:
    """Return the wait a `Retry-After` header asks for, in seconds, or None when absent or invalid.

    The header is either delta-seconds or an HTTP date (RFC 9110, section 10.2.3).
    A date is measured against the response's own `Date` header when it has
    one, so a local clock that is off does not stretch or cut the wait; `now`
    (epoch seconds) is the fallback. The result is never negative.
    """
    if value is None:
        return None
    text = value.strip()
    # Delta-seconds are ASCII digits only: isdigit() alone accepts "²", which int()
    # rejects. float() turns a value too long for int() into inf, which callers clamp.
    if text.isascii() and text.isdigit():
        return float(text)
    target = parse_http_date(text)
    if target is None:
        return None
    reference = parse_http_date(server_date)
    if reference is None:
        reference = now
    return max(target - reference, 0.0)
