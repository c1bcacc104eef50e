"""Live latency: how long after an event becomes visible does runtools-tail -f write it?

Method. The simulator creates live events at a fixed mean rate with late
events off, so an event is visible from the moment it is created, and its
`createdAt` is that moment truncated to the millisecond. The product writes
one JSON line per event to a pipe and flushes each one. A thread here
stamps every chunk it reads from the pipe with the wall clock, and the
latency of an event is (stamp of the chunk that ends its line) - createdAt.
Both clocks are this machine's CLOCK_REALTIME, and the truncation makes each
latency at most 1 ms too long. Events created during the warm-up are left
out. After the run, the feed stops and the product gets a while to write the
events still in flight, so the count of delivered events covers the whole run.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import tempfile
import threading
import time
from typing import IO

import orjson

from bench.plan import Plan
from bench.processes import BenchError, follow_command, sample_process, start_child, stop_child
from bench.report import Row, format_milliseconds, percentile, progress
from bench.simulator import SimulatorProcess

__all__ = ["measure_live"]

_DRAIN_SECONDS = 30.0  # time to write the events in flight once the feed stops
_SLACK_SECONDS = 0.1  # the target: p99 within the poll interval plus this


class _StampedReader(threading.Thread):
    """A thread that reads a pipe to its end and stamps each chunk with the wall clock."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="live-reader", daemon=True)
        self._fd = stream.fileno()
        self.chunks: list[tuple[float, bytes]] = []
        self.lines = 0

    def run(self) -> None:
        while chunk := os.read(self._fd, 1 << 16):
            self.chunks.append((time.time(), chunk))
            self.lines += chunk.count(b"\n")

    def stamped_lines(self) -> list[tuple[float, bytes]]:
        """Return each complete line with the stamp of the chunk that ended it."""
        lines: list[tuple[float, bytes]] = []
        pending = b""
        for stamp, chunk in self.chunks:
            *complete, pending = (pending + chunk).split(b"\n")
            lines.extend((stamp, line) for line in complete)
        return lines


def _created_at(line: bytes) -> float:
    text = orjson.loads(line)["createdAt"]
    return datetime.datetime.fromisoformat(text).timestamp()


def _wait_for_lines(reader: _StampedReader, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while reader.lines < count and time.monotonic() < deadline:
        time.sleep(0.1)


def measure_live(plan: Plan, rate: float) -> list[Row]:
    """Follow a simulator creating `rate` events/s for `plan.live_seconds`; return the rows."""
    progress(f"live: following {rate:g} events/s for {plan.live_seconds:g} s")
    with (
        SimulatorProcess(rate=rate) as simulator,
        tempfile.TemporaryFile(prefix="bench-live-") as log,
    ):
        argv = [*follow_command(simulator.url, "10s", plan.poll_interval), "--log-format", "json"]
        process = start_child(argv, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        reader = _StampedReader(process.stdout)
        reader.start()
        started = time.time()
        try:
            time.sleep(plan.live_warmup_seconds)
            product_before = sample_process(process.pid).cpu_seconds
            simulator_before = simulator.cpu_seconds()
            measured_from = time.time()

            time.sleep(plan.live_seconds - plan.live_warmup_seconds)
            if process.poll() is not None:
                log.seek(0)
                raise BenchError(
                    f"runtools-tail -f exited with status {process.returncode}:\n"
                    f"{log.read().decode(errors='replace')[-2000:]}"
                )
            product_cpu = sample_process(process.pid).cpu_seconds - product_before
            simulator_cpu = simulator.cpu_seconds() - simulator_before
            measured_until = time.time()

            simulator.control("PATCH", "/_control/behaviour", {"rate": 0})
            stored = simulator.statistics()["events_stored"]
            _wait_for_lines(reader, stored, _DRAIN_SECONDS)
        finally:
            stop_child(process)
            reader.join(10.0)

    latencies = []
    for stamp, line in reader.stamped_lines():
        created = _created_at(line)
        if created >= started + plan.live_warmup_seconds:
            latencies.append(stamp - created)
    return _live_rows(
        plan,
        rate,
        latencies,
        reader.lines,
        stored,
        {
            "product": product_cpu / (measured_until - measured_from),
            "simulator": simulator_cpu / (measured_until - measured_from),
        },
    )


def _live_rows(
    plan: Plan,
    rate: float,
    latencies: list[float],
    delivered: int,
    stored: int,
    busy: dict[str, float],
) -> list[Row]:
    scenario = f"live, {rate:g} events/s"
    if not latencies:
        return [Row(scenario, f"no event delivered after the warm-up ({delivered} in all)")]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    interval = plan.poll_interval
    complete = delivered == stored
    return [
        Row(scenario, f"p50 {format_milliseconds(p50)}"),
        Row(
            scenario,
            f"p99 {format_milliseconds(p99)}",
            f"poll interval {format_milliseconds(interval)}",
            p99 / interval,
            f"p99 <= interval + {format_milliseconds(_SLACK_SECONDS)}",
            complete and p99 <= interval + _SLACK_SECONDS,
        ),
        Row(
            scenario,
            f"{delivered:,} of {stored:,} events written, "
            f"max {format_milliseconds(max(latencies))}",
        ),
        Row(
            scenario,
            f"product {busy['product']:.1%} of a core, simulator {busy['simulator']:.1%}",
        ),
    ]
