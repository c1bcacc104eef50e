"""Handlers of the simulated API: `GET /v1/activity` and the thread and sandbox feeds.

Each request is authenticated, its parameters are validated in a fixed
order (the first invalid one is reported), and a page is read from the
store after the key in the cursor. Unknown query parameters are ignored, and
an empty value counts as an absent parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from tailer.simulator.catalogue import RESOURCE_TYPES, SEVERITIES
from tailer.simulator.config import ApiKey
from tailer.simulator.cursor import Cursor, CursorError, query_digest
from tailer.simulator.engine import ENGINE_KEY, Engine, RequestError
from tailer.simulator.render import NS_PER_MS, render_page
from tailer.simulator.store import FILTER_FIELDS, PageQuery
from tailer.timeparse import parse_time

__all__ = ["add_api_routes"]

MAX_LIMIT = 500
_ENUMS = {"resource_type": RESOURCE_TYPES, "severity": SEVERITIES}
_FILTER_INDEX = {param: index for index, (param, _) in enumerate(FILTER_FIELDS)}
_ACTOR_INDEX = _FILTER_INDEX["actor_user_id"]
_INTEGER = re.compile(r"-?[0-9]+")


def add_api_routes(app: web.Application) -> None:
    """Register the activity endpoints on `app`."""
    app.router.add_get("/v1/activity", list_activity)
    app.router.add_get("/v1/threads/{thread_id}/activity", list_thread_activity)
    app.router.add_get("/v1/sandboxes/{sandbox_id}/activity", list_sandbox_activity)


def _param(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if value else None


def _parse_limit(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not _INTEGER.fullmatch(text.strip()):
        raise RequestError(
            400,
            "invalid_parameter",
            f"Invalid limit {text!r}: expected an integer from 1 to {MAX_LIMIT}.",
            "limit",
        )
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(
            400,
            "invalid_parameter",
            f"Invalid limit {limit}: it must be from 1 to {MAX_LIMIT}.",
            "limit",
        )
    return limit


def _parse_bound(query: Mapping[str, str], name: str) -> int | None:
    text = _param(query, name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise RequestError(
            400,
            "invalid_parameter",
            f"Invalid {name} {text!r}: expected an ISO 8601 date-time such as "
            "2026-05-10T12:00:00Z.",
            name,
        ) from None


def _parse_filters(query: Mapping[str, str]) -> list[tuple[int, str]]:
    filters = []
    for param, _ in FILTER_FIELDS:
        value = _param(query, param)
        if value is None:
            continue
        allowed = _ENUMS.get(param)
        if allowed is not None and value not in allowed:
            raise RequestError(
                400,
                "invalid_parameter",
                f"Invalid {param} {value!r}: expected one of {', '.join(allowed)}.",
                param,
            )
        filters.append((_FILTER_INDEX[param], value))
    return filters


async def list_activity(request: web.Request) -> web.Response:
    """Serve `GET /v1/activity` with every documented filter."""
    engine = request.app[ENGINE_KEY]
    api_key = engine.authenticate(request.headers)
    query = request.query
    filters = _parse_filters(query)
    since_ns = _parse_bound(query, "since")
    until_ns = _parse_bound(query, "until")
    return _serve_page(engine, request, api_key, ["activity"], filters, since_ns, until_ns)


async def list_thread_activity(request: web.Request) -> web.Response:
    """Serve `GET /v1/threads/{thread_id}/activity`, which takes `limit` and `cursor` only."""
    engine = request.app[ENGINE_KEY]
    api_key = engine.authenticate(request.headers)
    thread_id = request.match_info["thread_id"]
    filters = [(_FILTER_INDEX["thread_id"], thread_id)]
    return _serve_page(engine, request, api_key, ["thread", thread_id], filters, None, None)


async def list_sandbox_activity(request: web.Request) -> web.Response:
    """Serve `GET /v1/sandboxes/{sandbox_id}/activity`, which takes `limit` and `cursor` only."""
    engine = request.app[ENGINE_KEY]
    api_key = engine.authenticate(request.headers)
    sandbox_id = request.match_info["sandbox_id"]
    filters = [(_FILTER_INDEX["sandbox_id"], sandbox_id)]
    return _serve_page(engine, request, api_key, ["sandbox", sandbox_id], filters, None, None)


def _serve_page(
    engine: Engine,
    request: web.Request,
    api_key: ApiKey,
    scope: list[str],
    filters: list[tuple[int, str]],
    since_ns: int | None,
    until_ns: int | None,
) -> web.Response:
    config = engine.config
    limit = _parse_limit(_param(request.query, "limit"), config.default_limit)

    # Members see only the events they caused.
    if not api_key.admin:
        for index, value in filters:
            if index == _ACTOR_INDEX and value != api_key.user_id:
                raise RequestError(
                    403,
                    "forbidden",
                    "Only organisation admins may read the activity of other users.",
                    "actor_user_id",
                )
        filters.append((_ACTOR_INDEX, api_key.user_id))

    now_ns = engine.now_ns()
    floor_ns = engine.retention_floor_ns(now_ns)
    if since_ns is not None and floor_ns is not None and since_ns < floor_ns:
        raise RequestError(
            400,
            "since_out_of_range",
            f"since is older than the retention window of {config.retention:g} s.",
            "since",
        )

    page_query = PageQuery(
        filters=tuple(sorted(set(filters))),
        since_ns=since_ns,
        until_ns=until_ns,
        newest_first=config.order == "newest",
    )
    digest = query_digest(
        [scope, page_query.filters, since_ns, until_ns, config.order, config.precision]
    )
    after = None
    cursor_text = _param(request.query, "cursor")
    if cursor_text is not None:
        try:
            cursor = engine.codec.check(
                cursor_text,
                digest=digest,
                now_ms=now_ns // NS_PER_MS,
                ttl_seconds=config.cursor_ttl,
            )
        except CursorError as exc:
            raise RequestError(400, exc.code, str(exc), "cursor") from None
        after = cursor.after

    rows, has_more = engine.store.page(
        page_query, after=after, limit=limit, now_ns=now_ns, floor_ns=floor_ns
    )
    next_cursor = None
    if has_more:
        last_order_ns, last_row = rows[-1]
        next_cursor = engine.codec.issue(
            Cursor(last_order_ns, last_row.id, digest, now_ns // NS_PER_MS)
        )

    rendering = engine.rendering()
    events = [rendering.event(row.body, order_ns, row.time_text) for order_ns, row in rows]
    body = render_page(rendering, events, has_more, next_cursor)
    return web.Response(body=body, content_type="application/json")
