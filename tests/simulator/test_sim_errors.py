"""Rejected requests: 400 bodies for bad parameters, 401 for keys, 403 and member visibility."""

from __future__ import annotations

import aiohttp
import pytest
from sim_support import MakeApi

from tailer.simulator import ApiKey

MEMBER_KEY = "rt_test_member"
MEMBER_ID = "6a1d4b2e-8f3c-4e9a-b7d5-2c0f9e8a1b34"
OTHER_ID = "0b6c1f7e-3d2a-4c55-9e1b-7a4f2d8c6e10"  # the default admin key's user
KEYS = [
    ApiKey(key="rt_test_simulator", user_id=OTHER_ID),
    ApiKey(key=MEMBER_KEY, user_id=MEMBER_ID, admin=False),
]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"resource_type": "robot"}, "resource_type"),
        ({"severity": "critical"}, "severity"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "-3"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
    ],
)
async def test_invalid_parameter_rejected(
    make_api: MakeApi, params: dict[str, str], param: str
) -> None:
    api = await make_api(backlog=5)

    reply = await api.get("/v1/activity", params)

    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert sorted(reply.body) == ["error"]
    assert reply.body["error"]["code"] == "invalid_parameter"
    assert reply.body["error"]["param"] == param
    (value,) = params.values()
    assert value in reply.body["error"]["message"]


async def test_enum_error_lists_allowed_values(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/v1/activity", {"severity": "critical"})

    assert reply.body["error"]["message"] == (
        "Invalid severity 'critical': expected one of info, warning, error, success."
    )


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_limit_bounds_accepted(make_api: MakeApi, limit: str) -> None:
    api = await make_api(backlog=600)

    reply = await api.page({"limit": limit})

    assert len(reply.body["data"]["events"]) == int(limit)


async def test_missing_key_unauthorized(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/v1/activity", key=None)

    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.body["error"]["code"] == "unauthorized"
    assert reply.body["error"]["message"].startswith("Missing API key.")


async def test_wrong_key_unauthorized(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/v1/activity", key="rt_test_wrong")

    assert reply.status == 401
    assert reply.body == {
        "error": {"code": "unauthorized", "message": "Invalid API key.", "param": None}
    }


async def test_x_api_key_header_accepted(make_api: MakeApi, session: aiohttp.ClientSession) -> None:
    api = await make_api(backlog=3)

    async with session.get(
        api.simulator.url + "/v1/activity", headers={"X-API-Key": "rt_test_simulator"}
    ) as response:
        body = await response.json()

    assert response.status == 200
    assert len(body["data"]["events"]) == 3


async def test_lowercase_bearer_accepted(make_api: MakeApi, session: aiohttp.ClientSession) -> None:
    api = await make_api()

    async with session.get(
        api.simulator.url + "/v1/activity", headers={"Authorization": "bearer rt_test_simulator"}
    ) as response:
        await response.read()

    assert response.status == 200


async def test_member_sees_only_own_events(make_api: MakeApi) -> None:
    api = await make_api(backlog=200, keys=KEYS)
    truth = api.simulator.events()
    expected = [event["id"] for event in reversed(truth) if event["actorUserId"] == MEMBER_ID]

    ids = await api.walk(params={"limit": "10"}, key=MEMBER_KEY)

    assert ids == expected
    assert 0 < len(ids) < len(truth)


async def test_member_may_filter_on_self(make_api: MakeApi) -> None:
    api = await make_api(backlog=200, keys=KEYS)
    truth = api.simulator.events()
    expected = [event["id"] for event in reversed(truth) if event["actorUserId"] == MEMBER_ID]

    ids = await api.walk(params={"actor_user_id": MEMBER_ID}, key=MEMBER_KEY)

    assert ids == expected


async def test_member_filter_on_other_user_forbidden(make_api: MakeApi) -> None:
    api = await make_api(backlog=20, keys=KEYS)

    reply = await api.get("/v1/activity", {"actor_user_id": OTHER_ID}, key=MEMBER_KEY)

    assert reply.status == 403
    assert reply.body["error"]["code"] == "forbidden"
    assert reply.body["error"]["param"] == "actor_user_id"


async def test_admin_may_filter_on_other_user(make_api: MakeApi) -> None:
    api = await make_api(backlog=200, keys=KEYS)
    truth = api.simulator.events()
    expected = [event["id"] for event in reversed(truth) if event["actorUserId"] == MEMBER_ID]

    ids = await api.walk(params={"actor_user_id": MEMBER_ID})

    assert ids == expected


async def test_member_cursor_rejected_for_admin(make_api: MakeApi) -> None:
    api = await make_api(backlog=200, keys=KEYS)
    first = await api.page({"limit": "1"}, key=MEMBER_KEY)

    reply = await api.get("/v1/activity", {"cursor": first.body["nextCursor"]})

    assert reply.status == 400
    assert reply.body["error"]["code"] == "cursor_mismatch"


async def test_unknown_path_not_found(make_api: MakeApi) -> None:
    api = await make_api()

    reply = await api.get("/v1/activities")

    assert reply.status == 404
