"""Payload encodings: how a sink writes one event.

`json` is the raw event as the API sent it, `ecs` an Elastic Common Schema
document and `cef` an ArcSight Common Event Format line. docs/encodings.md maps
every field. `get_encoder` returns the encoder a config names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, get_args, runtime_checkable

from tailer.encodings.cef import CefEncoder
from tailer.encodings.ecs import EcsEncoder
from tailer.encodings.raw import JsonEncoder
from tailer.errors import ConfigError
from tailer.event import Event

__all__ = [
    "ENCODINGS",
    "CefEncoder",
    "EcsEncoder",
    "Encoder",
    "Encoding",
    "JsonEncoder",
    "get_encoder",
]

Encoding = Literal["json", "ecs", "cef"]
ENCODINGS: tuple[str, ...] = get_args(Encoding)


@runtime_checkable
class Encoder(Protocol):
    """Turns one event into one payload.

    `json_payload` is True when every payload is a JSON object (json, ecs), so a
    sink may embed it in a JSON envelope, and False for text (cef).
    """

    name: str
    json_payload: bool

    def encode(self, event: Event) -> bytes:
        """Return the payload of `event` as UTF-8, without a trailing newline.

        The payload never contains a CR or LF byte, so a sink can frame payloads
        by lines.
        """
        ...


_ENCODER_FACTORIES: dict[str, Callable[[], Encoder]] = {
    "json": JsonEncoder,
    "ecs": EcsEncoder,
    "cef": CefEncoder,
}


def get_encoder(name: str) -> Encoder:
    """Return a new encoder for the encoding `name`. Raise ConfigError when the name is unknown."""
    factory = _ENCODER_FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown encoding {name!r}, expected one of: {', '.join(ENCODINGS)}")
    return factory()
