"""JSON text written from decoded values, whatever they hold."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["dumps_json"]


def dumps_json(value: Any) -> bytes:
    """Serialise `value` as compact UTF-8 JSON on one line.

    orjson rejects integers beyond 64 bits, which the API may send, and lone
    surrogates. The standard library writes both, and with `ensure_ascii` its
    output is ASCII only. Both escape CR and LF inside strings, so the output
    never contains a line break. Both write infinity, which a number such as
    1E+400 decodes to, as null: JSON has no infinity.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(
            _finite(value), ensure_ascii=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")


def _finite(value: Any) -> Any:
    """Return `value` with every infinite or NaN float inside replaced by None, as orjson does."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
