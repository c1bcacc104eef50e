"""Signed page cursors, bound to the query that issued them.

A cursor carries the key of the last row served, the digest of its query
(scope, filters, window, order, precision and caller) and the time it was
issued, signed with HMAC-SHA256 under a secret of one simulator. A cursor
that was altered, issued by another simulator, sent with another query or
older than the configured lifetime is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import orjson

__all__ = ["Cursor", "CursorCodec", "CursorError", "query_digest"]

_VERSION = "c1"
_MAC_BYTES = 16


class CursorError(ValueError):
    """A cursor is invalid, expired or belongs to another query.

    `code` is the API error code: invalid_cursor, cursor_mismatch or cursor_expired.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Cursor:
    """The decoded content of a cursor."""

    order_ns: int
    event_id: str
    digest: str
    issued_at_ms: int

    @property
    def after(self) -> tuple[int, str]:
        """The order key the next page starts after."""
        return (self.order_ns, self.event_id)


def query_digest(parts: object) -> str:
    """Hash the JSON-serialisable description of a query into a short, stable digest."""
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:24]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Issue and check cursors signed with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest()
        return _encode(mac[:_MAC_BYTES])

    def issue(self, cursor: Cursor) -> str:
        """Serialise and sign a cursor."""
        payload = _encode(
            orjson.dumps([cursor.order_ns, cursor.event_id, cursor.digest, cursor.issued_at_ms])
        )
        return f"{_VERSION}.{payload}.{self._sign(payload)}"

    def check(self, text: str, *, digest: str, now_ms: int, ttl_seconds: float | None) -> Cursor:
        """Verify a cursor against the query `digest` and its lifetime.

        Raises CursorError with code invalid_cursor when the text was not issued
        by this codec, cursor_mismatch when it belongs to another query and
        cursor_expired when it is older than `ttl_seconds`.
        """
        parts = text.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise CursorError("invalid_cursor", "The cursor is not one this API issued.")
        _, payload, mac = parts
        if not hmac.compare_digest(mac, self._sign(payload)):
            raise CursorError("invalid_cursor", "The cursor is not one this API issued.")
        try:
            order_ns, event_id, cursor_digest, issued_at_ms = orjson.loads(_decode(payload))
        except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
            raise CursorError("invalid_cursor", "The cursor is not one this API issued.") from None
        cursor = Cursor(order_ns, event_id, cursor_digest, issued_at_ms)

        if cursor.digest != digest:
            raise CursorError(
                "cursor_mismatch",
                "The cursor belongs to another query. Send the same filters, since and until "
                "as the request that returned it, or start again without a cursor.",
            )
        if ttl_seconds is not None and now_ms - cursor.issued_at_ms > ttl_seconds * 1000:
            raise CursorError(
                "cursor_expired",
                f"The cursor expired: cursors are valid for {ttl_seconds:g} s. "
                "Start again without a cursor.",
            )
        return cursor
