"""The CEF encoding, checked with exact lines and with a small parser written from the spec.

The parser below follows the CEF rules, not the encoder. The header is seven
pipe-separated fields in which `\\|` and `\\\\` are escapes. The extension is
`key=value` pairs. A key is the word before an unescaped `=`, and its value runs
up to the space before the next key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailer import __version__
from tailer.encodings import CefEncoder
from tailer.encodings.cef import escape_extension_value, escape_header_field
from tailer.event import Event, parse_event

FULL_RAW: dict[str, Any] = {
    "id": "act_01",
    "orgId": "org_7",
    "actorUserId": "user_3",
    "actorType": "user",
    "resourceType": "code_execution",
    "resourceId": "ce_9",
    "eventType": "code.execution.failed",
    "severity": "error",
    "status": "failed",
    "title": "Command exited with code 2",
    "summary": "make test failed",
    "attributes": {"exit_code": 2, "command": "make test"},
    "threadId": "th_1",
    "agentRunId": "run_2",
    "sandboxId": "sb_123",
    "workspaceId": "ws_4",
    "toolSlug": "github",
    "installableAgentInstallId": "iai_5",
    "runmeshNodeId": "node_6",
    "codeExecutionId": "ce_9",
    "createdAt": "2026-05-10T12:00:00.123456789Z",
    "newField": {"nested": [1, 2]},
}

# Extension key of each source field whose text is copied unchanged.
EXTENSION_KEYS = {
    "eventType": "act",
    "resourceType": "cat",
    "actorUserId": "suid",
    "summary": "msg",
    "resourceId": "cs1",
    "orgId": "cs2",
    "status": "cs3",
    "threadId": "cs4",
    "agentRunId": "cs5",
    "sandboxId": "cs6",
    "workspaceId": "flexString1",
    "toolSlug": "flexString2",
    "actorType": "RunToolsTailActorType",
    "installableAgentInstallId": "RunToolsTailInstallableAgentInstallId",
    "runmeshNodeId": "RunToolsTailRunmeshNodeId",
    "codeExecutionId": "RunToolsTailCodeExecutionId",
    "attributes": "RunToolsTailAttributes",
}
TEXT_FIELDS = [*EXTENSION_KEYS, "title", "severity"]

# 2026-05-10T12:00:00Z in epoch milliseconds.
NOON_MS = 1778414400000
PREFIX = "CEF:0|RunTools|runtools-tail|1.2.3|"


def encode(raw: dict[str, Any]) -> str:
    payload = CefEncoder(device_version="1.2.3").encode(parse_event(raw))
    assert b"\n" not in payload
    assert b"\r" not in payload
    return payload.decode("utf-8")


def minimal(**fields: Any) -> dict[str, Any]:
    return {"id": "a", "createdAt": "2026-05-10T12:00:00Z", **fields}


_HEADER_ESCAPES = {"\\": "\\", "|": "|"}
_EXTENSION_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}


def parse_cef(line: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Split a CEF line into its seven unescaped header fields and its extension pairs."""
    header: list[str] = []
    field: list[str] = []
    position = 0
    while len(header) < 7:
        char = line[position]
        if char == "\\":
            field.append(_HEADER_ESCAPES[line[position + 1]])
            position += 2
        elif char == "|":
            header.append("".join(field))
            field = []
            position += 1
        else:
            field.append(char)
            position += 1
    return header, parse_extension(line[position:])


def parse_extension(text: str) -> list[tuple[str, str]]:
    equals_signs = []
    position = 0
    while position < len(text):
        if text[position] == "\\":
            position += 2
            continue
        if text[position] == "=":
            equals_signs.append(position)
        position += 1

    key_starts = [text.rfind(" ", 0, equals) + 1 for equals in equals_signs]
    pairs = []
    for index, equals in enumerate(equals_signs):
        is_last = index + 1 == len(equals_signs)
        value_end = len(text) if is_last else key_starts[index + 1] - 1
        key = text[key_starts[index] : equals]
        pairs.append((key, unescape_extension(text[equals + 1 : value_end])))
    return pairs


def unescape_extension(value: str) -> str:
    chars = []
    position = 0
    while position < len(value):
        if value[position] == "\\":
            chars.append(_EXTENSION_ESCAPES[value[position + 1]])
            position += 2
        else:
            chars.append(value[position])
            position += 1
    return "".join(chars)


def test_cef_full_event() -> None:
    assert encode(FULL_RAW) == (
        "CEF:0|RunTools|runtools-tail|1.2.3|code.execution.failed|Command exited with code 2|8|"
        "rt=1778414400123 externalId=act_01 act=code.execution.failed cat=code_execution "
        "outcome=failure suid=user_3 msg=make test failed "
        "cs1Label=resourceId cs1=ce_9 cs2Label=orgId cs2=org_7 cs3Label=status cs3=failed "
        "cs4Label=threadId cs4=th_1 cs5Label=agentRunId cs5=run_2 cs6Label=sandboxId cs6=sb_123 "
        "flexString1Label=workspaceId flexString1=ws_4 "
        "flexString2Label=toolSlug flexString2=github "
        "RunToolsTailActorType=user RunToolsTailInstallableAgentInstallId=iai_5 "
        "RunToolsTailRunmeshNodeId=node_6 RunToolsTailCodeExecutionId=ce_9 "
        'RunToolsTailAttributes={"exit_code":2,"command":"make test"}'
    )


def test_cef_sparse_event() -> None:
    assert encode(minimal()) == f"{PREFIX}unknown|unknown|5|rt={NOON_MS} externalId=a"


def test_cef_null_fields_omitted() -> None:
    raw = minimal(**dict.fromkeys(TEXT_FIELDS))

    assert encode(raw) == f"{PREFIX}unknown|unknown|5|rt={NOON_MS} externalId=a"


def test_cef_empty_strings_omitted() -> None:
    raw = minimal(**dict.fromkeys(TEXT_FIELDS, ""))

    assert encode(raw) == f"{PREFIX}unknown|unknown|5|rt={NOON_MS} externalId=a"


def test_cef_default_device_version() -> None:
    payload = CefEncoder().encode(parse_event(minimal()))

    assert payload.startswith(f"CEF:0|RunTools|runtools-tail|{__version__}|".encode())


def test_cef_device_version_escaped() -> None:
    payload = CefEncoder(device_version="1|2\\3").encode(parse_event(minimal()))

    assert payload.startswith(b"CEF:0|RunTools|runtools-tail|1\\|2\\\\3|unknown|")


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"title": "T", "summary": "S", "eventType": "e.t"}, "T"),
        ({"title": "", "summary": "S", "eventType": "e.t"}, "S"),
        ({"title": None, "summary": None, "eventType": "e.t"}, "e.t"),
        ({}, "unknown"),
    ],
)
def test_cef_name_fallback(fields: dict[str, Any], name: str) -> None:
    header, _ = parse_cef(encode(minimal(**fields)))

    assert header[5] == name


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        ("info", "3"),
        ("success", "3"),
        ("warning", "6"),
        ("error", "8"),
        ("Warning", "6"),
        ("critical", "5"),
        (None, "5"),
        (7, "5"),
    ],
)
def test_cef_severity_levels(severity: Any, level: str) -> None:
    header, _ = parse_cef(encode(minimal(severity=severity)))

    assert header[6] == level


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("completed", "outcome=success cs3Label=status cs3=completed"),
        ("failed", "outcome=failure cs3Label=status cs3=failed"),
        ("started", "outcome=unknown cs3Label=status cs3=started"),
        ("added", "outcome=unknown cs3Label=status cs3=added"),
    ],
)
def test_cef_outcome_from_status(status: str, expected: str) -> None:
    assert encode(minimal(status=status)) == (
        f"{PREFIX}unknown|unknown|5|rt={NOON_MS} externalId=a {expected}"
    )


def test_cef_time_truncated_to_milliseconds() -> None:
    line = encode(minimal(createdAt="2026-05-10T12:00:00.001999999Z"))

    assert line == f"{PREFIX}unknown|unknown|5|rt={NOON_MS + 1} externalId=a"


def test_cef_time_before_epoch() -> None:
    payload = CefEncoder(device_version="1.2.3").encode(Event("a", -1, {"id": "a"}))

    assert payload.endswith(b"|rt=-1 externalId=a")


def test_cef_non_string_values_as_json_text() -> None:
    line = encode(minimal(actorUserId=42, status=True, attributes=[1, "x=y"]))

    assert line.endswith(
        'outcome=unknown suid=42 cs3Label=status cs3=true RunToolsTailAttributes=[1,"x\\=y"]'
    )


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("a\\b", "a\\\\b"),
        ("trailing\\", "trailing\\\\"),
        ("\\|", "\\\\\\|"),
        ("a=b", "a=b"),
        ("one\ntwo", "one two"),
        ("one\rtwo", "one two"),
        ("one\r\ntwo", "one two"),
        ("one\n\ntwo", "one  two"),
        ("one\n\rtwo", "one  two"),
        (
            "CEF:0|Evil|Corp|1|100|fake|10|src=1.2.3.4",
            "CEF:0\\|Evil\\|Corp\\|1\\|100\\|fake\\|10\\|src=1.2.3.4",
        ),
        ("Grüße, 東京", "Grüße, 東京"),
        ("crab 🦀", "crab 🦀"),
        ("tab\there", "tab\there"),
    ],
)
def test_cef_header_escaping(text: str, escaped: str) -> None:
    assert escape_header_field(text) == escaped

    line = encode(minimal(eventType=text, title=text))

    assert line == f"{PREFIX}{escaped}|{escaped}|5|rt={NOON_MS} externalId=a " + (
        f"act={escape_extension_value(text)}"
    )


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a|b", "a|b"),
        ("a=b", "a\\=b"),
        ("==", "\\=\\="),
        ("a\\b", "a\\\\b"),
        ("trailing\\", "trailing\\\\"),
        ("\\=", "\\\\\\="),
        ("one\ntwo", "one\\ntwo"),
        ("one\rtwo", "one\\rtwo"),
        ("one\r\ntwo", "one\\r\\ntwo"),
        ("literal \\n", "literal \\\\n"),
        ("x=1 suid=attacker", "x\\=1 suid\\=attacker"),
        (
            "CEF:0|Evil|Corp|1|100|fake|10|src=1.2.3.4",
            "CEF:0|Evil|Corp|1|100|fake|10|src\\=1.2.3.4",
        ),
        ("Grüße, 東京", "Grüße, 東京"),
        ("crab 🦀", "crab 🦀"),
        (" padded ", " padded "),
    ],
)
def test_cef_extension_escaping(text: str, escaped: str) -> None:
    assert escape_extension_value(text) == escaped

    line = encode(minimal(summary=text, actorUserId=text))

    assert line == (
        f"{PREFIX}unknown|{escape_header_field(text)}|5|rt={NOON_MS} externalId=a "
        f"suid={escaped} msg={escaped}"
    )
    _, pairs = parse_cef(line)
    assert pairs[-2:] == [("suid", text), ("msg", text)]


def test_cef_docs_example() -> None:
    raw = {
        "id": "act_abc123",
        "createdAt": "2026-05-10T12:00:00.250Z",
        "eventType": "tool.call.failed",
        "severity": "error",
        "status": "failed",
        "title": "Deploy | prod\\blue\r\nretry",
        "summary": "limit=3\nreached \\",
        "actorUserId": "user_3",
        "resourceType": "tool",
        "resourceId": "call_9",
        "toolSlug": "github",
    }
    docs = Path(__file__).parents[2] / "docs" / "encodings.md"

    payload = CefEncoder(device_version="0.1.0").encode(parse_event(raw))

    assert f"\n{payload.decode()}\n" in docs.read_text(encoding="utf-8")
    _, pairs = parse_cef(payload.decode())
    assert dict(pairs)["msg"] == "limit=3\nreached \\"


def test_cef_keeps_utf8_bytes() -> None:
    payload = CefEncoder(device_version="1.2.3").encode(parse_event(minimal(summary="é🦀")))

    assert payload.endswith(b"msg=\xc3\xa9\xf0\x9f\xa6\x80")


def test_cef_lone_surrogate_replaced() -> None:
    payload = CefEncoder(device_version="1.2.3").encode(Event("a", 0, {"summary": "x\ud800y"}))

    assert payload == f"{PREFIX}unknown|x\ufffdy|5|rt=0 externalId=a msg=x\ufffdy".encode()


HOSTILE_TEXT = st.lists(
    st.text(max_size=4)
    | st.sampled_from(["|", "=", "\\", "\r", "\n", "\r\n", " ", "CEF:0|", "k=v", "é", "🦀"]),
    max_size=6,
).map("".join)
RAW_EVENTS = st.fixed_dictionaries(
    {"id": st.text(min_size=1)},
    optional=dict.fromkeys(TEXT_FIELDS, st.none() | HOSTILE_TEXT),
)


def expected_header_text(raw: dict[str, Any], *fields: str) -> str:
    for field in fields:
        value = raw.get(field)
        if value:
            return str(value).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return "unknown"


@given(raw=RAW_EVENTS, time_ns=st.integers(min_value=0, max_value=253402300799 * 10**9))
def test_cef_parser_recovers_values(raw: dict[str, Any], time_ns: int) -> None:
    payload = CefEncoder(device_version="1.2.3").encode(Event(raw["id"], time_ns, raw))

    assert b"\n" not in payload
    assert b"\r" not in payload
    header, pairs = parse_cef(payload.decode("utf-8"))

    assert header[:4] == ["CEF:0", "RunTools", "runtools-tail", "1.2.3"]
    assert header[4] == expected_header_text(raw, "eventType")
    assert header[5] == expected_header_text(raw, "title", "summary", "eventType")

    values = dict(pairs)
    assert len(values) == len(pairs)
    assert values["rt"] == str(time_ns // 1_000_000)
    assert values["externalId"] == raw["id"]
    for source, key in EXTENSION_KEYS.items():
        if raw.get(source):
            assert values[key] == raw[source]
        else:
            assert key not in values


def test_cef_attributes_beyond_double_range() -> None:
    text = b'{"id": "a", "attributes": {"x": 1E+400, "b": 123456789012345678901234567890}}'

    payload = CefEncoder().encode(Event("a", 0, None, json=text))

    assert payload.endswith(b'RunToolsTailAttributes={"x":null,"b":123456789012345678901234567890}')
