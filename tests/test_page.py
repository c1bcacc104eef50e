"""Decoding pages: each event's JSON text kept as sent, and its id and time beside it."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tailer.page import parse_page


def test_event_text_kept_as_sent() -> None:
    first = (
        b'{"id": "a", "createdAt": "2026-12-04T12:00:00.000Z", '
        b'"count": 123456789012345678901234567890, "ratio": 1.50, "name": "caf\\u00e9"}'
    )
    second = b'{"id":"b","occurredAt":"2026-12-04T12:00:01Z","attributes":{"k":[1,2]}}'
    body = b'{"data": {"events": [' + first + b", " + second + b']}, "hasMore": false}'

    page = parse_page(body)

    # orjson would turn the integer into a float, 1.50 into 1.5 and the escape into é.
    assert page.lines == [first, second]
    assert page.ids == ["a", "b"]
    assert page.times == ["2026-12-04T12:00:00.000Z", "2026-12-04T12:00:01Z"]
    assert (page.has_more, page.next_cursor) == (False, None)


def test_line_breaks_between_tokens_removed() -> None:
    body = b"""{
  "data": {
    "events": [
      {
        "id": "a",
        "createdAt": "2026-12-04T12:00:00Z",
        "title": "two\\nlines caf\\u00e9",
        "count": 123456789012345678901234567890,
        "ratio": 1.50,
        "huge": 1E+400
      },
      {"id": "b", "createdAt": "2026-12-04T12:00:01Z"}
    ]
  },
  "meta": {"hasMore": true, "nextCursor": "c_2"}
}"""

    page = parse_page(body)

    # Only whitespace changes: every value keeps the text the API sent.
    assert page.lines == [
        b'{"id": "a", "createdAt": "2026-12-04T12:00:00Z", "title": "two\\nlines caf\\u00e9", '
        b'"count": 123456789012345678901234567890, "ratio": 1.50, "huge": 1E+400}',
        b'{"id": "b", "createdAt": "2026-12-04T12:00:01Z"}',
    ]
    assert page.ids == ["a", "b"]
    assert (page.has_more, page.next_cursor) == (True, "c_2")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
page_events = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.text(max_size=4), st.integers(0, 99), st.none()),
            "createdAt": st.one_of(st.just("2026-12-04T12:00:00Z"), st.none(), st.integers(0, 99)),
            "occurredAt": st.one_of(st.just("2026-12-04T12:00:01Z"), st.none()),
            "payload": json_values,
        },
    ),
    json_values,
)


@settings(max_examples=300)
@given(events=st.lists(page_events, max_size=6), has_more=st.booleans())
def test_pages_decode_to_the_events_sent(events: list[Any], has_more: bool) -> None:
    body = orjson.dumps({"data": {"events": events}, "hasMore": has_more, "nextCursor": "c_9"})

    page = parse_page(body)

    assert page.lines == [orjson.dumps(event) for event in events]
    assert page.events == events
    objects = [event if isinstance(event, dict) else {} for event in events]
    assert page.ids == [event.get("id") for event in objects]
    assert page.times == [
        event.get("createdAt") if event.get("createdAt") is not None else event.get("occurredAt")
        for event in objects
    ]
    assert (page.has_more, page.next_cursor) == (has_more, "c_9" if has_more else None)
