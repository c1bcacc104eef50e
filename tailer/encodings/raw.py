"""The `json` encoding: the raw event exactly as the API sent it."""

from __future__ import annotations

from tailer.event import Event
from tailer.jsontext import dumps_json

__all__ = ["JsonEncoder"]


class JsonEncoder:
    """Encodes the raw event object unchanged, unknown fields included, as one line of JSON."""

    name = "json"
    json_payload = True

    def encode(self, event: Event) -> bytes:
        # An event from a page or the journal carries its JSON text on one line,
        # the object as the API sent it.
        if event.json is not None:
            return event.json
        return dumps_json(event.raw)
