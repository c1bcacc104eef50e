"""Poller cases that need a misbehaving API: a scripted server on 127.0.0.1 plays it."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import time
from typing import Any

import orjson
import pytest
from aiohttp import web
from apistub import ScriptedApi, error, page
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tailer.client import ActivityClient, ClientOptions
from tailer.clock import SystemClock
from tailer.credentials import Token
from tailer.errors import BadRequestError, PageFormatError
from tailer.event import Event
from tailer.page import parse_page
from tailer.poller import EARLY_PAGE_MAX_AGE, MAX_EMPTY_PAGES, Poller, PollerSettings, TimeBound
from tailer.retry import RetryPolicy
from tailer.timeparse import NS_PER_SECOND, format_iso, parse_time
from tailer.window import WindowBuffer


def now_ns() -> int:
    return int(time.time()) * NS_PER_SECOND


def event(number: int, seconds_ago: float) -> dict[str, Any]:
    """An event `seconds_ago` before the current whole second."""
    return {
        "id": f"evt-{number:04d}",
        "createdAt": format_iso(now_ns() - int(seconds_ago * NS_PER_SECOND), digits=3),
        "title": f"event {number}",
    }


class Feed:
    """Serves a fixed list of events by since/until (inclusive), `limit` per page, newest first."""

    def __init__(self, events: list[dict[str, Any]], *, shuffle: bool = False) -> None:
        self.events = events
        self.shuffle = shuffle

    def select(self, query: dict[str, str]) -> list[dict[str, Any]]:
        since = parse_time(query["since"]) if "since" in query else None
        until = parse_time(query["until"]) if "until" in query else None
        chosen = [
            e
            for e in self.events
            if (since is None or parse_time(e["createdAt"]) >= since)
            and (until is None or parse_time(e["createdAt"]) <= until)
        ]
        chosen.sort(key=lambda e: (e["createdAt"], e["id"]), reverse=True)
        return chosen

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        rows = self.select(query)
        offset = int(query.get("cursor", "0"))
        limit = int(query.get("limit", "50"))
        chunk = rows[offset : offset + limit]
        if self.shuffle:
            random.Random(offset).shuffle(chunk)
        more = offset + limit < len(rows)
        return page(chunk, more, str(offset + limit) if more else None, server_time=time.time())


def make_poller(url: str, **settings: Any) -> tuple[ActivityClient, Poller]:
    client = ActivityClient(
        ClientOptions(
            base_url=url,
            token=Token("rt_test_stub", source="test"),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=3),
        )
    )
    defaults: dict[str, Any] = {
        "since": TimeBound(ago_ns=600 * NS_PER_SECOND),
        "min_interval": 0.01,
        "max_interval": 0.05,
        "page_size": 3,
    }
    defaults.update(settings)
    clock = settings.pop("clock", None)
    defaults.pop("clock", None)
    return client, Poller(client, PollerSettings(**defaults), clock=clock)


async def read_all(client: ActivityClient, poller: Poller) -> list[Event]:
    delivered: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        delivered.extend(events)

    async with client:
        await asyncio.wait_for(poller.run(deliver), timeout=20)
    return delivered


def ids(events: list[Event]) -> list[str]:
    return [e.id for e in events]


async def test_shuffled_pages_delivered_oldest_first() -> None:
    events = [event(n, 500 - n * 10) for n in range(40)]
    feed = Feed(events, shuffle=True)
    async with ScriptedApi(feed.handle) as api:
        delivered = await read_all(*make_poller(api.url))

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(40)]


async def test_repeated_cursor_backs_off_reports_and_recovers() -> None:
    events = [event(n, 100 - n) for n in range(5)]
    feed = Feed(events)
    loops = {"left": 4}

    async def handle(request: web.Request) -> web.Response:
        if request.query.get("cursor") == "3" and loops["left"] > 0:
            loops["left"] -= 1
            return page([events[0]], True, "3", server_time=time.time())
        return await feed.handle(request)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(5)]
    assert poller.statistics.stalled_walks >= 1
    stalls = [entry for entry in logs if entry["event"] == "walk.stalled"]
    assert stalls
    assert "same cursor 3 times" in stalls[0]["error"]


async def test_endless_empty_pages_back_off_then_recover() -> None:
    events = [event(n, 100 - n) for n in range(4)]
    feed = Feed(events)
    served = {"empty": 0}

    async def handle(request: web.Request) -> web.Response:
        # The first walk after the probe gets MAX_EMPTY_PAGES empty pages that claim more.
        if "since" in request.query and served["empty"] < MAX_EMPTY_PAGES:
            served["empty"] += 1
            return page([], True, f"empty{served['empty']}", server_time=time.time())
        return await feed.handle(request)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(4)]
    assert poller.statistics.stalled_walks == 1


async def test_missing_paging_fields_is_an_error_not_an_end() -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"data": {"events": [event(1, 5)]}, "paging": {}})

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with pytest.raises(PageFormatError, match="no hasMore field"):
            await read_all(client, poller)


async def test_rejected_cursor_rereads_window_without_duplicates() -> None:
    events = [event(n, 200 - n) for n in range(10)]
    feed = Feed(events)
    rejected = {"count": 0}

    async def handle(request: web.Request) -> web.Response:
        if request.query.get("cursor") == "6" and rejected["count"] < 2:
            rejected["count"] += 1
            return error(400, "cursor expired", server_time=time.time())
        return await feed.handle(request)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(10)]
    assert poller.statistics.cursor_rejections == 2
    assert [e["event"] for e in logs].count("cursor.rejected") == 2


async def test_range_beyond_retention_reports_gap_and_continues() -> None:
    retention_start_ns = now_ns() - 300 * NS_PER_SECOND
    events = [event(n, 525 - n * 50) for n in range(10)]  # 525 s ago .. 75 s ago
    feed = Feed(events)

    async def handle(request: web.Request) -> web.Response:
        since = request.query.get("since")
        if since is not None and parse_time(since) < retention_start_ns:
            return error(400, "since is beyond the retention period", server_time=time.time())
        return await feed.handle(request)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    # The tailer resumes a few seconds past the oldest accepted time; no event is that close.
    readable = [e["id"] for e in events if parse_time(e["createdAt"]) >= retention_start_ns]
    assert ids(delivered) == readable
    assert poller.statistics.unreadable_windows == 1
    gaps = [entry for entry in logs if entry["event"] == "window.unreadable"]
    assert len(gaps) == 1
    gap_end_ns = parse_time(gaps[0]["until"])
    assert retention_start_ns <= gap_end_ns <= retention_start_ns + 7 * NS_PER_SECOND
    assert parse_time(gaps[0]["since"]) < retention_start_ns


async def test_genuine_bad_request_stops() -> None:
    async def handle(request: web.Request) -> web.Response:
        if "since" in request.query:
            return error(400, "event_type is not valid", server_time=time.time())
        return page([], server_time=time.time())

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with pytest.raises(BadRequestError, match="event_type is not valid"):
            await read_all(client, poller)


async def test_invalid_events_reported_once_and_skipped() -> None:
    events = [event(1, 30), {"title": "no id"}, {"id": "no-time"}, event(2, 20)]

    async def handle(request: web.Request) -> web.Response:
        return page(events, server_time=time.time())

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    assert ids(delivered) == ["evt-0001", "evt-0002"]
    assert poller.statistics.invalid == 2
    warnings = [entry for entry in logs if entry["event"] == "event.invalid"]
    assert [w["event_id"] for w in warnings] == [None, "no-time"]


@pytest.mark.parametrize("skew_seconds", [-3600.0, 3600.0])
async def test_skewed_local_clock_misses_nothing(skew_seconds: float) -> None:
    events = [event(n, 590 - n * 20) for n in range(30)]
    feed = Feed(events)
    async with ScriptedApi(feed.handle) as api:
        client, poller = make_poller(api.url, clock=SystemClock(offset=skew_seconds))
        delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(30)]


async def test_relative_range_covers_whole_date_second() -> None:
    # The Date header says 12:00:00, so the server's "now" lies within that second.
    server_ns = parse_time("2026-12-04T12:00:00Z")
    offsets_s = {"before": -60.5, "first": -59.8, "last": 0.9}
    events = [
        {"id": name, "createdAt": format_iso(server_ns + int(offset * NS_PER_SECOND), digits=3)}
        for name, offset in offsets_s.items()
    ]
    feed = Feed(events)

    async def handle(request: web.Request) -> web.Response:
        rows = feed.select(dict(request.query))
        return page(rows, server_time=server_ns / NS_PER_SECOND)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url, since=TimeBound(ago_ns=60 * NS_PER_SECOND))
        delivered = await read_all(client, poller)

    assert ids(delivered) == ["first", "last"]
    assert server_ns - 60 * NS_PER_SECOND <= poller.start_ns
    assert poller.start_ns < server_ns - 59 * NS_PER_SECOND
    assert poller.end_ns is not None
    assert poller.end_ns >= server_ns + NS_PER_SECOND - 1


async def test_unreadable_date_header_falls_back_to_local_clock() -> None:
    events = [event(n, 100 - n) for n in range(3)]

    async def handle(request: web.Request) -> web.Response:
        response = await Feed(events).handle(request)
        # aiohttp always sends a Date header, so the stub sends one no parser accepts.
        response.headers["Date"] = "not a date"
        return response

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url)
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    assert ids(delivered) == ["evt-0000", "evt-0001", "evt-0002"]
    assert any(entry["event"] == "clock.fallback" for entry in logs)


# --- the page pipeline --------------------------------------------------------

BASE_NS = parse_time("2026-12-04T12:00:00Z")

page_times = st.one_of(
    st.integers(min_value=-3_000, max_value=7_000).map(
        lambda ms: format_iso(BASE_NS + ms * 1_000_000, digits=3)
    ),
    st.sampled_from(["2026-12-04T12:00:02+01:00", "yesterday", "", 17, None]),
)
raw_page_events = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f", ""]), st.just(7)),
            "createdAt": page_times,
            "occurredAt": page_times,
        },
    ),
    st.sampled_from([["a list"], "a string", None]),
)


def poller_at_floor(**settings: Any) -> Poller:
    """A poller in the middle of a backfill: start at BASE_NS, floor 3 s later, id "a" seen."""
    client = ActivityClient(
        ClientOptions(base_url="http://127.0.0.1:9", token=Token("rt_test_stub", source="test"))
    )
    poller_settings = PollerSettings(since=TimeBound(absolute_ns=BASE_NS), **settings)
    poller = Poller(client, poller_settings, seen=[("a", BASE_NS + 3 * NS_PER_SECOND)])
    poller.start_ns = BASE_NS
    poller.floor_ns = BASE_NS + 3 * NS_PER_SECOND
    return poller


@settings(max_examples=300)
@given(pages=st.lists(st.lists(raw_page_events, max_size=12), max_size=4))
def test_page_fast_path_decides_like_one_by_one(pages: list[list[Any]]) -> None:
    fast, reference = poller_at_floor(), poller_at_floor()
    fast_buffer = WindowBuffer(4, fast.floor_ns, BASE_NS + 6 * NS_PER_SECOND)
    reference_buffer = WindowBuffer(4, reference.floor_ns, BASE_NS + 6 * NS_PER_SECOND)
    horizon = max(reference.start_ns, reference.dedupe_horizon_ns())

    parsed = [
        parse_page(orjson.dumps({"data": {"events": events}, "hasMore": False})) for events in pages
    ]
    with capture_logs() as fast_logs:
        for page in parsed:
            fast._accept_page(page, fast_buffer)
    with capture_logs() as reference_logs:
        for page in parsed:
            reference.statistics.received += len(page.lines)
            for line in page.lines:
                reference._accept(line, reference_buffer, horizon)

    def held(buffer: WindowBuffer) -> list[tuple[str, int, dict[str, Any]]]:
        return [(e.id, e.time_ns, e.raw) for e in buffer.sorted_events()]

    assert held(fast_buffer) == held(reference_buffer)
    assert fast_buffer.cutoff_ns == reference_buffer.cutoff_ns
    assert dataclasses.asdict(fast.statistics) == dataclasses.asdict(reference.statistics)
    assert fast_logs == reference_logs


async def test_next_window_requested_during_delivery() -> None:
    events = [event(n, 500 - n * 10) for n in range(40)]
    feed = Feed(events)
    arrived = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        arrived.set()
        return await feed.handle(request)

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url, window_capacity=4)
        delivered: list[Event] = []
        waited = False

        async def deliver(batch: list[Event]) -> None:
            nonlocal waited
            delivered.extend(batch)
            if not waited:
                waited = True
                # Every page read so far, the start-up probe and one more: the next
                # window's first page, requested before this delivery returns.
                expected = poller.statistics.pages + 2
                while len(api.queries) < expected:
                    arrived.clear()
                    if len(api.queries) < expected:
                        await asyncio.wait_for(arrived.wait(), timeout=5)

        async with client:
            await asyncio.wait_for(poller.run(deliver), timeout=20)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(40)]
    assert poller.statistics.rounds > 2


async def test_failed_delivery_cancels_next_window_request() -> None:
    events = [event(n, 500 - n * 10) for n in range(40)]
    feed = Feed(events)
    release = asyncio.Event()
    deliveries = 0

    async def handle(request: web.Request) -> web.Response:
        if deliveries:
            await release.wait()  # delays the next window's first page until the test ends
        return await feed.handle(request)

    async def deliver(batch: list[Event]) -> None:
        nonlocal deliveries
        deliveries += 1
        raise RuntimeError("the sink is gone")

    def open_requests() -> list[asyncio.Task[Any]]:
        return [
            task
            for task in asyncio.all_tasks()
            if not task.done()
            and getattr(task.get_coro(), "__qualname__", "") == "ActivityClient.fetch_page"
        ]

    async with ScriptedApi(handle) as api:
        client, poller = make_poller(api.url, window_capacity=4)
        try:
            async with client:
                with pytest.raises(RuntimeError, match="the sink is gone"):
                    await asyncio.wait_for(poller.run(deliver), timeout=20)
                assert open_requests() == []
        finally:
            release.set()

    assert deliveries == 1


class SteppedClock(SystemClock):
    """The system clock, with monotonic time that a test can move forward at once."""

    def __init__(self) -> None:
        super().__init__()
        self.jump = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.jump


async def test_slow_delivery_rereads_next_window_start() -> None:
    events = [event(n, 500 - n * 10) for n in range(40)]
    feed = Feed(events)
    clock = SteppedClock()

    async with ScriptedApi(feed.handle) as api:
        client, poller = make_poller(api.url, window_capacity=4, clock=clock)
        delivered: list[Event] = []

        async def deliver(batch: list[Event]) -> None:
            if not delivered and batch:
                clock.jump += EARLY_PAGE_MAX_AGE + 1  # as if a full journal held it up
            delivered.extend(batch)

        async with client:
            await asyncio.wait_for(poller.run(deliver), timeout=20)

    first_queries = collections.Counter(
        tuple(sorted(query.items())) for query in api.queries if "cursor" not in query
    )
    assert sorted(first_queries.values())[-2:] == [1, 2]
    assert ids(delivered) == [f"evt-{n:04d}" for n in range(40)]


async def test_dense_window_narrowed_after_first_page() -> None:
    # 80 events, one every half second, in the first 60 s window: far more than
    # the 10 the buffer holds. The newest-first first page spans one second.
    events = [event(n, 100 - n / 2) for n in range(80)]
    feed = Feed(events)
    async with ScriptedApi(feed.handle) as api:
        client, poller = make_poller(
            api.url, since=TimeBound(ago_ns=120 * NS_PER_SECOND), window_capacity=10
        )
        with capture_logs() as logs:
            delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(80)]
    narrowed = [entry for entry in logs if entry["event"] == "window.narrowed"]
    assert len(narrowed) == 1
    # Half the buffer's 10 events at the page's 3 events a second: 5/3 s.
    assert narrowed[0]["width_s"] == pytest.approx(5 / 3, abs=0.01)
    assert not any(entry["event"] == "window.overflowed" for entry in logs)


async def test_backfill_remembers_only_floor_overlap() -> None:
    # One event a second up to half a second ago: the lateness window (60 s) contains
    # all of them, the 2 s below the final floor at most two. The floor is the
    # server's time when the walk ends, so on a slow run the overlap contains none.
    events = [event(n, 9.5 - n) for n in range(10)]
    feed = Feed(events)
    async with ScriptedApi(feed.handle) as api:
        client, poller = make_poller(api.url, since=TimeBound(ago_ns=30 * NS_PER_SECOND))
        delivered = await read_all(client, poller)

    assert ids(delivered) == [f"evt-{n:04d}" for n in range(10)]
    horizon = poller.floor_ns - 2 * NS_PER_SECOND
    expected = sum(1 for e in delivered if e.time_ns >= horizon)
    assert expected <= 2
    assert poller.dedupe_size == expected


def test_invalid_event_with_large_integer_reported() -> None:
    poller = poller_at_floor()
    buffer = WindowBuffer(4, poller.floor_ns, BASE_NS + 6 * NS_PER_SECOND)
    body = (
        b'{"data": {"events": [{"createdAt": "2026-12-04T12:00:04Z", '
        b'"count": 123456789012345678901234567890}]}, "hasMore": false}'
    )

    with capture_logs() as logs:
        poller._accept_page(parse_page(body), buffer)
        poller._accept_page(parse_page(body), buffer)

    assert poller.statistics.invalid == 1
    assert [log["event"] for log in logs] == ["event.invalid"]
    assert len(buffer) == 0
