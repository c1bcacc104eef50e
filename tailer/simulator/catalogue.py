"""The catalogue of generated events: fields, resource and event types, and names.

Everything here is fixed data or a pure rule, shared by the generator and
by tests that check generated events against it.
"""

from __future__ import annotations

__all__ = [
    "AGENTS",
    "EVENT_TYPES",
    "FIELDS",
    "HOSTS",
    "IMAGES",
    "LANGUAGES",
    "MODELS",
    "OPTIONAL_FIELDS",
    "PEOPLE",
    "REGIONS",
    "RESOURCE_OF_EVENT_TYPE",
    "RESOURCE_TYPES",
    "RESOURCE_WEIGHTS",
    "ROLES",
    "SEVERITIES",
    "THREAD_TOPICS",
    "TOOLS",
    "WORKSPACES",
    "severity_of",
    "status_of",
]

SEVERITIES = ("info", "warning", "error", "success")

# Event types of each resource type, with relative weights: successes are more
# common than failures, as in a healthy organisation.
EVENT_TYPES: dict[str, tuple[tuple[str, int], ...]] = {
    "agent": (("agent.run.started", 5), ("agent.run.completed", 4), ("agent.run.failed", 1)),
    "tool": (("tool.call.completed", 8), ("tool.call.failed", 1)),
    "sandbox": (
        ("sandbox.created", 3),
        ("sandbox.paused", 2),
        ("sandbox.resumed", 2),
        ("sandbox.deleted", 1),
    ),
    "thread": (("thread.message.added", 1),),
    "code_execution": (("code_execution.completed", 5), ("code_execution.failed", 1)),
    "workspace": (
        ("workspace.created", 1),
        ("workspace.updated", 3),
        ("workspace.member.added", 2),
    ),
    "installable_agent_install": (
        ("installable_agent_install.installed", 3),
        ("installable_agent_install.uninstalled", 1),
    ),
    "runmesh_device": (("runmesh_device.connected", 3), ("runmesh_device.disconnected", 2)),
}
RESOURCE_TYPES = tuple(EVENT_TYPES)
RESOURCE_WEIGHTS = (20, 25, 10, 20, 12, 5, 4, 4)  # relative frequency, in RESOURCE_TYPES order
RESOURCE_OF_EVENT_TYPE = {
    event_type: resource_type
    for resource_type, choices in EVENT_TYPES.items()
    for event_type, _ in choices
}

# Every field of the reference event, in the reference order, without the time field.
FIELDS = (
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
    "attributes",
    "threadId",
    "agentRunId",
    "sandboxId",
    "workspaceId",
    "toolSlug",
    "installableAgentInstallId",
    "runmeshNodeId",
    "codeExecutionId",
)
OPTIONAL_FIELDS = FIELDS[1:]

# Names that titles, summaries and attributes draw from.
PEOPLE = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances")
AGENTS = ("invoice-triage", "support-desk", "release-notes", "lead-scorer", "code-reviewer")
TOOLS = (
    "github.create_issue",
    "slack.post_message",
    "gmail.send_email",
    "notion.create_page",
    "linear.update_ticket",
    "postgres.run_query",
)
MODELS = ("claude-sonnet-4", "gpt-4o", "gemini-2.5-pro", "llama-3.3-70b")
THREAD_TOPICS = (
    "Quarterly report",
    "Refund for order 4411",
    "Flaky deploy on Friday",
    "Onboarding checklist",
    "Pricing page copy",
    "Customer churn analysis",
)
WORKSPACES = ("Finance", "Support", "Engineering")
IMAGES = ("python:3.12-slim", "node:22", "ubuntu:24.04")
LANGUAGES = ("python", "javascript", "bash")
HOSTS = ("build-mac-01", "lab-gpu-02", "office-nuc", "edge-pi-4")
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
ROLES = ("member", "admin", "viewer")


def status_of(event_type: str) -> str:
    """Return the status an event type implies: the last word of its name."""
    return event_type.rsplit(".", 1)[-1]


def severity_of(event_type: str) -> str:
    """Return the plausible severity of an event type."""
    status = status_of(event_type)
    if status == "failed":
        return "error"
    if status == "completed":
        return "success"
    if status == "disconnected":
        return "warning"
    return "info"
