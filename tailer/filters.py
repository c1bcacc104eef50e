"""API filters, and how several values for one filter become queries.

The API takes one value per filter. When a user asks for several
(`--severity error --severity warning`), the tailer sends one query per
combination of values and merges the results by event id, as long as the
combinations stay few. Past that, the filters with several values are applied
locally to the events of a query that leaves them out, which costs more
traffic but never more queries per round than one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tailer.errors import ConfigError

__all__ = [
    "FILTER_FIELDS",
    "MAX_QUERY_VARIANTS",
    "RESOURCE_TYPES",
    "SEVERITIES",
    "QueryFilters",
]

RESOURCE_TYPES = (
    "sandbox",
    "agent",
    "workspace",
    "thread",
    "tool",
    "installable_agent_install",
    "runmesh_device",
    "code_execution",
)
SEVERITIES = ("info", "warning", "error", "success")

# Query parameter -> event field it selects on, from the API reference.
FILTER_FIELDS: Mapping[str, str] = {
    "resource_type": "resourceType",
    "resource_id": "resourceId",
    "event_type": "eventType",
    "severity": "severity",
    "status": "status",
    "actor_user_id": "actorUserId",
    "thread_id": "threadId",
    "agent_run_id": "agentRunId",
    "sandbox_id": "sandboxId",
    "workspace_id": "workspaceId",
    "tool_slug": "toolSlug",
    "installable_agent_install_id": "installableAgentInstallId",
    "code_execution_id": "codeExecutionId",
    "runmesh_node_id": "runmeshNodeId",
}
_ENUMS: Mapping[str, tuple[str, ...]] = {
    "resource_type": RESOURCE_TYPES,
    "severity": SEVERITIES,
}

MAX_QUERY_VARIANTS = 8


@dataclass(frozen=True)
class QueryFilters:
    """Filter values by query parameter name, each with one or more values."""

    values: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Iterable[str]], *, option_names: Mapping[str, str] | None = None
    ) -> QueryFilters:
        """Validate filter values; raise ConfigError listing every invalid one.

        `option_names` maps a filter to the option that set it, such as
        `--resource-id`, for the messages.
        """
        problems: list[str] = []
        values: dict[str, tuple[str, ...]] = {}
        for name, given in raw.items():
            items = tuple(dict.fromkeys(v for v in given))  # drop repeats, keep order
            if not items:
                continue
            if name not in FILTER_FIELDS:
                problems.append(f"unknown filter {name!r}; known: {', '.join(FILTER_FIELDS)}")
                continue
            allowed = _ENUMS.get(name)
            label = option_names.get(name, name) if option_names else f"filter {name}"
            for item in items:
                if not item:
                    problems.append(f"{label} has an empty value; give a value or leave it out")
                elif allowed is not None and item not in allowed:
                    problems.append(
                        f"{label} has invalid value {item!r}; allowed: {', '.join(allowed)}"
                    )
            values[name] = items
        if problems:
            raise ConfigError(problems)
        return cls(values)

    def query_variants(self) -> list[dict[str, str]]:
        """Return the query parameter sets to send in each round."""
        single = {name: items[0] for name, items in self.values.items() if len(items) == 1}
        multi = {name: items for name, items in self.values.items() if len(items) > 1}
        if not multi:
            return [single]
        combinations = 1
        for items in multi.values():
            combinations *= len(items)
        if combinations > MAX_QUERY_VARIANTS:
            return [single]
        names = list(multi)
        return [
            {**single, **dict(zip(names, chosen, strict=True))}
            for chosen in itertools.product(*(multi[name] for name in names))
        ]

    def local_filters(self) -> dict[str, frozenset[str]]:
        """Return the filters the API does not apply, by event field, for local matching."""
        if len(self.query_variants()) > 1:
            return {}
        return {
            FILTER_FIELDS[name]: frozenset(items)
            for name, items in self.values.items()
            if len(items) > 1
        }

    @staticmethod
    def matches(raw: Mapping[str, Any], local: Mapping[str, frozenset[str]]) -> bool:
        """Tell whether an event passes the local filters."""
        return all(raw.get(event_field) in allowed for event_field, allowed in local.items())
