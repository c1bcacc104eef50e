"""Fault injection: rate limits, server errors, slow, dropped and truncated responses.

Each request to a `/v1` endpoint draws three numbers from a seeded generator
of its own, whatever the rates are, so one seed gives one fault sequence and
changing a rate moves no other fault to another request.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from typing import Literal

import orjson
from aiohttp import web

from tailer.simulator.config import FaultRates

__all__ = [
    "FAULT_KINDS",
    "FaultDecision",
    "FaultInjector",
    "drop",
    "rate_limited_response",
    "server_error_response",
    "truncate",
]

FaultKind = Literal["rate_limited", "server_error", "dropped", "truncated"]
FAULT_KINDS = ("rate_limited", "server_error", "slow", "dropped", "truncated")

_SERVER_ERRORS = (
    (500, "Internal Server Error", "internal_error"),
    (502, "Bad Gateway", "bad_gateway"),
    (503, "Service Unavailable", "service_unavailable"),
)


@dataclass(frozen=True)
class FaultDecision:
    """The faults drawn for one request.

    `kind` is the exclusive fault, or None. `variant` is a number in [0, 1)
    that picks the form of the fault, such as the kind of `Retry-After`.
    """

    kind: FaultKind | None
    slow: bool
    variant: float


class FaultInjector:
    """Draw the faults of each request from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def decide(self, rates: FaultRates) -> FaultDecision:
        """Draw the faults of the next request."""
        exclusive = self._rng.random()
        slow = self._rng.random() < rates.slow
        variant = self._rng.random()

        # The exclusive faults split [0, 1) into consecutive intervals, one per
        # kind, as long as its rate. A draw past the last interval means no fault.
        choices: tuple[tuple[FaultKind, float], ...] = (
            ("dropped", rates.dropped),
            ("rate_limited", rates.rate_limited),
            ("server_error", rates.server_error),
            ("truncated", rates.truncated),
        )
        threshold = 0.0
        for kind, rate in choices:
            threshold += rate
            if exclusive < threshold:
                return FaultDecision(kind=kind, slow=slow, variant=variant)
        return FaultDecision(kind=None, slow=slow, variant=variant)


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "param": None}})


def rate_limited_response(variant: float, now: float) -> web.Response:
    """Build a 429. Its `Retry-After` is seconds, an HTTP-date, or absent, by `variant`.

    Half of the responses wait 1 or 2 seconds, a quarter name a date 1 to 2
    seconds after `now` (epoch seconds), and a quarter carry no header.
    """
    headers = {}
    if variant < 0.5:
        headers["Retry-After"] = "1" if variant < 0.25 else "2"
    elif variant < 0.75:
        headers["Retry-After"] = email.utils.formatdate(math.floor(now) + 2, usegmt=True)
    return web.Response(
        status=429,
        body=_error_body("rate_limited", "Too many requests. Retry later."),
        content_type="application/json",
        headers=headers,
    )


def server_error_response(variant: float) -> web.Response:
    """Build a 500, 502 or 503, with an HTML body as a proxy sends it or a JSON body."""
    status, reason, code = _SERVER_ERRORS[int(variant * 6) % 3]
    if variant < 0.5:
        page = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n"
            f"<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n"
            "<hr><center>proxy</center>\r\n</body>\r\n</html>\r\n"
        )
        return web.Response(status=status, text=page, content_type="text/html")
    return web.Response(
        status=status,
        body=_error_body(code, f"{reason}. Retry later."),
        content_type="application/json",
    )


async def truncate(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the status and headers of `response` with half of its body, then close.

    `Content-Length` still announces the whole body, so the client notices
    that the payload is incomplete.
    """
    body = response.body
    assert isinstance(body, bytes)  # handlers build responses from bytes
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])

    # close() sends the buffered half before the connection ends, unlike abort().
    transport = request.transport
    if transport is not None:
        transport.close()
    return stream


def drop(request: web.Request) -> None:
    """Close the connection of `request` before any response is sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
