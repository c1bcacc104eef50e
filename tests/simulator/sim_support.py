"""Helpers of the simulator tests: a fake clock and a small API client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tailer.simulator import Simulator
from tailer.timeparse import NS_PER_SECOND, parse_time

ADMIN_KEY = "rt_test_simulator"
START = parse_time("2026-05-10T12:00:00Z") / NS_PER_SECOND  # epoch seconds of the fake clock


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any  # parsed JSON, or the text when the body is not JSON


class Api:
    """Requests to one simulator with one key, returning parsed replies."""

    def __init__(self, session: aiohttp.ClientSession, simulator: Simulator) -> None:
        self.session = session
        self.simulator = simulator

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        key: str | None = ADMIN_KEY,
        json: Any = None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        data = orjson.dumps(json) if json is not None else None
        async with self.session.request(
            method, self.simulator.url + path, params=params, headers=headers, data=data
        ) as response:
            text = await response.text()
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError:
                body = text
            return Reply(response.status, response.headers, body)

    async def get(self, path: str, params: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        return await self.request("GET", path, params, **kwargs)

    async def page(self, params: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        reply = await self.get("/v1/activity", params, **kwargs)
        assert reply.status == 200, reply.body
        return reply

    async def walk(
        self, path: str = "/v1/activity", params: dict[str, str] | None = None, **kwargs: Any
    ) -> list[str]:
        """Follow nextCursor from the first page to the last, and return every id in order."""
        ids: list[str] = []
        cursor = None
        while True:
            query = dict(params or {})
            if cursor is not None:
                query["cursor"] = cursor
            reply = await self.get(path, query, **kwargs)
            assert reply.status == 200, reply.body
            ids.extend(event["id"] for event in reply.body["data"]["events"])
            cursor = reply.body["nextCursor"]
            if cursor is None:
                return ids


def ids_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


def at(time_of_day: str) -> str:
    """Return the ISO time of `time_of_day` (HH:MM:SS with an optional fraction) on the
    day of the fake clock, in UTC."""
    return f"2026-05-10T{time_of_day}Z"


MakeApi = Callable[..., Awaitable[Api]]
StartSimulator = Callable[..., Awaitable[Simulator]]
