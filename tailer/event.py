"""The event: one activity record, kept whole, with the two fields the tailer needs."""

from __future__ import annotations

import json as stdlib_json
from collections.abc import Iterator, Sequence
from typing import Any, overload

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tailer.jsontext import dumps_json
from tailer.timeparse import parse_time

__all__ = [
    "Event",
    "InvalidEventError",
    "StoredEvents",
    "decode_event_text",
    "parse_event",
    "stored_event",
]

# The reference page names the time `createdAt`, the guide `occurredAt`.
TIME_FIELDS = ("createdAt", "occurredAt")


def decode_event_text(text: bytes) -> Any:
    """Decode an event's JSON text, keeping integers of any size exact.

    msgspec decodes an integer beyond 64 bits as an int, where orjson gives a float.
    A number beyond the range of a double, such as 1E+400, is valid JSON, but both
    reject it. Python's json module decodes it as infinity.
    """
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return stdlib_json.loads(text)


class InvalidEventError(ValueError):
    """An event lacks a usable `id` or time. `event_id` is the id when there is one."""

    def __init__(self, message: str, event_id: str | None) -> None:
        super().__init__(message)
        self.event_id = event_id


class _RequiredFields(BaseModel):
    """Validates the fields the tailer orders and deduplicates by; ignores the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    created_at: str | None = Field(default=None, alias="createdAt")
    occurred_at: str | None = Field(default=None, alias="occurredAt")

    @field_validator("id", mode="before")
    @classmethod
    def _accept_integer_id(cls, value: object) -> object:
        # A numeric id is still a unique key; keep it as its decimal text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class Event:
    """One activity record: its id, its time in ns since the epoch, and the raw JSON object.

    `raw` is the object exactly as the API sent it, unknown fields included, so
    sinks receive every field. Nothing may change it: an event read from a page
    or back from the journal carries its JSON text too, which `to_json` returns
    as it is, and decodes `raw` only when something reads it. Events sort by
    (time, id), the delivery order.
    """

    __slots__ = ("_raw", "id", "json", "time_ns")

    def __init__(
        self,
        event_id: str,
        time_ns: int,
        raw: dict[str, Any] | None,
        *,
        json: bytes | None = None,
    ) -> None:
        if raw is None and json is None:
            raise TypeError("an event needs its raw object or its JSON")
        self.id = event_id
        self.time_ns = time_ns
        self._raw = raw
        # The JSON text of `raw` on one line, as the API sent it but for line breaks.
        self.json = json

    @property
    def raw(self) -> dict[str, Any]:
        raw = self._raw
        if raw is None:
            assert self.json is not None
            raw = self._raw = decode_event_text(self.json)
        return raw

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.time_ns, self.id)

    def to_json(self) -> bytes:
        """Serialise the raw event as one line of JSON, without a newline."""
        if self.json is not None:
            return self.json
        return dumps_json(self._raw)

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, time_ns={self.time_ns})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.id == other.id and self.time_ns == other.time_ns and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]  # mutable raw payload


def parse_event(raw: object, *, json: bytes | None = None) -> Event:
    """Validate one raw event from a page. `json` is its JSON text on one line, when known.

    Raises InvalidEventError when the object has no usable `id` or time; the
    caller reports it and carries on with the rest of the page.
    """
    if not isinstance(raw, dict):
        raise InvalidEventError(f"event is a JSON {type(raw).__name__}, not an object", None)

    # Fast path for the common shape: a string id and a string time. Anything
    # else goes through the pydantic model, whose messages name the problem.
    event_id = raw.get("id")
    text = raw.get("createdAt")
    if text is None:
        text = raw.get("occurredAt")
    if type(event_id) is str and event_id and type(text) is str:
        try:
            return Event(event_id, parse_time(text), raw, json=json)
        except ValueError:
            pass

    try:
        fields = _RequiredFields.model_validate(raw)
    except ValidationError as exc:
        raw_id = raw.get("id")
        event_id = str(raw_id) if raw_id is not None else None
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidEventError(f"invalid event: {problem}", event_id) from None

    text = fields.created_at if fields.created_at is not None else fields.occurred_at
    if text is None:
        raise InvalidEventError("event has neither createdAt nor occurredAt", fields.id)
    try:
        time_ns = parse_time(text)
    except ValueError as exc:
        raise InvalidEventError(str(exc), fields.id) from None
    return Event(fields.id, time_ns, raw, json=json)


def stored_event(event_id: str, time_ns: int, line: bytes) -> Event:
    """Return an event read back from storage as the JSON line it was stored as."""
    return Event(event_id, time_ns, None, json=line)


class StoredEvents(Sequence[Event]):
    """Stored events as a sequence that makes each `Event` only when it is read.

    A sink that writes the stored lines unchanged never reads the events, so a
    batch of them costs three lists instead of an object per event.
    """

    __slots__ = ("_events", "_ids", "_lines", "_times")

    def __init__(self, ids: list[str], times: list[int], lines: list[bytes]) -> None:
        if not len(ids) == len(times) == len(lines):
            raise ValueError("ids, times and lines differ in length")
        self._ids = ids
        self._times = times
        self._lines = lines
        self._events: list[Event] | None = None

    def _all(self) -> list[Event]:
        if self._events is None:
            self._events = list(map(stored_event, self._ids, self._times, self._lines))
        return self._events

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._all())

    def __repr__(self) -> str:
        return f"StoredEvents({len(self)} events)"
