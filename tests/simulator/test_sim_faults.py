"""Injected faults as a client observes them, and their counters."""

from __future__ import annotations

import asyncio
import email.utils
import time

import aiohttp
import pytest
from sim_support import START, Api, FakeClock, MakeApi

from tailer.simulator import FaultRates


async def _statuses(api: Api, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        reply = await api.get("/v1/activity")
        statuses.append(reply.status)
    return statuses


async def test_rate_limited_forms(make_api: MakeApi, clock: FakeClock) -> None:
    api = await make_api(clock, faults=FaultRates(rate_limited=1.0))

    forms = set()
    for _ in range(40):
        reply = await api.get("/v1/activity")
        assert reply.status == 429
        assert reply.body["error"]["code"] == "rate_limited"
        retry_after = reply.headers.get("Retry-After")
        if retry_after is None:
            forms.add("absent")
        elif retry_after.isdigit():
            assert retry_after in ("1", "2")
            forms.add("seconds")
        else:
            retry_at = email.utils.parsedate_to_datetime(retry_after).timestamp()
            assert 1 <= retry_at - START <= 2
            forms.add("date")

    assert forms == {"absent", "seconds", "date"}
    statistics = api.simulator.statistics()
    assert statistics["faults_rate_limited"] == 40
    assert statistics["status_429"] == 40
    assert statistics["requests"] == 40


async def test_server_error_forms(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultRates(server_error=1.0))

    statuses = set()
    forms = set()
    for _ in range(40):
        reply = await api.get("/v1/activity")
        statuses.add(reply.status)
        if reply.headers["Content-Type"].startswith("text/html"):
            assert reply.body.startswith("<html>")
            assert f"<title>{reply.status} " in reply.body
            forms.add("html")
        else:
            assert reply.body["error"]["code"] in (
                "internal_error",
                "bad_gateway",
                "service_unavailable",
            )
            forms.add("json")

    assert statuses == {500, 502, 503}
    assert forms == {"html", "json"}
    assert api.simulator.statistics()["faults_server_error"] == 40


async def test_dropped_connection_raises(make_api: MakeApi, session: aiohttp.ClientSession) -> None:
    api = await make_api(faults=FaultRates(dropped=1.0))

    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.get(
            api.simulator.url + "/v1/activity",
            headers={"Authorization": "Bearer rt_test_simulator"},
        ) as response:
            await response.read()

    statistics = api.simulator.statistics()
    assert statistics["faults_dropped"] >= 1
    assert statistics["faults_dropped"] == statistics["requests"]
    assert not any(name.startswith("status_") for name in statistics)


async def test_truncated_body_raises(make_api: MakeApi, session: aiohttp.ClientSession) -> None:
    api = await make_api(backlog=20, faults=FaultRates(truncated=1.0))
    headers = {"Authorization": "Bearer rt_test_simulator"}

    async with session.get(api.simulator.url + "/v1/activity", headers=headers) as response:
        status = response.status
        content_length = response.content_length
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()

    assert status == 200
    assert content_length is not None
    assert content_length > 1000
    statistics = api.simulator.statistics()
    assert statistics["faults_truncated"] == 1
    assert statistics["status_200"] == 1


async def test_truncation_spares_errors(make_api: MakeApi) -> None:
    api = await make_api(faults=FaultRates(truncated=1.0))

    reply = await api.get("/v1/activity", key="rt_test_wrong")

    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"
    assert api.simulator.statistics()["faults_truncated"] == 0


async def test_slow_response_times_out(make_api: MakeApi, session: aiohttp.ClientSession) -> None:
    api = await make_api(faults=FaultRates(slow=1.0, slow_seconds=30.0))
    timeout = aiohttp.ClientTimeout(total=0.2)

    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            api.simulator.url + "/v1/activity",
            headers={"Authorization": "Bearer rt_test_simulator"},
            timeout=timeout,
        ) as response:
            await response.read()

    assert api.simulator.statistics()["faults_slow"] == 1


async def test_slow_response_arrives_late(make_api: MakeApi) -> None:
    api = await make_api(backlog=3, faults=FaultRates(slow=1.0, slow_seconds=0.2))

    started = time.monotonic()
    reply = await api.get("/v1/activity")
    elapsed = time.monotonic() - started

    assert reply.status == 200
    assert len(reply.body["data"]["events"]) == 3
    assert elapsed >= 0.2


async def test_control_endpoints_never_faulted(make_api: MakeApi) -> None:
    faults = FaultRates(rate_limited=1.0, slow=1.0, slow_seconds=30.0)
    api = await make_api(faults=faults)

    stats = await api.get("/_control/stats")
    injected = await api.request("POST", "/_control/events", json=[{"id": "e1"}])

    assert stats.status == 200
    assert injected.status == 201
    statistics = api.simulator.statistics()
    assert statistics["faults_rate_limited"] == 0
    assert statistics["faults_slow"] == 0
    assert statistics["control_requests"] == 2


async def test_same_seed_same_faults(make_api: MakeApi) -> None:
    faults = FaultRates(rate_limited=0.3, server_error=0.3)
    first = await make_api(seed=9, faults=faults)
    second = await make_api(seed=9, faults=faults)

    first_statuses = await _statuses(first, 30)
    second_statuses = await _statuses(second, 30)

    assert first_statuses == second_statuses
    assert {200, 429} <= set(first_statuses)


async def test_faults_changed_at_runtime(make_api: MakeApi) -> None:
    api = await make_api()

    api.simulator.update(faults=FaultRates(rate_limited=1.0))
    limited = await api.get("/v1/activity")
    api.simulator.update(faults=FaultRates())
    served = await api.get("/v1/activity")

    assert limited.status == 429
    assert served.status == 200
