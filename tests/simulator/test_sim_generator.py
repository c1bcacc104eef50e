"""Generated and injected events: realism, links, reproducibility, sparse and extra fields."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sim_support import START, FakeClock, MakeApi, StartSimulator

from tailer.simulator import ApiKey, SimulatorConfig
from tailer.simulator.catalogue import EVENT_TYPES, FIELDS, severity_of, status_of
from tailer.simulator.engine import Engine
from tailer.timeparse import NS_PER_SECOND, parse_time

# The link field that names the resource itself, by resource type.
SELF_LINK = {
    "agent": None,
    "tool": "toolSlug",
    "sandbox": "sandboxId",
    "thread": "threadId",
    "code_execution": "codeExecutionId",
    "workspace": "workspaceId",
    "installable_agent_install": "installableAgentInstallId",
    "runmesh_device": "runmeshNodeId",
}
# Links that are always null for a resource type.
NULL_LINKS = {
    "agent": ("toolSlug", "installableAgentInstallId", "runmeshNodeId", "codeExecutionId"),
    "tool": ("sandboxId", "installableAgentInstallId", "runmeshNodeId", "codeExecutionId"),
    "sandbox": ("threadId", "agentRunId", "toolSlug", "runmeshNodeId", "codeExecutionId"),
    "thread": ("sandboxId", "toolSlug", "installableAgentInstallId", "codeExecutionId"),
    "code_execution": ("toolSlug", "installableAgentInstallId", "runmeshNodeId"),
    "workspace": ("threadId", "agentRunId", "sandboxId", "toolSlug", "codeExecutionId"),
    "installable_agent_install": ("threadId", "sandboxId", "toolSlug", "runmeshNodeId"),
    "runmesh_device": ("threadId", "agentRunId", "sandboxId", "toolSlug", "codeExecutionId"),
}


def _without_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {name: value for name, value in event.items() if name != "createdAt"} for event in events
    ]


@pytest.fixture
async def backlog(start_simulator: StartSimulator) -> list[dict[str, Any]]:
    simulator = await start_simulator(FakeClock(), backlog=600, seed=4)
    return simulator.events()


async def test_events_have_every_field(backlog: list[dict[str, Any]]) -> None:
    for event in backlog:
        assert list(event) == [*FIELDS, "createdAt"]
        assert uuid.UUID(event["id"]).version == 4


async def test_event_types_match_resource_types(backlog: list[dict[str, Any]]) -> None:
    resource_types = {event["resourceType"] for event in backlog}

    assert resource_types == set(EVENT_TYPES)
    for event in backlog:
        allowed = [name for name, _ in EVENT_TYPES[event["resourceType"]]]
        assert event["eventType"] in allowed


async def test_severity_and_status_follow_type(backlog: list[dict[str, Any]]) -> None:
    for event in backlog:
        assert event["severity"] == severity_of(event["eventType"])
        assert event["status"] == status_of(event["eventType"])

    assert {event["severity"] for event in backlog} == {"info", "warning", "error", "success"}


def test_severity_rules() -> None:
    assert severity_of("agent.run.failed") == "error"
    assert severity_of("code_execution.completed") == "success"
    assert severity_of("runmesh_device.disconnected") == "warning"
    assert severity_of("workspace.member.added") == "info"
    assert status_of("workspace.member.added") == "added"


async def test_links_follow_resource_type(backlog: list[dict[str, Any]]) -> None:
    for event in backlog:
        resource_type = event["resourceType"]
        link = SELF_LINK[resource_type]
        if link is not None:
            assert event[link] == event["resourceId"]
        for name in NULL_LINKS[resource_type]:
            assert event[name] is None, (resource_type, name)
        assert event["workspaceId"] is not None
        assert event["title"]
        assert event["summary"].endswith(".")


async def test_attributes_carry_type_details(backlog: list[dict[str, Any]]) -> None:
    for event in backlog:
        attributes = event["attributes"]
        if event["resourceType"] == "code_execution":
            assert sorted(attributes) == ["duration_ms", "exit_code", "language"]
            assert (attributes["exit_code"] == 0) == (event["status"] == "completed")
        if event["eventType"] == "agent.run.completed":
            assert sorted(attributes) == ["agent", "duration_ms", "model", "tokens"]


async def test_org_has_several_users(backlog: list[dict[str, Any]]) -> None:
    users = {event["actorUserId"] for event in backlog if event["actorUserId"] is not None}

    assert len(users) == 4
    assert "0b6c1f7e-3d2a-4c55-9e1b-7a4f2d8c6e10" in users
    assert len({event["orgId"] for event in backlog}) == 1


async def test_member_key_user_acts(start_simulator: StartSimulator) -> None:
    member_id = "6a1d4b2e-8f3c-4e9a-b7d5-2c0f9e8a1b34"
    keys = [ApiKey(key="rt_test_simulator"), ApiKey(key="rt_m", user_id=member_id, admin=False)]
    simulator = await start_simulator(backlog=200, keys=keys)

    actors = {event["actorUserId"] for event in simulator.events()}

    assert member_id in actors


async def test_same_seed_same_events(start_simulator: StartSimulator) -> None:
    first = await start_simulator(backlog=300, seed=21)
    second = await start_simulator(backlog=300, seed=21)

    assert _without_time(first.events()) == _without_time(second.events())


async def test_same_seed_and_clock_same_times(start_simulator: StartSimulator) -> None:
    first = await start_simulator(FakeClock(), backlog=100, seed=21)
    second = await start_simulator(FakeClock(), backlog=100, seed=21)

    assert first.events() == second.events()


async def test_other_seed_other_events(start_simulator: StartSimulator) -> None:
    first = await start_simulator(backlog=50, seed=21)
    second = await start_simulator(backlog=50, seed=22)

    assert not {event["id"] for event in first.events()} & {
        event["id"] for event in second.events()
    }


async def test_backlog_spread_over_span(start_simulator: StartSimulator, clock: FakeClock) -> None:
    simulator = await start_simulator(clock, backlog=500, backlog_span=600.0)

    times = [parse_time(event["createdAt"]) for event in simulator.events()]

    assert len(times) == 500
    assert min(times) >= (START - 600) * NS_PER_SECOND
    assert max(times) <= START * NS_PER_SECOND
    assert max(times) - min(times) > 500 * NS_PER_SECOND


async def test_sparse_events_keep_id_and_time(
    start_simulator: StartSimulator, clock: FakeClock
) -> None:
    plain = await start_simulator(clock, backlog=400, seed=8)
    sparse = await start_simulator(clock, backlog=400, seed=8, sparse_fraction=0.5)

    plain_events = plain.events()
    sparse_events = sparse.events()
    changed = [
        (before, after)
        for before, after in zip(plain_events, sparse_events, strict=True)
        if before != after
    ]

    assert [event["id"] for event in plain_events] == [event["id"] for event in sparse_events]
    assert 150 < len(changed) < 250
    for before, after in changed:
        assert after["id"] == before["id"]
        assert after["createdAt"] == before["createdAt"]
        for name, value in after.items():
            assert value is None or value == before[name]
        assert set(after) <= set(before)


async def test_extra_fields_add_region(start_simulator: StartSimulator, clock: FakeClock) -> None:
    plain = await start_simulator(clock, backlog=100, seed=8)
    extra = await start_simulator(clock, backlog=100, seed=8, extra_fields=True)

    regions = {event["region"] for event in extra.events()}

    assert regions == {"eu-west-1", "us-east-1", "ap-southeast-2"}
    assert _without_time(plain.events()) == [
        {name: value for name, value in event.items() if name not in ("region", "createdAt")}
        for event in extra.events()
    ]


async def test_extra_field_served(make_api: MakeApi) -> None:
    api = await make_api(backlog=3, extra_fields=True)

    events = (await api.page()).body["data"]["events"]

    assert all("region" in event for event in events)


async def test_inject_fills_missing_fields(
    start_simulator: StartSimulator, clock: FakeClock
) -> None:
    simulator = await start_simulator(clock)

    (event,) = simulator.inject([{"eventType": "tool.call.failed"}])

    assert uuid.UUID(event["id"]).version == 4
    assert event["createdAt"] == "2026-05-10T12:00:00.000Z"
    assert event["resourceType"] == "tool"
    assert event["severity"] == "error"
    assert event["status"] == "failed"
    assert event["toolSlug"] == event["resourceId"]


async def test_inject_keeps_given_fields(start_simulator: StartSimulator, clock: FakeClock) -> None:
    simulator = await start_simulator(clock)

    (event,) = simulator.inject(
        [{"id": "e1", "eventType": "custom.thing.happened", "title": None, "colour": "blue"}]
    )

    assert event["id"] == "e1"
    assert event["eventType"] == "custom.thing.happened"
    assert event["status"] == "happened"
    assert event["severity"] == "info"
    assert event["title"] is None
    assert event["colour"] == "blue"
    assert simulator.events() == [event]


def test_inject_leaves_generated_stream(clock: FakeClock) -> None:
    injected = Engine(SimulatorConfig(seed=3), clock)
    untouched = Engine(SimulatorConfig(seed=3), clock)
    time_ns = round(START * NS_PER_SECOND)

    injected.inject([{"id": "i1"}, {"id": "i2"}], visible_after=0.0)
    injected.store_generated(time_ns, time_ns)
    untouched.store_generated(time_ns, time_ns)

    generated = injected.events(None, None, visible_only=True)
    expected = untouched.events(None, None, visible_only=True)

    assert [event for event in generated if event["id"] not in ("i1", "i2")] == expected
    assert len(expected) == 1
