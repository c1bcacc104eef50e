"""The page: one API response, normalised from either documented envelope.

The reference page puts `hasMore` and `nextCursor` at the top level; the guide
page puts them under `meta`. Both keep events under `data.events`. A body that
matches neither is an error: reading it as "no more pages" would end the feed
silently and lose every event after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from tailer.errors import PageFormatError

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
    """One response: its raw events, whether more pages follow, and the cursor to them.

    `server_time_ns` is the response's `Date` header in ns since the epoch, or
    None when the server sent none.
    """

    events: list[Any]
    has_more: bool
    next_cursor: str | None
    server_time_ns: int | None = None


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
    has_more, next_cursor = paging
    if not isinstance(has_more, bool):
        raise PageFormatError(f"page field hasMore is {has_more!r}, expected true or false")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise PageFormatError(f"page field nextCursor is {next_cursor!r}, expected a string")
    if has_more and not next_cursor:
        raise PageFormatError("page says hasMore is true but gives no nextCursor")
    return Page(events, has_more, next_cursor if has_more else None, server_time_ns)
