"""Command line of the benchmarks: pick the plan, run the scenarios, print one table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from bench.catchup import measure_catchup, measure_clean_rate, measure_faulty_api
from bench.idle import measure_idle
from bench.live import measure_live
from bench.memory import measure_memory
from bench.plan import FULL, QUICK, Plan
from bench.processes import BenchError, compile_product
from bench.profiling import profile_catchup
from bench.report import (
    Row,
    describe_machine,
    describe_revision,
    load_average,
    median,
    progress,
    render_table,
)
from bench.tools import ensure_commands

__all__ = ["main"]

SCENARIOS = ("catchup", "faults", "memory", "live", "idle")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark runtools-tail against a local API simulator and baselines measured "
            "in the same run, and print one table of figures, ratios and targets. Every "
            "process talks only to 127.0.0.1."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller backlogs, fewer repeats and shorter live and idle runs (a few minutes)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario, repeatable (default: all)",
    )
    parser.add_argument("--events", type=int, help="backlog of the catch-up and faulty-API runs")
    parser.add_argument("--repeats", type=int, help="runs per client in catch-up and faulty API")
    parser.add_argument("--live-seconds", type=float, help="duration of each live run, seconds")
    parser.add_argument("--idle-seconds", type=float, help="duration of the idle run, seconds")
    parser.add_argument(
        "--poll-interval",
        type=float,
        help="--poll-interval of runtools-tail in the live and idle runs, seconds (default 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows and the machine to FILE")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only profile a catch-up backfill with py-spy and print the hot spots",
    )
    return parser


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        "events": args.events,
        "repeats": args.repeats,
        "live_seconds": args.live_seconds,
        "idle_seconds": args.idle_seconds,
        "poll_interval": args.poll_interval,
    }
    plan = dataclasses.replace(
        plan, **{name: value for name, value in overrides.items() if value is not None}
    )
    # parser.error exits with status 2, as argparse does for its own checks.
    for option, value in (("--events", plan.events), ("--repeats", plan.repeats)):
        if value < 1:
            parser.error(f"{option} {value} is invalid: give 1 or more")
    if plan.live_seconds <= plan.live_warmup_seconds:
        parser.error(
            f"--live-seconds {plan.live_seconds:g} is invalid: give more than the warm-up "
            f"of {plan.live_warmup_seconds:g} s"
        )
    for option, seconds in (
        ("--idle-seconds", plan.idle_seconds),
        ("--poll-interval", plan.poll_interval),
    ):
        if seconds <= 0:
            parser.error(f"{option} {seconds:g} is invalid: give a number above 0")
    return plan


def _run_label(args: argparse.Namespace) -> str:
    label = "quick run" if args.quick else "full run"
    if args.only:
        label += f", only {', '.join(args.only)}"
    return label


def _run(name: str, measure: Callable[[], list[Row]], rows: list[Row]) -> bool:
    """Append the rows of one scenario, or one failed row. Return whether it succeeded."""
    try:
        rows.extend(measure())
    except BenchError as exc:
        progress(f"{name}: failed: {exc}")
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rows.append(Row(name, first_line, failed=True))
        return False
    except Exception as exc:
        traceback.print_exc()
        rows.append(Row(name, f"{type(exc).__name__}: {exc}", failed=True))
        return False
    return True


def _run_scenarios(plan: Plan, selected: Sequence[str], workdir: Path) -> tuple[list[Row], bool]:
    rows: list[Row] = []
    succeeded = True
    clean_rate: float | None = None

    if "catchup" in selected:

        def catchup() -> list[Row]:
            nonlocal clean_rate
            ensure_commands()
            results, catchup_rows = measure_catchup(plan, workdir)
            clean_rate = median([run.events_per_second for run in results.null])
            return catchup_rows

        succeeded &= _run("catch-up", catchup, rows)

    if "faults" in selected:

        def faults() -> list[Row]:
            baseline = clean_rate if clean_rate is not None else measure_clean_rate(plan, workdir)
            return measure_faulty_api(plan, baseline, workdir)[0]

        succeeded &= _run("faulty API", faults, rows)

    if "memory" in selected:
        succeeded &= _run("memory", lambda: measure_memory(plan), rows)
    if "live" in selected:
        for rate in plan.live_rates:
            succeeded &= _run(f"live, {rate:g} events/s", partial(measure_live, plan, rate), rows)
    if "idle" in selected:
        succeeded &= _run("idle follow", lambda: measure_idle(plan), rows)
    return rows, succeeded


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table. Exit 1 when a measurement failed.

    A missed target is a result, not a failure, so it does not change the exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    plan = _plan(args, parser)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])

    try:
        compile_product()
    except BenchError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        if args.profile:
            try:
                print(profile_catchup(plan, Path(directory)))
            except BenchError as exc:
                print(f"python -m bench: {exc}", file=sys.stderr)
                return 1
            return 0

        machine = describe_machine()
        revision = describe_revision()
        load_before = load_average()
        started = time.monotonic()
        rows, succeeded = _run_scenarios(plan, args.only or SCENARIOS, Path(directory))
        elapsed = time.monotonic() - started
        load_after = load_average()

    print(
        f"runtools-tail benchmarks ({_run_label(args)}): {command}\n"
        f"code: commit {revision}\n"
        f"{machine['date']}; {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
        f"Python {machine['python']}; {machine['system']}\n"
        f"run time {elapsed / 60:.1f} min; load average {load_before} at the start, "
        f"{load_after} at the end\n",
        flush=True,
    )
    print(render_table(rows), flush=True)
    if args.json is not None:
        report = {
            "command": command,
            "revision": revision,
            "machine": machine,
            "load_average": {"start": load_before, "end": load_after},
            "plan": dataclasses.asdict(plan),
            "seconds": round(elapsed, 1),
            "rows": [row.to_dict() for row in rows],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if succeeded else 1
