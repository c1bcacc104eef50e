"""A scripted API server on 127.0.0.1 for poller cases the simulator cannot produce."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(
    events: list[dict[str, Any]],
    has_more: bool = False,
    next_cursor: str | None = None,
    *,
    server_time: float | None = None,
    status: int = 200,
) -> web.Response:
    """Build a reference-envelope response with a Date header."""
    headers = {"Date": formatdate(server_time, usegmt=True)} if server_time is not None else {}
    body = {"data": {"events": events}, "hasMore": has_more, "nextCursor": next_cursor}
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error(status: int, message: str, *, server_time: float | None = None) -> web.Response:
    headers = {"Date": formatdate(server_time, usegmt=True)} if server_time is not None else {}
    body = {"error": {"code": "invalid_parameter", "message": message}}
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


class ScriptedApi:
    """Serves GET /v1/activity from a test's handler and records every query."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        return await self.handler(request)

    async def __aenter__(self) -> ScriptedApi:
        app = web.Application()
        app.router.add_get("/v1/activity", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
