"""The results table, its number formats, and the description of the machine."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "MB",
    "Row",
    "describe_machine",
    "describe_revision",
    "format_bytes",
    "format_cpu",
    "format_milliseconds",
    "format_rate",
    "load_average",
    "median",
    "percentile",
    "progress",
    "render_table",
]

MB = 1_000_000
"""A megabyte as the targets count it: 10^6 bytes."""

_HEADER = ("scenario", "figure", "baseline", "ratio", "target", "result")


@dataclass(frozen=True)
class Row:
    """One line of the table. `met` is None for a figure reported without a target."""

    scenario: str
    figure: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    failed: bool = False

    @property
    def result(self) -> str:
        if self.failed:
            return "failed"
        if self.met is None:
            return ""
        return "met" if self.met else "missed"

    def cells(self) -> tuple[str, ...]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        return (self.scenario, self.figure, self.baseline, ratio, self.target, self.result)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "result": self.result}


def render_table(rows: Sequence[Row]) -> str:
    """Render the rows as a Markdown table with aligned columns."""
    lines = [_HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(_HEADER))]

    def render(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(lines[0]), separator, *(render(cells) for cells in lines[1:])])


def progress(message: str) -> None:
    """Print a progress line to stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], percent: int) -> float:
    """Return the `percent` percentile, interpolated between the two nearest values."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def format_rate(events_per_second: float) -> str:
    return f"{events_per_second:,.0f} events/s"


def format_cpu(seconds_per_100k: float) -> str:
    return f"{seconds_per_100k:.2f} CPU s/100k events"


def format_bytes(size: float) -> str:
    return f"{size / MB:.1f} MB"


def format_milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages, which show other work on the machine."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def describe_revision() -> str:
    """Return the git commit of the measured code, noting uncommitted changes to tailer/."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "tailer"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} with uncommitted changes in tailer/" if changes else commit


def describe_machine() -> dict[str, str]:
    """Return the date, CPU, cores, memory and Python version of this run."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }
