"""Catch-up throughput against its baselines, and the same backfill from a faulty API.

All clients read the same window of one simulator's backlog. They get the
same absolute `since`, a minute before the oldest event. Their runs are
interleaved (one of each client per repeat), so a slow moment of the machine
touches every client alike. runtools-tail also reads the backlog with a
`since` a day back, as a user who does not know where the backlog starts
would, because the poller's windows then start empty and grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import BackfillRun, format_since, run_ceiling, run_curl_jq, run_product
from bench.daemon import run_daemon_file
from bench.plan import Plan
from bench.report import Row, format_bytes, format_cpu, format_rate, median, progress
from bench.simulator import SimulatorProcess

__all__ = ["CatchupResults", "measure_catchup", "measure_clean_rate", "measure_faulty_api"]

# Margin between the `since` of the clients and the oldest possible backlog event.
_SINCE_MARGIN = 60.0
_WIDE_SINCE = 86400.0  # seconds before the simulator's start of the wide `since`
# A simulator busy above this fraction of a core during a run was saturated, so it limited the run.
_SATURATED = 0.9

_CEILING_RATE_TARGET = {"null": 0.8, "daemon": 0.6}
_CEILING_CPU_TARGET = 3.0
_CURL_JQ_TARGET = 5.0


@dataclass
class CatchupResults:
    """The runs of each client, in the order they ran."""

    ceiling: list[BackfillRun] = field(default_factory=list)
    null: list[BackfillRun] = field(default_factory=list)
    file: list[BackfillRun] = field(default_factory=list)
    """runtools-tail with its stdout on a file."""
    daemon: list[BackfillRun] = field(default_factory=list)
    """The daemon, `runtools-tail run`, into its file sink with fsync per batch."""
    curl_jq: list[BackfillRun] = field(default_factory=list)
    wide: list[BackfillRun] = field(default_factory=list)
    """runtools-tail to /dev/null, with `since` a day back."""
    empty: list[BackfillRun] = field(default_factory=list)


def _rate(runs: list[BackfillRun]) -> float:
    return median([run.events_per_second for run in runs])


def _cpu(runs: list[BackfillRun]) -> float:
    return median([run.cpu_seconds_per_100k for run in runs])


_SCENARIOS = {
    "null": "catch-up > /dev/null",
    "file": "catch-up > file",
    "daemon": "catch-up, run > file sink",
}


def _busy(runs: list[BackfillRun]) -> float:
    return median([run.simulator_busy for run in runs])


def measure_catchup(plan: Plan, workdir: Path) -> tuple[CatchupResults, list[Row]]:
    """Backfill `plan.events` with every client `plan.repeats` times; return runs and rows."""
    results = CatchupResults()
    progress(f"catch-up: loading a backlog of {plan.events:,} events into the simulator")
    with SimulatorProcess(backlog=plan.events, backlog_span=plan.backlog_span) as simulator:
        since = format_since(simulator.started_at - plan.backlog_span - _SINCE_MARGIN)
        wide_since = format_since(simulator.started_at - _WIDE_SINCE)
        clients: list[tuple[str, list[BackfillRun], Callable[[], BackfillRun]]] = [
            (
                "ceiling loop",
                results.ceiling,
                lambda: run_ceiling(simulator, since, plan.events, workdir),
            ),
            (
                "runtools-tail > /dev/null",
                results.null,
                lambda: run_product(simulator, since, plan.events, "null", workdir),
            ),
            (
                "runtools-tail > file",
                results.file,
                lambda: run_product(simulator, since, plan.events, "file", workdir),
            ),
            (
                "runtools-tail run > file sink",
                results.daemon,
                lambda: run_daemon_file(simulator, since, plan.events, workdir),
            ),
            (
                "curl + jq > file",
                results.curl_jq,
                lambda: run_curl_jq(simulator, since, plan.events, workdir),
            ),
            (
                "runtools-tail --since a day back > /dev/null",
                results.wide,
                lambda: run_product(simulator, wide_since, plan.events, "null", workdir),
            ),
        ]
        for repeat in range(1, plan.repeats + 1):
            for name, runs, run in clients:
                runs.append(run())
                progress(
                    f"catch-up {repeat}/{plan.repeats}: {name}: "
                    f"{format_rate(runs[-1].events_per_second)}, "
                    f"{runs[-1].wall_seconds:.1f} s"
                )

        # A window newer than the backlog: the cost of starting, one probe, one page and exiting.
        for _ in range(plan.repeats):
            results.empty.append(run_product(simulator, "1s", 0, "null", workdir))
    return results, catchup_rows(results)


def _compare(
    scenario: str,
    figure: str,
    value: float,
    baseline: str,
    baseline_value: float,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Row:
    """Build a row with the ratio value / baseline_value and its target, if it has one."""
    ratio = value / baseline_value
    if at_least is not None:
        return Row(scenario, figure, baseline, ratio, f">= {at_least:.2f}", ratio >= at_least)
    if at_most is not None:
        return Row(scenario, figure, baseline, ratio, f"<= {at_most:.2f}", ratio <= at_most)
    return Row(scenario, figure, baseline, ratio)


def catchup_rows(results: CatchupResults) -> list[Row]:
    """Compare the product's medians with the baselines' medians."""
    ceiling_rate, ceiling_cpu = _rate(results.ceiling), _cpu(results.ceiling)
    curl_jq_rate, curl_jq_cpu = _rate(results.curl_jq), _cpu(results.curl_jq)
    rows = []

    for destination, runs in (
        ("null", results.null),
        ("file", results.file),
        ("daemon", results.daemon),
    ):
        scenario = _SCENARIOS[destination]
        rate, cpu = _rate(runs), _cpu(runs)
        rate_text, cpu_text = format_rate(rate), format_cpu(cpu)
        # The CPU target is the null sink's. curl + jq appends to a file, so the
        # file sink is held to the target against it.
        to_file_sink = destination == "daemon"
        rows += [
            _compare(
                scenario,
                rate_text,
                rate,
                f"ceiling {format_rate(ceiling_rate)}",
                ceiling_rate,
                at_least=_CEILING_RATE_TARGET.get(destination),
            ),
            _compare(
                scenario,
                cpu_text,
                cpu,
                f"ceiling {format_cpu(ceiling_cpu)}",
                ceiling_cpu,
                at_most=_CEILING_CPU_TARGET if destination == "null" else None,
            ),
            _compare(
                scenario,
                rate_text,
                rate,
                f"curl + jq {format_rate(curl_jq_rate)}",
                curl_jq_rate,
                at_least=_CURL_JQ_TARGET if to_file_sink else None,
            ),
            _compare(scenario, cpu_text, cpu, f"curl + jq {format_cpu(curl_jq_cpu)}", curl_jq_cpu),
        ]

    rows += _since_rows(results)
    empty = results.empty
    rows.append(
        Row(
            "runtools-tail, empty window",
            f"{median([run.wall_seconds for run in empty]):.2f} s wall, "
            f"{median([run.cpu_seconds for run in empty]):.2f} CPU s",
        )
    )
    rows.extend(_simulator_rows(results))
    return rows


def _since_rows(results: CatchupResults) -> list[Row]:
    """Compare pages and peak memory of the product with the ceiling, and the wide `since`."""
    scenario = "catch-up > /dev/null"
    wide_scenario = "catch-up > /dev/null, since a day back"
    pages = median([run.pages for run in results.null])
    wide_pages = median([run.pages for run in results.wide])
    ceiling_pages = median([run.pages for run in results.ceiling])
    rate, wide_rate = _rate(results.null), _rate(results.wide)
    peak = median([run.max_rss_bytes for run in results.null])
    wide_peak = median([run.max_rss_bytes for run in results.wide])
    return [
        _compare(
            scenario, f"{pages:,.0f} pages", pages, f"ceiling {ceiling_pages:,.0f}", ceiling_pages
        ),
        _compare(
            wide_scenario,
            format_rate(wide_rate),
            wide_rate,
            f"since 1 min before backlog {format_rate(rate)}",
            rate,
        ),
        _compare(
            wide_scenario,
            f"{wide_pages:,.0f} pages",
            wide_pages,
            f"ceiling {ceiling_pages:,.0f}",
            ceiling_pages,
        ),
        _compare(
            wide_scenario,
            f"peak RSS {format_bytes(wide_peak)}",
            wide_peak,
            f"since 1 min before backlog {format_bytes(peak)}",
            peak,
        ),
    ]


def _simulator_rows(results: CatchupResults) -> list[Row]:
    """Report the simulator's ceiling and how busy it was during each client's runs."""
    # CPU time has a 10 ms resolution, so a tiny backlog may read as no time at all.
    measured = [run for run in results.ceiling if run.simulator_cpu_seconds > 0]
    if measured:
        served = median([run.events / run.simulator_cpu_seconds for run in measured])
        rows = [Row("simulator ceiling", f"{served:,.0f} events served per CPU second")]
    else:
        rows = [Row("simulator ceiling", "not measured: the backlog is too small")]
    for name, runs in (
        ("ceiling loop", results.ceiling),
        ("catch-up > /dev/null", results.null),
        ("catch-up > file", results.file),
        ("catch-up, run > file sink", results.daemon),
        ("curl + jq > file", results.curl_jq),
        ("catch-up > /dev/null, since a day back", results.wide),
    ):
        busy = _busy(runs)
        verdict = "saturated, so it limited the run" if busy >= _SATURATED else "not saturated"
        rows.append(Row(f"simulator during {name}", f"{busy:.0%} of a core busy, {verdict}"))
    return rows


def measure_faulty_api(plan: Plan, clean_rate: float, workdir: Path) -> tuple[list[Row], float]:
    """Backfill `plan.events` to /dev/null from a simulator with injected 5xx and 429.

    Returns the rows and the median rate. `clean_rate` is the median of the
    clean backfill to /dev/null, the baseline.
    """
    extra_args = ["--fault-5xx", f"{plan.fault_5xx:g}", "--fault-429", f"{plan.fault_429:g}"]
    progress(
        f"faulty API: loading {plan.events:,} events, {plan.fault_5xx:.0%} 5xx "
        f"and {plan.fault_429:.0%} 429"
    )
    runs: list[BackfillRun] = []
    with SimulatorProcess(
        backlog=plan.events, backlog_span=plan.backlog_span, extra_args=extra_args
    ) as simulator:
        since = format_since(simulator.started_at - plan.backlog_span - _SINCE_MARGIN)
        started = time.monotonic()
        for repeat in range(1, plan.repeats + 1):
            runs.append(run_product(simulator, since, plan.events, "null", workdir, min_rate=100))
            progress(
                f"faulty API {repeat}/{plan.repeats}: {format_rate(runs[-1].events_per_second)}, "
                f"{runs[-1].retries} retries"
            )
        statistics = simulator.statistics()

    rate = _rate(runs)
    faults = statistics["faults_server_error"] + statistics["faults_rate_limited"]
    rows = [
        Row(
            "faulty API > /dev/null",
            format_rate(rate),
            f"clean run {format_rate(clean_rate)}",
            rate / clean_rate,
        ),
        Row(
            "faulty API > /dev/null",
            f"retries per run: {median([run.retries for run in runs]):.0f}; "
            f"failed requests: {faults} of {statistics['requests']}; "
            f"every run wrote all {plan.events:,} events",
        ),
    ]
    progress(f"faulty API: done in {time.monotonic() - started:.0f} s")
    return rows, rate


def measure_clean_rate(plan: Plan, workdir: Path) -> float:
    """Return the median rate of clean backfills to /dev/null, when the catch-up did not run."""
    progress(f"clean baseline: loading a backlog of {plan.events:,} events into the simulator")
    with SimulatorProcess(backlog=plan.events, backlog_span=plan.backlog_span) as simulator:
        since = format_since(simulator.started_at - plan.backlog_span - _SINCE_MARGIN)
        runs = [
            run_product(simulator, since, plan.events, "null", workdir) for _ in range(plan.repeats)
        ]
    return _rate(runs)
