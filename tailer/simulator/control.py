"""Control endpoints under `/_control`: inject events, read the ground truth, change the behaviour.

They take the same keys as the API but only admin keys, and faults never
apply to them.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tailer.errors import ConfigError
from tailer.simulator.engine import ENGINE_KEY, Engine, RequestError
from tailer.timeparse import parse_time

__all__ = ["add_control_routes"]


def add_control_routes(app: web.Application) -> None:
    """Register the control endpoints on `app`."""
    app.router.add_post("/_control/events", inject_events)
    app.router.add_get("/_control/events", list_events)
    app.router.add_get("/_control/behaviour", show_behaviour)
    app.router.add_patch("/_control/behaviour", change_behaviour)
    app.router.add_get("/_control/stats", show_statistics)


def _json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def _authorise(request: web.Request) -> Engine:
    engine = request.app[ENGINE_KEY]
    if not engine.authenticate(request.headers).admin:
        raise RequestError(403, "forbidden", "The control endpoints need an admin key.")
    return engine


async def _read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_body", f"The body is not valid JSON: {exc}.") from None


def _parse_optional_time(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RequestError(400, "invalid_parameter", f"{exc}.", name) from None


async def inject_events(request: web.Request) -> web.Response:
    """Store a JSON array of partial events and return them as the API renders them.

    The query parameter `visible_after` delays their visibility by that many seconds.
    """
    engine = _authorise(request)
    visible_after_text = request.query.get("visible_after") or "0"
    try:
        visible_after = float(visible_after_text)
    except ValueError:
        visible_after = -1.0
    if not visible_after >= 0:
        raise RequestError(
            400,
            "invalid_parameter",
            f"Invalid visible_after {visible_after_text!r}: expected seconds, 0 or more.",
            "visible_after",
        )

    events = await _read_json(request)
    if not isinstance(events, list):
        raise RequestError(400, "invalid_body", "The body must be a JSON array of event objects.")
    try:
        stored = engine.inject(events, visible_after=visible_after)
    except ValueError as exc:
        raise RequestError(400, "invalid_event", f"{exc}.") from None
    return _json_response(stored, status=201)


async def list_events(request: web.Request) -> web.Response:
    """Return the stored events of [since, until) oldest first, visible ones unless
    `visible_only=false`."""
    engine = _authorise(request)
    since_ns = _parse_optional_time(request, "since")
    until_ns = _parse_optional_time(request, "until")
    visible_only = request.query.get("visible_only", "true").lower() not in ("false", "0", "no")
    return _json_response(engine.events(since_ns, until_ns, visible_only=visible_only))


async def show_behaviour(request: web.Request) -> web.Response:
    """Return the current config, with keys masked."""
    engine = _authorise(request)
    return _json_response(engine.config.model_dump(mode="json"))


async def change_behaviour(request: web.Request) -> web.Response:
    """Apply a JSON object of config fields and return the new config.

    A `faults` object is merged into the current fault rates, so it may name
    only the rates that change. Every invalid field is listed in the 400.
    """
    engine = _authorise(request)
    changes = await _read_json(request)
    if not isinstance(changes, dict):
        raise RequestError(400, "invalid_body", "The body must be a JSON object of config fields.")
    faults = changes.get("faults")
    if isinstance(faults, dict):
        changes["faults"] = {**engine.config.faults.model_dump(), **faults}

    try:
        engine.update(changes, running=True)
    except ConfigError as exc:
        errors = []
        for problem in exc.problems:
            param, _, message = problem.partition(": ")
            errors.append({"param": param, "message": message})
        body = {
            "error": {
                "code": "invalid_behaviour",
                "message": "Invalid config fields: " + "; ".join(exc.problems),
                "param": ", ".join(error["param"] for error in errors),
                "errors": errors,
            }
        }
        return _json_response(body, status=400)
    return _json_response(engine.config.model_dump(mode="json"))


async def show_statistics(request: web.Request) -> web.Response:
    """Return the simulator's counters."""
    engine = _authorise(request)
    return _json_response(engine.statistics())
