"""The `runtools-tail` command line: the tail command, `simulate` and `demo`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tailer import __version__
from tailer.client import ClientOptions
from tailer.credentials import TOKEN_ENV_VAR, Token
from tailer.errors import ConfigError
from tailer.exitcodes import EXIT_CODES_HELP, ExitCode
from tailer.filters import RESOURCE_TYPES, SEVERITIES, QueryFilters
from tailer.logs import LOG_LEVELS, configure_logging
from tailer.output import OutputFormat, make_formatter, use_color
from tailer.poller import PollerSettings, TimeBound
from tailer.retry import RetryPolicy
from tailer.tail import TailCommand, run_main, run_tail
from tailer.timeparse import TIME_BOUND_FORMS, parse_duration
from tailer.urls import url_problem as check_url

__all__ = ["build_tail_command", "main", "tail_parser"]

DEFAULT_API_URL = "https://api.runtools.ai"
# One-shot reads give up after this many tries of one request; following never gives up.
ONE_SHOT_MAX_ATTEMPTS = 8
COMMANDS = ("simulate", "demo")
DAEMON_COMMANDS = ("run", "check-config", "state", "dead-letters")

# (option, query parameter, help) for every API filter; each option is repeatable.
_FILTER_OPTIONS = (
    ("--severity", "severity", f"severity to show: {', '.join(SEVERITIES)}"),
    ("--event-type", "event_type", "event type, such as agent.run.failed"),
    ("--resource-type", "resource_type", f"resource type: {', '.join(RESOURCE_TYPES)}"),
    ("--resource-id", "resource_id", "resource id (with --resource-type)"),
    ("--status", "status", "event status, such as started, completed or failed"),
    ("--actor-user-id", "actor_user_id", "user who caused the event (other users: admin only)"),
    ("--thread", "thread_id", "thread id"),
    ("--agent-run", "agent_run_id", "agent run id"),
    ("--sandbox", "sandbox_id", "sandbox id"),
    ("--workspace", "workspace_id", "workspace id"),
    ("--tool", "tool_slug", "Tool Hub slug"),
    ("--install", "installable_agent_install_id", "installable agent install id"),
    ("--code-execution", "code_execution_id", "code execution id"),
    ("--runmesh-node", "runmesh_node_id", "RunMesh node id"),
)


class Environment(BaseSettings):
    """Settings read from the environment."""

    model_config = SettingsConfigDict(env_prefix="RUNTOOLS_", extra="ignore")

    api_key: SecretStr | None = None
    api_url: str | None = None


def tail_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runtools-tail",
        description=(
            "Print RunTools activity events, oldest first, each once. Without -f, print the "
            "events since --since and exit; with -f, keep following. Other commands: "
            "run (the daemon), check-config, state, dead-letters, simulate (a local API "
            "simulator) and demo; each takes --help."
        ),
        epilog=(
            f"The API key comes from ${TOKEN_ENV_VAR} or --token-file.\n"
            f"--since and --until take {TIME_BOUND_FORMS}.\n\n" + EXIT_CODES_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runtools-tail {__version__}")
    parser.add_argument("-f", "--follow", action="store_true", help="keep following new events")
    parser.add_argument(
        "--since", default="10m", help="oldest event time to show (default: 10m, ten minutes ago)"
    )
    parser.add_argument(
        "--until",
        help="newest event time to show (default: now, or never with -f); with -f the "
        "command exits once the server's clock passed it plus --lateness",
    )

    filters = parser.add_argument_group("filters (repeat an option to accept several values)")
    for option, param, help_text in _FILTER_OPTIONS:
        filters.add_argument(option, dest=param, action="append", default=[], help=help_text)

    api = parser.add_argument_group("API connection")
    api.add_argument(
        "--api-url",
        help=f"API base URL (default: $RUNTOOLS_API_URL or {DEFAULT_API_URL})",
    )
    api.add_argument("--token-file", help=f"file holding the API key (instead of ${TOKEN_ENV_VAR})")
    api.add_argument(
        "--auth-header",
        choices=("bearer", "x-api-key"),
        default="bearer",
        help="send the key as 'Authorization: Bearer' (default) or as 'X-API-Key'",
    )
    api.add_argument("--proxy", help="HTTP proxy URL (default: $HTTPS_PROXY; $NO_PROXY applies)")
    api.add_argument("--ca-file", help="PEM file of extra CA certificates to trust")
    api.add_argument(
        "--no-verify-tls",
        action="store_true",
        help="do not verify the API's TLS certificate (unsafe; for testing only)",
    )
    api.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow an http:// API URL on a non-loopback host (sends the key unencrypted)",
    )
    api.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    api.add_argument(
        "--max-retries",
        type=int,
        help=f"tries per request before giving up (default: {ONE_SHOT_MAX_ATTEMPTS}; "
        "unlimited with -f)",
    )
    api.add_argument(
        "--retry-max-wait",
        type=float,
        default=60.0,
        help="maximum wait in seconds between retries, Retry-After included (default 60)",
    )

    polling = parser.add_argument_group("polling")
    polling.add_argument(
        "--page-size", type=int, default=500, help="events per page, 1 to 500 (default 500)"
    )
    polling.add_argument(
        "--lateness",
        default="60s",
        help="how far behind the newest event each round looks again for late events (default 60s)",
    )
    polling.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between polls while events arrive (default 1)",
    )
    polling.add_argument(
        "--poll-max-interval",
        type=float,
        default=10.0,
        help="maximum interval in seconds the poller backs off to when idle (default 10)",
    )
    polling.add_argument(
        "--max-buffered-events",
        type=int,
        default=5_000,
        help="events held in memory per time window before it is split (default 5000)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "-o",
        "--output",
        choices=("pretty", "json", "template"),
        help="pretty (default on a terminal), json (NDJSON, default when piped) or template",
    )
    output.add_argument(
        "--template",
        help="format for --output template, such as '{createdAt} {eventType} {title}'",
    )
    output.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    output.add_argument("--no-color", action="store_true", help="no colour (also: $NO_COLOR)")

    service = parser.add_argument_group("service endpoints (/healthz, /readyz, /metrics)")
    service.add_argument(
        "--service-port",
        type=int,
        help="serve the endpoints on this port (default: off; 0 picks a free port)",
    )
    service.add_argument(
        "--service-host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )

    logging_group = parser.add_argument_group("logging (on stderr)")
    logging_group.add_argument("--log-level", choices=LOG_LEVELS, default="warning")
    logging_group.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console on a terminal, json otherwise (default auto)",
    )
    return parser


def _time_bound(option: str, text: str) -> TimeBound:
    try:
        return TimeBound.parse(text)
    except ValueError as exc:
        raise ValueError(f"{option} {exc}") from None


def build_tail_command(
    args: argparse.Namespace, env: Environment, stdout_is_tty: bool, color: bool
) -> TailCommand:
    """Validate parsed options; raise ConfigError listing every invalid one."""
    problems: list[str] = []

    since = until = None
    try:
        since = _time_bound("--since", args.since)
    except ValueError as exc:
        problems.append(str(exc))
    if args.until is not None:
        try:
            until = _time_bound("--until", args.until)
        except ValueError as exc:
            problems.append(str(exc))
    try:
        lateness_ns = parse_duration(args.lateness)
    except ValueError as exc:
        problems.append(f"--lateness: {exc}")
        lateness_ns = 0

    filters = QueryFilters({})
    try:
        filters = QueryFilters.from_mapping(
            {param: getattr(args, param) for _, param, _ in _FILTER_OPTIONS},
            option_names={param: option for option, param, _ in _FILTER_OPTIONS},
        )
    except ConfigError as exc:
        problems.extend(exc.problems)

    numeric_checks = (
        (1 <= args.page_size <= 500, f"--page-size {args.page_size} is outside 1..500"),
        (args.timeout > 0, f"--timeout {args.timeout} must be more than 0 seconds"),
        (args.poll_interval > 0, f"--poll-interval {args.poll_interval} must be more than 0"),
        (
            args.poll_max_interval >= args.poll_interval,
            f"--poll-max-interval {args.poll_max_interval} is below --poll-interval "
            f"{args.poll_interval}",
        ),
        (args.retry_max_wait >= 0, f"--retry-max-wait {args.retry_max_wait} is negative"),
        (
            args.max_retries is None or args.max_retries >= 1,
            f"--max-retries {args.max_retries} must be at least 1",
        ),
        (
            args.service_port is None or 0 <= args.service_port <= 65535,
            f"--service-port {args.service_port} is outside 0..65535",
        ),
        (
            args.max_buffered_events >= 1,
            f"--max-buffered-events {args.max_buffered_events} must be at least 1",
        ),
    )
    problems.extend(message for ok, message in numeric_checks if not ok)

    api_url = args.api_url or env.api_url or DEFAULT_API_URL
    url_problem = check_url(
        api_url, allow_insecure_http=args.allow_insecure_http, option="--api-url"
    )
    if url_problem:
        problems.append(url_problem)

    token: Token | None = None
    if args.token_file:
        try:
            token = Token.from_file(args.token_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    elif env.api_key is not None and env.api_key.get_secret_value().strip():
        token = Token(env.api_key.get_secret_value().strip(), source=f"${TOKEN_ENV_VAR}")
    else:
        problems.append(f"no API key: set {TOKEN_ENV_VAR} or pass --token-file FILE")

    output: OutputFormat = args.output or ("pretty" if stdout_is_tty else "json")
    if args.template and output != "template":
        if args.output is None:
            output = "template"
        else:
            problems.append(f"--template needs --output template, not --output {output}")
    formatter = None
    try:
        formatter = make_formatter(output, color=color, utc=args.utc, template=args.template)
    except ConfigError as exc:
        problems.extend(exc.problems)

    if problems:
        raise ConfigError(problems)
    assert since is not None
    assert token is not None
    assert formatter is not None

    attempts = args.max_retries
    if attempts is None and not args.follow:
        attempts = ONE_SHOT_MAX_ATTEMPTS
    client = ClientOptions(
        base_url=api_url,
        token=token,
        auth_header=args.auth_header,
        timeout=args.timeout,
        proxy=args.proxy,
        ca_file=args.ca_file,
        verify_tls=not args.no_verify_tls,
        retry=RetryPolicy(max_delay=args.retry_max_wait, max_attempts=attempts),
    )
    poller = PollerSettings(
        since=since,
        until=until,
        follow=args.follow,
        filters=filters,
        lateness_ns=lateness_ns,
        page_size=args.page_size,
        min_interval=args.poll_interval,
        max_interval=args.poll_max_interval,
        window_capacity=args.max_buffered_events,
    )
    service_address = None
    if args.service_port is not None:
        service_address = (args.service_host, args.service_port)
    return TailCommand(
        client=client, poller=poller, formatter=formatter, service_address=service_address
    )


def _tail(argv: Sequence[str]) -> ExitCode:
    args = tail_parser().parse_args(argv)
    if args.no_color:
        os.environ["NO_COLOR"] = "1"  # the log renderer reads it too
    configure_logging(args.log_level, args.log_format)
    color = use_color(sys.stdout, no_color_flag=args.no_color, environ=os.environ)
    try:
        command = build_tail_command(args, Environment(), sys.stdout.isatty(), color)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"runtools-tail: {problem}", file=sys.stderr)
        return ExitCode.USAGE_ERROR

    async def tail() -> None:
        await run_tail(command, sys.stdout.buffer)

    return run_main(tail)


# Options whose value may start with "-", as in `--since -5m`. Given as a separate
# word, argparse would take such a value for an unknown option.
_DASH_VALUE_OPTIONS = frozenset({"--since", "--until"})


def _attach_dash_values(arguments: list[str]) -> list[str]:
    """Join `--since -5m` into `--since=-5m`, which argparse reads as a value.

    Only a value of a dash and a digit is joined, so `--since --follow` still
    reports the missing value. Nothing after `--` changes.
    """
    joined: list[str] = []
    position = 0
    while position < len(arguments):
        word = arguments[position]
        if word == "--":
            return joined + arguments[position:]
        value = arguments[position + 1] if position + 1 < len(arguments) else ""
        if word in _DASH_VALUE_OPTIONS and value[:1] == "-" and value[1:2].isdigit():
            joined.append(f"{word}={value}")
            position += 2
        else:
            joined.append(word)
            position += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `runtools-tail` console script and `python -m tailer`."""
    arguments = _attach_dash_values(list(sys.argv[1:] if argv is None else argv))
    if arguments and arguments[0] in DAEMON_COMMANDS:
        from tailer import daemon_commands

        return int(daemon_commands.run(arguments[0], arguments[1:]))
    if arguments and arguments[0] in COMMANDS:
        from tailer import commands

        return int(commands.run(arguments[0], arguments[1:]))
    return int(_tail(arguments))


if __name__ == "__main__":
    sys.exit(main())
