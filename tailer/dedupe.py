"""The dedupe window: ids of recently delivered events, bounded by time, not by run time."""

from __future__ import annotations

import heapq
from collections.abc import KeysView

__all__ = ["DedupeWindow"]


class DedupeWindow:
    """Remembers delivered event ids together with their event time.

    The poller prunes ids older than the oldest time its next query can
    return, so the window holds about (lateness window x event rate) ids
    however long the tailer runs.
    """

    def __init__(self) -> None:
        self._times: dict[str, int] = {}
        self._by_time: list[tuple[int, str]] = []

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._times

    def __len__(self) -> int:
        return len(self._times)

    def ids(self) -> KeysView[str]:
        """Return a live view of the remembered ids, for membership tests in a loop."""
        return self._times.keys()

    def add(self, event_id: str, time_ns: int) -> None:
        if event_id in self._times:
            return
        self._times[event_id] = time_ns
        heapq.heappush(self._by_time, (time_ns, event_id))

    def prune(self, horizon_ns: int) -> int:
        """Forget ids whose event time is before `horizon_ns`; return how many were removed."""
        removed = 0
        while self._by_time and self._by_time[0][0] < horizon_ns:
            _, event_id = heapq.heappop(self._by_time)
            del self._times[event_id]
            removed += 1
        return removed
