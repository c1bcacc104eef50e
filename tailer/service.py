"""The service listener: health, readiness and Prometheus metrics over HTTP.

* `GET /healthz` answers 200 while the process and its event loop are responsive:
  the answer itself is made on the event loop.
* `GET /readyz` answers 200 once ready and 503 otherwise, with a JSON body that
  names each source and sink and why it is not ready.
* `GET /metrics` is the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from tailer.errors import ConfigError

__all__ = ["DEFAULT_PORT", "HEALTH_PATH", "METRICS_PATH", "READY_PATH", "ServiceListener"]

DEFAULT_PORT = 9464
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"

Readiness = Callable[[], tuple[bool, dict[str, Any]]]

_log = structlog.get_logger("tailer.service")


class ServiceListener:
    """An aiohttp server for the three endpoints; `start()` binds, `stop()` closes."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        self.host = host
        self.port = port
        self._registry = registry
        self._readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(READY_PATH, self._ready)
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"service listener cannot bind {self.host}:{self.port} ({exc.strerror or exc}); "
                "free the port or set service.port (RUNTOOLS_TAIL_SERVICE__PORT), "
                "or service.enabled: false"
            ) from None
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        _log.info("service.started", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Close the listener; stopping twice is harmless."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        ready, details = self._readiness()
        return web.json_response({"ready": ready, **details}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
