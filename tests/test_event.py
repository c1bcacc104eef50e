import pytest

from tailer.event import Event, InvalidEventError, StoredEvents, decode_event_text, parse_event
from tailer.timeparse import parse_time


def test_event_keeps_every_field() -> None:
    raw = {
        "id": "evt-1",
        "createdAt": "2026-05-10T12:00:00.5Z",
        "severity": "info",
        "futureField": {"nested": [1, 2.5, None]},
        "attributes": {},
    }

    event = parse_event(raw)

    assert event.id == "evt-1"
    assert event.time_ns == parse_time("2026-05-10T12:00:00.5Z")
    assert event.raw is raw
    assert event.to_json() == (
        b'{"id":"evt-1","createdAt":"2026-05-10T12:00:00.5Z","severity":"info",'
        b'"futureField":{"nested":[1,2.5,null]},"attributes":{}}'
    )


def test_event_reads_occurred_at() -> None:
    event = parse_event({"id": "act_abc123", "occurredAt": "2026-05-10T12:00:00.000Z"})

    assert event.time_ns == parse_time("2026-05-10T12:00:00Z")


def test_event_numeric_id_becomes_text() -> None:
    assert parse_event({"id": 42, "createdAt": "2026-05-10T12:00:00Z"}).id == "42"


@pytest.mark.parametrize(
    ("raw", "event_id", "message"),
    [
        ({"createdAt": "2026-05-10T12:00:00Z"}, None, "id"),
        ({"id": "", "createdAt": "2026-05-10T12:00:00Z"}, "", "id"),
        ({"id": None, "createdAt": "2026-05-10T12:00:00Z"}, None, "id"),
        ({"id": "e1"}, "e1", "neither createdAt nor occurredAt"),
        ({"id": "e1", "createdAt": None}, "e1", "neither createdAt nor occurredAt"),
        ({"id": "e1", "createdAt": "tuesday"}, "e1", "invalid time 'tuesday'"),
        ({"id": "e1", "createdAt": 1778414400}, "e1", "createdAt"),
        (["not", "an", "object"], None, "JSON list"),
    ],
)
def test_event_without_usable_id_or_time(raw: object, event_id: str | None, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message) as caught:
        parse_event(raw)

    assert caught.value.event_id == event_id


def test_stored_events_built_from_lines() -> None:
    lines = [b'{"id":"a","n":1}', b'{"id":"b","n":[2,3]}']
    events = StoredEvents(["a", "b"], [10, 20], lines)

    assert len(events) == 2
    assert [(e.id, e.time_ns, e.to_json()) for e in events] == [
        ("a", 10, lines[0]),
        ("b", 20, lines[1]),
    ]
    assert events[1].raw == {"id": "b", "n": [2, 3]}
    assert [e.id for e in events[-1:]] == ["b"]
    assert events[0] is next(iter(events))  # made once, then kept


def test_stored_events_need_one_line_per_id() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        StoredEvents(["a", "b"], [10, 20], [b'{"id":"a"}'])


def test_event_text_decoded_with_exact_numbers() -> None:
    text = b'{"id": "a", "big": 123456789012345678901234567890, "huge": 1E+400, "tiny": 1e-400}'
    event = Event("a", 0, None, json=text)

    assert event.raw == {
        "id": "a",
        "big": 123456789012345678901234567890,
        "huge": float("inf"),
        "tiny": 0.0,
    }
    assert event.to_json() == text
    assert decode_event_text(b'{"n": 18446744073709551616}') == {"n": 2**64}


def test_to_json_of_object_with_large_integer() -> None:
    event = Event("a", 0, {"id": "a", "n": 2**70, "x": float("inf")})

    assert event.to_json() == b'{"id":"a","n":1180591620717411303424,"x":null}'
