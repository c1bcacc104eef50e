"""Peak memory of a backfill: does it stay flat from a backlog to one ten times larger?

The larger backlog is measured twice. Spread over a ten times longer span,
it has the density of the smaller one, so only its size differs. Spread over
the same span, it is ten times denser, so each time window of the poller
contains more events, up to the window buffer's capacity (`--max-buffered-events`,
10,000 by default).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.clients import BackfillRun, format_since, run_product
from bench.plan import Plan
from bench.report import MB, Row, format_bytes, median, progress
from bench.simulator import SimulatorProcess

__all__ = ["measure_memory"]

_GROWTH_TARGET = 1.2  # peak RSS of the large backfill over that of the small one
_LIMIT_BYTES = 100 * MB
_SINCE_MARGIN = 60.0
_SECONDS_PER_HOUR = 3600.0


def _backfill(plan: Plan, size: int, span: float, workdir: Path) -> float:
    """Backfill `size` events spread over `span` seconds; return the median peak RSS."""
    progress(f"memory: loading {size:,} events over {span / _SECONDS_PER_HOUR:g} h")
    runs: list[BackfillRun] = []
    with SimulatorProcess(backlog=size, backlog_span=span) as simulator:
        since = format_since(simulator.started_at - span - _SINCE_MARGIN)
        for repeat in range(1, plan.memory_repeats + 1):
            runs.append(run_product(simulator, since, size, "null", workdir))
            progress(
                f"memory {size:,} events {repeat}/{plan.memory_repeats}: peak RSS "
                f"{format_bytes(runs[-1].max_rss_bytes)}"
            )
    return median([run.max_rss_bytes for run in runs])


def _label(size: int, span: float) -> str:
    return f"memory, {size:,} events over {span / _SECONDS_PER_HOUR:g} h"


def measure_memory(plan: Plan) -> list[Row]:
    """Backfill the small and the large backlog to /dev/null and compare peak RSS."""
    small_size, large_size = plan.memory_sizes
    small_span = plan.backlog_span
    scaled_span = small_span * large_size / small_size
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as directory:
        workdir = Path(directory)
        small_peak = _backfill(plan, small_size, small_span, workdir)
        larger = [
            (scaled_span, _backfill(plan, large_size, scaled_span, workdir)),
            (small_span, _backfill(plan, large_size, small_span, workdir)),
        ]

    small_label = f"{small_size:,} events {format_bytes(small_peak)}"
    rows = [Row(_label(small_size, small_span), f"peak RSS {format_bytes(small_peak)}")]
    for span, peak in larger:
        label = _label(large_size, span)
        rows.append(
            Row(
                label,
                f"peak RSS {format_bytes(peak)}",
                small_label,
                peak / small_peak,
                f"<= {_GROWTH_TARGET:.2f}",
                peak / small_peak <= _GROWTH_TARGET,
            )
        )
        rows.append(
            Row(
                label,
                f"peak RSS {format_bytes(peak)}",
                f"limit {format_bytes(_LIMIT_BYTES)}",
                peak / _LIMIT_BYTES,
                "< 1.00",
                peak < _LIMIT_BYTES,
            )
        )
    return rows
