"""Rendering of times, events and pages as the API sends them."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import orjson

__all__ = ["NS_PER_MS", "Rendering", "render_page", "render_time"]

NS_PER_MS = 1_000_000
_NS_PER_SECOND = 1_000_000_000


def render_time(time_ns: int, *, milliseconds: bool, utc_offset_minutes: int) -> str:
    """Format a time as ISO 8601 with `Z`, or with the numeric offset when it is not 0.

    Digits below the chosen precision are truncated.
    """
    seconds, fraction_ns = divmod(time_ns, _NS_PER_SECOND)
    text = _format_seconds(seconds, utc_offset_minutes)
    if milliseconds:
        text += f".{fraction_ns // NS_PER_MS:03d}"
    if utc_offset_minutes == 0:
        return text + "Z"
    sign = "-" if utc_offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(utc_offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


# Pages contain runs of events in the same second, and formatting the calendar
# part dominates the cost of rendering a page, so recent results are cached.
@functools.lru_cache(maxsize=4096)
def _format_seconds(seconds: int, utc_offset_minutes: int) -> str:
    year, month, day, hour, minute, second = time.gmtime(seconds + utc_offset_minutes * 60)[:6]
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


@dataclass(frozen=True)
class Rendering:
    """The config fields that decide how an event and a page look."""

    time_field: str
    milliseconds: bool
    utc_offset_minutes: int
    envelope: str

    def event(self, body: bytes, order_ns: int, time_text: str | None) -> bytes:
        """Close the JSON object `body` with the time field, the last field as in the docs.

        `body` is an object's JSON without its closing brace. `time_text`, when
        given, is the time exactly as it was injected.
        """
        if time_text is not None:
            return b"%s,%s:%s}" % (body, self._time_key, orjson.dumps(time_text))
        rendered = render_time(
            order_ns, milliseconds=self.milliseconds, utc_offset_minutes=self.utc_offset_minutes
        )
        # A rendered time contains only digits and punctuation, so it needs no JSON escaping.
        return b'%s,%s:"%s"}' % (body, self._time_key, rendered.encode("ascii"))

    @functools.cached_property
    def _time_key(self) -> bytes:
        return orjson.dumps(self.time_field)


def render_page(
    rendering: Rendering, events: list[bytes], has_more: bool, next_cursor: str | None
) -> bytes:
    """Wrap rendered events in the configured envelope."""
    paging = b'"hasMore":%s,"nextCursor":%s' % (
        b"true" if has_more else b"false",
        orjson.dumps(next_cursor),
    )
    events_json = b'{"data":{"events":[%s]},' % b",".join(events)
    if rendering.envelope == "guide":
        return events_json + b'"meta":{' + paging + b"}}"
    return events_json + paging + b"}"
