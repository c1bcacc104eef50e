"""The dedupe window: ids of recently delivered events, bounded by time, not by run time."""

from __future__ import annotations

import heapq
from collections.abc import ItemsView, KeysView, Sequence

__all__ = ["DedupeWindow"]


class DedupeWindow:
    """Remembers delivered event ids together with their event time.

    The poller prunes ids older than the oldest time its next query can
    return, so the window holds about (lateness window x event rate) ids
    however long the tailer runs.

    Ids are added in runs sorted by time, one per delivered round, so pruning
    walks each run from its oldest id instead of keeping a heap entry per id.
    """

    def __init__(self) -> None:
        self._times: dict[str, int] = {}
        self._runs: list[_Run] = []  # a heap ordered by each run's oldest remaining id

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._times

    def __len__(self) -> int:
        return len(self._times)

    def ids(self) -> KeysView[str]:
        """Return a live view of the remembered ids, for membership tests in a loop."""
        return self._times.keys()

    def items(self) -> ItemsView[str, int]:
        """Return a live view of the remembered (id, time_ns) pairs."""
        return self._times.items()

    def add(self, event_id: str, time_ns: int) -> None:
        self.add_sorted([event_id], [time_ns])

    def add_sorted(self, ids: Sequence[str], times: Sequence[int]) -> None:
        """Remember `ids` with their `times`, which must be in ascending order.

        An id already remembered keeps its first time.
        """
        known = self._times
        run = _Run()
        for event_id, time_ns in zip(ids, times, strict=True):
            if event_id not in known:
                known[event_id] = time_ns
                run.ids.append(event_id)
                run.times.append(time_ns)
        if run.ids:
            heapq.heappush(self._runs, run)

    def add_unsorted(self, ids: Sequence[str], times: Sequence[int]) -> None:
        """Remember `ids` with their `times`, in any order."""
        # Sorting sorted numbers is one pass in C, while ordering indices by a key
        # calls Python for each of them.
        if list(times) == sorted(times):
            self.add_sorted(ids, times)
            return
        order = sorted(range(len(ids)), key=times.__getitem__)
        self.add_sorted([ids[i] for i in order], [times[i] for i in order])

    def prune(self, horizon_ns: int) -> int:
        """Forget ids whose event time is before `horizon_ns`; return how many were removed."""
        removed = 0
        runs = self._runs
        while runs and runs[0].oldest_ns < horizon_ns:
            run = runs[0]
            ids, times, index = run.ids, run.times, run.index
            while index < len(ids) and times[index] < horizon_ns:
                del self._times[ids[index]]
                index += 1
            removed += index - run.index
            run.index = index
            if index == len(ids):
                heapq.heappop(runs)
            else:
                heapq.heapreplace(runs, run)  # the run's oldest remaining id is newer now
        return removed


class _Run:
    """Ids added together, in ascending time, and the index of the oldest one not pruned."""

    __slots__ = ("ids", "index", "times")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.times: list[int] = []
        self.index = 0

    @property
    def oldest_ns(self) -> int:
        return self.times[self.index]

    def __lt__(self, other: _Run) -> bool:
        return self.oldest_ns < other.oldest_ns
