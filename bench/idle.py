"""Idle cost: the CPU time and memory of runtools-tail -f on a feed with no events."""

from __future__ import annotations

import subprocess
import tempfile
import time

from bench.plan import Plan
from bench.processes import BenchError, follow_command, sample_process, start_child, stop_child
from bench.report import Row, format_bytes, progress
from bench.simulator import SimulatorProcess

__all__ = ["measure_idle"]

_CPU_TARGET = 0.01  # fraction of one core


def measure_idle(plan: Plan) -> list[Row]:
    """Follow an empty feed for `plan.idle_seconds` after a warm-up; return the rows.

    CPU time and RSS are read from /proc at the end of the warm-up and of the
    run, so the start of the interpreter is left out.
    """
    progress(f"idle: following an empty feed for {plan.idle_seconds:g} s")
    with SimulatorProcess() as simulator, tempfile.TemporaryFile(prefix="bench-idle-") as log:
        argv = follow_command(simulator.url, "1m", plan.poll_interval)
        process = start_child(argv, stdout=subprocess.DEVNULL, stderr=log)
        try:
            time.sleep(plan.idle_warmup_seconds)
            before = sample_process(process.pid)
            requests_before = simulator.statistics()["requests"]
            measured_from = time.monotonic()

            time.sleep(plan.idle_seconds)
            if process.poll() is not None:
                log.seek(0)
                raise BenchError(
                    f"runtools-tail -f exited with status {process.returncode}:\n"
                    f"{log.read().decode(errors='replace')[-2000:]}"
                )
            after = sample_process(process.pid)
            requests = simulator.statistics()["requests"] - requests_before
            elapsed = time.monotonic() - measured_from
        finally:
            stop_child(process)

    busy = (after.cpu_seconds - before.cpu_seconds) / elapsed
    return [
        Row(
            "idle follow",
            f"{busy:.2%} of a core",
            "",
            None,
            f"< {_CPU_TARGET:.0%} of a core",
            busy < _CPU_TARGET,
        ),
        Row(
            "idle follow",
            f"RSS {format_bytes(after.rss_bytes)}; API requests in {elapsed:.0f} s: {requests}",
        ),
    ]
