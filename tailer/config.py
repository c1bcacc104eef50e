"""The daemon's configuration: a YAML file, overridden by `RUNTOOLS_TAIL_…` variables.

Sources and sinks are maps keyed by name, so a name is stable and explicit: it
keys the source's checkpoint and the sink's offset, and reordering or renaming
other entries never touches it. A repeated key in the file is an error rather
than the silent "last one wins" of most YAML loaders.

Environment variables override the file, nested with `__`:
`RUNTOOLS_TAIL_STATE_DIR=/data`, `RUNTOOLS_TAIL_SOURCES__MAIN__SINCE=2h`,
`RUNTOOLS_TAIL_SINKS__ARCHIVE__PATH=/logs/a.ndjson`. Names given through the
environment are lower-cased, which is why names are lower-case in the file too.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from tailer.encodings import Encoding
from tailer.errors import ConfigError
from tailer.filters import RESOURCE_TYPES, QueryFilters
from tailer.timeparse import parse_time_or_duration
from tailer.urls import url_problem

__all__ = [
    "BatchSettings",
    "DaemonConfig",
    "PathOption",
    "ServiceSettings",
    "SinkFilter",
    "SinkRetrySettings",
    "SinkSection",
    "SourceConfig",
    "load_config",
]

ENV_PREFIX = "RUNTOOLS_TAIL_"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]*")
# Severity ranks for `min_severity`; success reports a normal outcome, like info.
SEVERITY_RANK = {"info": 0, "success": 0, "warning": 1, "error": 2}


def _reject_empty_path(value: object) -> object:
    # Path("") is ".", so an empty value, such as a variable set to nothing in a
    # compose file, would silently mean the current directory.
    if isinstance(value, str) and not value.strip():
        raise ValueError("the path is empty: set a path")
    return value


PathOption = Annotated[Path, BeforeValidator(_reject_empty_path)]
"""A file or directory option; an empty or blank value is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    """One followed feed: endpoint, credentials, filters and polling bounds."""

    # Declared before api_url, whose validator reads it.
    allow_insecure_http: bool = False
    api_url: str = "https://api.runtools.ai"
    token_env: str = "RUNTOOLS_API_KEY"
    token_file: PathOption | None = None
    auth_header: Literal["bearer", "x-api-key"] = "bearer"
    since: str = "1h"
    filters: dict[str, list[str]] = Field(default_factory=dict)
    lateness_secs: float = Field(default=60.0, ge=0)
    poll_interval_secs: float = Field(default=1.0, gt=0)
    poll_max_interval_secs: float = Field(default=10.0, gt=0)
    page_size: int = Field(default=500, ge=1, le=500)
    max_buffered_events: int = Field(default=5_000, ge=1)
    timeout_secs: float = Field(default=30.0, gt=0)
    retry_max_wait_secs: float = Field(default=60.0, ge=0)
    proxy: str | None = None
    ca_file: PathOption | None = None
    verify_tls: bool = True

    @field_validator("since")
    @classmethod
    def _check_since(cls, value: str) -> str:
        parse_time_or_duration(value, now_ns=0)  # raises ValueError naming the value
        return value

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str, info: ValidationInfo) -> str:
        allowed = bool(info.data.get("allow_insecure_http", False))
        problem = url_problem(value, allow_insecure_http=allowed, option=None)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("filters")
    @classmethod
    def _check_filters(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        try:
            QueryFilters.from_mapping(value)
        except ConfigError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        return value


class SinkFilter(_Section):
    """The rule for the events a sink receives. Empty lists admit everything."""

    min_severity: Literal["info", "warning", "error"] | None = None
    event_types: list[str] = Field(default_factory=list)
    resource_types: list[str] = Field(default_factory=list)

    @field_validator("resource_types")
    @classmethod
    def _check_resource_types(cls, value: list[str]) -> list[str]:
        unknown = [item for item in value if item not in RESOURCE_TYPES]
        if unknown:
            raise ValueError(f"unknown resource types {unknown}; allowed: {list(RESOURCE_TYPES)}")
        return value

    @property
    def admits_all(self) -> bool:
        """True when no rule is set, so a caller need not read the event's fields."""
        return self.min_severity is None and not self.event_types and not self.resource_types

    def admits(self, raw: Mapping[str, Any]) -> bool:
        """Tell whether an event passes. An unknown or missing severity passes a severity
        floor, because dropping an event whose importance is unknown could hide the one
        that matters."""
        if self.min_severity is not None:
            rank = SEVERITY_RANK.get(str(raw.get("severity")))
            if rank is not None and rank < SEVERITY_RANK[self.min_severity]:
                return False
        if self.event_types:
            event_type = raw.get("eventType")
            if not isinstance(event_type, str):
                return False
            if not any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.event_types):
                return False
        return not (self.resource_types and raw.get("resourceType") not in self.resource_types)


class BatchSettings(_Section):
    """When the runner sends a batch: whichever limit is reached first."""

    max_events: int = Field(default=500, ge=1)
    max_bytes: int = Field(default=1_048_576, ge=1)
    max_wait_secs: float = Field(default=1.0, ge=0)


class SinkRetrySettings(_Section):
    """Backoff between tries of one batch; `max_attempts` null retries forever."""

    initial_backoff_secs: float = Field(default=0.5, gt=0)
    max_backoff_secs: float = Field(default=60.0, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)


class SinkSection(BaseModel):
    """The options every sink has; the rest of the section belongs to the sink's own model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    filter: SinkFilter = Field(default_factory=SinkFilter)
    encoding: Encoding = "json"
    batch: BatchSettings = Field(default_factory=BatchSettings)
    retry: SinkRetrySettings = Field(default_factory=SinkRetrySettings)
    dead_letter_path: PathOption | None = None

    def sink_options(self) -> dict[str, Any]:
        """Return the keys that are not common options, for the sink's own model."""
        return dict(self.model_extra or {})


class ServiceSettings(_Section):
    """The HTTP listener for /healthz, /readyz and /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    sink_failure_unready_secs: float = Field(default=300.0, gt=0)
    """A sink failing without a break for this long makes the daemon not ready."""


class DaemonConfig(BaseSettings):
    """The whole daemon configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: PathOption = Path("runtools-tail-state")
    max_journal_bytes: int = Field(default=1 << 30, ge=1 << 20)
    shutdown_grace_secs: float = Field(default=10.0, ge=0)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    sources: dict[str, SourceConfig] = Field(min_length=1)
    sinks: dict[str, SinkSection] = Field(min_length=1)

    @field_validator("sources", "sinks")
    @classmethod
    def _check_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = _names_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init values.
        return (env_settings, init_settings)


def _names_problem(section: Mapping[str, Any]) -> str | None:
    bad = [name for name in section if not _NAME_RE.fullmatch(str(name))]
    if not bad:
        return None
    return f"invalid names {bad}: use lower-case letters, digits and underscores"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key repeated in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)  # error marks name the file, not "<unicode string>"
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return document


_SECRET_WORDS = ("token", "secret", "password", "key", "auth", "header")


def _shown_value(location: tuple[Any, ...], value: object, *, hide: bool) -> str:
    """Describe the invalid value without ever printing something that may be a secret.

    Whole sections (mappings and lists) may hold inline tokens, and so may any
    field whose name mentions a secret, so neither is shown.
    """
    names = " ".join(str(part).lower() for part in location)
    if isinstance(value, dict | list) or any(w in names for w in _SECRET_WORDS):
        return "value hidden"
    # In a section that hides its values, a number or a boolean is still shown:
    # credentials are strings, and a field named for one is hidden above.
    if hide and not isinstance(value, int | float):
        return "value hidden"
    return f"value {value!r}"


def _variable_for(location: tuple[Any, ...], overrides: Mapping[str, Any]) -> str | None:
    """Return the `RUNTOOLS_TAIL_…` variable that set the value at `location`, if one did."""
    value: Any = overrides
    for depth, part in enumerate(location):
        if not isinstance(value, Mapping) or str(part) not in value:
            return None
        value = value[str(part)]
        if not isinstance(value, Mapping):
            return ENV_PREFIX + "__".join(str(p).upper() for p in location[: depth + 1])
    return None


def _merged(document: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return `document` with `overrides` laid over it, mappings merged key by key."""
    merged = dict(document)
    for key, value in overrides.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = _merged(below, value)
        else:
            merged[key] = value
    return merged


def _describe(
    error: Mapping[str, Any],
    path: Path,
    *,
    hide_input: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """Describe one validation error, naming the variable instead of the file when one set it."""
    variable = _variable_for(tuple(error["loc"]), overrides or {})
    if variable is not None:
        path = Path(variable)
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "missing":
        shown = "missing"
    else:
        shown = _shown_value(tuple(error["loc"]), error.get("input"), hide=hide_input)
    if error["type"] == "extra_forbidden":
        return f"{path}: {location}: unknown option ({shown}); check the spelling"
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        # The validator's own message, without pydantic's "Value error, " prefix.
        message = str(error["ctx"]["error"])
        value = error.get("input")
        if isinstance(value, dict | list):
            return f"{path}: {location}: {message}"  # a whole section, named by the message
        if shown != "value hidden" and isinstance(value, str) and repr(value) in message:
            return f"{path}: {location}: {message}"  # the message quotes the value already
        return f"{path}: {location}: {message} ({shown})"
    if variable is not None and error["type"] in ("list_type", "dict_type"):
        example = '["a","b"]' if error["type"] == "list_type" else '{"key":"value"}'
        return (
            f"{path}: {location}: {error['msg']} ({shown}); a variable gives it as JSON, "
            f"such as {example}"
        )
    return f"{path}: {location}: {error['msg']} ({shown})"


def load_config(path: str | os.PathLike[str] | None) -> DaemonConfig:
    """Load and validate a config file and the environment's overrides.

    Without a file, the whole config comes from `RUNTOOLS_TAIL_…` variables.
    Raises ConfigError listing every invalid field, sink options included.
    """
    from tailer.sinks import load_sink_class

    file = Path(path) if path is not None else Path(f"${ENV_PREFIX}*")
    document = _read_yaml(file) if path is not None else {}
    problems: list[str] = []
    config: DaemonConfig | None = None
    try:
        overrides = EnvSettingsSource(DaemonConfig)()
    except SettingsError as exc:
        raise ConfigError(
            f"{exc}. A {ENV_PREFIX}… variable for a list or a whole section must contain "
            'JSON, such as ["error","warning"] or {"type":"stdout"}. Otherwise set each field '
            f"in its own variable, such as {ENV_PREFIX}SINKS__OUT__TYPE"
        ) from None
    if path is None and not overrides:
        raise ConfigError(
            f"no config given: pass a YAML file with --config FILE, or set {ENV_PREFIX}… "
            f"variables such as {ENV_PREFIX}SOURCES__MAIN__SINCE and {ENV_PREFIX}SINKS__OUT__TYPE"
        )
    try:
        config = DaemonConfig(**document)
    except ValidationError as exc:
        problems.extend(_describe(error, file, overrides=overrides) for error in exc.errors())
        # pydantic checks names only once a section's entries are valid; report
        # bad names in the same run as the entries' own errors.
        for section_name in ("sources", "sinks"):
            section = document.get(section_name)
            problem = _names_problem(section) if isinstance(section, dict) else None
            if problem and not any(f": {section_name}: " in p for p in problems):
                problems.append(f"{file}: {section_name}: {problem}")

    # Sink options are checked even when other sections failed, so one run lists all.
    if config is not None:
        sections = {name: (s.type, s.sink_options()) for name, s in config.sinks.items()}
    else:
        sections = _raw_sink_sections(_merged(document, overrides))
    for name, (type_name, options) in sections.items():
        try:
            sink_class = load_sink_class(type_name)
        except ConfigError as exc:
            problems.extend(f"{file}: sinks.{name}.type: {p}" for p in exc.problems)
            continue
        model = sink_class.config_model
        try:
            model.model_validate(options)
        except ValidationError as exc:
            hide = bool(model.model_config.get("hide_input_in_errors"))
            for error in [*exc.errors(), *_section_errors(model, options, exc.errors())]:
                located = {**error, "loc": ("sinks", name, *error["loc"])}
                problems.append(_describe(located, file, hide_input=hide, overrides=overrides))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _section_errors(
    model: type[BaseModel], options: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Return the errors of cross-field checks that the field errors in `errors` kept from running.

    pydantic runs a model's own checks (such as "set at most one of …") only when
    every field is valid. They run again here without the invalid fields, and
    their errors are returned when that run reaches them.
    """
    invalid = {error["loc"][0] for error in errors if error["loc"]}
    if not invalid or any(not error["loc"] for error in errors):
        return []
    try:
        model.model_validate({k: v for k, v in options.items() if k not in invalid})
    except ValidationError as exc:
        return [error for error in exc.errors() if not error["loc"]]
    return []


def _raw_sink_sections(document: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Pick (type, sink options) out of the file's sink sections that name a type."""
    sinks = document.get("sinks")
    if not isinstance(sinks, dict):
        return {}
    common = set(SinkSection.model_fields)
    sections = {}
    for name, section in sinks.items():
        if isinstance(section, dict) and isinstance(section.get("type"), str):
            options = {key: value for key, value in section.items() if key not in common}
            sections[str(name)] = (section["type"], options)
    return sections
