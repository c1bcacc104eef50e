"""Realistic, reproducible activity events of one fake organisation.

An `Organisation` contains small pools of users, workspaces, threads, sandboxes
and other resources, so filters on their ids match several events. An
`EventGenerator` draws events from it with its own `random.Random`, so the
same seed gives the same ids and content whatever the wall-clock time is.
Generated events have no time field: the store adds it when it renders them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from tailer.simulator.catalogue import (
    AGENTS,
    EVENT_TYPES,
    FIELDS,
    HOSTS,
    IMAGES,
    LANGUAGES,
    MODELS,
    OPTIONAL_FIELDS,
    PEOPLE,
    REGIONS,
    RESOURCE_OF_EVENT_TYPE,
    RESOURCE_TYPES,
    RESOURCE_WEIGHTS,
    ROLES,
    THREAD_TOPICS,
    TOOLS,
    WORKSPACES,
    severity_of,
    status_of,
)

__all__ = ["EventGenerator", "Organisation"]


def _new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _new_token(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_{rng.getrandbits(48):012x}"


@dataclass(frozen=True)
class Organisation:
    """Pools of ids and names that generated events refer to."""

    org_id: str
    users: tuple[tuple[str, str], ...]  # (user id, first name)
    workspaces: tuple[tuple[str, str], ...]  # (workspace id, name)
    threads: tuple[tuple[str, str], ...]  # (thread id, topic)
    sandboxes: tuple[str, ...]
    agents: tuple[tuple[str, str], ...]  # (agent id, name)
    agent_runs: tuple[str, ...]
    installs: tuple[tuple[str, str], ...]  # (install id, agent name)
    devices: tuple[tuple[str, str], ...]  # (RunMesh node id, hostname)

    @classmethod
    def create(cls, seed: int, user_ids: list[str]) -> Organisation:
        """Build the organisation of `seed`, whose users start with `user_ids`.

        The users of the configured keys come first, so member keys see events.
        Seeded users are added until there are at least four.
        """
        rng = random.Random(f"{seed}:organisation")
        ids = list(dict.fromkeys(user_ids))
        while len(ids) < 4:
            ids.append(_new_uuid(rng))
        names = [PEOPLE[index % len(PEOPLE)] for index in range(len(ids))]
        return cls(
            org_id=_new_uuid(rng),
            users=tuple(zip(ids, names, strict=True)),
            workspaces=tuple((_new_uuid(rng), name) for name in WORKSPACES),
            threads=tuple((_new_token(rng, "thr"), topic) for topic in THREAD_TOPICS),
            sandboxes=tuple(_new_token(rng, "sbx") for _ in range(6)),
            agents=tuple((_new_token(rng, "agt"), name) for name in AGENTS),
            agent_runs=tuple(_new_uuid(rng) for _ in range(16)),
            installs=tuple((_new_uuid(rng), name) for name in AGENTS[:3]),
            devices=tuple((_new_uuid(rng), host) for host in HOSTS),
        )


class EventGenerator:
    """Draw events of one organisation from a seeded random generator.

    `rng` decides ids and content. `variation_rng` decides which events are
    sparse and which region an extra field names, so turning those options on
    leaves the other fields of the stream unchanged.
    """

    def __init__(
        self, organisation: Organisation, rng: random.Random, variation_rng: random.Random
    ) -> None:
        self._org = organisation
        self._rng = rng
        self._variation_rng = variation_rng

    def new_id(self) -> str:
        """Draw a uuid4 from the seeded generator."""
        return _new_uuid(self._rng)

    def generate(
        self,
        *,
        resource_type: str | None = None,
        event_type: str | None = None,
        sparse_fraction: float = 0.0,
        extra_fields: bool = False,
    ) -> dict[str, Any]:
        """Draw one event without a time field.

        `event_type` and `resource_type` fix those fields. An event type outside
        the catalogue keeps the given resource type, or a drawn one. Status and
        severity follow from the event type's name.
        """
        rng = self._rng
        if event_type is not None and resource_type is None:
            resource_type = RESOURCE_OF_EVENT_TYPE.get(event_type)
        if resource_type is None or resource_type not in EVENT_TYPES:
            drawn = rng.choices(RESOURCE_TYPES, weights=RESOURCE_WEIGHTS)[0]
            resource_type = resource_type if resource_type is not None else drawn
            catalogue_type = drawn
        else:
            catalogue_type = resource_type
        if event_type is None:
            choices = EVENT_TYPES[catalogue_type]
            event_type = rng.choices(
                [name for name, _ in choices], weights=[weight for _, weight in choices]
            )[0]

        event = dict.fromkeys(FIELDS)
        event["id"] = self.new_id()
        event["orgId"] = self._org.org_id
        user_id, person = rng.choice(self._org.users)
        event["actorUserId"] = user_id
        event["actorType"] = "user"
        event["resourceType"] = resource_type
        event["eventType"] = event_type
        event["severity"] = severity_of(event_type)
        event["status"] = status_of(event_type)
        workspace_id, workspace = rng.choice(self._org.workspaces)
        event["workspaceId"] = workspace_id
        _DESCRIBERS[catalogue_type](self, event, person, workspace)

        self._vary(event, sparse_fraction, extra_fields)
        return event

    def _vary(self, event: dict[str, Any], sparse_fraction: float, extra_fields: bool) -> None:
        # Draw two numbers per event whatever the options are, so the
        # variation stream stays aligned with the event stream.
        rng = self._variation_rng
        sparse = rng.random() < sparse_fraction
        bits = rng.getrandbits(64)
        if sparse:
            # Bits 0-1 pick how many fields change (1 to 3), bits 2-4 whether
            # each is deleted or set to null, and three 5-bit groups from bit 8
            # pick the fields.
            count = 1 + (bits & 0b11) % 3
            for number in range(count):
                field = OPTIONAL_FIELDS[(bits >> (8 + 5 * number)) % len(OPTIONAL_FIELDS)]
                if (bits >> (2 + number)) & 1:
                    event.pop(field, None)
                elif field in event:
                    event[field] = None
        if extra_fields:
            event["region"] = REGIONS[(bits >> 40) % len(REGIONS)]

    def _describe_agent(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        agent_id, agent = rng.choice(self._org.agents)
        thread_id, topic = rng.choice(self._org.threads)
        run_id = rng.choice(self._org.agent_runs)
        model = rng.choice(MODELS)
        duration_ms = rng.randint(800, 240_000)
        event.update(resourceId=agent_id, agentRunId=run_id, threadId=thread_id)
        attributes: dict[str, Any] = {"agent": agent, "model": model}
        status = event["status"]
        if status == "started":
            event["title"] = f"{person} started agent {agent}"
            event["summary"] = f"Agent {agent} started a run in thread '{topic}' with {model}."
        elif status == "failed":
            attributes["duration_ms"] = duration_ms
            attributes["error"] = rng.choice(("timeout", "tool_error", "context_length_exceeded"))
            event["title"] = f"Agent {agent} failed"
            event["summary"] = (
                f"The run of {agent} in thread '{topic}' failed after "
                f"{duration_ms / 1000:.1f} s with {attributes['error']}."
            )
        else:
            attributes["duration_ms"] = duration_ms
            attributes["tokens"] = rng.randint(400, 90_000)
            event["title"] = f"Agent {agent} completed a run"
            event["summary"] = (
                f"The run of {agent} in thread '{topic}' took {duration_ms / 1000:.1f} s "
                f"and used {attributes['tokens']} tokens."
            )
        event["attributes"] = attributes

    def _describe_tool(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        slug = rng.choice(TOOLS)
        _, agent = rng.choice(self._org.agents)
        thread_id, _ = rng.choice(self._org.threads)
        duration_ms = rng.randint(40, 9000)
        event.update(
            actorType="agent",
            resourceId=slug,
            toolSlug=slug,
            agentRunId=rng.choice(self._org.agent_runs),
            threadId=thread_id,
        )
        attributes: dict[str, Any] = {"duration_ms": duration_ms, "agent": agent}
        if event["status"] == "failed":
            attributes["http_status"] = rng.choice((401, 404, 429, 500))
            event["title"] = f"Tool call {slug} failed"
            event["summary"] = (
                f"Agent {agent} called {slug}, which failed with HTTP "
                f"{attributes['http_status']} after {duration_ms} ms."
            )
        else:
            event["title"] = f"Tool call {slug} completed"
            event["summary"] = f"Agent {agent} called {slug}, which took {duration_ms} ms."
        event["attributes"] = attributes

    def _describe_sandbox(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        sandbox_id = rng.choice(self._org.sandboxes)
        image = rng.choice(IMAGES)
        event.update(resourceId=sandbox_id, sandboxId=sandbox_id)
        event["attributes"] = {
            "image": image,
            "cpu": rng.choice((1, 2, 4)),
            "memory_mb": rng.choice((512, 1024, 4096)),
        }
        event["title"] = f"Sandbox {sandbox_id} {event['status']}"
        event["summary"] = f"{person} {event['status']} sandbox {sandbox_id} running {image}."

    def _describe_thread(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        thread_id, topic = rng.choice(self._org.threads)
        role = rng.choice(("user", "assistant"))
        event.update(resourceId=thread_id, threadId=thread_id)
        if role == "assistant":
            event["agentRunId"] = rng.choice(self._org.agent_runs)
        event["attributes"] = {
            "role": role,
            "characters": rng.randint(20, 4000),
            "message_count": rng.randint(1, 80),
        }
        event["title"] = f"New message in '{topic}'"
        author = person if role == "user" else "the assistant"
        event["summary"] = f"A message from {author} was added to thread '{topic}'."

    def _describe_code_execution(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        execution_id = _new_token(rng, "exec")
        thread_id, _ = rng.choice(self._org.threads)
        language = rng.choice(LANGUAGES)
        duration_ms = rng.randint(5, 60_000)
        exit_code = rng.choice((1, 2, 137)) if event["status"] == "failed" else 0
        event.update(
            resourceId=execution_id,
            codeExecutionId=execution_id,
            sandboxId=rng.choice(self._org.sandboxes),
            agentRunId=rng.choice(self._org.agent_runs),
            threadId=thread_id,
        )
        event["attributes"] = {
            "language": language,
            "exit_code": exit_code,
            "duration_ms": duration_ms,
        }
        event["title"] = f"Code execution {event['status']}"
        event["summary"] = (
            f"A {language} execution exited with code {exit_code} after {duration_ms} ms."
        )

    def _describe_workspace(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        event["resourceId"] = event["workspaceId"]
        event_type = event["eventType"]
        if event_type == "workspace.member.added":
            _, new_member = rng.choice(self._org.users)
            role = rng.choice(ROLES)
            event["attributes"] = {"role": role, "member": new_member}
            event["title"] = f"{new_member} joined {workspace}"
            event["summary"] = f"{person} added {new_member} to workspace {workspace} as {role}."
        elif event_type == "workspace.created":
            event["attributes"] = {"name": workspace}
            event["title"] = f"Workspace {workspace} created"
            event["summary"] = f"{person} created workspace {workspace}."
        else:
            changed = rng.choice(("name", "description", "default_model"))
            event["attributes"] = {"changed": [changed]}
            event["title"] = f"Workspace {workspace} updated"
            event["summary"] = f"{person} changed the {changed} of workspace {workspace}."

    def _describe_install(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        install_id, agent = rng.choice(self._org.installs)
        version = f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        event.update(resourceId=install_id, installableAgentInstallId=install_id)
        event["attributes"] = {"agent": agent, "version": version}
        event["title"] = f"Agent {agent} {event['status']}"
        event["summary"] = f"{person} {event['status']} {agent} {version} in workspace {workspace}."

    def _describe_device(self, event: dict[str, Any], person: str, workspace: str) -> None:
        rng = self._rng
        node_id, host = rng.choice(self._org.devices)
        event.update(resourceId=node_id, runmeshNodeId=node_id)
        attributes: dict[str, Any] = {"hostname": host, "os": rng.choice(("linux", "macos"))}
        if event["status"] == "disconnected":
            # Devices drop off on their own, so no user caused the event.
            event["actorType"] = "system"
            event["actorUserId"] = None
            attributes["reason"] = rng.choice(("heartbeat_timeout", "shutdown"))
            event["summary"] = f"RunMesh device {host} disconnected ({attributes['reason']})."
        else:
            event["summary"] = f"{person} connected RunMesh device {host}."
        event["attributes"] = attributes
        event["title"] = f"Device {host} {event['status']}"


_DESCRIBERS = {
    "agent": EventGenerator._describe_agent,
    "tool": EventGenerator._describe_tool,
    "sandbox": EventGenerator._describe_sandbox,
    "thread": EventGenerator._describe_thread,
    "code_execution": EventGenerator._describe_code_execution,
    "workspace": EventGenerator._describe_workspace,
    "installable_agent_install": EventGenerator._describe_install,
    "runmesh_device": EventGenerator._describe_device,
}
