"""Read-ahead of a page walk: cursors peeked from undecoded bodies, checked when decoded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web
from apistub import ScriptedApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailer.client import ActivityClient, ClientOptions
from tailer.credentials import Token
from tailer.page import peek_next_cursor
from tailer.readahead import PageReadahead
from tailer.retry import RetryPolicy

EVENTS = [{"id": f"evt-{n:02d}", "createdAt": f"2026-12-04T12:00:{n:02d}Z"} for n in range(10)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":"c2"}', "c2"),
        (b'{"data":{"events":[]},"meta":{"hasMore":true,"nextCursor":"c2"}}', "c2"),
        (b'{"data": {"events": []},\n "hasMore": true, "nextCursor": "c 2"}\n', "c 2"),
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":"\xc3\xa9"}', "\u00e9"),
        (b'{"data":{"events":[]},"hasMore":false,"nextCursor":"c2"}', None),
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":null}', None),
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":"c\\"2"}', None),
        (b'{"hasMore":true,"nextCursor":"c2","data":{"events":[]}}', None),
        (b'{"data":{"events":[{"hasMore":true,"nextCursor":"inside"}]}}', None),
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":"\xff"}', None),
        (b'{"data":{"events":[]},"hasMore":true,"nextCursor":"' + b"c" * 3000 + b'"}', None),
        (b"", None),
    ],
    ids=[
        "reference",
        "guide",
        "spaces",
        "utf-8",
        "no-more",
        "null",
        "escaped",
        "paging-first",
        "inside-event",
        "not-utf-8",
        "too-long",
        "empty",
    ],
)
def test_peek_cursor_only_from_documented_end(body: bytes, expected: str | None) -> None:
    assert peek_next_cursor(body) == expected


def cursor_of(page_number: int) -> str:
    return f"page-{page_number}"


class PagedFeed:
    """Serves EVENTS three a page; `layouts[n]` decides how page n's body is laid out."""

    PAGE_SIZE = 3

    def __init__(self, layouts: list[str], events: list[dict[str, Any]] = EVENTS) -> None:
        self.layouts = layouts
        self.events = events
        self.pages = -(-len(events) // self.PAGE_SIZE)
        self.requested: list[str | None] = []
        self.page_requested = {n: asyncio.Event() for n in range(self.pages)}

    def body(self, number: int) -> bytes:
        chunk = [
            {**event, "attributes": {"hasMore": True, "nextCursor": "in-event"}}
            for event in self.events[number * self.PAGE_SIZE : (number + 1) * self.PAGE_SIZE]
        ]
        more = number + 1 < self.pages
        cursor = cursor_of(number + 1) if more else None
        data = {"events": chunk}
        layout = self.layouts[number % len(self.layouts)]
        document: dict[str, Any]
        if layout == "guide":
            document = {"data": data, "meta": {"hasMore": more, "nextCursor": cursor}}
        elif layout == "paging-first":
            document = {"hasMore": more, "nextCursor": cursor, "data": data}
        elif layout == "fake-trailer":
            fake = {"hasMore": True, "nextCursor": f"fake-{number}"}
            document = {"data": data, "hasMore": more, "nextCursor": cursor, "zz": fake}
        else:
            document = {"data": data, "hasMore": more, "nextCursor": cursor}
        return orjson.dumps(document)

    async def handle(self, request: web.Request) -> web.Response:
        cursor = request.query.get("cursor")
        self.requested.append(cursor)
        if cursor is not None and cursor.startswith("fake-"):
            # A guessed page that is not the walk's: it names a cursor of its own,
            # which no request may follow.
            body = b'{"data":{"events":[]},"hasMore":true,"nextCursor":"fake-chain"}'
            return web.Response(body=body, content_type="application/json")
        number = 0 if cursor is None else int(cursor.removeprefix("page-"))
        self.page_requested[number].set()
        return web.Response(body=self.body(number), content_type="application/json")


def open_client(url: str) -> ActivityClient:
    return ActivityClient(
        ClientOptions(
            base_url=url,
            token=Token("rt_test_stub", source="test"),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=3),
        )
    )


async def walk(feed: PagedFeed) -> list[Any]:
    """Walk the feed by its cursors through a PageReadahead and return the events read."""
    events: list[Any] = []
    async with ScriptedApi(feed.handle) as api, open_client(api.url) as client:
        requests = PageReadahead(client, {"limit": str(feed.PAGE_SIZE)})
        try:
            while True:
                page = await requests.page()
                events.extend(page.events)
                if not page.has_more:
                    break
                assert page.next_cursor is not None
                await requests.advance(page.next_cursor)
        finally:
            await requests.close()
    return events


async def test_next_page_requested_before_walk_advances() -> None:
    feed = PagedFeed(["reference"])
    async with ScriptedApi(feed.handle) as api, open_client(api.url) as client:
        requests = PageReadahead(client, {"limit": "3"})
        try:
            first = await requests.page()
            # No advance yet: the second request went out from the first body's end.
            await asyncio.wait_for(feed.page_requested[1].wait(), timeout=5)
            await requests.advance(cursor_of(1))
            second = await requests.page()
        finally:
            await requests.close()

    assert [e["id"] for e in first.events + second.events] == [f"evt-0{n}" for n in range(6)]
    assert feed.requested == [None, cursor_of(1)]


async def test_wrong_guess_replaced_by_decoded_cursor() -> None:
    feed = PagedFeed(["fake-trailer"])

    events = await walk(feed)

    assert [e["id"] for e in events] == [e["id"] for e in EVENTS]
    walked = [cursor_of(n) for n in range(1, feed.pages)]
    assert [c for c in feed.requested if c is None or c.startswith("page-")] == [None, *walked]
    assert "fake-chain" not in feed.requested


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layouts=st.lists(
        st.sampled_from(["reference", "guide", "paging-first", "fake-trailer"]),
        min_size=1,
        max_size=4,
    )
)
def test_any_body_layout_walks_every_page_once(layouts: list[str]) -> None:
    feed = PagedFeed(layouts)

    events = asyncio.run(walk(feed))

    assert [e["id"] for e in events] == [e["id"] for e in EVENTS]
    pages = [c for c in feed.requested if c is None or c.startswith("page-")]
    assert pages == [None, *(cursor_of(n) for n in range(1, feed.pages))]
    fake_pages = sum(1 for n in range(feed.pages) if layouts[n % len(layouts)] == "fake-trailer")
    guesses = [c for c in feed.requested if c is not None and c.startswith("fake-")]
    assert len(guesses) <= fake_pages
    assert "fake-chain" not in guesses


async def test_only_awaited_request_asks_early() -> None:
    feed = PagedFeed(["reference"], events=EVENTS[:6])  # two pages
    async with ScriptedApi(feed.handle) as api, open_client(api.url) as client:
        requests = PageReadahead(client, {"limit": "3"})
        try:
            await requests.page()
            await requests.advance(cursor_of(1))
            # A body seen by any task but the one the walk waits for, such as an
            # abandoned guess, must not start a request. The last page's own body
            # names no cursor, so nothing else fills the slot.
            await asyncio.create_task(requests._request_early(feed.body(0)))
            assert requests._early is None
            last = await requests.page()
        finally:
            await requests.close()

    assert last.has_more is False
    assert feed.requested == [None, cursor_of(1)]
