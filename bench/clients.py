"""One backfill by each client: runtools-tail, the ceiling loop and the curl + jq loop.

Each function runs its client once as a subprocess against a running
simulator, checks that it read exactly the expected number of events, and
returns the run's wall time, CPU time, peak RSS and the simulator's CPU time
meanwhile. A run that fails or reads a different number raises BenchError,
because its figures would not be comparable.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from bench.processes import BenchError, ChildResult, product_command, run_child
from bench.simulator import PAGE_SIZE, SimulatorProcess

__all__ = [
    "BackfillRun",
    "format_since",
    "run_ceiling",
    "run_curl_jq",
    "run_product",
    "timeout_for",
]

Destination = Literal["null", "file"]

_BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BackfillRun:
    """The figures of one client reading one backlog."""

    events: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    simulator_cpu_seconds: float
    pages: int = 0
    """Pages the client read, or 0 where it does not count them (curl + jq)."""
    retries: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds

    @property
    def cpu_seconds_per_100k(self) -> float:
        return self.cpu_seconds * 100_000 / self.events

    @property
    def simulator_busy(self) -> float:
        """Fraction of one core the simulator used during the run."""
        return self.simulator_cpu_seconds / self.wall_seconds


def format_since(epoch_seconds: float) -> str:
    """Format a time as the ISO 8601 `since` every client is given, in whole UTC seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_seconds)))


def timeout_for(expected: int, min_rate: float) -> float:
    """Return a deadline generous enough for a client at `min_rate` events/s."""
    return 120.0 + expected / min_rate


def _max_pages(expected: int) -> int:
    return expected // PAGE_SIZE + 10


def _run_measured(
    simulator: SimulatorProcess,
    argv: list[str],
    *,
    stdout: Path | None,
    stderr: Path,
    timeout: float,
) -> tuple[ChildResult, float]:
    """Run a client to its end; return its result and the simulator's CPU seconds meanwhile.

    `stdout` None sends the output to /dev/null.
    """
    with contextlib.ExitStack() as stack:
        error_stream = stack.enter_context(stderr.open("wb"))
        output_stream = (
            stack.enter_context(stdout.open("wb")) if stdout is not None else subprocess.DEVNULL
        )
        before = simulator.cpu_seconds()
        result = run_child(argv, stdout=output_stream, stderr=error_stream, timeout=timeout)
        return result, simulator.cpu_seconds() - before


def _check_exit(name: str, result: ChildResult, stderr: Path) -> None:
    if result.returncode != 0:
        tail = stderr.read_text(errors="replace")[-2000:]
        raise BenchError(f"{name} exited with status {result.returncode}. Its stderr:\n{tail}")


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _read_summary(stderr: Path) -> dict[str, object]:
    """Return the fields of the product's `poll.stopped` log line, or {} without one."""
    for line in reversed(stderr.read_bytes().splitlines()):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == "poll.stopped":
            return record
    return {}


def run_product(
    simulator: SimulatorProcess,
    since: str,
    expected: int,
    destination: Destination,
    workdir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    min_rate: float = 500.0,
) -> BackfillRun:
    """Run `runtools-tail --since SINCE -o json` to /dev/null or a file, once.

    `expected` is the number of events in the window, checked against the
    count in the product's `poll.stopped` log line and, for a file, its lines.
    `min_rate` (events/s) sets the deadline.
    """
    argv = [
        *product_command(),
        "--api-url",
        simulator.url,
        "--since",
        since,
        "-o",
        "json",
        "--log-level",
        "info",
        "--log-format",
        "json",
        *extra_args,
    ]
    output = workdir / "product.ndjson"
    stderr = workdir / "product.log"
    result, simulator_cpu = _run_measured(
        simulator,
        argv,
        stdout=output if destination == "file" else None,
        stderr=stderr,
        timeout=timeout_for(expected, min_rate),
    )
    _check_exit("runtools-tail", result, stderr)

    summary = _read_summary(stderr)
    written = summary.get("written")
    if written != expected:
        raise BenchError(f"runtools-tail wrote {written} events, expected {expected}")
    if destination == "file":
        lines = _count_lines(output)
        output.unlink()
        if lines != expected:
            raise BenchError(f"runtools-tail wrote {lines} lines to the file, expected {expected}")
    pages, retries = summary.get("pages"), summary.get("retries")
    return BackfillRun(
        events=expected,
        wall_seconds=result.wall_seconds,
        cpu_seconds=result.cpu_seconds,
        max_rss_bytes=result.max_rss_bytes,
        simulator_cpu_seconds=simulator_cpu,
        pages=pages if isinstance(pages, int) else 0,
        retries=retries if isinstance(retries, int) else 0,
    )


def run_ceiling(
    simulator: SimulatorProcess, since: str, expected: int, workdir: Path
) -> BackfillRun:
    """Run the minimal aiohttp + orjson loop of bench/ceiling.py once."""
    timeout = timeout_for(expected, 2000.0)
    argv = [
        sys.executable,
        str(_BENCH_DIR / "ceiling.py"),
        simulator.url,
        since,
        str(_max_pages(expected)),
        str(timeout - 10.0),
    ]
    output = workdir / "ceiling.json"
    stderr = workdir / "ceiling.log"
    result, simulator_cpu = _run_measured(
        simulator, argv, stdout=output, stderr=stderr, timeout=timeout
    )
    _check_exit("the ceiling loop", result, stderr)

    counts = orjson.loads(output.read_bytes())
    if counts["events"] != expected:
        raise BenchError(f"the ceiling loop read {counts['events']} events, expected {expected}")
    return BackfillRun(
        events=expected,
        wall_seconds=result.wall_seconds,
        cpu_seconds=result.cpu_seconds,
        max_rss_bytes=result.max_rss_bytes,
        simulator_cpu_seconds=simulator_cpu,
        pages=counts["pages"],
    )


def run_curl_jq(
    simulator: SimulatorProcess, since: str, expected: int, workdir: Path
) -> BackfillRun:
    """Run the bash loop of bench/curl_jq.sh once, appending to a file."""
    output = workdir / "curl_jq.ndjson"
    argv = [
        "bash",
        str(_BENCH_DIR / "curl_jq.sh"),
        simulator.url,
        since,
        str(output),
        str(_max_pages(expected)),
    ]
    stderr = workdir / "curl_jq.log"
    result, simulator_cpu = _run_measured(
        simulator, argv, stdout=None, stderr=stderr, timeout=timeout_for(expected, 200.0)
    )
    _check_exit("the curl + jq loop", result, stderr)

    lines = _count_lines(output)
    output.unlink()
    if lines != expected:
        raise BenchError(f"the curl + jq loop wrote {lines} lines, expected {expected}")
    return BackfillRun(
        events=expected,
        wall_seconds=result.wall_seconds,
        cpu_seconds=result.cpu_seconds,
        max_rss_bytes=result.max_rss_bytes,
        simulator_cpu_seconds=simulator_cpu,
    )
