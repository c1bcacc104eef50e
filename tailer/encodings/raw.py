"""The `json` encoding: the raw event exactly as the API sent it."""

from __future__ import annotations

from tailer.encodings._fields import dumps_json
from tailer.event import Event

__all__ = ["JsonEncoder"]


class JsonEncoder:
    """Encodes the raw event object unchanged, unknown fields included, as one line of JSON."""

    name = "json"
    json_payload = True

    def encode(self, event: Event) -> bytes:
        return dumps_json(event.raw)
