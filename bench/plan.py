"""Sizes, repeats and durations of a benchmark run: the full run and the quick one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Plan"]


@dataclass(frozen=True)
class Plan:
    """The sizes, repeats and durations of one run. Durations and intervals are seconds."""

    events: int
    """Backlog of the catch-up and faulty-API backfills."""
    repeats: int
    """Runs of each client in the catch-up and faulty-API scenarios; figures are medians."""
    memory_sizes: tuple[int, int]
    """Backlogs of the two memory backfills, the smaller first."""
    memory_repeats: int
    live_rates: tuple[float, ...]
    """Live events per second, one latency measurement each."""
    live_seconds: float
    live_warmup_seconds: float
    """Events created this soon after the product started are left out of the latencies."""
    idle_seconds: float
    idle_warmup_seconds: float
    """Time left out of the idle figures, so the interpreter's start is not counted."""
    poll_interval: float = 1.0
    """`--poll-interval` of the live and idle runs; 1 s is the product's default."""
    backlog_span: float = 3600.0
    """Period before the simulator's start that contains every backlog."""
    fault_5xx: float = 0.05
    fault_429: float = 0.02


FULL = Plan(
    events=200_000,
    repeats=5,
    memory_sizes=(100_000, 1_000_000),
    memory_repeats=3,
    live_rates=(50.0, 1000.0),
    live_seconds=60.0,
    live_warmup_seconds=5.0,
    idle_seconds=60.0,
    idle_warmup_seconds=5.0,
)

QUICK = Plan(
    events=50_000,
    repeats=3,
    memory_sizes=(20_000, 200_000),
    memory_repeats=1,
    live_rates=(50.0, 1000.0),
    live_seconds=15.0,
    live_warmup_seconds=3.0,
    idle_seconds=15.0,
    idle_warmup_seconds=3.0,
)
