"""The event store and its keyset pagination.

Problem: clients page through a window of events while new events arrive,
some of them late, with a time in the middle of pages already served. The
obvious offset pagination (`skip N rows`) shifts every later row by one when
an event lands before the offset, so the client sees a row twice or never.

Chosen way: rows sort by the key (time at the rendered precision, id), and a
cursor stores the key of the last row served. The next page starts strictly
after that key, so a row visible when a walk started is served exactly once,
whatever is inserted meanwhile, unless it leaves the retention window first.
The rendered precision is part of the key because clients only see rendered
times. With whole seconds, two events of one second must order by id, as the
client will order them.

Rows live in a list of keys sorted with `bisect`, beside the list of rows
in the same order. A page costs one binary search plus a scan of the rows
it returns and of the rows it skips (invisible, or not matching the
filters). A filtered page scans an index instead: for each filter field and
string value, the sorted keys of the rows that have it; the shortest index
among the filters is scanned and the other filters are checked per row.
Inserting into the middle of a list moves the keys after it (0.3 ms per
insert into a million rows, measured on a 2-core machine); live events land
at the end.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "FILTER_FIELDS",
    "EventStore",
    "PageQuery",
    "StoredEvent",
]

# Query parameters of `GET /v1/activity` that match one event field each, in
# the order of `StoredEvent.fields`.
FILTER_FIELDS = (
    ("resource_type", "resourceType"),
    ("resource_id", "resourceId"),
    ("event_type", "eventType"),
    ("severity", "severity"),
    ("status", "status"),
    ("actor_user_id", "actorUserId"),
    ("thread_id", "threadId"),
    ("agent_run_id", "agentRunId"),
    ("sandbox_id", "sandboxId"),
    ("workspace_id", "workspaceId"),
    ("tool_slug", "toolSlug"),
    ("installable_agent_install_id", "installableAgentInstallId"),
    ("code_execution_id", "codeExecutionId"),
    ("runmesh_node_id", "runmeshNodeId"),
)
_NO_ID = ""  # sorts before every id, so (t, _NO_ID) is the first key at time t

Key = tuple[int, str]  # (order time in ns, id)


class StoredEvent:
    """One stored event: its order key, visibility and JSON body without the time field.

    `time_text` is the time exactly as it was injected, or None for a time the
    store renders. `fields` are the values of `FILTER_FIELDS`.
    """

    __slots__ = ("body", "fields", "id", "time_ns", "time_text", "visible_at_ns")

    def __init__(
        self,
        event: dict[str, Any],
        time_ns: int,
        time_text: str | None,
        visible_at_ns: int,
    ) -> None:
        self.id: str = event["id"]
        self.time_ns = time_ns
        self.time_text = time_text
        self.visible_at_ns = visible_at_ns
        self.fields = tuple(event.get(name) for _, name in FILTER_FIELDS)
        self.body = orjson.dumps(event)[:-1]

    def order_ns(self, precision_ns: int) -> int:
        """Return the time clients see, the first part of the order key."""
        if self.time_text is not None:
            return self.time_ns
        return self.time_ns - self.time_ns % precision_ns


@dataclass(frozen=True)
class PageQuery:
    """The rows a page request selects: filters and an inclusive time window."""

    filters: tuple[tuple[int, str], ...] = ()  # (index into StoredEvent.fields, value)
    since_ns: int | None = None
    until_ns: int | None = None
    newest_first: bool = True


class EventStore:
    """Events sorted by (rendered time, id), with keyset pages and visibility.

    Not thread-safe: the simulator calls it from its event loop only.
    """

    def __init__(self, precision_ns: int) -> None:
        self._precision_ns = precision_ns
        self._keys: list[Key] = []  # the key of every row, sorted
        self._events: list[StoredEvent] = []  # the row of each key in _keys
        self._by_id: dict[str, StoredEvent] = {}
        # The sorted keys of the rows with one string value in one filter
        # field, by (field position, value), so a filtered page scans only
        # candidate rows instead of the whole store.
        self._indexes: dict[tuple[int, str], list[Key]] = {}
        self._pending: list[int] = []  # heap of visible_at_ns of rows that were invisible

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._by_id

    @property
    def precision_ns(self) -> int:
        return self._precision_ns

    def set_precision(self, precision_ns: int) -> None:
        """Re-sort every row by its time at a new precision."""
        if precision_ns == self._precision_ns:
            return
        self._precision_ns = precision_ns
        self._reindex()

    def add(self, event: StoredEvent) -> None:
        """Insert one row at its key. Raises ValueError when its id is already stored."""
        if event.id in self._by_id:
            raise ValueError(f"an event with id {event.id!r} is already stored")
        key = (event.order_ns(self._precision_ns), event.id)
        position = bisect_right(self._keys, key)
        self._keys.insert(position, key)
        self._events.insert(position, event)
        for field, value in enumerate(event.fields):
            if isinstance(value, str):
                insort_right(self._indexes.setdefault((field, value), []), key)
        self._by_id[event.id] = event
        heapq.heappush(self._pending, event.visible_at_ns)

    def add_many(self, events: Iterable[StoredEvent]) -> None:
        """Insert many rows with one sort. Raises ValueError on a duplicate id."""
        batch = list(events)
        ids = {event.id for event in batch}
        if len(ids) != len(batch) or not ids.isdisjoint(self._by_id):
            raise ValueError("the events repeat an id or reuse the id of a stored event")
        for event in batch:
            self._by_id[event.id] = event
            heapq.heappush(self._pending, event.visible_at_ns)
        self._reindex()

    def _reindex(self) -> None:
        precision_ns = self._precision_ns
        by_id = self._by_id
        keys = sorted((event.order_ns(precision_ns), event.id) for event in by_id.values())
        events = [by_id[event_id] for _, event_id in keys]
        indexes: dict[tuple[int, str], list[Key]] = {}
        for key, event in zip(keys, events, strict=True):
            for field, value in enumerate(event.fields):
                if isinstance(value, str):
                    index = indexes.get((field, value))
                    if index is None:
                        indexes[(field, value)] = index = []
                    index.append(key)
        self._keys = keys
        self._events = events
        self._indexes = indexes

    def count_visible(self, now_ns: int) -> int:
        """Count the rows visible at `now_ns`, cheaply: it reads only the heap of pending rows."""
        pending = self._pending
        while pending and pending[0] <= now_ns:
            heapq.heappop(pending)
        return len(self._keys) - len(pending)

    def page(
        self,
        query: PageQuery,
        *,
        after: Key | None,
        limit: int,
        now_ns: int,
        floor_ns: int | None = None,
    ) -> tuple[list[tuple[int, StoredEvent]], bool]:
        """Select the next `limit` rows of a query after the key `after`.

        Returns (order time, row) pairs and whether more matching rows are
        visible past them. Rows whose order time is below `floor_ns` (the
        retention limit) or that are not visible at `now_ns` are skipped.
        """
        keys = self._keys
        events: list[StoredEvent] | None = self._events
        if query.filters:
            # Every match is in the index of each filter, so the shortest index contains them all.
            keys = min((self._indexes.get(item, []) for item in query.filters), key=len)
            events = None

        low_ns = query.since_ns
        if floor_ns is not None and (low_ns is None or low_ns < floor_ns):
            low_ns = floor_ns
        start = 0 if low_ns is None else bisect_left(keys, (low_ns, _NO_ID))
        stop = (
            len(keys) if query.until_ns is None else bisect_left(keys, (query.until_ns + 1, _NO_ID))
        )

        if query.newest_first:
            if after is not None:
                stop = min(stop, bisect_left(keys, after))
            positions: Iterator[int] = iter(range(stop - 1, start - 1, -1))
        else:
            if after is not None:
                start = max(start, bisect_right(keys, after))
            positions = iter(range(start, stop))

        selected = self._scan(keys, events, positions, query.filters, limit + 1, now_ns)
        has_more = len(selected) > limit
        return selected[:limit], has_more

    def _scan(
        self,
        keys: list[Key],
        events: list[StoredEvent] | None,
        positions: Iterator[int],
        filters: tuple[tuple[int, str], ...],
        count: int,
        now_ns: int,
    ) -> list[tuple[int, StoredEvent]]:
        """Collect up to `count` visible matching rows.

        `events` are the rows of `keys`, or None to look each row up by id, which is slower.
        """
        by_id = self._by_id
        selected: list[tuple[int, StoredEvent]] = []
        for position in positions:
            order_ns, event_id = keys[position]
            event = events[position] if events is not None else by_id[event_id]
            if event.visible_at_ns > now_ns:
                continue
            fields = event.fields
            if filters and any(fields[field] != value for field, value in filters):
                continue
            selected.append((order_ns, event))
            if len(selected) == count:
                break
        return selected

    def window(
        self,
        since_ns: int | None,
        until_ns: int | None,
        *,
        now_ns: int,
        visible_only: bool,
        floor_ns: int | None = None,
    ) -> list[tuple[int, StoredEvent]]:
        """Select the rows of the half-open window [since_ns, until_ns), oldest first."""
        if floor_ns is not None and (since_ns is None or since_ns < floor_ns):
            since_ns = floor_ns
        keys = self._keys
        start = 0 if since_ns is None else bisect_left(keys, (since_ns, _NO_ID))
        stop = len(keys) if until_ns is None else bisect_left(keys, (until_ns, _NO_ID))
        rows = [(keys[position][0], self._events[position]) for position in range(start, stop)]
        if visible_only:
            return [(order_ns, row) for order_ns, row in rows if row.visible_at_ns <= now_ns]
        return rows
