"""The window buffer: the new events of one window walk, held in bounded memory.

The API may return a window newest first, so no event of it can be delivered
before the whole window was read. Holding the whole window would make memory
grow with the backlog. The buffer therefore keeps at most `capacity` events:
when one more arrives, it drops every event at the newest instant it holds and
moves the window's end (the cutoff) down to that instant. Events at or after
the cutoff are ignored for the rest of the walk and read by the next window,
which starts at the cutoff. What remains is complete for [start, cutoff).
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import KeysView

from tailer.event import Event

__all__ = ["WindowBuffer"]

_DELIVERY_ORDER = operator.attrgetter("time_ns", "id")


class WindowBuffer:
    """Up to `capacity` new events of one window, deduplicated by id.

    `floor_ns` is the window's start. When every held event is at or before
    it, the window cannot shrink further and the buffer grows past its
    capacity instead (`overflowed` turns true); that takes more events at one
    instant than the capacity.
    """

    def __init__(self, capacity: int, floor_ns: int, end_ns: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.floor_ns = floor_ns
        self.cutoff_ns = end_ns
        self.overflowed = False
        self._events: dict[str, Event] = {}
        # Max-heap on time through negation; the counter keeps ids out of the
        # comparisons. Built when the buffer first fills, as most windows never do.
        self._newest: list[tuple[int, int, str]] | None = None
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def ids(self) -> KeysView[str]:
        """Return a live view of the held ids, for membership tests in a loop."""
        return self._events.keys()

    def add(self, event: Event) -> bool:
        """Hold `event` unless it is past the cutoff or already held. Return True if held."""
        if self.cutoff_ns is not None and event.time_ns >= self.cutoff_ns:
            return False
        if event.id in self._events:
            return False
        self._events[event.id] = event
        if self._newest is not None:
            heapq.heappush(self._newest, (-event.time_ns, next(self._counter), event.id))
        if len(self._events) > self.capacity:
            self._shrink()
        return event.id in self._events

    def _shrink(self) -> None:
        newest = self._newest
        if newest is None:
            newest = [(-e.time_ns, next(self._counter), e.id) for e in self._events.values()]
            heapq.heapify(newest)
            self._newest = newest
        newest_ns = -newest[0][0]
        if newest_ns <= self.floor_ns:
            self.overflowed = True
            return
        while newest and -newest[0][0] == newest_ns:
            _, _, event_id = heapq.heappop(newest)
            del self._events[event_id]
        self.cutoff_ns = newest_ns

    def span_ns(self) -> int:
        """Return the time between the oldest and the newest held event, 0 when empty."""
        if not self._events:
            return 0
        times = [event.time_ns for event in self._events.values()]
        return max(times) - min(times)

    def sorted_events(self) -> list[Event]:
        """Return the held events oldest first, by (time, id)."""
        return sorted(self._events.values(), key=_DELIVERY_ORDER)
