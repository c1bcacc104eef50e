"""Hot spots of runtools-tail during a catch-up backfill, sampled with py-spy.

py-spy is not a dependency of the project: install it into the environment
for profiling only (`.venv/bin/pip install py-spy`). It samples the product's
Python stacks from outside the process, so the product runs unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.clients import format_since
from bench.plan import Plan
from bench.processes import BenchError, child_environment, product_command, run_child
from bench.report import progress
from bench.simulator import SimulatorProcess

__all__ = ["profile_catchup"]

_SAMPLES_PER_SECOND = 250
_SINCE_MARGIN = 60.0
_PRODUCT = "(tailer/"  # how py-spy names a frame of the product's package


def _read_stacks(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Count, from py-spy's raw output, the samples each function was running and was on.

    Returns (self samples, inclusive samples, total samples). A line of the raw
    format is the frames from the outermost, separated by ";", then a space
    and the number of samples.
    """
    self_samples: Counter[str] = Counter()
    inclusive_samples: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):  # a recursive function counts once per sample
            inclusive_samples[frame] += count
    return self_samples, inclusive_samples, total


def _render(title: str, samples: Counter[str], total: int, top: int) -> list[str]:
    lines = [title]
    for frame, count in samples.most_common(top):
        lines.append(f"  {count / total:6.1%}  {frame}")
    return lines


def profile_catchup(plan: Plan, workdir: Path, *, top: int = 15) -> str:
    """Backfill `plan.events` to /dev/null under py-spy and return the top functions."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise BenchError(
            f"{py_spy} not found. Install py-spy for profiling only: "
            f"{Path(sys.executable).with_name('pip')} install py-spy"
        )

    progress(f"profile: loading a backlog of {plan.events:,} events into the simulator")
    stacks = workdir / "profile.txt"
    with SimulatorProcess(backlog=plan.events, backlog_span=plan.backlog_span) as simulator:
        since = format_since(simulator.started_at - plan.backlog_span - _SINCE_MARGIN)
        argv = [
            str(py_spy),
            "record",
            "--format",
            "raw",
            "--function",
            "--rate",
            str(_SAMPLES_PER_SECOND),
            "--output",
            str(stacks),
            "--",
            sys.executable,
            *product_command(),
            "--api-url",
            simulator.url,
            "--since",
            since,
            "-o",
            "json",
        ]
        log = workdir / "profile.log"
        with log.open("wb") as stderr:
            result = run_child(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                timeout=600.0,
                environment=child_environment(),
            )
    if result.returncode != 0 or not stacks.exists():
        raise BenchError(f"py-spy failed with status {result.returncode}:\n{log.read_text()}")

    self_samples, inclusive_samples, total = _read_stacks(stacks)
    lines = [
        f"py-spy, {total:,} samples at {_SAMPLES_PER_SECOND}/s over {result.wall_seconds:.1f} s "
        f"backfilling {plan.events:,} events to /dev/null",
        "",
        *_render("Own time (the function itself was running):", self_samples, total, top),
        "",
        *_render(
            "Total time of the product's own functions (the function was on the stack):",
            Counter(
                {frame: count for frame, count in inclusive_samples.items() if _PRODUCT in frame}
            ),
            total,
            top,
        ),
    ]
    return "\n".join(lines)
