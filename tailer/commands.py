"""The `simulate` and `demo` commands, which run the bundled API simulator."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from tailer.client import ClientOptions
from tailer.credentials import Token
from tailer.errors import ConfigError
from tailer.exitcodes import ExitCode
from tailer.logs import LOG_LEVELS, configure_logging
from tailer.output import OutputFormat, make_formatter, use_color
from tailer.poller import PollerSettings, TimeBound
from tailer.simulator import (
    ApiKey,
    Simulator,
    SimulatorConfig,
    add_simulate_arguments,
    config_from_arguments,
)
from tailer.simulator.cli import serve
from tailer.tail import TailCommand, run_main, run_tail
from tailer.timeparse import NS_PER_SECOND

__all__ = ["run"]

DEMO_KEY = "rt_test_demo"


def _simulate(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail simulate",
        description=(
            "Serve a local simulator of the RunTools activity API, for tests, benchmarks "
            "and trying the tailer without an account. Listens on 127.0.0.1 by default."
        ),
    )
    add_simulate_arguments(parser)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = config_from_arguments(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"runtools-tail simulate: {problem}", file=sys.stderr)
        return ExitCode.USAGE_ERROR

    async def simulate() -> None:
        await serve(config)

    return run_main(simulate, stop_code=ExitCode.OK)


def _demo(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail demo",
        description=(
            "Start the API simulator in this process with a short backlog and live events, "
            "and follow it in pretty output until Ctrl-C."
        ),
    )
    parser.add_argument("--rate", type=float, default=1.0, help="live events per second")
    parser.add_argument("--seed", type=int, help="seed for the simulated events (default random)")
    parser.add_argument("--no-color", action="store_true", help="no colour (also: $NO_COLOR)")
    args = parser.parse_args(argv)
    configure_logging("warning")

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    config = SimulatorConfig(
        port=0,
        seed=seed,
        backlog=30,
        backlog_span=600.0,
        rate=args.rate,
        late_max=5.0,
        keys=[ApiKey(key=SecretStr(DEMO_KEY))],
    )
    color = use_color(sys.stdout, no_color_flag=args.no_color, environ=os.environ)
    output: OutputFormat = "pretty" if sys.stdout.isatty() else "json"

    async def demo() -> None:
        async with Simulator(config) as simulator:
            command = TailCommand(
                client=ClientOptions(
                    base_url=simulator.url, token=Token(DEMO_KEY, source="the demo")
                ),
                poller=PollerSettings(
                    since=TimeBound(ago_ns=600 * NS_PER_SECOND),
                    follow=True,
                    lateness_ns=30 * NS_PER_SECOND,
                    min_interval=0.5,
                    max_interval=2.0,
                ),
                formatter=make_formatter(output, color=color),
            )
            print(
                f"runtools-tail demo: following the bundled API simulator at {simulator.url} "
                f"(seed {seed}); press Ctrl-C to stop.",
                file=sys.stderr,
                flush=True,
            )
            await run_tail(command, sys.stdout.buffer)

    return run_main(demo, stop_code=ExitCode.OK)


def run(command: str, argv: Sequence[str]) -> ExitCode:
    """Run the named command with its own arguments."""
    if command == "simulate":
        return _simulate(argv)
    if command == "demo":
        return _demo(argv)
    raise ValueError(f"unknown command {command!r}")
