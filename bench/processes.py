"""Child processes of the benchmarks: start, wait with resource usage, read /proc.

Every measured program runs as a real subprocess. Its CPU time and peak RSS
come from the kernel's accounting of that child (`wait4`), which includes
the descendants it waited for, such as the curl and jq processes of a shell
loop. The wall time is taken around the whole child, interpreter start
included.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "API_KEY",
    "BenchError",
    "ChildResult",
    "ProcessSample",
    "child_environment",
    "compile_product",
    "product_command",
    "run_child",
    "sample_process",
    "stop_child",
]

API_KEY = "rt_test_simulator"
"""The admin key every simulator of the benchmarks accepts."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


class BenchError(Exception):
    """A measurement that could not be taken, such as a child that failed or timed out."""


@dataclass(frozen=True)
class ChildResult:
    """The outcome of one child process: exit code, wall time and the kernel's accounting."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    """User plus system CPU time of the child and of the descendants it waited for."""
    max_rss_bytes: int
    """Peak resident set size of the child, or of its largest waited-for descendant."""


@dataclass(frozen=True)
class ProcessSample:
    """A reading of a running process from /proc."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def child_environment() -> dict[str, str]:
    """Return the environment of every child: the API key set, proxies removed.

    Without proxy variables, every request goes straight to the simulator on 127.0.0.1.
    """
    environment = {
        name: value for name, value in os.environ.items() if name not in _PROXY_VARIABLES
    }
    environment["RUNTOOLS_API_KEY"] = API_KEY
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    environment.pop("RUNTOOLS_API_URL", None)
    environment.pop("NO_COLOR", None)
    return environment


def product_command() -> list[str]:
    """Return the command that starts runtools-tail from the interpreter's environment."""
    script = Path(sys.executable).with_name("runtools-tail")
    if not script.exists():
        raise BenchError(
            f"{script} not found: install the package into this environment first "
            "(`make bench` does it, or `pip install -e .`)."
        )
    return [str(script)]


def compile_product() -> None:
    """Byte-compile the installed package, as pip does when it installs a wheel.

    An editable install leaves the package as source. With PYTHONDONTWRITEBYTECODE
    set, Python then compiles every module again at each start of the product:
    about 70 ms per start on the machine of the results in bench/README.md.
    """
    spec = importlib.util.find_spec("tailer")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the tailer package is not installed in this environment: run `pip install -e .` "
            "(`make bench` does it)"
        )
    for directory in spec.submodule_search_locations:
        if not compileall.compile_dir(directory, quiet=1):
            raise BenchError(f"byte-compiling {directory} failed; the errors are printed above")


def start_child(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None,
    stderr: IO[bytes] | int | None,
    environment: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a command with no input, in a process group of its own so it can be killed whole."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=environment if environment is not None else child_environment(),
        start_new_session=True,
    )


def follow_command(url: str, since: str, poll_interval: float) -> list[str]:
    """Return the terminal command that follows the feed at `url` and prints JSON lines."""
    return [
        *product_command(),
        *("--api-url", url, "-f", "--since", since, "-o", "json"),
        *("--poll-interval", f"{poll_interval:g}", "--log-level", "warning"),
    ]


def run_child(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None,
    stderr: IO[bytes] | int | None,
    timeout: float,
    environment: dict[str, str] | None = None,
) -> ChildResult:
    """Run a command to its end and return its exit code, wall time and resource usage.

    The child leads a process group of its own, so on timeout the whole group
    (such as a shell loop and its curl) is killed, and BenchError is raised.
    """
    started = time.perf_counter()
    process = start_child(argv, stdout=stdout, stderr=stderr, environment=environment)
    outcome: list[tuple[int, resource.struct_rusage, float]] = []

    def reap() -> None:
        _, status, usage = os.wait4(process.pid, 0)
        outcome.append((status, usage, time.perf_counter()))

    # wait4 has no timeout, so it waits in a thread while this one keeps the deadline.
    reaper = threading.Thread(target=reap, name=f"reap-{process.pid}", daemon=True)
    reaper.start()
    try:
        reaper.join(timeout)
    except BaseException:  # such as KeyboardInterrupt: the child must not outlive the run
        _kill_group(process.pid)
        reaper.join()
        raise
    if reaper.is_alive():
        _kill_group(process.pid)
        reaper.join()
        process.returncode = -signal.SIGKILL
        raise BenchError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s")

    status, usage, finished = outcome[0]
    process.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(
        returncode=process.returncode,
        wall_seconds=finished - started,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports ru_maxrss in KiB
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_child(process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> int:
    """Send SIGTERM to a child started here, and SIGKILL to its group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
    return process.returncode


def sample_process(pid: int) -> ProcessSample:
    """Read the CPU time, RSS and peak RSS of a running process from /proc.

    CPU time has the resolution of the kernel's clock tick, 10 ms at the usual 100 Hz.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces, so fields are counted after its closing bracket.
    fields = stat[stat.rindex(")") + 2 :].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])

    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            memory[name] = int(value.split()[0]) * 1024
    return ProcessSample(
        cpu_seconds=(user_ticks + system_ticks) / _CLOCK_TICKS,
        rss_bytes=memory.get("VmRSS", 0),
        peak_rss_bytes=memory.get("VmHWM", 0),
    )
