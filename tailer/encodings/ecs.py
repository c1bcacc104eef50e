"""The `ecs` encoding: one Elastic Common Schema document per event.

Fields that ECS defines get their ECS names, so Elastic's dashboards and
detection rules can read them. The RunTools fields that ECS has no place for go
under the custom `runtools` namespace with ECS-style snake_case names, and the
raw event is kept whole under `runtools.event`, so nothing the API sent is lost.
Mapped fields that are missing, null or empty are left out, never written as null.
docs/encodings.md has the full mapping table.
"""

from __future__ import annotations

from typing import Any

from tailer.encodings._fields import (
    field_text,
    first_text,
    outcome,
    severity_level,
)
from tailer.event import Event
from tailer.jsontext import dumps_json
from tailer.timeparse import format_iso

__all__ = ["ECS_VERSION", "EcsEncoder", "ecs_document"]

# The ECS release whose field definitions and allowed categorization values
# this mapping follows.
ECS_VERSION = "8.11.0"

_NAMESPACE = "runtools"

# Source field and the dotted path of the document field it is copied to, as text.
_FIELD_PATHS: tuple[tuple[str, str], ...] = (
    ("orgId", "organization.id"),
    ("actorUserId", "user.id"),
    ("actorType", "runtools.actor.type"),
    ("resourceType", "runtools.resource.type"),
    ("resourceId", "runtools.resource.id"),
    ("status", "runtools.status"),
    ("threadId", "runtools.thread.id"),
    ("agentRunId", "runtools.agent_run.id"),
    ("sandboxId", "runtools.sandbox.id"),
    ("workspaceId", "runtools.workspace.id"),
    ("toolSlug", "runtools.tool.slug"),
    ("installableAgentInstallId", "runtools.installable_agent_install.id"),
    ("runmeshNodeId", "runtools.runmesh_node.id"),
    ("codeExecutionId", "runtools.code_execution.id"),
)

# The `event.category` of each resource type. Agents and threads have no ECS
# category that fits, so their events carry none.
_CATEGORIES: dict[str, str] = {
    "sandbox": "host",
    "runmesh_device": "host",
    "code_execution": "process",
    "installable_agent_install": "package",
    "workspace": "configuration",
    "tool": "api",
}

# The `event.type` values ECS expects with each category used above.
_EXPECTED_TYPES: dict[str, frozenset[str]] = {
    "host": frozenset({"access", "change", "end", "info", "start"}),
    "process": frozenset({"access", "change", "end", "info", "start"}),
    "package": frozenset({"access", "change", "deletion", "info", "installation", "start"}),
    "configuration": frozenset({"access", "change", "creation", "deletion", "info"}),
    "api": frozenset(
        {
            "access",
            "admin",
            "allowed",
            "change",
            "creation",
            "deletion",
            "denied",
            "end",
            "info",
            "start",
            "user",
        }
    ),
}

# Candidate `event.type` values for a verb in `status` or at the end of
# `eventType`, best first. The first one the category expects is used.
_TYPES_BY_VERB: dict[str, tuple[str, ...]] = {
    "started": ("start",),
    "completed": ("end",),
    "failed": ("end",),
    "stopped": ("end",),
    "finished": ("end",),
    "cancelled": ("end",),
    "canceled": ("end",),
    "terminated": ("end",),
    "created": ("creation", "installation"),
    "added": ("creation", "installation"),
    "installed": ("installation", "creation"),
    "deleted": ("deletion",),
    "removed": ("deletion",),
    "uninstalled": ("deletion",),
    "updated": ("change",),
    "changed": ("change",),
    "modified": ("change",),
    "denied": ("denied",),
}
_DEFAULT_TYPE = "info"


class EcsEncoder:
    """Encodes an event as one ECS document on one line of JSON."""

    name = "ecs"
    json_payload = True

    def encode(self, event: Event) -> bytes:
        return dumps_json(ecs_document(event))


def ecs_document(event: Event) -> dict[str, Any]:
    """Build the ECS document of `event`. It shares the raw event object rather than copying it."""
    raw = event.raw
    document: dict[str, Any] = {
        "@timestamp": format_iso(event.time_ns, digits=9),
        "ecs": {"version": ECS_VERSION},
        "event": _event_fields(event),
    }

    severity = field_text(raw, "severity")
    if severity is not None:
        document["log"] = {"level": severity}

    message = first_text(raw, "title", "summary")
    if message is not None:
        document["message"] = message

    actor = field_text(raw, "actorUserId")
    if actor is not None:
        document["related"] = {"user": [actor]}

    for source, path in _FIELD_PATHS:
        value = field_text(raw, source)
        if value is not None:
            _set_path(document, path, value)

    document.setdefault(_NAMESPACE, {})["event"] = raw
    return document


def _event_fields(event: Event) -> dict[str, Any]:
    raw = event.raw
    fields: dict[str, Any] = {
        "kind": "event",
        "module": "runtools",
        "dataset": "runtools.activity",
        "id": event.id,
    }

    action = field_text(raw, "eventType")
    if action is not None:
        fields["action"] = action

    resource_type = field_text(raw, "resourceType")
    category = _CATEGORIES.get(resource_type) if resource_type is not None else None
    if category is not None:
        fields["category"] = [category]
        fields["type"] = [_event_type(category, raw)]

    status = field_text(raw, "status")
    if status is not None:
        fields["outcome"] = outcome(status)

    severity = field_text(raw, "severity")
    level = severity_level(severity) if severity is not None else None
    if level is not None:
        fields["severity"] = level
    return fields


def _event_type(category: str, raw: dict[str, Any]) -> str:
    """Choose the `event.type` from the status, then from the last word of the event type."""
    verbs = []
    status = field_text(raw, "status")
    if status is not None:
        verbs.append(status.lower())
    event_type = field_text(raw, "eventType")
    if event_type is not None:
        verbs.append(event_type.rsplit(".", 1)[-1].lower())

    expected = _EXPECTED_TYPES[category]
    for verb in verbs:
        for candidate in _TYPES_BY_VERB.get(verb, ()):
            if candidate in expected:
                return candidate
    return _DEFAULT_TYPE


def _set_path(document: dict[str, Any], path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    target = document
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = value
