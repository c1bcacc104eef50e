"""Field access and the value tables that the ECS and CEF encodings share.

Any field of an event but `id` may be missing, null or of an unexpected type, so
every mapped field is read through `field_text`, which returns text or None.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "OUTCOMES",
    "SEVERITY_LEVELS",
    "UNKNOWN_OUTCOME",
    "UNKNOWN_SEVERITY_LEVEL",
    "dumps_json",
    "field_text",
    "first_text",
    "outcome",
    "severity_level",
]

# Severity words of the activity API on a 0-10 scale, higher is more severe. CEF
# requires this scale in its header, and the ECS encoding reuses it so both agree.
SEVERITY_LEVELS: dict[str, int] = {"info": 3, "success": 3, "warning": 6, "error": 8}
UNKNOWN_SEVERITY_LEVEL = 5

# `status` values that mark the action as succeeded or failed. Every other
# status, such as `started` or `added`, leaves the outcome unknown.
OUTCOMES: dict[str, str] = {"completed": "success", "failed": "failure"}
UNKNOWN_OUTCOME = "unknown"


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


def field_text(raw: Mapping[str, Any], key: str) -> str | None:
    """Return the field `key` as text, or None when it is missing, null or empty.

    A string is returned as it is. Any other value, such as a number, a boolean,
    an object or an array, becomes its compact JSON text.
    """
    value = raw.get(key)
    if value is None:
        return None
    text = value if isinstance(value, str) else dumps_json(value).decode("utf-8")
    return text or None


def first_text(raw: Mapping[str, Any], *keys: str) -> str | None:
    """Return the text of the first of `keys` that has any, or None."""
    for key in keys:
        text = field_text(raw, key)
        if text is not None:
            return text
    return None


def severity_level(severity: str) -> int | None:
    """Return the 0-10 level of a severity word, or None for a word the API does not document."""
    return SEVERITY_LEVELS.get(severity.lower())


def outcome(status: str) -> str:
    """Return `success`, `failure` or `unknown` for a `status` value."""
    return OUTCOMES.get(status.lower(), UNKNOWN_OUTCOME)
