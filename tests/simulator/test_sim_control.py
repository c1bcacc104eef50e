"""Control endpoints, runtime updates, statistics and the lifecycle of a Simulator."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sim_support import FakeClock, MakeApi, StartSimulator, at, ids_of

from tailer.errors import ConfigError
from tailer.simulator import ApiKey, FaultRates, Simulator, SimulatorConfig

MEMBER = ApiKey(key="rt_test_member", user_id="6a1d4b2e-8f3c-4e9a-b7d5-2c0f9e8a1b34", admin=False)


async def test_post_events_stores_and_renders(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)

    reply = await api.request(
        "POST",
        "/_control/events",
        json=[{"id": "e1", "eventType": "tool.call.failed"}, {"createdAt": "2026-05-10T11:00:00"}],
    )
    page = await api.page()

    assert reply.status == 201
    assert reply.body[0]["id"] == "e1"
    assert reply.body[0]["createdAt"] == "2026-05-10T12:00:00.000Z"
    assert reply.body[1]["createdAt"] == "2026-05-10T11:00:00"
    assert page.body["data"]["events"] == reply.body


async def test_post_events_visible_after(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)

    await api.request("POST", "/_control/events", {"visible_after": "30"}, json=[{"id": "late"}])
    hidden = await api.page()
    clock.advance(30)
    shown = await api.page()

    assert ids_of(hidden.body["data"]["events"]) == []
    assert ids_of(shown.body["data"]["events"]) == ["late"]


@pytest.mark.parametrize(
    ("body", "params", "code", "message"),
    [
        ({"id": "e1"}, None, "invalid_body", "The body must be a JSON array of event objects."),
        (["e1"], None, "invalid_event", "event 0 is a str, not an object."),
        (
            [{"id": "e1"}, {"createdAt": "soon"}],
            None,
            "invalid_event",
            "event 1: invalid time 'soon': expected ISO 8601 such as 2026-05-10T12:00:00Z.",
        ),
        (
            [{"id": "e1", "createdAt": at("11:00:00"), "occurredAt": at("11:00:00")}],
            None,
            "invalid_event",
            "event 0 has both createdAt and occurredAt. Give only one.",
        ),
        ([{"id": 7}], None, "invalid_event", "event 0: id must be a non-empty string."),
        (
            [{"id": "e1"}],
            {"visible_after": "-1"},
            "invalid_parameter",
            "Invalid visible_after '-1': expected seconds, 0 or more.",
        ),
    ],
)
async def test_post_events_rejected(
    make_api: MakeApi, body: Any, params: dict[str, str] | None, code: str, message: str
) -> None:
    api = await make_api()

    reply = await api.request("POST", "/_control/events", params, json=body)

    assert reply.status == 400
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["message"] == message
    assert api.simulator.statistics()["events_stored"] == 0


async def test_post_duplicate_id_stores_nothing(make_api: MakeApi) -> None:
    api = await make_api()
    api.simulator.inject([{"id": "e1"}])

    reply = await api.request("POST", "/_control/events", json=[{"id": "e2"}, {"id": "e1"}])

    assert reply.status == 400
    assert reply.body["error"]["message"] == "event 1: an event with id 'e1' is already stored."
    assert ids_of(api.simulator.events()) == ["e1"]


async def test_get_events_half_open_window(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, order="newest")
    api.simulator.inject(
        [{"id": f"e{second}", "createdAt": at(f"11:00:0{second}")} for second in range(1, 6)]
    )

    reply = await api.get("/_control/events", {"since": at("11:00:02"), "until": at("11:00:04")})
    everything = await api.get("/_control/events")

    assert ids_of(reply.body) == ["e2", "e3"]
    assert ids_of(everything.body) == ["e1", "e2", "e3", "e4", "e5"]


async def test_get_events_includes_invisible_on_request(
    make_api: MakeApi, clock: FakeClock
) -> None:
    api = await make_api(clock)
    api.simulator.inject([{"id": "now"}])
    api.simulator.inject([{"id": "late"}], visible_after=5)

    visible = await api.get("/_control/events")
    stored = await api.get("/_control/events", {"visible_only": "false"})

    assert ids_of(visible.body) == ["now"]
    assert sorted(ids_of(stored.body)) == ["late", "now"]


async def test_get_events_invalid_since(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/_control/events", {"since": "last week"})

    assert reply.status == 400
    assert reply.body["error"]["param"] == "since"


async def test_patch_behaviour_applies(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock)
    api.simulator.inject([{"id": "a"}, {"id": "b"}])

    reply = await api.request("PATCH", "/_control/behaviour", json={"order": "oldest"})
    page = await api.page()

    assert reply.status == 200
    assert reply.body["order"] == "oldest"
    assert ids_of(page.body["data"]["events"]) == ["a", "b"]
    assert api.simulator.config.order == "oldest"


async def test_patch_faults_merged(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultRates(server_error=0.25, slow_seconds=0.5))

    reply = await api.request(
        "PATCH", "/_control/behaviour", json={"faults": {"rate_limited": 0.5}}
    )

    assert reply.status == 200
    assert api.simulator.config.faults == FaultRates(
        rate_limited=0.5, server_error=0.25, slow_seconds=0.5
    )


async def test_patch_lists_every_invalid_field(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.request(
        "PATCH",
        "/_control/behaviour",
        json={"rate": -1, "order": "sideways", "colour": "blue", "port": 9999},
    )

    assert reply.status == 400
    error = reply.body["error"]
    assert error["code"] == "invalid_behaviour"
    assert [item["param"] for item in error["errors"]] == ["port", "rate", "order", "colour"]
    assert error["param"] == "port, rate, order, colour"
    assert api.simulator.config.order == "newest"


async def test_patch_rejects_fault_sum(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.request(
        "PATCH", "/_control/behaviour", json={"faults": {"dropped": 0.6, "truncated": 0.6}}
    )

    assert reply.status == 400
    assert [item["param"] for item in reply.body["error"]["errors"]] == ["faults"]


async def test_behaviour_masks_keys(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/_control/behaviour")

    assert reply.body["keys"] == [
        {
            "key": "**********",
            "user_id": "0b6c1f7e-3d2a-4c55-9e1b-7a4f2d8c6e10",
            "admin": True,
        }
    ]
    assert "rt_test_simulator" not in str(reply.body)


async def test_stats_endpoint_counts(make_api: MakeApi) -> None:
    api = await make_api(backlog=4)
    await api.get("/v1/activity")
    await api.get("/v1/activity", {"limit": "0"})

    reply = await api.get("/_control/stats")

    assert reply.body == {
        "control_requests": 1,
        "events_stored": 4,
        "events_visible": 4,
        "faults_dropped": 0,
        "faults_rate_limited": 0,
        "faults_server_error": 0,
        "faults_slow": 0,
        "faults_truncated": 0,
        "requests": 2,
        "status_200": 1,
        "status_400": 1,
    }


async def test_control_needs_admin_key(make_api: MakeApi) -> None:
    api = await make_api(keys=[ApiKey(key="rt_test_simulator"), MEMBER])

    member = await api.get("/_control/stats", key="rt_test_member")
    anonymous = await api.get("/_control/stats", key=None)

    assert member.status == 403
    assert member.body["error"]["code"] == "forbidden"
    assert anonymous.status == 401


async def test_update_rejects_startup_fields(make_api: MakeApi) -> None:
    api = await make_api()

    with pytest.raises(ConfigError) as caught:
        api.simulator.update(seed=2, backlog=10, rate=-1.0)

    assert caught.value.problems == [
        "backlog: cannot change while the simulator runs, because it acts only at start",
        "seed: cannot change while the simulator runs, because it acts only at start",
        "rate: Input should be greater than or equal to 0 (got -1.0)",
    ]
    assert api.simulator.config.seed == 1


async def test_update_before_start_sets_startup_fields() -> None:
    simulator = Simulator(SimulatorConfig())

    simulator.update(port=8123, backlog=3)

    assert simulator.config.port == 8123
    assert simulator.config.backlog == 3


async def test_update_keys_at_runtime(make_api: MakeApi) -> None:
    api = await make_api()

    api.simulator.update(keys=[ApiKey(key="rt_test_rotated")])
    old = await api.get("/v1/activity")
    new = await api.get("/v1/activity", key="rt_test_rotated")

    assert old.status == 401
    assert new.status == 200


async def test_start_twice_raises(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()

    with pytest.raises(RuntimeError, match="it is running"):
        await simulator.start()


async def test_stop_twice_harmless() -> None:
    simulator = Simulator(SimulatorConfig())
    await simulator.start()

    await simulator.stop()
    await simulator.stop()

    with pytest.raises(RuntimeError, match="it is stopped"):
        await simulator.start()


async def test_url_before_start_raises() -> None:
    simulator = Simulator(SimulatorConfig())

    with pytest.raises(RuntimeError, match="before start"):
        _ = simulator.url

    await simulator.stop()


async def test_context_manager_serves(session: aiohttp.ClientSession) -> None:
    async with Simulator(SimulatorConfig(backlog=2)) as simulator:
        headers = {"X-API-Key": "rt_test_simulator"}
        async with session.get(simulator.url + "/v1/activity", headers=headers) as response:
            body = await response.json()

    assert simulator.url.startswith("http://127.0.0.1:")
    assert len(body["data"]["events"]) == 2


async def test_port_in_use_raises(start_simulator: StartSimulator) -> None:
    first = await start_simulator()
    port = int(first.url.rsplit(":", 1)[1])

    with pytest.raises(OSError, match="address already in use"):
        await start_simulator(port=port)
