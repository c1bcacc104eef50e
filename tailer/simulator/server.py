"""The simulator: an aiohttp server of the activity API with a controllable behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from tailer.simulator.api import add_api_routes
from tailer.simulator.config import SimulatorConfig
from tailer.simulator.control import add_control_routes
from tailer.simulator.engine import ENGINE_KEY, Engine, RequestError
from tailer.simulator.faults import drop, rate_limited_response, server_error_response, truncate
from tailer.simulator.live import LiveGenerator

__all__ = ["Simulator"]

_logger = structlog.get_logger("tailer.simulator")
_SHUTDOWN_TIMEOUT = 1.0  # seconds a stop waits for running handlers, such as slow responses

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, inject faults into `/v1` requests and render RequestError."""
    engine = request.app[ENGINE_KEY]
    if not request.path.startswith("/v1/"):
        engine.stats["control_requests"] += 1
        return await _call(request, handler)

    engine.stats["requests"] += 1
    config = engine.config
    decision = engine.faults.decide(config.faults)
    if decision.slow:
        engine.stats["faults_slow"] += 1
        await asyncio.sleep(config.faults.slow_seconds)

    if decision.kind == "dropped":
        engine.stats["faults_dropped"] += 1
        drop(request)
        return web.Response(status=204)  # never sent: the connection is already closed
    if decision.kind == "rate_limited":
        engine.stats["faults_rate_limited"] += 1
        return rate_limited_response(decision.variant, engine.now())
    if decision.kind == "server_error":
        engine.stats["faults_server_error"] += 1
        return server_error_response(decision.variant)

    response = await _call(request, handler)
    if decision.kind == "truncated" and response.status == 200:
        assert isinstance(response, web.Response)  # every handler returns a whole response
        engine.stats["faults_truncated"] += 1
        return await truncate(request, response)
    return response


async def _call(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return web.Response(
            status=exc.status, body=exc.body(), content_type="application/json", headers=headers
        )


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    # The Date header is the client's view of the server clock, so it follows
    # the simulator's clock, offset and injected clock included.
    engine = request.app[ENGINE_KEY]
    response.headers["Date"] = email.utils.formatdate(engine.now(), usegmt=True)
    # A response on a closed connection, such as a dropped one, never reaches the client.
    transport = request.transport
    if request.path.startswith("/v1/") and transport is not None and not transport.is_closing():
        engine.stats[f"status_{response.status}"] += 1


def _log_live_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        _logger.error(
            "simulator.live_failed",
            error=str(error),
            error_type=type(error).__name__,
            exc_info=error,
        )


class Simulator:
    """A local server of the RunTools activity API, with seeded events and faults.

    Use it as an async context manager, or call `start` and `stop`. `clock`
    returns epoch seconds and defaults to `time.time`, and `config.clock_offset`
    is added to it. A simulator starts once: starting it again, or after
    `stop`, raises RuntimeError, and stopping it twice is harmless. Its
    methods must be called from the event loop that started it.
    """

    def __init__(
        self, config: SimulatorConfig, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._engine = Engine(config, clock)
        self._live = LiveGenerator(self._engine)
        self._runner: web.AppRunner | None = None
        self._live_task: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._state = "created"

    @property
    def config(self) -> SimulatorConfig:
        """The behaviour in force; change it with `update`."""
        return self._engine.config

    @property
    def url(self) -> str:
        """Base URL of the server, such as `http://127.0.0.1:8080`. Valid after `start`."""
        if self._url is None:
            raise RuntimeError("The simulator has no URL before start() has bound its port.")
        return self._url

    async def start(self) -> None:
        """Bind the port, store the backlog and start the live generator.

        Raises RuntimeError when the simulator was already started, and OSError
        when the port cannot be bound.
        """
        if self._state != "created":
            raise RuntimeError(f"The simulator cannot start: it is {self._state}.")
        self._state = "starting"
        config = self.config

        app = web.Application(middlewares=[_serve])
        app[ENGINE_KEY] = self._engine
        app.on_response_prepare.append(_on_response_prepare)
        add_api_routes(app)
        add_control_routes(app)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            self._url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
            self._engine.load_backlog()
        except BaseException:
            await runner.cleanup()
            self._state = "stopped"
            raise
        self._runner = runner

        self._live_task = asyncio.create_task(self._live.run(), name="simulator-live-events")
        self._live_task.add_done_callback(_log_live_failure)
        self._state = "running"
        _logger.info(
            "simulator.started", url=self._url, count=len(self._engine.store), seed=config.seed
        )

    async def stop(self) -> None:
        """Stop the live generator and close the server. Stopping twice is harmless.

        Raises the error of the live generator if it failed, after closing the server.
        """
        if self._state in ("created", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopped"
        try:
            if self._live_task is not None:
                self._live_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._live_task
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
        statistics = self._engine.statistics()
        _logger.info(
            "simulator.stopped",
            url=self._url,
            requests=statistics["requests"],
            count=statistics["events_stored"],
        )

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def update(self, **changes: Any) -> None:
        """Change the behaviour, such as `update(order="oldest")` or `update(faults=...)`.

        Raises tailer.errors.ConfigError listing every invalid field. While the
        server runs, host, port, seed, backlog and backlog_span cannot change.
        """
        self._engine.update(changes, running=self._state == "running")

    def inject(
        self, events: list[dict[str, Any]], *, visible_after: float = 0.0
    ) -> list[dict[str, Any]]:
        """Store partial events and return them as the API renders them.

        A missing id is a new uuid and a missing time is now. Other missing
        fields are drawn as for generated events. A given `createdAt` or
        `occurredAt` string is kept verbatim and parsed for ordering. The events
        become visible `visible_after` seconds from now. Raises ValueError,
        storing none of them, when an event is not an object, has an invalid
        time, or repeats an id.
        """
        if visible_after < 0:
            raise ValueError(f"visible_after must be 0 or more seconds, got {visible_after}")
        return self._engine.inject(events, visible_after=visible_after)

    def events(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        visible_only: bool = True,
    ) -> list[dict[str, Any]]:
        """Return the stored events of [since_ns, until_ns), oldest first by (time, id).

        Events are rendered as the API renders them and are the ground truth
        for tests. Events older than the retention window are left out.
        """
        return self._engine.events(since_ns, until_ns, visible_only=visible_only)

    async def wait_for_stored(self, count: int) -> None:
        """Wait until at least `count` events are stored, such as live events a test awaits.

        It has no timeout of its own, so wrap it in `asyncio.timeout` where one is needed.
        """
        await self._engine.wait_for_stored(count)

    def statistics(self) -> dict[str, int]:
        """Return counters: `requests` and `status_<code>` of the `/v1` endpoints,
        `control_requests`, `faults_<kind>`, `events_stored` and `events_visible`."""
        return self._engine.statistics()

    def now_ns(self) -> int:
        """Return the simulator's clock in nanoseconds since the epoch."""
        return self._engine.now_ns()
