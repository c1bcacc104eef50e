"""Settings of the simulator: API keys, fault rates and the behaviour of the fake API.

Every field is documented where it is declared. Durations are in seconds and
probabilities are between 0 and 1.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_USER_ID",
    "ApiKey",
    "FaultRates",
    "SimulatorConfig",
    "describe_validation_error",
]

DEFAULT_KEY = "rt_test_simulator"
"""The admin key a simulator accepts when no keys are configured."""

DEFAULT_USER_ID = "0b6c1f7e-3d2a-4c55-9e1b-7a4f2d8c6e10"
"""The user of the default admin key, one of the actors of generated events."""


def _canonical_uuid(value: str) -> str:
    return str(uuid.UUID(value))


Uuid = Annotated[str, AfterValidator(_canonical_uuid)]


class ApiKey(BaseModel):
    """An API key the simulator accepts, and the user it authenticates."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    key: SecretStr = Field(min_length=1)
    """The key as clients send it, as `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

    user_id: Uuid = DEFAULT_USER_ID
    """The user the key belongs to."""

    admin: bool = True
    """Admins read the whole organisation, and members read only the events they caused."""

    if TYPE_CHECKING:
        # Let type checkers accept a plain string key, as validation does.
        def __init__(
            self, *, key: str | SecretStr, user_id: str = ..., admin: bool = ...
        ) -> None: ...


class FaultRates(BaseModel):
    """Probabilities of injected faults, drawn once per request to a `/v1` endpoint.

    `rate_limited`, `server_error`, `dropped` and `truncated` exclude each other
    on one request, so their sum must be at most 1. `slow` is drawn on its own
    and delays whatever the response turns out to be.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    rate_limited: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability of a 429. Half carry `Retry-After` in seconds, a quarter an HTTP-date,
    a quarter none."""

    server_error: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability of a 500, 502 or 503. About half have an HTML body, as a proxy sends."""

    slow: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that the response is delayed by `slow_seconds`."""

    slow_seconds: float = Field(default=2.0, ge=0.0)
    """Delay of a slow response, in seconds."""

    dropped: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that the connection is closed without any response."""

    truncated: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that a 200 response announces its full `Content-Length`, sends half
    of the body and closes the connection."""

    @model_validator(mode="after")
    def _check_exclusive_sum(self) -> FaultRates:
        total = self.rate_limited + self.server_error + self.dropped + self.truncated
        if total > 1.0:
            raise ValueError(
                f"rate_limited, server_error, dropped and truncated add up to {total:g}, "
                "but at most one of them happens per request, so their sum must be at most 1"
            )
        return self


def _default_keys() -> list[ApiKey]:
    return [ApiKey(key=SecretStr(DEFAULT_KEY), user_id=DEFAULT_USER_ID, admin=True)]


class SimulatorConfig(BaseModel):
    """Behaviour of a simulator. `Simulator.update` changes it while the server runs."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the server binds to."""

    port: int = Field(default=0, ge=0, le=65535)
    """TCP port the server binds to. Port 0 picks a free ephemeral port."""

    keys: list[ApiKey] = Field(default_factory=_default_keys, min_length=1)
    """Keys the API and the control endpoints accept."""

    seed: int = 1
    """Seed of every random choice: event content, timing, faults and injected fields."""

    backlog: int = Field(default=0, ge=0)
    """Number of events stored at start, spread over the last `backlog_span` seconds."""

    backlog_span: float = Field(default=3600.0, gt=0.0)
    """Length in seconds of the period before start that contains the backlog."""

    rate: float = Field(default=0.0, ge=0.0)
    """Live events per second, created at random (Poisson) times. 0 creates none."""

    order: Literal["newest", "oldest"] = "newest"
    """Order of rows in a page: newest first, or oldest first. Ties are broken by id."""

    envelope: Literal["reference", "guide"] = "reference"
    """Page shape: paging fields at the top (`reference`) or under `meta` (`guide`)."""

    time_field: Literal["createdAt", "occurredAt"] = "createdAt"
    """Name of the time field of every event."""

    precision: Literal["s", "ms"] = "ms"
    """Precision of rendered times: whole seconds or milliseconds. Rows sort by the rendered
    time, so events in one second or millisecond tie and are ordered by id."""

    utc_offset_minutes: int = Field(default=0, ge=-1439, le=1439)
    """Numeric UTC offset of rendered times, in minutes (+02:00 for 120).
    With 0, times end in `Z`."""

    late_max: float = Field(default=0.0, ge=0.0)
    """Maximum delay in seconds between a late live event's time and its visibility."""

    late_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    """Fraction of live events that are late when `late_max` is above 0."""

    burst_size: int = Field(default=0, ge=0)
    """Number of live events that share one timestamp every `burst_every` seconds."""

    burst_every: float = Field(default=10.0, gt=0.0)
    """Seconds between bursts."""

    cursor_ttl: float | None = Field(default=None, gt=0.0)
    """Seconds a page cursor stays valid. After that the API rejects it with 400.
    None keeps cursors valid forever."""

    retention: float | None = Field(default=None, gt=0.0)
    """Seconds events stay readable. Older events are not served, and a `since` older
    than the retention window is rejected with 400. None keeps every event."""

    default_limit: int = Field(default=50, ge=1, le=500)
    """Page size when a request has no `limit`."""

    sparse_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of generated events that miss some optional fields or have them null.
    `id` and the time field are always present."""

    extra_fields: bool = False
    """Add an undocumented `region` field to generated events."""

    clock_offset: float = 0.0
    """Seconds added to the simulator's clock, which sets its notion of now, the times
    of generated events and the `Date` header."""

    faults: FaultRates = Field(default_factory=FaultRates)
    """Probabilities of injected faults."""

    @model_validator(mode="after")
    def _check_unique_keys(self) -> SimulatorConfig:
        secrets = [api_key.key.get_secret_value() for api_key in self.keys]
        if len(set(secrets)) != len(secrets):
            raise ValueError("keys must be unique, because a key identifies one user")
        return self


def describe_validation_error(error: ValidationError) -> list[tuple[str, str]]:
    """List each problem of a validation error as (field path, message with the value)."""
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"]
        if item["type"] not in ("missing", "value_error") and "keys" not in item["loc"]:
            message += f" (got {item['input']!r})"
        problems.append((path, message))
    return problems
