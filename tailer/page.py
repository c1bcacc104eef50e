"""The page: one API response, normalised from either documented envelope.

The reference page puts `hasMore` and `nextCursor` at the top level; the guide
page puts them under `meta`. Both keep events under `data.events`. A body that
matches neither is an error: reading it as "no more pages" would end the feed
silently and lose every event after it.

Each event is kept as the JSON text the API sent, not decoded and encoded
again: that is cheaper, and it keeps values a decoder would change, such as
an integer too large for 64 bits, which orjson turns into a float. Only the
fields the tailer orders and deduplicates by are decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from tailer.errors import PageFormatError
from tailer.event import decode_event_text

__all__ = ["Page", "parse_page", "peek_next_cursor"]

# The end of a page in both documented envelopes when more pages follow: hasMore
# true, then the cursor, then the end of the object (and of `meta`). Events come
# in an array before it, so a key inside an event is always followed by "]".
_TRAILING_CURSOR_RE = re.compile(
    rb'"hasMore"\s*:\s*true\s*,\s*"nextCursor"\s*:\s*"([^"\\]*)"\s*\}\s*(?:\}\s*)?\Z'
)
# Bytes at the end of a body that the pattern looks at; a longer cursor is not peeked.
_PEEK_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Page:
    """One response: its events, whether more pages follow, and the cursor to them.

    `lines[i]` is the JSON text of the i-th event, on one line: as the API sent
    it, with any line breaks between its tokens removed.
    `ids[i]` and `times[i]` are its decoded `id` and time (`createdAt`, else
    `occurredAt`), None where absent and of whatever JSON type the API used.
    `server_time_ns` is the response's `Date` header in ns since the epoch, or
    None when the server sent none.
    """

    lines: list[bytes]
    ids: list[Any]
    times: list[Any]
    has_more: bool
    next_cursor: str | None
    server_time_ns: int | None = None

    @property
    def events(self) -> list[Any]:
        """Return the events decoded, for diagnostics and tests. The tailer reads `lines`."""
        return [decode_event_text(line) for line in self.lines]


class _Head(msgspec.Struct):
    """The fields of an event the tailer needs, by their JSON names. msgspec skips the rest."""

    id: Any = None
    createdAt: Any = None
    occurredAt: Any = None


class _HeadData(msgspec.Struct):
    events: list[_Head]


class _HeadPage(msgspec.Struct):
    data: _HeadData


class _RawData(msgspec.Struct):
    events: list[msgspec.Raw]


class _RawPage(msgspec.Struct):
    data: _RawData
    hasMore: Any = msgspec.UNSET
    nextCursor: Any = None
    meta: Any = None


_HEADS = msgspec.json.Decoder(_HeadPage)
_RAWS = msgspec.json.Decoder(_RawPage)


def _paging_fields(body: dict[str, Any]) -> tuple[object, object] | None:
    if "hasMore" in body:
        return body["hasMore"], body.get("nextCursor")
    meta = body.get("meta")
    if isinstance(meta, dict) and "hasMore" in meta:
        return meta["hasMore"], meta.get("nextCursor")
    return None


def peek_next_cursor(body: bytes) -> str | None:
    """Return the next page's cursor from the end of an undecoded body, or None.

    Only a body that ends the way both documented envelopes do, with hasMore
    true and a cursor without escapes, yields a cursor. The result is a guess
    for requesting the next page early, never a decoded fact: the caller checks
    it against the cursor of the decoded page.
    """
    match = _TRAILING_CURSOR_RE.search(body, max(len(body) - _PEEK_BYTES, 0))
    if match is None:
        return None
    try:
        return match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_page(body: bytes, *, server_time_ns: int | None = None) -> Page:
    """Decode a 200 body into a Page.

    Raises orjson.JSONDecodeError when the body is not JSON (the caller treats
    it as a transient, truncated response) and PageFormatError when it is JSON
    without the documented events or paging fields.
    """
    try:
        # Two passes of msgspec over the body cost less than one orjson decode,
        # because neither builds the events' objects (0.42 ms against 0.72 ms for
        # a page of 500 simulator events, measured on the benchmark machine).
        raw_page = _RAWS.decode(body)
        heads = _HEADS.decode(body).data.events
    except (msgspec.DecodeError, msgspec.ValidationError):
        # Whatever is wrong, the full decode below names it.
        return _parse_decoded(body, server_time_ns)
    if raw_page.hasMore is not msgspec.UNSET:
        paging: tuple[object, object] | None = (raw_page.hasMore, raw_page.nextCursor)
    else:
        paging = _paging_fields({"meta": raw_page.meta})
    if paging is None:
        return _parse_decoded(body, server_time_ns)
    has_more, next_cursor = _check_paging(*paging)
    lines = [bytes(raw) for raw in raw_page.data.events]
    if b"\n" in body or b"\r" in body:
        lines = [_one_line(line) for line in lines]
    return Page(
        lines,
        [head.id for head in heads],
        [head.createdAt if head.createdAt is not None else head.occurredAt for head in heads],
        has_more,
        next_cursor,
        server_time_ns,
    )


def _one_line(text: bytes) -> bytes:
    """Return an event's JSON text without line breaks, which JSON allows between tokens.

    msgspec rewrites only the whitespace: every number, string and escape keeps
    the text the API sent.
    """
    if b"\n" in text or b"\r" in text:
        return msgspec.json.format(text, indent=0)
    return text


def _parse_decoded(body: bytes, server_time_ns: int | None) -> Page:
    """Decode the whole body with orjson, checking each part, for bodies of unusual shape."""
    document = orjson.loads(body)
    if not isinstance(document, dict):
        raise PageFormatError(f"page is a JSON {type(document).__name__}, expected an object")

    data = document.get("data")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise PageFormatError(
            "page has no data.events list; the API response format may have changed "
            f"(top-level keys: {sorted(document)})"
        )
    paging = _paging_fields(document)
    if paging is None:
        raise PageFormatError(
            "page has no hasMore field, neither at the top level nor under meta, so the "
            f"tailer cannot tell whether more pages follow (top-level keys: {sorted(document)})"
        )
    has_more, next_cursor = _check_paging(*paging)
    ids: list[Any] = []
    times: list[Any] = []
    for event in events:
        if isinstance(event, dict):
            ids.append(event.get("id"))
            text = event.get("createdAt")
            times.append(text if text is not None else event.get("occurredAt"))
        else:
            ids.append(None)
            times.append(None)
    lines = [orjson.dumps(event) for event in events]
    return Page(lines, ids, times, has_more, next_cursor, server_time_ns)


def _check_paging(has_more: object, next_cursor: object) -> tuple[bool, str | None]:
    """Return hasMore and the cursor (None without more pages), or raise PageFormatError."""
    if not isinstance(has_more, bool):
        raise PageFormatError(f"page field hasMore is {has_more!r}, expected true or false")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise PageFormatError(f"page field nextCursor is {next_cursor!r}, expected a string")
    if has_more and not next_cursor:
        raise PageFormatError("page says hasMore is true but gives no nextCursor")
    return has_more, next_cursor if has_more else None
