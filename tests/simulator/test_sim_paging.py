"""Keyset pagination: stability under inserts, hasMore, cursor binding, expiry and retention."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import Api, FakeClock, MakeApi, at, ids_of

from tailer.simulator.store import EventStore, PageQuery, StoredEvent


def _inject_seconds(api: Api, first: int, last: int) -> None:
    api.simulator.inject(
        [
            {"id": f"e{second:02d}", "createdAt": at(f"11:00:{second:02d}.000")}
            for second in range(first, last + 1)
        ]
    )


async def _next(api: Api, cursor: str | None, **params: str) -> tuple[list[str], str | None]:
    query = dict(params)
    if cursor is not None:
        query["cursor"] = cursor
    reply = await api.page(query)
    return ids_of(reply.body["data"]["events"]), reply.body["nextCursor"]


async def test_oldest_first_walk_with_inserts(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, order="oldest")
    _inject_seconds(api, 1, 10)

    page1, cursor = await _next(api, None, limit="3")
    api.simulator.inject(
        [
            {"id": "new", "createdAt": at("11:00:20.000")},
            {"id": "behind", "createdAt": at("11:00:02.500")},
            {"id": "ahead", "createdAt": at("11:00:05.500")},
        ]
    )
    api.simulator.inject([{"id": "late", "createdAt": at("11:00:07.500")}], visible_after=10)
    page2, cursor = await _next(api, cursor, limit="3")
    clock.advance(10)
    page3, cursor = await _next(api, cursor, limit="3")
    page4, cursor = await _next(api, cursor, limit="3")
    page5, cursor = await _next(api, cursor, limit="3")

    assert page1 == ["e01", "e02", "e03"]
    assert page2 == ["e04", "e05", "ahead"]
    assert page3 == ["e06", "e07", "late"]
    assert page4 == ["e08", "e09", "e10"]
    assert page5 == ["new"]
    assert cursor is None


async def test_newest_first_walk_with_inserts(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 10)

    page1, cursor = await _next(api, None, limit="4")
    api.simulator.inject(
        [
            {"id": "newer", "createdAt": at("11:00:20.000")},
            {"id": "ahead", "createdAt": at("11:00:03.500")},
            {"id": "oldest", "createdAt": at("11:00:00.000")},
        ]
    )
    page2, cursor = await _next(api, cursor, limit="4")
    page3, cursor = await _next(api, cursor, limit="4")

    assert page1 == ["e10", "e09", "e08", "e07"]
    assert page2 == ["e06", "e05", "e04", "ahead"]
    assert page3 == ["e03", "e02", "e01", "oldest"]
    assert cursor is None


async def test_walk_through_ties_at_page_edges(make_api: MakeApi, clock: FakeClock) -> None:
    # Twelve events in one millisecond, so only the id orders them.
    api = await make_api(clock, order="oldest")
    api.simulator.inject([{"id": f"t{number:02d}"} for number in range(12)])

    ids = await api.walk(params={"limit": "5"})

    assert ids == [f"t{number:02d}" for number in range(12)]


async def test_has_more_exact_at_boundary(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 6)

    first = await api.page({"limit": "3"})
    second = await api.page({"limit": "3", "cursor": first.body["nextCursor"]})

    assert first.body["hasMore"] is True
    assert second.body["hasMore"] is False
    assert second.body["nextCursor"] is None
    assert ids_of(second.body["data"]["events"]) == ["e03", "e02", "e01"]


async def test_has_more_ignores_invisible_rows(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, order="oldest")
    _inject_seconds(api, 1, 3)
    api.simulator.inject([{"id": "late", "createdAt": at("11:00:04")}], visible_after=5)

    reply = await api.page({"limit": "3"})

    assert ids_of(reply.body["data"]["events"]) == ["e01", "e02", "e03"]
    assert reply.body["hasMore"] is False


async def test_limit_may_change_between_pages(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, order="oldest")
    _inject_seconds(api, 1, 9)

    page1, cursor = await _next(api, None, limit="2")
    page2, cursor = await _next(api, cursor, limit="5")
    page3, cursor = await _next(api, cursor, limit="500")

    assert page1 + page2 + page3 == [f"e{second:02d}" for second in range(1, 10)]
    assert cursor is None


async def test_walk_of_generated_backlog_matches_truth(make_api: MakeApi) -> None:
    api = await make_api(backlog=2000, seed=11)

    ids = await api.walk(params={"limit": "500"})

    assert ids == ids_of(api.simulator.events())[::-1]
    assert len(ids) == 2000


async def _first_cursor(api: Api, **params: str) -> str:
    reply = await api.page({"limit": "2", **params})
    cursor = reply.body["nextCursor"]
    assert isinstance(cursor, str)
    return cursor


async def _cursor_error(api: Api, cursor: str, **params: str) -> dict[str, str]:
    reply = await api.get("/v1/activity", {"cursor": cursor, **params})
    assert reply.status == 400
    assert reply.body["error"]["param"] == "cursor"
    error: dict[str, str] = reply.body["error"]
    return error


async def test_garbage_cursor_rejected(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)

    error = await _cursor_error(api, "not-a-cursor")

    assert error["code"] == "invalid_cursor"


async def test_altered_cursor_rejected(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 5)
    cursor = await _first_cursor(api)
    version, payload, mac = cursor.split(".")
    altered = payload[:-1] + ("A" if payload[-1] != "A" else "B")

    error = await _cursor_error(api, f"{version}.{altered}.{mac}")

    assert error["code"] == "invalid_cursor"


async def test_cursor_of_other_simulator_rejected(make_api: MakeApi, clock: FakeClock) -> None:
    first = await make_api(clock)
    second = await make_api(clock)
    _inject_seconds(first, 1, 5)
    _inject_seconds(second, 1, 5)
    cursor = await _first_cursor(first)

    error = await _cursor_error(second, cursor)

    assert error["code"] == "invalid_cursor"


async def test_cursor_bound_to_filters_and_window(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 9)
    cursor = await _first_cursor(api, since=at("11:00:02"))

    other_since = await _cursor_error(api, cursor, since=at("11:00:03"), limit="2")
    no_since = await _cursor_error(api, cursor, limit="2")
    with_until = await _cursor_error(api, cursor, since=at("11:00:02"), until=at("11:00:09"))
    with_filter = await _cursor_error(api, cursor, since=at("11:00:02"), severity="info")
    same = await api.page({"cursor": cursor, "since": at("11:00:02"), "limit": "2"})

    assert other_since["code"] == "cursor_mismatch"
    assert no_since["code"] == "cursor_mismatch"
    assert with_until["code"] == "cursor_mismatch"
    assert with_filter["code"] == "cursor_mismatch"
    assert ids_of(same.body["data"]["events"]) == ["e07", "e06"]


async def test_cursor_bound_to_order(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 5)
    cursor = await _first_cursor(api)

    api.simulator.update(order="oldest")
    error = await _cursor_error(api, cursor)

    assert error["code"] == "cursor_mismatch"


async def test_cursor_expires_after_ttl(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, cursor_ttl=60.0)
    _inject_seconds(api, 1, 5)
    cursor = await _first_cursor(api)

    clock.advance(60.0)
    valid = await api.page({"limit": "2", "cursor": cursor})
    clock.advance(0.01)
    error = await _cursor_error(api, cursor, limit="2")

    assert ids_of(valid.body["data"]["events"]) == ["e03", "e02"]
    assert error["code"] == "cursor_expired"
    assert "60 s" in error["message"]


async def test_cursor_ttl_set_at_runtime(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    _inject_seconds(api, 1, 5)
    cursor = await _first_cursor(api)

    clock.advance(3600)
    api.simulator.update(cursor_ttl=10.0)
    error = await _cursor_error(api, cursor)

    assert error["code"] == "cursor_expired"


async def test_retention_hides_old_events(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, retention=3600.0)
    api.simulator.inject(
        [
            {"id": "expired", "createdAt": "2026-05-10T10:59:59Z"},
            {"id": "kept", "createdAt": "2026-05-10T11:00:01Z"},
        ]
    )

    reply = await api.page()

    assert ids_of(reply.body["data"]["events"]) == ["kept"]
    assert ids_of(api.simulator.events()) == ["kept"]
    assert api.simulator.statistics()["events_stored"] == 2


async def test_since_beyond_retention_rejected(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, retention=3600.0)

    rejected = await api.get("/v1/activity", {"since": "2026-05-10T10:59:59Z"})
    accepted = await api.get("/v1/activity", {"since": "2026-05-10T11:00:00Z"})

    assert rejected.status == 400
    assert rejected.body["error"]["code"] == "since_out_of_range"
    assert rejected.body["error"]["param"] == "since"
    assert accepted.status == 200


async def test_retention_moves_with_clock(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, retention=60.0, order="oldest")
    api.simulator.inject([{"id": "first"}])
    clock.advance(30)
    api.simulator.inject([{"id": "second"}])

    clock.advance(31)
    reply = await api.page()

    assert ids_of(reply.body["data"]["events"]) == ["second"]


# The store against a naive model: every page of a walk, with inserts and
# late rows between pages, equals the sorted visible matching rows past the cursor.

_NOW = 1_000
_SEVERITY = 3  # position of severity in StoredEvent.fields

Key = tuple[int, str]
Row = tuple[int, str, int, str]  # (time, id, visible at, severity)


def _expected_page(
    rows: list[Row],
    after: Key | None,
    limit: int,
    now_ns: int,
    newest_first: bool,
    severity: str | None,
) -> tuple[list[Key], bool]:
    keys = sorted(
        (time_ns, event_id)
        for time_ns, event_id, visible_at, row_severity in rows
        if visible_at <= now_ns and severity in (None, row_severity)
    )
    if newest_first:
        keys.reverse()
    if after is not None:
        keys = [key for key in keys if (key < after if newest_first else key > after)]
    return keys[:limit], len(keys) > limit


@settings(max_examples=200, deadline=None)
@given(
    initial=st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=30),
    inserts=st.lists(
        st.tuples(st.integers(0, 10), st.integers(0, 20), st.booleans(), st.booleans()),
        max_size=20,
    ),
    limit=st.integers(1, 7),
    newest_first=st.booleans(),
    severity=st.sampled_from([None, "error"]),
)
def test_store_walk_matches_model(
    initial: list[tuple[int, bool]],
    inserts: list[tuple[int, int, bool, bool]],
    limit: int,
    newest_first: bool,
    severity: str | None,
) -> None:
    store = EventStore(precision_ns=1)
    rows: list[Row] = []

    def new_row(time_ns: int, event_id: str, visible_at: int, error: bool) -> StoredEvent:
        row_severity = "error" if error else "info"
        rows.append((time_ns, event_id, visible_at, row_severity))
        return StoredEvent({"id": event_id, "severity": row_severity}, time_ns, None, visible_at)

    # The backlog goes in as one batch, later rows one by one: both paths build the indexes.
    store.add_many(
        new_row(time_ns, f"i{number:02d}", 0, error)
        for number, (time_ns, error) in enumerate(initial)
    )
    initial_ids = {
        event_id for _, event_id, _, row_severity in rows if severity in (None, row_severity)
    }
    query = PageQuery(
        filters=((_SEVERITY, severity),) if severity else (), newest_first=newest_first
    )

    served: list[Key] = []
    after: Key | None = None
    now_ns = _NOW
    for page_number in range(100):
        # Late rows become visible one page after they are inserted.
        for number, (at_page, time_ns, late, error) in enumerate(inserts):
            if at_page == page_number:
                visible_at = now_ns + 1 if late else 0
                store.add(new_row(time_ns, f"n{number:02d}", visible_at, error))

        selected, has_more = store.page(query, after=after, limit=limit, now_ns=now_ns)
        page = [(order_ns, event.id) for order_ns, event in selected]
        expected = _expected_page(rows, after, limit, now_ns, newest_first, severity)
        assert (page, has_more) == expected
        served.extend(page)
        if not has_more:
            break
        after = page[-1]
        now_ns += 1

    served_ids = [event_id for _, event_id in served]
    assert len(served_ids) == len(set(served_ids))
    assert initial_ids <= set(served_ids)
    assert served == sorted(served, reverse=newest_first)


def test_store_rejects_duplicate_id() -> None:
    store = EventStore(precision_ns=1)
    store.add(StoredEvent({"id": "a"}, 1, None, 0))

    with pytest.raises(ValueError, match=r"^an event with id 'a' is already stored$"):
        store.add(StoredEvent({"id": "a"}, 2, None, 0))

    assert len(store) == 1
