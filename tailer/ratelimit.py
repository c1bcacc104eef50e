"""Rate-limited logging of repeated failures: the first, then a count every interval."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RepeatLimiter"]


class RepeatLimiter:
    """Decides whether a repeated message is logged now.

    `record(key)` returns the number of repeats suppressed since the last
    logged one (0 for the first) when the message should be logged, and None
    while it should stay quiet.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def record(self, key: str) -> int | None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def reset(self, key: str) -> None:
        """Forget `key`, so its next failure is logged at once."""
        self._last.pop(key, None)
        self._suppressed.pop(key, None)
