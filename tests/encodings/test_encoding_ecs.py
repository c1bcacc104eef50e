from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailer.encodings import EcsEncoder
from tailer.encodings.ecs import ECS_VERSION
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

# Every field the mapping reads, for the sparse and null cases.
MAPPED_FIELDS = [
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
    "attributes",
    "threadId",
    "agentRunId",
    "sandboxId",
    "workspaceId",
    "toolSlug",
    "installableAgentInstallId",
    "runmeshNodeId",
    "codeExecutionId",
]

BASE_EVENT_FIELDS = {"kind": "event", "module": "runtools", "dataset": "runtools.activity"}


def encode(raw: dict[str, Any]) -> dict[str, Any]:
    payload = EcsEncoder().encode(parse_event(raw))
    assert b"\n" not in payload
    assert b"\r" not in payload
    document = orjson.loads(payload)
    assert isinstance(document, dict)
    return document


def test_ecs_full_event() -> None:
    assert encode(FULL_RAW) == {
        "@timestamp": "2026-05-10T12:00:00.123456789Z",
        "ecs": {"version": "8.11.0"},
        "event": {
            **BASE_EVENT_FIELDS,
            "id": "act_01",
            "action": "code.execution.failed",
            "category": ["process"],
            "type": ["end"],
            "outcome": "failure",
            "severity": 8,
        },
        "log": {"level": "error"},
        "message": "Command exited with code 2",
        "organization": {"id": "org_7"},
        "user": {"id": "user_3"},
        "related": {"user": ["user_3"]},
        "runtools": {
            "actor": {"type": "user"},
            "resource": {"type": "code_execution", "id": "ce_9"},
            "status": "failed",
            "thread": {"id": "th_1"},
            "agent_run": {"id": "run_2"},
            "sandbox": {"id": "sb_123"},
            "workspace": {"id": "ws_4"},
            "tool": {"slug": "github"},
            "installable_agent_install": {"id": "iai_5"},
            "runmesh_node": {"id": "node_6"},
            "code_execution": {"id": "ce_9"},
            "event": FULL_RAW,
        },
    }


def test_ecs_timestamp_is_first_key() -> None:
    payload = EcsEncoder().encode(parse_event(FULL_RAW))

    assert payload.startswith(b'{"@timestamp":"2026-05-10T12:00:00.123456789Z","ecs":')


def test_ecs_sparse_event() -> None:
    raw = {"id": "act_02", "createdAt": "2026-05-10T12:00:00Z"}

    assert encode(raw) == {
        "@timestamp": "2026-05-10T12:00:00.000000000Z",
        "ecs": {"version": ECS_VERSION},
        "event": {**BASE_EVENT_FIELDS, "id": "act_02"},
        "runtools": {"event": raw},
    }


def test_ecs_null_fields_omitted() -> None:
    raw: dict[str, Any] = {"id": "act_03", "createdAt": "2026-05-10T12:00:00Z"}
    raw.update(dict.fromkeys(MAPPED_FIELDS))

    assert encode(raw) == {
        "@timestamp": "2026-05-10T12:00:00.000000000Z",
        "ecs": {"version": ECS_VERSION},
        "event": {**BASE_EVENT_FIELDS, "id": "act_03"},
        "runtools": {"event": raw},
    }


def test_ecs_empty_strings_omitted() -> None:
    raw: dict[str, Any] = {"id": "act_04", "createdAt": "2026-05-10T12:00:00Z"}
    raw.update(dict.fromkeys(MAPPED_FIELDS, ""))

    assert encode(raw) == {
        "@timestamp": "2026-05-10T12:00:00.000000000Z",
        "ecs": {"version": ECS_VERSION},
        "event": {**BASE_EVENT_FIELDS, "id": "act_04"},
        "runtools": {"event": raw},
    }


def test_ecs_timestamp_converted_to_utc() -> None:
    raw = {"id": "a", "occurredAt": "2026-05-10T14:00:00.5+02:00"}

    assert encode(raw)["@timestamp"] == "2026-05-10T12:00:00.500000000Z"


def test_ecs_integer_id_as_text() -> None:
    raw = {"id": 42, "createdAt": "2026-05-10T12:00:00Z"}

    assert encode(raw)["event"]["id"] == "42"


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        ("Title", "Summary", "Title"),
        (None, "Summary", "Summary"),
        ("", "Summary", "Summary"),
        (None, None, None),
    ],
)
def test_ecs_message_source(title: str | None, summary: str | None, expected: str | None) -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "title": title, "summary": summary}

    assert encode(raw).get("message") == expected


def test_ecs_non_string_values_as_json_text() -> None:
    raw = {
        "id": "a",
        "createdAt": "2026-05-10T12:00:00Z",
        "actorUserId": 42,
        "orgId": True,
        "status": {"phase": "done"},
        "title": ["a", 1],
    }

    document = encode(raw)

    assert document["user"] == {"id": "42"}
    assert document["related"] == {"user": ["42"]}
    assert document["organization"] == {"id": "true"}
    assert document["runtools"]["status"] == '{"phase":"done"}'
    assert document["event"]["outcome"] == "unknown"
    assert document["message"] == '["a",1]'


def test_ecs_keeps_hostile_text_exactly() -> None:
    title = 'CEF:0|a|b|c|d|e|5|x=y \\ "quoted"\r\nnext\u2028line é 🦀'
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "title": title, "resourceId": "a=b|c"}

    document = encode(raw)

    assert document["message"] == title
    assert document["runtools"]["resource"] == {"id": "a=b|c"}


@pytest.mark.parametrize(
    ("severity", "level"),
    [("info", 3), ("success", 3), ("warning", 6), ("error", 8), ("ERROR", 8)],
)
def test_ecs_severity_levels(severity: str, level: int) -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "severity": severity}

    document = encode(raw)

    assert document["event"]["severity"] == level
    assert document["log"] == {"level": severity}


def test_ecs_unknown_severity_has_no_level() -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "severity": "critical"}

    document = encode(raw)

    assert "severity" not in document["event"]
    assert document["log"] == {"level": "critical"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("completed", "success"),
        ("failed", "failure"),
        ("Failed", "failure"),
        ("started", "unknown"),
        ("added", "unknown"),
        ("something-new", "unknown"),
    ],
)
def test_ecs_outcome_from_status(status: str, expected: str) -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "status": status}

    assert encode(raw)["event"]["outcome"] == expected


def test_ecs_missing_status_has_no_outcome() -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "severity": "success"}

    assert "outcome" not in encode(raw)["event"]


@pytest.mark.parametrize(
    ("resource_type", "status", "event_type", "category", "event_kind"),
    [
        ("sandbox", "started", "sandbox.started", "host", "start"),
        ("sandbox", "completed", None, "host", "end"),
        # Hosts have no `creation` type in ECS, so a created sandbox is `info`.
        ("sandbox", "created", "sandbox.created", "host", "info"),
        ("runmesh_device", "removed", "runmesh.device.removed", "host", "info"),
        ("runmesh_device", None, "runmesh.device.started", "host", "start"),
        ("code_execution", "failed", "code.execution.failed", "process", "end"),
        ("installable_agent_install", "added", None, "package", "installation"),
        ("installable_agent_install", "removed", None, "package", "deletion"),
        ("workspace", "added", "workspace.member.added", "configuration", "creation"),
        ("workspace", "updated", None, "configuration", "change"),
        ("workspace", "renamed", "workspace.renamed", "configuration", "info"),
        ("tool", "failed", "tool.call.failed", "api", "end"),
        ("tool", "denied", None, "api", "denied"),
        # The status has no type, so the last word of the event type decides.
        ("tool", "ok", "tool.call.completed", "api", "end"),
        # The status maps to a type hosts do not expect, so the event type decides.
        ("sandbox", "deleted", "sandbox.stopped", "host", "end"),
        ("sandbox", "STARTED", None, "host", "start"),
    ],
)
def test_ecs_category_and_type(
    resource_type: str,
    status: str | None,
    event_type: str | None,
    category: str,
    event_kind: str,
) -> None:
    raw = {
        "id": "a",
        "createdAt": "2026-05-10T12:00:00Z",
        "resourceType": resource_type,
        "status": status,
        "eventType": event_type,
    }

    fields = encode(raw)["event"]

    assert fields["category"] == [category]
    assert fields["type"] == [event_kind]


@pytest.mark.parametrize("resource_type", ["agent", "thread", "unknown_kind", None])
def test_ecs_no_category_for_other_resources(resource_type: str | None) -> None:
    raw = {
        "id": "a",
        "createdAt": "2026-05-10T12:00:00Z",
        "resourceType": resource_type,
        "status": "started",
    }

    fields = encode(raw)["event"]

    assert "category" not in fields
    assert "type" not in fields


def test_ecs_integer_beyond_64_bits() -> None:
    raw = {"id": "a", "count": 2**70, "title": "big"}

    payload = EcsEncoder().encode(Event("a", 0, raw))

    document = json.loads(payload)
    assert document["runtools"]["event"] == raw
    assert document["message"] == "big"


def strict_json(payload: bytes) -> Any:
    """Decode JSON and reject the Infinity and NaN that Python's json module writes."""

    def reject(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(payload, parse_constant=reject)


def test_ecs_number_beyond_double_range() -> None:
    text = (
        b'{"id": "a", "title": "odd", "big": 123456789012345678901234567890, '
        b'"huge": 1E+400, "attributes": {"x": -1E+400, "ratio": 1.50}}'
    )

    # The big integer sends the encoding to Python's json module, which would write
    # Infinity, and the number alone to orjson: both give null.
    for event_text in (text, text.replace(b"123456789012345678901234567890", b"7")):
        document = strict_json(EcsEncoder().encode(Event("a", 0, None, json=event_text)))
        assert isinstance(document, dict)
        assert document["runtools"]["event"]["huge"] is None
        assert document["runtools"]["event"]["attributes"] == {"x": None, "ratio": 1.5}
    assert document["runtools"]["event"]["big"] == 7


def test_ecs_lone_surrogate() -> None:
    raw = {"id": "a", "title": "bad \ud800 text"}

    payload = EcsEncoder().encode(Event("a", 0, raw))

    assert payload.isascii()
    assert json.loads(payload)["runtools"]["event"] == raw


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
RAW_EVENTS = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries(
        {"id": st.text(min_size=1)}, optional=dict.fromkeys(MAPPED_FIELDS, JSON_VALUES)
    ),
    st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4),
)


@given(raw=RAW_EVENTS, time_ns=st.integers(min_value=0, max_value=253402300799 * 10**9))
def test_ecs_keeps_raw_event(raw: dict[str, Any], time_ns: int) -> None:
    payload = EcsEncoder().encode(Event("a", time_ns, raw))

    assert b"\n" not in payload
    assert b"\r" not in payload
    document = orjson.loads(payload)
    assert isinstance(document, dict)
    assert document["runtools"]["event"] == raw
    assert document["event"]["id"] == "a"
    assert document["ecs"] == {"version": ECS_VERSION}
