from __future__ import annotations

import datetime
import io
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailer.errors import ConfigError
from tailer.event import Event, parse_event
from tailer.output import Formatter, OutputFormat, make_formatter, neutralize, use_color
from tailer.timeparse import parse_time

PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))

RED = "\x1b[31m"
YELLOW = "\x1b[33m"
GREEN = "\x1b[32m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"

# Every character that must never reach the terminal from event text: C0, DEL,
# C1, the bidirectional controls and the line and paragraph separators.
FORBIDDEN = frozenset(
    [chr(code) for code in range(0x20)]
    + [chr(code) for code in range(0x7F, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    + [chr(code) for code in range(0x202A, 0x202F)]
    + [chr(code) for code in range(0x2066, 0x206A)]
)


def sample_raw() -> dict[str, Any]:
    return {
        "id": "act_01",
        "orgId": "org_7",
        "actorUserId": "user_3",
        "actorType": "user",
        "resourceType": "sandbox",
        "resourceId": "sb_123",
        "eventType": "sandbox.exec.failed",
        "severity": "error",
        "status": "failed",
        "title": "Command exited with code 2",
        "summary": "make test failed",
        "attributes": {
            "exit_code": 2,
            "command": "make test",
            "retried": False,
            "tags": ["ci", "nightly"],
            "signal": None,
            "limits": {"cpu": 2, "memory_mb": 512},
        },
        "sandboxId": "sb_123",
        "createdAt": "2026-12-04T18:45:02.123456789Z",
        "futureField": {"nested": [1, 2.5, "x"]},
    }


def sample_event(**changes: Any) -> Event:
    raw = sample_raw()
    for key, value in changes.items():
        if value is ...:
            del raw[key]
        else:
            raw[key] = value
    return parse_event(raw)


def minimal_event(**fields: Any) -> Event:
    return parse_event({"id": "act_02", "createdAt": "2026-12-04T18:45:02.5Z", **fields})


def pretty_line(event: Event, **options: Any) -> bytes:
    options.setdefault("tz", PLUS_ONE)
    return make_formatter("pretty", **options).format(event)


def template_line(template: str, event: Event, **options: Any) -> bytes:
    options.setdefault("tz", PLUS_ONE)
    return make_formatter("template", template=template, **options).format(event)


def assert_one_safe_line(line: bytes) -> None:
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    text = line.decode("utf-8")
    assert len(text.splitlines()) == 1
    assert not FORBIDDEN.intersection(text[:-1])


# --- pretty ----------------------------------------------------------------


def test_pretty_exact_line() -> None:
    assert pretty_line(sample_event()) == (
        b"2026-12-04 19:45:02.123 error   sandbox.exec.failed      "
        b"Command exited with code 2  sandbox/sb_123\n"
    )


def test_pretty_utc_adds_z() -> None:
    assert pretty_line(sample_event(), utc=True, tz=None) == (
        b"2026-12-04 18:45:02.123Z error   sandbox.exec.failed      "
        b"Command exited with code 2  sandbox/sb_123\n"
    )


def test_pretty_utc_overrides_tz() -> None:
    line = pretty_line(sample_event(), utc=True, tz=PLUS_ONE)

    assert line.startswith(b"2026-12-04 18:45:02.123Z ")


def test_pretty_truncates_to_milliseconds() -> None:
    event = sample_event(createdAt="2026-12-31T23:59:59.999999999Z")

    assert pretty_line(event, utc=True).startswith(b"2026-12-31 23:59:59.999Z ")


def test_pretty_whole_second_shows_zero_milliseconds() -> None:
    event = sample_event(createdAt="2026-05-10T12:00:00Z")

    assert pretty_line(event, utc=True).startswith(b"2026-05-10 12:00:00.000Z ")


def test_pretty_named_zone_follows_daylight_saving() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    winter = sample_event(createdAt="2026-01-15T12:00:00Z")
    summer = sample_event(createdAt="2026-07-15T12:00:00Z")

    assert pretty_line(winter, tz=berlin).startswith(b"2026-01-15 13:00:00.000 ")
    assert pretty_line(summer, tz=berlin).startswith(b"2026-07-15 14:00:00.000 ")


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is Unix only")
def test_pretty_defaults_to_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # POSIX TZ offsets are west-positive, so this zone is UTC+03:00.
    monkeypatch.setenv("TZ", "XST-3")
    time.tzset()
    try:
        line = make_formatter("pretty").format(sample_event())
    finally:
        monkeypatch.undo()
        time.tzset()

    assert line.startswith(b"2026-12-04 21:45:02.123 ")


def test_pretty_overflowing_zone_uses_utc() -> None:
    # Shifting the first second of year 1 west would leave datetime's range.
    event = sample_event(createdAt="0001-01-01T00:00:00Z")
    minus_five = datetime.timezone(datetime.timedelta(hours=-5))

    assert pretty_line(event, tz=minus_five).startswith(b"0001-01-01 00:00:00.000Z ")


def test_pretty_pads_year_below_1000() -> None:
    event = sample_event(createdAt="0999-03-04T05:06:07Z")

    assert pretty_line(event, utc=True).startswith(b"0999-03-04 05:06:07.000Z ")


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("error", f"{RED}error{RESET}  "),
        ("warning", f"{YELLOW}warning{RESET}"),
        ("success", f"{GREEN}success{RESET}"),
        ("info", f"{DIM}info{RESET}   "),
        ("ERROR", f"{RED}ERROR{RESET}  "),
        ("notice", "notice "),
        ("critical", "critical"),
    ],
)
def test_pretty_colours_severity(severity: str, expected: str) -> None:
    line = pretty_line(sample_event(severity=severity), color=True)

    assert line.decode() == (
        f"2026-12-04 19:45:02.123 {expected} sandbox.exec.failed      "
        "Command exited with code 2  sandbox/sb_123\n"
    )


@pytest.mark.parametrize("severity", [None, ...])
def test_pretty_missing_severity_uncoloured(severity: Any) -> None:
    line = pretty_line(sample_event(severity=severity), color=True)

    assert line.startswith(b"2026-12-04 19:45:02.123 -       sandbox.exec.failed ")
    assert b"\x1b" not in line


@pytest.mark.parametrize("severity", ["error", "warning", "success", "info"])
def test_pretty_without_colour_has_no_escape(severity: str) -> None:
    line = pretty_line(sample_event(severity=severity), color=False)

    assert b"\x1b" not in line


def test_pretty_columns_line_up() -> None:
    events = [
        sample_event(severity="info", eventType="agent.run.started"),
        sample_event(severity="warning", eventType="tool.call.retried"),
        sample_event(severity="success", eventType="thread.message.added"),
    ]

    title_columns = {pretty_line(event).decode().index("Command exited") for event in events}

    assert len(title_columns) == 1


def test_pretty_long_event_type_keeps_separator() -> None:
    event_type = "installable_agent_install.completed"
    line = pretty_line(sample_event(eventType=event_type))

    assert f" {event_type} Command exited".encode() in line


def test_pretty_only_id_and_time() -> None:
    assert pretty_line(minimal_event()) == (
        b"2026-12-04 19:45:02.500 -       -                        -  -\n"
    )


def test_pretty_null_fields_show_dash() -> None:
    event = minimal_event(
        severity=None,
        eventType=None,
        title=None,
        summary=None,
        resourceType=None,
        resourceId=None,
    )

    assert pretty_line(event) == (
        b"2026-12-04 19:45:02.500 -       -                        -  -\n"
    )


def test_pretty_empty_strings_show_dash() -> None:
    event = minimal_event(severity="", eventType="", title="", resourceType="", resourceId="")

    assert pretty_line(event) == (
        b"2026-12-04 19:45:02.500 -       -                        -  -\n"
    )


def test_pretty_title_falls_back_to_summary() -> None:
    line = pretty_line(sample_event(title=None))

    assert b"  make test failed  sandbox/sb_123\n" in line


def test_pretty_title_preferred_over_summary() -> None:
    line = pretty_line(sample_event())

    assert b"make test failed" not in line


@pytest.mark.parametrize(
    ("resource_type", "resource_id", "expected"),
    [
        ("sandbox", ..., b"  sandbox/-\n"),
        (..., "sb_123", b"  -/sb_123\n"),
        (None, "sb_123", b"  -/sb_123\n"),
        (..., ..., b"  -\n"),
    ],
)
def test_pretty_partial_resource(resource_type: Any, resource_id: Any, expected: bytes) -> None:
    event = sample_event(resourceType=resource_type, resourceId=resource_id)

    assert pretty_line(event).endswith(b"Command exited with code 2" + expected)


def test_pretty_non_string_values_as_json() -> None:
    event = minimal_event(
        severity=3,
        eventType=True,
        title={"text": "hi", "n": [1, None]},
        resourceType="tool",
        resourceId=42,
    )

    assert pretty_line(event) == (
        b'2026-12-04 19:45:02.500 3       true                     {"text":"hi","n":[1,null]}'
        b"  tool/42\n"
    )


def test_pretty_keeps_ordinary_unicode() -> None:
    line = pretty_line(sample_event(title="Déploiement réussi ✅ 完成"))

    assert "  Déploiement réussi ✅ 完成  sandbox/sb_123\n".encode() in line


# --- hostile text ----------------------------------------------------------

HOSTILE = [
    pytest.param("\x1b[2Jcleared", "\\x1b[2Jcleared", id="clear-screen"),
    pytest.param("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07", id="osc-title-bel"),
    pytest.param("\x1b]2;pwned\x1b\\", "\\x1b]2;pwned\\x1b\\", id="osc-title-st"),
    pytest.param("all good\rEVIL", "all good\\x0dEVIL", id="carriage-return"),
    pytest.param("\u202eexe.txt", "\\u202eexe.txt", id="bidi-override"),
    pytest.param("\u2067isolated\u2069", "\\u2067isolated\\u2069", id="bidi-isolate"),
    pytest.param("\x9b2J", "\\x9b2J", id="c1-csi"),
    pytest.param("first\nsecond", "first\\x0asecond", id="newline"),
    pytest.param("a\u2028b\u2029c", "a\\u2028b\\u2029c", id="line-separators"),
    pytest.param("tab\there\x07\x7f", "tab\\x09here\\x07\\x7f", id="tab-bel-del"),
]


@pytest.mark.parametrize(("text", "escaped"), HOSTILE)
def test_pretty_neutralizes_title(text: str, escaped: str) -> None:
    line = pretty_line(sample_event(title=text), color=True)

    assert f"  {escaped}  sandbox/sb_123\n".encode() in line
    assert_one_safe_line(line.replace(RED.encode(), b"").replace(RESET.encode(), b""))


@pytest.mark.parametrize("field", ["severity", "eventType", "resourceType", "resourceId"])
@pytest.mark.parametrize(("text", "escaped"), HOSTILE)
def test_pretty_neutralizes_every_column(field: str, text: str, escaped: str) -> None:
    line = pretty_line(sample_event(**{field: text}), color=True)

    assert escaped.encode() in line
    assert_one_safe_line(line.replace(RED.encode(), b"").replace(RESET.encode(), b""))


@pytest.mark.parametrize(("text", "escaped"), HOSTILE)
def test_template_neutralizes_values(text: str, escaped: str) -> None:
    event = sample_event(title=text, attributes={"note": text, "list": [text]})
    line = template_line("{title}|{attributes.note}", event)

    assert line == f"{escaped}|{escaped}\n".encode()
    assert_one_safe_line(line)


@pytest.mark.parametrize(("text", "escaped"), HOSTILE)
def test_template_json_values_stay_safe(text: str, escaped: str) -> None:
    event = sample_event(attributes={"list": [text]})
    line = template_line("{attributes.list}", event)

    assert_one_safe_line(line)
    assert json.loads(line) == [text]


# --- neutralize ------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\x00", "\\x00"),
        ("\x09", "\\x09"),
        ("\x0a", "\\x0a"),
        ("\x0d", "\\x0d"),
        ("\x1b", "\\x1b"),
        ("\x1f", "\\x1f"),
        ("\x7f", "\\x7f"),
        ("\x80", "\\x80"),
        ("\x85", "\\x85"),
        ("\x9b", "\\x9b"),
        ("\x9f", "\\x9f"),
        ("\u061c", "\\u061c"),
        ("\u200e", "\\u200e"),
        ("\u200f", "\\u200f"),
        ("\u202a", "\\u202a"),
        ("\u202e", "\\u202e"),
        ("\u2066", "\\u2066"),
        ("\u2069", "\\u2069"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\ud800", "\\ud800"),
    ],
)
def test_neutralize_escapes_character(char: str, escaped: str) -> None:
    assert neutralize(f"a{char}b") == f"a{escaped}b"


@pytest.mark.parametrize(
    "text",
    ["", "plain ascii", "C:\\Users\\build", "\xa0\xe9", "Grüße ✅ 完成 🚀", "\u200d", "\u2060"],
)
def test_neutralize_keeps_printable_text(text: str) -> None:
    assert neutralize(text) == text


def test_neutralize_output_encodes_as_utf8() -> None:
    assert neutralize("lone \udc80 surrogate").encode("utf-8") == b"lone \\udc80 surrogate"


# --- json ------------------------------------------------------------------


def test_json_exact_line() -> None:
    line = make_formatter("json").format(sample_event())

    assert line == (
        b'{"id":"act_01","orgId":"org_7","actorUserId":"user_3","actorType":"user",'
        b'"resourceType":"sandbox","resourceId":"sb_123","eventType":"sandbox.exec.failed",'
        b'"severity":"error","status":"failed","title":"Command exited with code 2",'
        b'"summary":"make test failed","attributes":{"exit_code":2,"command":"make test",'
        b'"retried":false,"tags":["ci","nightly"],"signal":null,'
        b'"limits":{"cpu":2,"memory_mb":512}},"sandboxId":"sb_123",'
        b'"createdAt":"2026-12-04T18:45:02.123456789Z","futureField":{"nested":[1,2.5,"x"]}}\n'
    )


def test_json_keeps_unknown_fields() -> None:
    event = minimal_event(brandNew={"deep": [None, True]}, severity="catastrophic")

    assert orjson.loads(make_formatter("json").format(event)) == event.raw


def test_json_ignores_display_options() -> None:
    plain = make_formatter("json").format(sample_event())
    decorated = make_formatter("json", color=True, utc=True, tz=PLUS_ONE).format(sample_event())

    assert decorated == plain


def test_json_escapes_terminal_characters() -> None:
    text = "\x1b[2J\x9b\x85\u2028\u2029\u202e\u2066\u061c\x7f\r\n"
    event = minimal_event(title=text, **{"\x1b]0;key": text})
    line = make_formatter("json").format(event)

    assert (
        b'"title":"\\u001b[2J\\u009b\\u0085\\u2028\\u2029\\u202e\\u2066\\u061c\\u007f\\r\\n"'
        in line
    )
    assert_one_safe_line(line)
    assert orjson.loads(line) == event.raw
    assert json.loads(line) == event.raw


def test_json_keeps_ordinary_unicode_raw() -> None:
    line = make_formatter("json").format(minimal_event(title="Grüße ✅"))

    assert '"title":"Grüße ✅"'.encode() in line


def test_json_integer_beyond_64_bits() -> None:
    # orjson cannot write this, but a stdlib-decoded page may contain it.
    raw = {"id": "act_03", "createdAt": "2026-12-04T18:45:02Z", "count": 2**70, "t": "\x85"}
    line = make_formatter("json").format(Event("act_03", 0, raw))

    assert_one_safe_line(line)
    assert json.loads(line) == raw


def test_json_writes_event_text_as_sent() -> None:
    text = (
        b'{"id": "act_05", "createdAt": "2026-12-04T18:45:02Z", '
        b'"count": 123456789012345678901234567890, "title": "\xe2\x80\xae\x7f \\u00e9"}'
    )
    event = Event("act_05", 0, None, json=text)
    formatter = make_formatter("json")

    # Spacing, the large integer and the escape stay; terminal characters are escaped.
    expected = b'"title": "\\u202e\\u007f \\u00e9"}\n'
    assert formatter.format(event) == text[: text.index(b'"title"')] + expected
    assert formatter.format_many([event, event]) == formatter.format(event) * 2
    assert_one_safe_line(formatter.format(event))


def test_json_lone_surrogate() -> None:
    raw = {"id": "act_04", "createdAt": "2026-12-04T18:45:02Z", "title": "bad \ud800 half"}
    line = make_formatter("json").format(Event("act_04", 0, raw))

    assert b'"title":"bad \\ud800 half"' in line
    assert_one_safe_line(line)
    assert json.loads(line) == raw


# --- template --------------------------------------------------------------


def test_template_exact_line() -> None:
    template = "{time} [{severity:<7}] {eventType} exit={attributes.exit_code} id={id}"

    assert template_line(template, sample_event()) == (
        b"2026-12-04 19:45:02.123 [error  ] sandbox.exec.failed exit=2 id=act_01\n"
    )


def test_template_time_in_utc() -> None:
    assert template_line("{time}", sample_event(), utc=True) == b"2026-12-04 18:45:02.123Z\n"


def test_template_nested_path() -> None:
    line = template_line("{attributes.limits.memory_mb}", sample_event())

    assert line == b"512\n"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{attributes.retried}", b"false\n"),
        ("{attributes.signal}", b"\n"),
        ("{attributes.tags}", b'["ci","nightly"]\n'),
        ("{attributes.limits}", b'{"cpu":2,"memory_mb":512}\n'),
        ("{futureField}", b'{"nested":[1,2.5,"x"]}\n'),
        ("{attributes.command}", b"make test\n"),
    ],
)
def test_template_renders_json_types(template: str, expected: bytes) -> None:
    assert template_line(template, sample_event()) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{nope}",
        "{attributes.nope}",
        "{nope.deeper.still}",
        "{attributes.exit_code.more}",
        "{attributes.tags.0}",
        "{title.upper}",
        "{title.__class__x}",
        "{attributes.signal.x}",
    ],
)
def test_template_missing_key_is_empty(template: str) -> None:
    assert template_line(f"<{template}>", sample_event()) == b"<>\n"


def test_template_literal_braces() -> None:
    assert template_line("{{{eventType}}}", sample_event()) == b"{sandbox.exec.failed}\n"


def test_template_str_conversion_accepted() -> None:
    assert template_line("{severity!s:>6}", sample_event()) == b" error\n"


def test_template_format_spec_on_json_value() -> None:
    assert template_line("[{attributes.exit_code:>4}]", sample_event()) == b"[   2]\n"


def test_template_format_spec_precision() -> None:
    assert template_line("{title:.7}", sample_event()) == b"Command\n"


def test_template_key_with_spaces() -> None:
    event = minimal_event(**{"odd key": "value"})

    assert template_line("{odd key}", event) == b"value\n"


def test_template_literal_text_kept() -> None:
    line = template_line("id\t{id} ✅", sample_event())

    assert line == "id\tact_01 ✅\n".encode()


@pytest.mark.parametrize(
    ("template", "fragments"),
    [
        ("{attributes[exit_code]}", ["{attributes[exit_code]}", "index access", "dotted path"]),
        ("{tags[0]}", ["{tags[0]}", "index access"]),
        ("{id.__class__}", ["__class__", "attribute", "dotted path"]),
        ("{__class__}", ["__class__", "attribute"]),
        ("{attributes.__dict__.x}", ["__dict__", "attribute"]),
        ("{}", ["{}", "empty field", "{eventType}"]),
        ("{id} {}", ["{}", "empty field"]),
        ("{attributes.}", ["{attributes.}", "empty key"]),
        ("{.id}", ["{.id}", "empty key"]),
        ("{a..b}", ["{a..b}", "empty key"]),
        ("{id!r}", ["!r", "Remove it"]),
        ("{id!a}", ["!a", "Remove it"]),
        ("{id!x}", ["!x"]),
        ("{id:d}", ["'d'", "<10"]),
        ("{id:.2f}", ["'.2f'", "<10"]),
        ("{id:=5}", ["'=5'"]),
        ("{id:,}", ["','"]),
        ("{id:{width}}", ["'{width}'"]),
        ("{id", ["'{id'", "{{ or }}"]),
        ("id}", ["'id}'", "{{ or }}"]),
        ("{id}}", ["'{id}}'", "{{ or }}"]),
        ("{{id}", ["'{{id}'", "{{ or }}"]),
        ("{id!}", ["'{id!}'", "{{ or }}"]),
        ("{id}\n", ["line break \\x0a", "one line"]),
        ("{id}\r{title}", ["line break \\x0d"]),
        ("{id}\u2028", ["line break \\u2028"]),
        ("", ["it is empty", "{eventType}"]),
    ],
)
def test_template_rejected(template: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_formatter("template", template=template)

    message = str(caught.value)
    assert message.startswith("invalid template ")
    for fragment in fragments:
        assert fragment in message


def test_template_missing_for_template_kind() -> None:
    with pytest.raises(ConfigError, match=r"needs a template, such as '\{time\}"):
        make_formatter("template")


@pytest.mark.parametrize("kind", ["pretty", "json"])
def test_template_with_other_kind_rejected(kind: Any) -> None:
    with pytest.raises(ConfigError, match=f"output format '{kind}'.*Choose the template"):
        make_formatter(kind, template="{id}")


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid output format 'xml': choose one of json"):
        make_formatter("xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "formatter",
    [
        make_formatter("pretty"),
        make_formatter("json"),
        make_formatter("template", template="{id}"),
    ],
)
def test_formatters_satisfy_protocol(formatter: Formatter) -> None:
    assert isinstance(formatter, Formatter)


# --- use_color -------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("is_tty", "environ", "no_color_flag", "expected"),
    [
        (True, {}, False, True),
        (True, {"NO_COLOR": ""}, False, True),
        (True, {"NO_COLOR": "1"}, False, False),
        (True, {"NO_COLOR": "0"}, False, False),
        (True, {"NO_COLOR": "false"}, False, False),
        (True, {}, True, False),
        (True, {"NO_COLOR": ""}, True, False),
        (False, {}, False, False),
        (False, {"NO_COLOR": ""}, False, False),
        (False, {"NO_COLOR": "1"}, False, False),
    ],
)
def test_use_color(
    is_tty: bool, environ: dict[str, str], no_color_flag: bool, expected: bool
) -> None:
    stream = FakeTerminal() if is_tty else io.StringIO()

    assert use_color(stream, no_color_flag=no_color_flag, environ=environ) is expected


def test_use_color_binary_stream() -> None:
    assert use_color(io.BytesIO(), no_color_flag=False, environ={}) is False


def test_use_color_closed_stream(tmp_path: Path) -> None:
    stream = (tmp_path / "out.txt").open("w")
    stream.close()

    assert use_color(stream, no_color_flag=False, environ={}) is False


# --- properties ------------------------------------------------------------

TEXT_FIELDS = [
    "id",
    "orgId",
    "actorUserId",
    "actorType",
    "resourceType",
    "resourceId",
    "eventType",
    "severity",
    "status",
    "title",
    "summary",
    "threadId",
    "sandboxId",
    "createdAt",
]

hostile_text = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(sorted(FORBIDDEN))), max_size=30
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(hostile_text, children, max_size=3),
    ),
    max_leaves=8,
)
raw_events = st.fixed_dictionaries(
    {},
    optional={
        **{field: st.one_of(hostile_text, json_values) for field in TEXT_FIELDS},
        "attributes": json_values,
    },
)
event_times = st.integers(
    min_value=parse_time("0001-01-01T00:00:00Z"),
    max_value=parse_time("9999-12-31T23:59:59.999999999Z"),
)
zones = st.sampled_from(
    [None, PLUS_ONE, datetime.UTC, datetime.timezone(datetime.timedelta(hours=-12))]
)

PROPERTY_TEMPLATE = (
    "{time} {id} {severity:<8} {eventType} {title} {summary} {resourceType}/{resourceId} "
    "{attributes} {attributes.exit_code} {attributes.a.b} {unknown}"
)


def strip_our_colours(line: bytes) -> bytes:
    for code in (RED, YELLOW, GREEN, DIM, RESET):
        line = line.replace(code.encode(), b"")
    return line


@given(raw=raw_events, time_ns=event_times, tz=zones, utc=st.booleans(), color=st.booleans())
def test_pretty_any_text_one_safe_line(
    raw: dict[str, Any], time_ns: int, tz: datetime.tzinfo | None, utc: bool, color: bool
) -> None:
    formatter = make_formatter("pretty", color=color, utc=utc, tz=tz)

    line = formatter.format(Event("act_p", time_ns, raw))

    assert_one_safe_line(strip_our_colours(line))


@given(raw=raw_events, time_ns=event_times, tz=zones, utc=st.booleans())
def test_template_any_text_one_safe_line(
    raw: dict[str, Any], time_ns: int, tz: datetime.tzinfo | None, utc: bool
) -> None:
    formatter = make_formatter("template", template=PROPERTY_TEMPLATE, utc=utc, tz=tz)

    line = formatter.format(Event("act_t", time_ns, raw))

    assert_one_safe_line(line)


@given(raw=raw_events, time_ns=event_times)
def test_json_any_event_round_trips(raw: dict[str, Any], time_ns: int) -> None:
    line = make_formatter("json").format(Event("act_j", time_ns, raw))

    assert_one_safe_line(line)
    # The standard library, unlike orjson, decodes the escape of a lone surrogate.
    assert json.loads(line) == raw


@given(
    raws=st.lists(raw_events, max_size=8),
    formatter_name=st.sampled_from(["json", "pretty"]),
)
def test_batch_equals_lines_one_by_one(
    raws: list[dict[str, Any]], formatter_name: OutputFormat
) -> None:
    formatter = make_formatter(formatter_name, tz=PLUS_ONE)
    events = [Event(f"act_{n}", n * 1_000_000_007, raw) for n, raw in enumerate(raws)]

    assert formatter.format_many(events) == b"".join(formatter.format(e) for e in events)


def test_json_batch_escapes_terminal_controls_on_every_line() -> None:
    events = [
        minimal_event(title="plain"),
        minimal_event(title="bell\x7f and \u202e reversed"),
        minimal_event(title="caf\u00e9 \u2028 next"),
        minimal_event(size=2**70),  # beyond orjson's 64 bits: the standard library writes it
    ]

    lines = make_formatter("json").format_many(events).split(b"\n")

    assert lines[-1] == b""
    assert [json.loads(line)["title"] for line in lines[:3]] == [
        "plain",
        "bell\x7f and \u202e reversed",
        "caf\u00e9 \u2028 next",
    ]
    assert lines[1] == (
        b'{"id":"act_02","createdAt":"2026-12-04T18:45:02.5Z",'
        b'"title":"bell\\u007f and \\u202e reversed"}'
    )
    assert b"caf\xc3\xa9 \\u2028 next" in lines[2]
    assert json.loads(lines[3])["size"] == 2**70
