"""Query filters of `GET /v1/activity`, the time window and the scoped feeds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sim_support import FakeClock, MakeApi, at, ids_of

from tailer.simulator.store import FILTER_FIELDS


def _most_common_value(events: list[dict[str, Any]], field: str) -> Any:
    values = Counter(event.get(field) for event in events if event.get(field) is not None)
    return values.most_common(1)[0][0]


@pytest.mark.parametrize(("param", "field"), FILTER_FIELDS)
async def test_filter_matches_field(make_api: MakeApi, param: str, field: str) -> None:
    api = await make_api(backlog=300, seed=3)
    truth = api.simulator.events()
    value = _most_common_value(truth, field)
    expected = [event["id"] for event in reversed(truth) if event.get(field) == value]

    ids = await api.walk(params={param: value, "limit": "40"})

    assert ids == expected
    assert len(ids) >= 1


async def test_filters_combine(make_api: MakeApi) -> None:
    api = await make_api(backlog=300, seed=3)
    truth = api.simulator.events()
    expected = [
        event["id"]
        for event in reversed(truth)
        if event["resourceType"] == "agent" and event["severity"] == "error"
    ]

    ids = await api.walk(params={"resource_type": "agent", "severity": "error"})

    assert ids == expected
    assert len(expected) >= 1


async def test_filter_without_match_is_empty(make_api: MakeApi) -> None:
    api = await make_api(backlog=50)

    reply = await api.page({"thread_id": "thr_does_not_exist"})

    assert reply.body["data"]["events"] == []
    assert reply.body["hasMore"] is False
    assert reply.body["nextCursor"] is None


async def test_since_and_until_are_inclusive(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    api.simulator.inject(
        [{"id": f"e{second}", "createdAt": at(f"11:00:0{second}.000")} for second in range(1, 6)]
    )

    reply = await api.page({"since": at("11:00:02.000"), "until": at("11:00:04")})

    assert ids_of(reply.body["data"]["events"]) == ["e4", "e3", "e2"]


async def test_since_accepts_numeric_offset(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    api.simulator.inject(
        [{"id": f"e{second}", "createdAt": at(f"11:00:0{second}")} for second in range(1, 4)]
    )

    reply = await api.page({"since": "2026-05-10T13:00:02+02:00"})

    assert ids_of(reply.body["data"]["events"]) == ["e3", "e2"]


async def test_unknown_parameters_ignored(make_api: MakeApi) -> None:
    api = await make_api(backlog=20)

    reply = await api.page({"colour": "blue", "limit": "5"})

    assert ids_of(reply.body["data"]["events"]) == ids_of(api.simulator.events())[::-1][:5]


async def test_empty_parameter_counts_as_absent(make_api: MakeApi) -> None:
    api = await make_api(backlog=20)

    reply = await api.page({"thread_id": "", "since": "", "limit": "5"})

    assert len(reply.body["data"]["events"]) == 5


async def test_default_limit_applies(make_api: MakeApi) -> None:
    api = await make_api(backlog=30, default_limit=7)

    reply = await api.page()

    assert len(reply.body["data"]["events"]) == 7
    assert reply.body["hasMore"] is True


async def test_thread_feed_scoped_to_thread(make_api: MakeApi) -> None:
    api = await make_api(backlog=300, seed=5)
    truth = api.simulator.events()
    thread_id = _most_common_value(truth, "threadId")
    expected = [event["id"] for event in reversed(truth) if event.get("threadId") == thread_id]

    ids = await api.walk(f"/v1/threads/{thread_id}/activity", {"limit": "7"})

    assert ids == expected


async def test_sandbox_feed_scoped_to_sandbox(make_api: MakeApi) -> None:
    api = await make_api(backlog=300, seed=5)
    truth = api.simulator.events()
    sandbox_id = _most_common_value(truth, "sandboxId")
    expected = [event["id"] for event in reversed(truth) if event.get("sandboxId") == sandbox_id]

    ids = await api.walk(f"/v1/sandboxes/{sandbox_id}/activity", {"limit": "7"})

    assert ids == expected


async def test_scoped_feed_ignores_other_filters(make_api: MakeApi) -> None:
    api = await make_api(backlog=300, seed=5)
    truth = api.simulator.events()
    thread_id = _most_common_value(truth, "threadId")
    expected = [event["id"] for event in reversed(truth) if event.get("threadId") == thread_id]

    ids = await api.walk(
        f"/v1/threads/{thread_id}/activity", {"severity": "error", "since": "not a time"}
    )

    assert ids == expected


async def test_scoped_cursor_rejected_on_main_feed(make_api: MakeApi) -> None:
    api = await make_api(backlog=300, seed=5)
    thread_id = _most_common_value(api.simulator.events(), "threadId")
    first = await api.get(f"/v1/threads/{thread_id}/activity", {"limit": "1"})

    reply = await api.get(
        "/v1/activity", {"thread_id": thread_id, "cursor": first.body["nextCursor"]}
    )

    assert reply.status == 400
    assert reply.body["error"]["code"] == "cursor_mismatch"
