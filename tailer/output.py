"""Terminal output formats: one line per event as pretty text, NDJSON or a user template.

Event text comes from users and the programs they run, so it can carry escape sequences
that clear the screen, set the window title, hide earlier lines with a carriage
return or reorder text with bidirectional controls. Every value interpolated into
pretty or template output therefore goes through `neutralize`, and the JSON output
escapes the same characters with JSON escapes. Only the colour codes this module
adds itself reach the terminal raw.
"""

from __future__ import annotations

import datetime
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Literal, Protocol, runtime_checkable

import orjson

from tailer.errors import ConfigError
from tailer.event import Event
from tailer.jsontext import dumps_json
from tailer.timeparse import NS_PER_SECOND

__all__ = [
    "Formatter",
    "JsonFormatter",
    "OutputFormat",
    "PrettyFormatter",
    "TemplateFormatter",
    "make_formatter",
    "neutralize",
    "use_color",
]

OutputFormat = Literal["pretty", "json", "template"]

# C0 and DEL, C1, the Unicode bidirectional controls, the line and paragraph
# separators, and lone surrogates, which cannot be encoded as UTF-8 at all.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)

# The same set less C0, for orjson output: orjson escapes C0 itself, so in its
# output, and in NDJSON made of it, a raw C0 character can only be a line's own
# newline, which must stay.
_JSON_UNSAFE_RE = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)

# Characters on which str.splitlines breaks a line. A template containing one
# would break the contract of one line per event.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NS_PER_MILLISECOND = 1_000_000

_SGR_RESET = "\x1b[0m"
_SEVERITY_SGR = {
    "error": "\x1b[31m",
    "warning": "\x1b[33m",
    "success": "\x1b[32m",
    "info": "\x1b[2m",
}

# Widths of the padded pretty columns. `warning` and `success` are the longest
# documented severities, and the event types in the API docs, such as
# `agent.run.completed`, fit in 24.
_SEVERITY_WIDTH = 7
_EVENT_TYPE_WIDTH = 24
_MISSING = "-"

# The template field that renders the event time rather than a key of the event.
_TIME_FIELD = "time"


@runtime_checkable
class Formatter(Protocol):
    """Turns an event into one line of terminal output."""

    def format(self, event: Event) -> bytes:
        """Return one complete UTF-8 line for `event`, ending in a single b"\\n"."""
        ...

    def format_many(self, events: Sequence[Event]) -> bytes:
        """Return the lines of `events`, in order, as one bytes object."""
        return b"".join(map(self.format, events))


def neutralize(text: str) -> str:
    """Replace control, bidirectional and line-separator characters with visible escapes.

    Characters up to U+00FF become `\\xHH` and the others `\\uHHHH`, so the result
    is one line that cannot move the cursor, change colours or reorder text. A
    backslash already in the text is kept as it is, so the escapes are for reading
    and cannot be reversed unambiguously.
    """
    return _UNSAFE_RE.sub(_visible_escape, text)


def _visible_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _encode_json(value: Any) -> bytes:
    """Serialise `value` as compact UTF-8 JSON in which no character can act on a terminal.

    orjson escapes C0 but writes DEL, C1, bidirectional controls and U+2028/U+2029
    as they are. They can occur only inside JSON strings, where a `\\uHHHH` escape
    decodes to the same value, so replacing them keeps the JSON valid and equal.
    """
    return _escape_json_output(dumps_json(value))


def _escape_json_output(encoded: bytes) -> bytes:
    # The common case has nothing to escape, so it skips the decode and encode.
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return _JSON_UNSAFE_RE.sub(_json_escape, encoded.decode("utf-8")).encode("utf-8")


class JsonFormatter(Formatter):
    """Writes the raw event as one NDJSON line, every field and value as the API sent it."""

    def format(self, event: Event) -> bytes:
        if event.json is not None:
            return _escape_json_output(event.json) + b"\n"
        return _encode_json(event.raw) + b"\n"

    def format_many(self, events: Sequence[Event]) -> bytes:
        # One escape check over the whole batch instead of one per event. Each
        # line is copied into one growing buffer and freed at once: keeping
        # thousands of line objects alive until a join made the C allocator
        # grow and trim its heap about a hundred times a batch.
        # An event from a page or the journal carries its JSON text, which is
        # written as it is, so its object is never decoded.
        dumps = orjson.dumps
        lines = bytearray()
        try:
            for event in events:
                text = event.json
                lines += text if text is not None else dumps(event.raw)
                lines += b"\n"
        except orjson.JSONEncodeError:
            return super().format_many(events)
        return _escape_json_output(bytes(lines))


class _TimeRenderer:
    """Renders nanoseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm`, plus `Z` in UTC."""

    def __init__(self, *, utc: bool, tz: datetime.tzinfo | None) -> None:
        self._utc = utc
        # astimezone(None) converts to the system's local zone at that instant,
        # so daylight saving time is applied per event.
        self._zone: datetime.tzinfo | None = datetime.UTC if utc else tz

    def render(self, time_ns: int) -> str:
        seconds, fraction_ns = divmod(time_ns, NS_PER_SECOND)
        # Truncate rather than round, so .9996 s never shows as the next second.
        milliseconds = fraction_ns // _NS_PER_MILLISECOND
        suffix = "Z" if self._utc else ""
        try:
            moment = (_EPOCH + datetime.timedelta(seconds=seconds)).astimezone(self._zone)
        except (OverflowError, OSError, ValueError):
            # Near year 1 or 9999 a zone offset can leave datetime's range, and the
            # platform's local-time conversion may reject the timestamp. Fall back
            # to UTC, which needs no conversion.
            moment = _EPOCH + datetime.timedelta(seconds=seconds)
            suffix = "Z"

        # With glibc, strftime's %Y writes year 999 as `999`, not `0999`.
        return (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
            f".{milliseconds:03d}{suffix}"
        )


def _render_value(value: Any) -> str:
    """Render a JSON value as neutralized text: null as empty, non-strings as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralize(value)
    return neutralize(_encode_json(value).decode("utf-8"))


class PrettyFormatter(Formatter):
    """Writes one aligned line for a person: time, severity, event type, title and resource.

    A field that is missing, null or empty shows as `-`. The title falls back to
    the summary. Severity and event type are padded to fixed widths, so columns
    line up unless a value is longer than its column.
    """

    def __init__(
        self, *, color: bool = False, utc: bool = False, tz: datetime.tzinfo | None = None
    ) -> None:
        self._color = color
        self._time = _TimeRenderer(utc=utc, tz=tz)

    def format(self, event: Event) -> bytes:
        raw = event.raw
        severity = self._field(raw, "severity")
        event_type = self._field(raw, "eventType")
        title = self._field(raw, "title") or self._field(raw, "summary") or _MISSING
        resource_type = self._field(raw, "resourceType")
        resource_id = self._field(raw, "resourceId")

        if resource_type or resource_id:
            resource = f"{resource_type or _MISSING}/{resource_id or _MISSING}"
        else:
            resource = _MISSING

        columns = [
            self._time.render(event.time_ns),
            self._severity_column(severity or _MISSING),
            f"{event_type or _MISSING:<{_EVENT_TYPE_WIDTH}}",
            f"{title}  {resource}",
        ]
        return (" ".join(columns) + "\n").encode("utf-8")

    @staticmethod
    def _field(raw: Mapping[str, Any], key: str) -> str:
        return _render_value(raw.get(key))

    def _severity_column(self, severity: str) -> str:
        padding = " " * max(_SEVERITY_WIDTH - len(severity), 0)
        sgr = _SEVERITY_SGR.get(severity.lower()) if self._color else None
        if sgr is None:
            return severity + padding
        return f"{sgr}{severity}{_SGR_RESET}{padding}"


class _Field:
    """One replacement field of a template: a dotted key path and a text format spec."""

    __slots__ = ("format_spec", "path")

    def __init__(self, path: tuple[str, ...], format_spec: str) -> None:
        self.path = path
        self.format_spec = format_spec


_MISSING_VALUE = object()


def _lookup(raw: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Walk `path` through nested JSON objects, by key only."""
    value: Any = raw
    for key in path:
        # Only dicts are walked, and only with item lookup, so a template can never
        # reach a Python attribute, whatever the path contains.
        if not isinstance(value, dict):
            return _MISSING_VALUE
        value = value.get(key, _MISSING_VALUE)
        if value is _MISSING_VALUE:
            return _MISSING_VALUE
    return value


class TemplateFormatter(Formatter):
    """Writes each event through a `str.format`-style template over the raw event.

    `{eventType}` selects a key, `{attributes.exit_code}` a key of a nested object,
    and `{time}` the event time as the pretty format shows it, so an event key
    named `time` cannot be selected. A missing key or a null renders as empty
    text, a string as it is, and any other value as compact JSON. A format spec
    applies to that text, so `{severity:<8}` pads. Values pass through
    `neutralize`, but the template's own text is written as given.
    Construction raises ConfigError for a template it cannot render.
    """

    def __init__(
        self, template: str, *, utc: bool = False, tz: datetime.tzinfo | None = None
    ) -> None:
        self._pieces = _parse_template(template)
        self._time = _TimeRenderer(utc=utc, tz=tz)

    def format(self, event: Event) -> bytes:
        parts: list[str] = []
        for piece in self._pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue

            if piece.path == (_TIME_FIELD,):
                text = self._time.render(event.time_ns)
            else:
                value = _lookup(event.raw, piece.path)
                text = "" if value is _MISSING_VALUE else _render_value(value)
            parts.append(format(text, piece.format_spec))

        parts.append("\n")
        return "".join(parts).encode("utf-8")


_TEMPLATE_EXAMPLE = "{time} {severity} {eventType} {attributes.exit_code}"


def _template_error(template: str, problem: str) -> ConfigError:
    return ConfigError(f"invalid template {template!r}: {problem}")


def _parse_template(template: str) -> list[str | _Field]:
    """Split a template into literal text and fields, rejecting what it cannot render."""
    if not template:
        raise ConfigError(
            f"invalid template '': it is empty. Give a template such as {_TEMPLATE_EXAMPLE!r}."
        )

    for char in template:
        if char in _LINE_BREAKS:
            raise _template_error(
                template,
                f"it contains the line break {neutralize(char)}, but each event must "
                "print as one line. The newline after each event is added for you.",
            )

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _template_error(
            template,
            f"{exc}. Write a literal brace as {{{{ or }}}}, "
            f"and a field as a key in braces, such as {_TEMPLATE_EXAMPLE}.",
        ) from None

    pieces: list[str | _Field] = []
    for literal, field_name, format_spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if field_name is None:
            continue
        path = _parse_field_name(template, field_name)
        _check_conversion(template, field_name, conversion)
        _check_format_spec(template, field_name, format_spec or "")
        pieces.append(_Field(path, format_spec or ""))
    return pieces


def _parse_field_name(template: str, field_name: str) -> tuple[str, ...]:
    if not field_name:
        raise _template_error(
            template,
            "it has an empty field {}, but fields are named by event keys. "
            "Name a key, such as {eventType}.",
        )
    if "[" in field_name:
        raise _template_error(
            template,
            f"field {{{field_name}}} uses index access, which templates do not support. "
            "Select nested keys with a dotted path, such as {attributes.exit_code}.",
        )

    path = tuple(field_name.split("."))
    if "" in path:
        raise _template_error(
            template,
            f"field {{{field_name}}} has an empty key in its dotted path. "
            "Separate keys with single dots, such as {attributes.exit_code}.",
        )
    for key in path:
        if key.startswith("__") and key.endswith("__"):
            raise _template_error(
                template,
                f"field {{{field_name}}} names {key}, which looks like a Python attribute. "
                "Templates have no attribute access, because a dotted path selects keys "
                "of the event's JSON objects only, such as {attributes.exit_code}.",
            )
    return path


def _check_conversion(template: str, field_name: str, conversion: str | None) -> None:
    # `!s` is what every field does anyway. `!r` and `!a` would print Python
    # representations, which are neither the event's text nor JSON.
    if conversion is None or conversion == "s":
        return
    raise _template_error(
        template,
        f"field {{{field_name}}} uses the conversion !{conversion}, which templates do "
        "not support. Remove it, because values already render as text or JSON.",
    )


def _check_format_spec(template: str, field_name: str, format_spec: str) -> None:
    # Every value is rendered as text first, so only specs valid for strings can
    # be honoured for every event. Checking now keeps format() from failing later.
    try:
        format("", format_spec)
    except ValueError:
        raise _template_error(
            template,
            f"field {{{field_name}}} has the format spec {format_spec!r}, which cannot "
            "format text. Use fill, alignment, width and precision only, "
            "such as <10, >8 or .40.",
        ) from None


def make_formatter(
    kind: OutputFormat,
    *,
    color: bool = False,
    utc: bool = False,
    template: str | None = None,
    tz: datetime.tzinfo | None = None,
) -> Formatter:
    """Build the formatter for `kind`.

    `color` adds ANSI colours to pretty output. `utc` shows times in UTC with a
    `Z`, and otherwise `tz` is used, or the local zone when `tz` is None. Raises
    ConfigError for an unknown kind, for a missing or invalid template with
    `kind="template"`, and for a template given with any other kind.
    """
    if template is not None and kind != "template":
        raise ConfigError(
            f"a template was given with output format {kind!r}. "
            "Choose the template output format, or drop the template."
        )

    factories: dict[str, Callable[[], Formatter]] = {
        "pretty": lambda: PrettyFormatter(color=color, utc=utc, tz=tz),
        "json": JsonFormatter,
        "template": lambda: _make_template_formatter(template, utc=utc, tz=tz),
    }
    factory = factories.get(kind)
    if factory is None:
        raise ConfigError(
            f"invalid output format {kind!r}: choose one of {', '.join(sorted(factories))}."
        )
    return factory()


def _make_template_formatter(
    template: str | None, *, utc: bool, tz: datetime.tzinfo | None
) -> TemplateFormatter:
    if template is None:
        raise ConfigError(
            "output format 'template' needs a template, such as "
            f"{_TEMPLATE_EXAMPLE!r}, but none was given."
        )
    return TemplateFormatter(template, utc=utc, tz=tz)


def use_color(
    stream: IO[str] | IO[bytes], *, no_color_flag: bool, environ: Mapping[str, str]
) -> bool:
    """Decide whether to colour output written to `stream`.

    True only when `no_color_flag` is off, NO_COLOR is unset or empty (a non-empty
    value of any kind disables colour, as no-color.org specifies) and the stream
    is a terminal.
    """
    if no_color_flag:
        return False
    if environ.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):
        # A closed stream raises ValueError, and colour on it would be pointless.
        return False
