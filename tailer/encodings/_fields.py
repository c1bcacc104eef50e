"""Field access and the value tables that the ECS and CEF encodings share.

Any field of an event but `id` may be missing, null or of an unexpected type, so
every mapped field is read through `field_text`, which returns text or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailer.jsontext import dumps_json

__all__ = [
    "OUTCOMES",
    "SEVERITY_LEVELS",
    "UNKNOWN_OUTCOME",
    "UNKNOWN_SEVERITY_LEVEL",
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
