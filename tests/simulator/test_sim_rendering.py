"""Page envelopes, time fields, precisions, UTC offsets, row order and the Date header."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest
from sim_support import START, FakeClock, MakeApi, at, ids_of

FRACTION = 0.123456  # seconds after START of the events these tests inject


async def test_reference_envelope_shape(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    api.simulator.inject([{"id": "e1"}])

    reply = await api.page()

    assert reply.headers["Content-Type"] == "application/json"
    assert sorted(reply.body) == ["data", "hasMore", "nextCursor"]
    assert ids_of(reply.body["data"]["events"]) == ["e1"]
    assert reply.body["hasMore"] is False
    assert reply.body["nextCursor"] is None


async def test_guide_envelope_shape(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, envelope="guide")
    api.simulator.inject([{"id": "e1"}, {"id": "e2"}])

    reply = await api.page({"limit": "1"})

    assert sorted(reply.body) == ["data", "meta"]
    assert sorted(reply.body["meta"]) == ["hasMore", "nextCursor"]
    assert reply.body["meta"]["hasMore"] is True
    assert isinstance(reply.body["meta"]["nextCursor"], str)
    assert ids_of(reply.body["data"]["events"]) == ["e2"]


@pytest.mark.parametrize(
    ("precision", "offset", "expected"),
    [
        ("ms", 0, "2026-05-10T12:00:00.123Z"),
        ("s", 0, "2026-05-10T12:00:00Z"),
        ("ms", 120, "2026-05-10T14:00:00.123+02:00"),
        ("s", -90, "2026-05-10T10:30:00-01:30"),
        ("ms", 345, "2026-05-10T17:45:00.123+05:45"),
    ],
)
async def test_time_rendering(
    make_api: MakeApi, precision: str, offset: int, expected: Any
) -> None:
    api = await make_api(
        FakeClock(START + FRACTION), precision=precision, utc_offset_minutes=offset
    )
    stored = api.simulator.inject([{"id": "e1"}])

    reply = await api.page()

    assert reply.body["data"]["events"][0]["createdAt"] == expected
    assert stored[0]["createdAt"] == expected


@pytest.mark.parametrize("time_field", ["createdAt", "occurredAt"])
async def test_time_field_name(make_api: MakeApi, time_field: str) -> None:
    api = await make_api(FakeClock(START + FRACTION), time_field=time_field)
    api.simulator.inject([{"id": "e1"}])

    event = (await api.page()).body["data"]["events"][0]

    other = "occurredAt" if time_field == "createdAt" else "createdAt"
    assert event[time_field] == "2026-05-10T12:00:00.123Z"
    assert other not in event
    assert list(event)[-1] == time_field


async def test_injected_time_kept_verbatim(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, precision="ms")
    api.simulator.inject(
        [
            {"id": "offset", "createdAt": "2026-05-10T13:00:01+02:00"},
            {"id": "micro", "occurredAt": "2026-05-10T11:00:02.123456Z"},
        ]
    )

    events = (await api.page({"limit": "10"})).body["data"]["events"]

    # 13:00:01+02:00 is 11:00:01Z, older than 11:00:02Z, so newest first it comes last.
    assert ids_of(events) == ["micro", "offset"]
    assert events[0]["createdAt"] == "2026-05-10T11:00:02.123456Z"
    assert events[1]["createdAt"] == "2026-05-10T13:00:01+02:00"


async def test_newest_first_breaks_ties_by_descending_id(
    make_api: MakeApi, clock: FakeClock
) -> None:
    api = await make_api(clock)
    api.simulator.inject([{"id": "b"}, {"id": "c"}, {"id": "a"}])
    api.simulator.inject([{"id": "older", "createdAt": at("11:59:59.000")}])

    events = (await api.page()).body["data"]["events"]

    assert ids_of(events) == ["c", "b", "a", "older"]


async def test_oldest_first_breaks_ties_by_ascending_id(
    make_api: MakeApi, clock: FakeClock
) -> None:
    api = await make_api(clock, order="oldest")
    api.simulator.inject([{"id": "b"}, {"id": "c"}, {"id": "a"}])
    api.simulator.inject([{"id": "older", "createdAt": at("11:59:59.000")}])

    events = (await api.page()).body["data"]["events"]

    assert ids_of(events) == ["older", "a", "b", "c"]


@pytest.mark.parametrize(("precision", "expected"), [("ms", ["z", "a"]), ("s", ["a", "z"])])
async def test_order_follows_rendered_precision(
    make_api: MakeApi, precision: str, expected: Any
) -> None:
    # Both events fall in one second: with whole seconds they tie and sort by id.
    clock = FakeClock(START + 0.100)
    api = await make_api(clock, precision=precision, order="oldest")
    api.simulator.inject([{"id": "z"}])
    clock.advance(0.8)
    api.simulator.inject([{"id": "a"}])

    events = (await api.page()).body["data"]["events"]

    assert ids_of(events) == expected
    assert ids_of(api.simulator.events()) == expected


async def test_precision_change_reorders_rows(make_api: MakeApi) -> None:
    clock = FakeClock(START + 0.100)
    api = await make_api(clock, order="oldest")
    api.simulator.inject([{"id": "z"}])
    clock.advance(0.8)
    api.simulator.inject([{"id": "a"}])

    api.simulator.update(precision="s")
    events = (await api.page()).body["data"]["events"]

    assert ids_of(events) == ["a", "z"]
    assert events[0]["createdAt"] == "2026-05-10T12:00:00Z"


async def test_date_header_follows_clock(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, clock_offset=3600.0)

    reply = await api.page()
    control = await api.get("/_control/stats")

    expected = email.utils.formatdate(START + 3600.0, usegmt=True)
    assert reply.headers["Date"] == expected
    assert control.headers["Date"] == expected


async def test_clock_offset_moves_event_times(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, clock_offset=-7200.0)
    api.simulator.inject([{"id": "e1"}])

    event = (await api.page()).body["data"]["events"][0]

    assert event["createdAt"] == "2026-05-10T10:00:00.000Z"
