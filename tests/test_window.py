from hypothesis import given
from hypothesis import strategies as st

from tailer.event import Event
from tailer.window import WindowBuffer


def make_event(event_id: str, time_ns: int) -> Event:
    return Event(event_id, time_ns, {"id": event_id})


def test_buffer_sorts_by_time_then_id() -> None:
    buffer = WindowBuffer(capacity=10, floor_ns=0)
    for event_id, time_ns in [("b", 5), ("c", 1), ("a", 5), ("d", 3)]:
        buffer.add(make_event(event_id, time_ns))

    assert [e.id for e in buffer.sorted_events()] == ["c", "d", "a", "b"]


def test_buffer_ignores_repeated_id() -> None:
    buffer = WindowBuffer(capacity=10, floor_ns=0)

    assert buffer.add(make_event("a", 1)) is True
    assert buffer.add(make_event("a", 1)) is False
    assert len(buffer) == 1


def test_buffer_full_drops_newest_instant_and_sets_cutoff() -> None:
    buffer = WindowBuffer(capacity=3, floor_ns=0)
    for event_id, time_ns in [("a", 10), ("b", 20), ("c", 20), ("d", 5)]:
        buffer.add(make_event(event_id, time_ns))

    assert buffer.cutoff_ns == 20
    assert [e.id for e in buffer.sorted_events()] == ["d", "a"]
    assert buffer.add(make_event("e", 20)) is False
    assert buffer.add(make_event("f", 30)) is False
    assert buffer.add(make_event("g", 19)) is True


def test_buffer_grows_when_all_events_share_the_floor() -> None:
    buffer = WindowBuffer(capacity=2, floor_ns=100)
    for event_id in "abc":
        buffer.add(make_event(event_id, 100))

    assert buffer.overflowed is True
    assert buffer.cutoff_ns is None
    assert [e.id for e in buffer.sorted_events()] == ["a", "b", "c"]


def test_buffer_span_from_oldest_to_newest() -> None:
    buffer = WindowBuffer(capacity=5, floor_ns=0)
    assert buffer.span_ns() == 0

    for event_id, time_ns in [("a", 40), ("b", 15), ("c", 32)]:
        buffer.add(make_event(event_id, time_ns))

    assert buffer.span_ns() == 25


def test_buffer_respects_given_end() -> None:
    buffer = WindowBuffer(capacity=5, floor_ns=0, end_ns=50)

    assert buffer.add(make_event("a", 50)) is False
    assert buffer.add(make_event("b", 49)) is True


@given(
    times=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=200),
    capacity=st.integers(min_value=1, max_value=30),
)
def test_buffer_holds_exactly_the_oldest_complete_prefix(times: list[int], capacity: int) -> None:
    events = [make_event(f"e{index:03d}", time_ns) for index, time_ns in enumerate(times)]
    buffer = WindowBuffer(capacity=capacity, floor_ns=0)
    for event in events:
        buffer.add(event)

    held = buffer.sorted_events()
    expected_end = buffer.cutoff_ns if buffer.cutoff_ns is not None else max(times) + 1
    expected = sorted(
        (e for e in events if e.time_ns < expected_end), key=lambda e: (e.time_ns, e.id)
    )
    assert [e.id for e in held] == [e.id for e in expected]
    assert len(held) <= capacity or buffer.overflowed
