"""Command-line options of `runtools-tail simulate`, and the loop that serves until cancelled."""

from __future__ import annotations

import argparse
import asyncio
import sys
import typing
from typing import Any

from pydantic import ValidationError

from tailer.errors import ConfigError
from tailer.simulator.config import (
    DEFAULT_KEY,
    ApiKey,
    SimulatorConfig,
    describe_validation_error,
)
from tailer.simulator.server import Simulator
from tailer.timeparse import NS_PER_SECOND, parse_duration

__all__ = ["add_simulate_arguments", "config_from_arguments", "serve"]

CLI_PORT = 8080

# The option of each config field, named in validation errors.
_OPTION_OF_FIELD = {
    "host": "--host",
    "port": "--port",
    "keys": "--key/--member-key",
    "seed": "--seed",
    "backlog": "--backlog",
    "backlog_span": "--backlog-span",
    "rate": "--rate",
    "order": "--order",
    "envelope": "--envelope",
    "time_field": "--time-field",
    "precision": "--precision",
    "utc_offset_minutes": "--utc-offset-minutes",
    "late_max": "--late-max",
    "late_fraction": "--late-fraction",
    "burst_size": "--burst-size",
    "burst_every": "--burst-every",
    "cursor_ttl": "--cursor-ttl",
    "retention": "--retention",
    "default_limit": "--default-limit",
    "sparse_fraction": "--sparse-fraction",
    "extra_fields": "--extra-fields",
    "clock_offset": "--clock-offset",
    "faults": "--fault-429/--fault-5xx/--fault-drop/--fault-truncate",
    "faults.rate_limited": "--fault-429",
    "faults.server_error": "--fault-5xx",
    "faults.slow": "--fault-slow",
    "faults.slow_seconds": "--slow-seconds",
    "faults.dropped": "--fault-drop",
    "faults.truncated": "--fault-truncate",
}
_DURATION_FIELDS = (
    "backlog_span",
    "late_max",
    "burst_every",
    "cursor_ttl",
    "retention",
    "clock_offset",
)
_FAULT_FIELDS = ("rate_limited", "server_error", "slow", "slow_seconds", "dropped", "truncated")
_PLAIN_FIELDS = (
    "host",
    "port",
    "seed",
    "backlog",
    "rate",
    "order",
    "envelope",
    "time_field",
    "precision",
    "utc_offset_minutes",
    "late_fraction",
    "burst_size",
    "default_limit",
    "sparse_fraction",
)
_DURATION_HELP = "seconds, or a duration such as 30s, 10m, 2h or 7d"


def _choices(field: str) -> list[str]:
    annotation = SimulatorConfig.model_fields[field].annotation
    return [str(choice) for choice in typing.get_args(annotation)]


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add an option for every SimulatorConfig field to `parser`.

    Options left out keep the config defaults, except `--port`, which is 8080.
    """
    server = parser.add_argument_group("server")
    server.add_argument("--host", help="address to bind (default: 127.0.0.1)")
    server.add_argument(
        "--port", type=int, default=CLI_PORT, help=f"TCP port to bind (default: {CLI_PORT})"
    )
    server.add_argument(
        "--key",
        dest="keys",
        action="append",
        metavar="KEY",
        help=f"admin API key to accept, repeatable (default: {DEFAULT_KEY}, "
        "which is also accepted whenever no --key is given)",
    )
    server.add_argument(
        "--member-key",
        dest="member_keys",
        action="append",
        metavar="KEY:USER_ID",
        help="member API key and the user uuid it belongs to, repeatable. Members read "
        "only their own events",
    )

    events = parser.add_argument_group("events")
    events.add_argument("--seed", type=int, help="seed of every random choice (default: 1)")
    events.add_argument("--backlog", type=int, help="number of events stored at start (default: 0)")
    events.add_argument(
        "--backlog-span",
        metavar="DURATION",
        help=f"period before start that contains the backlog, in {_DURATION_HELP} (default: 1h)",
    )
    events.add_argument(
        "--rate",
        type=float,
        metavar="PER_SECOND",
        help="live events created per second (default: 0, none)",
    )
    events.add_argument(
        "--late-max",
        metavar="DURATION",
        help=f"maximum delay before a late live event becomes visible, in {_DURATION_HELP} "
        "(default: 0, no late events)",
    )
    events.add_argument(
        "--late-fraction",
        type=float,
        metavar="FRACTION",
        help="fraction of live events that are late, from 0 to 1 (default: 0.2)",
    )
    events.add_argument(
        "--burst-size",
        type=int,
        help="number of live events sharing one timestamp in each burst (default: 0, none)",
    )
    events.add_argument(
        "--burst-every",
        metavar="DURATION",
        help=f"time between bursts, in {_DURATION_HELP} (default: 10s)",
    )
    events.add_argument(
        "--sparse-fraction",
        type=float,
        metavar="FRACTION",
        help="fraction of generated events missing some optional fields or having them "
        "null, from 0 to 1 (default: 0)",
    )
    events.add_argument(
        "--extra-fields",
        action="store_true",
        default=None,
        help="add an undocumented `region` field to generated events",
    )
    events.add_argument(
        "--clock-offset",
        metavar="DURATION",
        help=f"offset added to the simulator's clock, in {_DURATION_HELP}, "
        "with a negative offset written as --clock-offset=-30s (default: 0)",
    )

    api = parser.add_argument_group("API behaviour")
    api.add_argument(
        "--order", choices=_choices("order"), help="order of rows in a page (default: newest)"
    )
    api.add_argument(
        "--envelope",
        choices=_choices("envelope"),
        help="page shape: paging fields at the top or under `meta` (default: reference)",
    )
    api.add_argument(
        "--time-field",
        choices=_choices("time_field"),
        help="name of the event time field (default: createdAt)",
    )
    api.add_argument(
        "--precision",
        choices=_choices("precision"),
        help="precision of rendered times: whole seconds or milliseconds (default: ms)",
    )
    api.add_argument(
        "--utc-offset-minutes",
        type=int,
        metavar="MINUTES",
        help="numeric UTC offset of rendered times in minutes, such as 120 for +02:00 "
        "(default: 0, rendered as Z)",
    )
    api.add_argument(
        "--cursor-ttl",
        metavar="DURATION",
        help=f"lifetime of page cursors, in {_DURATION_HELP} (default: unlimited)",
    )
    api.add_argument(
        "--retention",
        metavar="DURATION",
        help=f"age after which events are no longer served, in {_DURATION_HELP} "
        "(default: unlimited)",
    )
    api.add_argument(
        "--default-limit",
        type=int,
        metavar="ROWS",
        help="page size of requests without `limit`, from 1 to 500 (default: 50)",
    )

    faults = parser.add_argument_group("faults (probabilities per /v1 request, from 0 to 1)")
    faults.add_argument(
        "--fault-429", dest="rate_limited", type=float, metavar="P", help="probability of a 429"
    )
    faults.add_argument(
        "--fault-5xx",
        dest="server_error",
        type=float,
        metavar="P",
        help="probability of a 500, 502 or 503",
    )
    faults.add_argument(
        "--fault-slow",
        dest="slow",
        type=float,
        metavar="P",
        help="probability of a response delayed by --slow-seconds",
    )
    faults.add_argument(
        "--slow-seconds",
        metavar="DURATION",
        help=f"delay of a slow response, in {_DURATION_HELP} (default: 2s)",
    )
    faults.add_argument(
        "--fault-drop",
        dest="dropped",
        type=float,
        metavar="P",
        help="probability that the connection closes without a response",
    )
    faults.add_argument(
        "--fault-truncate",
        dest="truncated",
        type=float,
        metavar="P",
        help="probability that a 200 body is cut in half and the connection closed",
    )


def _parse_seconds(text: str) -> float:
    """Parse seconds, given as a plain number or a duration with a unit. A leading '-' negates."""
    stripped = text.strip()
    sign = -1.0 if stripped.startswith("-") else 1.0
    magnitude = stripped.lstrip("-")
    try:
        return sign * float(magnitude)
    except ValueError:
        return sign * parse_duration(magnitude) / NS_PER_SECOND


def _parse_member_key(text: str) -> ApiKey:
    key, separator, user_id = text.rpartition(":")
    if not separator or not key or not user_id:
        raise ValueError("expected KEY:USER_ID, such as rt_test_member:<user uuid>")
    return ApiKey.model_validate({"key": key, "user_id": user_id, "admin": False})


def config_from_arguments(args: argparse.Namespace) -> SimulatorConfig:
    """Build the config from parsed options. Raises ConfigError listing every invalid one."""
    problems: list[str] = []
    fields: dict[str, Any] = {
        name: getattr(args, name) for name in _PLAIN_FIELDS if getattr(args, name) is not None
    }
    if args.extra_fields:
        fields["extra_fields"] = True

    durations = {name: getattr(args, name) for name in _DURATION_FIELDS}
    faults: dict[str, Any] = {
        name: getattr(args, name) for name in _FAULT_FIELDS if name != "slow_seconds"
    }
    durations["slow_seconds"] = args.slow_seconds
    for name, text in durations.items():
        if text is None:
            continue
        try:
            seconds = _parse_seconds(text)
        except ValueError as exc:
            option = _OPTION_OF_FIELD.get(name) or _OPTION_OF_FIELD[f"faults.{name}"]
            problems.append(f"{option}: {exc}")
            continue
        if name == "slow_seconds":
            faults[name] = seconds
        else:
            fields[name] = seconds
    faults = {name: value for name, value in faults.items() if value is not None}
    if faults:
        fields["faults"] = faults

    keys: list[ApiKey] = []
    for key in args.keys or [DEFAULT_KEY]:
        if key.strip():
            keys.append(ApiKey.model_validate({"key": key.strip(), "admin": True}))
        else:
            problems.append("--key: the key is empty")
    for text in args.member_keys or []:
        try:
            keys.append(_parse_member_key(text))
        except ValidationError:
            problems.append(f"--member-key {text!r}: the user id is not a uuid")
        except ValueError as exc:
            problems.append(f"--member-key {text!r}: {exc}")
    fields["keys"] = keys

    try:
        config = SimulatorConfig.model_validate(fields)
    except ValidationError as exc:
        for path, message in describe_validation_error(exc):
            option = _OPTION_OF_FIELD.get(path, _OPTION_OF_FIELD.get(path.split(".")[0], path))
            problems.append(f"{option}: {message}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _describe_keys(config: SimulatorConfig) -> str:
    parts = []
    for api_key in config.keys:
        key = api_key.key.get_secret_value()
        if api_key.admin:
            parts.append(f"admin key {key}")
        else:
            parts.append(f"member key {key} (user {api_key.user_id})")
    return ", ".join(parts)


async def serve(config: SimulatorConfig) -> None:
    """Run a simulator until cancelled, after printing its URL and keys to stderr."""
    async with Simulator(config) as simulator:
        # Printing the keys is deliberate: they are test keys of a local server.
        print(
            f"RunTools API simulator listening on {simulator.url} with {_describe_keys(config)}. "
            "Press Ctrl+C to stop.",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Event().wait()
