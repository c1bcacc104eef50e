"""The `cef` encoding: one ArcSight Common Event Format (CEF) line per event.

    CEF:0|RunTools|runtools-tail|<version>|<eventType>|<name>|<severity>|<extension>

The header and the extension escape differently. In the seven header fields a
backslash and a pipe are escaped with a backslash, and the spec allows no line
break, so each CR, LF or CRLF becomes one space. The extension is a list of
`key=value` pairs separated by spaces. Its values escape a backslash and an
equals sign with a backslash and write CR and LF as `\\r` and `\\n`, which a CEF
parser turns back into the original text. A pipe needs no escape there. Every
other character, non-ASCII included, is written as UTF-8.

Extension keys come from the ArcSight extension dictionary. Fields that have no
dictionary key use custom keys named `RunToolsTail…`, the vendor-and-product
form the spec requires. docs/encodings.md has the full mapping table.
"""

from __future__ import annotations

import re

from tailer import __version__
from tailer.encodings._fields import (
    UNKNOWN_SEVERITY_LEVEL,
    field_text,
    first_text,
    outcome,
    severity_level,
)
from tailer.event import Event

__all__ = [
    "DEVICE_PRODUCT",
    "DEVICE_VENDOR",
    "CefEncoder",
    "escape_extension_value",
    "escape_header_field",
]

DEVICE_VENDOR = "RunTools"
DEVICE_PRODUCT = "runtools-tail"

# Written in the header in place of an event type or name the event lacks,
# because a header field cannot be left out.
_UNKNOWN = "unknown"

_NS_PER_MILLISECOND = 1_000_000

# Source fields carried in the dictionary's labelled custom keys. The label
# names the source field, so it is the same on every event.
_LABELLED_KEYS: tuple[tuple[str, str], ...] = (
    ("resourceId", "cs1"),
    ("orgId", "cs2"),
    ("status", "cs3"),
    ("threadId", "cs4"),
    ("agentRunId", "cs5"),
    ("sandboxId", "cs6"),
    ("workspaceId", "flexString1"),
    ("toolSlug", "flexString2"),
)

# Source fields with no dictionary key left for them.
_CUSTOM_KEYS: tuple[tuple[str, str], ...] = (
    ("actorType", "RunToolsTailActorType"),
    ("installableAgentInstallId", "RunToolsTailInstallableAgentInstallId"),
    ("runmeshNodeId", "RunToolsTailRunmeshNodeId"),
    ("codeExecutionId", "RunToolsTailCodeExecutionId"),
    ("attributes", "RunToolsTailAttributes"),
)

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def escape_header_field(text: str) -> str:
    """Escape `text` for a CEF header field, replacing each CR, LF or CRLF with a space."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|")
    return _LINE_BREAK_RE.sub(" ", escaped)


def escape_extension_value(text: str) -> str:
    """Escape `text` for a CEF extension value, so that a parser recovers it exactly."""
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


class CefEncoder:
    """Encodes an event as one CEF line.

    `device_version` fills the Device Version header field, which defaults to
    the installed version of runtools-tail.
    """

    name = "cef"
    json_payload = False

    def __init__(self, *, device_version: str = __version__) -> None:
        self._prefix = "|".join(
            [
                "CEF:0",
                escape_header_field(DEVICE_VENDOR),
                escape_header_field(DEVICE_PRODUCT),
                escape_header_field(device_version),
            ]
        )

    def encode(self, event: Event) -> bytes:
        raw = event.raw
        event_type = field_text(raw, "eventType")
        name = first_text(raw, "title", "summary", "eventType")
        severity = field_text(raw, "severity")
        level = severity_level(severity) if severity is not None else None

        header = "|".join(
            [
                self._prefix,
                escape_header_field(event_type or _UNKNOWN),
                escape_header_field(name or _UNKNOWN),
                str(UNKNOWN_SEVERITY_LEVEL if level is None else level),
            ]
        )
        extension = " ".join(
            f"{key}={escape_extension_value(value)}" for key, value in _extension_pairs(event)
        )
        line = f"{header}|{extension}"

        try:
            return line.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form. The API client never produces
            # one, but an event built elsewhere can contain it.
            return _SURROGATE_RE.sub("\ufffd", line).encode("utf-8")


def _extension_pairs(event: Event) -> list[tuple[str, str]]:
    """List the extension's keys and unescaped values in output order."""
    raw = event.raw
    pairs = [
        ("rt", str(event.time_ns // _NS_PER_MILLISECOND)),
        ("externalId", event.id),
    ]

    for source, key in (("eventType", "act"), ("resourceType", "cat")):
        value = field_text(raw, source)
        if value is not None:
            pairs.append((key, value))

    status = field_text(raw, "status")
    if status is not None:
        pairs.append(("outcome", outcome(status)))

    for source, key in (("actorUserId", "suid"), ("summary", "msg")):
        value = field_text(raw, source)
        if value is not None:
            pairs.append((key, value))

    for source, key in _LABELLED_KEYS:
        value = field_text(raw, source)
        if value is not None:
            pairs.append((f"{key}Label", source))
            pairs.append((key, value))

    for source, key in _CUSTOM_KEYS:
        value = field_text(raw, source)
        if value is not None:
            pairs.append((key, value))
    return pairs
