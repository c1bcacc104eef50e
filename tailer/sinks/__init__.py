"""Sinks, found by type name in the `runtools_tail.sinks` entry-point group.

A third-party package adds a sink by declaring, in its own pyproject.toml:

    [project.entry-points."runtools_tail.sinks"]
    my_sink = "my_package.module:MySink"

where `MySink` subclasses `tailer.sinks.Sink`.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from tailer.errors import ConfigError
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState

__all__ = [
    "ENTRY_POINT_GROUP",
    "Batch",
    "Sink",
    "SinkConfig",
    "SinkError",
    "SinkState",
    "available_sink_types",
    "load_sink_class",
]

ENTRY_POINT_GROUP = "runtools_tail.sinks"


def available_sink_types() -> list[str]:
    return sorted({entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)})


def load_sink_class(type_name: str) -> type[Sink]:
    """Return the sink class registered under `type_name`; raise ConfigError if none is."""
    matches = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == type_name]
    if not matches:
        raise ConfigError(
            f"unknown sink type {type_name!r}; installed types: "
            f"{', '.join(available_sink_types()) or 'none'}"
        )
    try:
        loaded = matches[0].load()
    except Exception as exc:  # a broken plug-in must not hide the other config errors
        raise ConfigError(
            f"sink type {type_name!r} from {matches[0].value} failed to load: "
            f"{exc.__class__.__name__}: {exc}"
        ) from None
    if not (isinstance(loaded, type) and issubclass(loaded, Sink)):
        raise ConfigError(
            f"sink type {type_name!r} points at {matches[0].value}, which is not a Sink subclass"
        )
    return loaded
