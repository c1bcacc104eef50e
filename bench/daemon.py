"""One backfill by the daemon (`runtools-tail run`) into its file sink, fsync per batch.

The daemon never exits by itself, so the run ends when the sink's file contains
every event of the backlog. The benchmark counts the lines of that file as
they arrive, reading only the bytes added since its last look every
`_POLL_SECONDS`, so the end is seen at most that late and the daemon pays
nothing for being watched. It then stops the daemon with SIGTERM and reads
its CPU time and peak RSS from `wait4`, which includes the few ms of the
orderly stop.

Every event goes the daemon's whole way: poller, the SQLite journal, the sink
runner and the file sink, which calls fsync before it confirms each batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.clients import BackfillRun, timeout_for
from bench.processes import BenchError, product_command, start_child
from bench.simulator import SimulatorProcess

__all__ = ["run_daemon_file"]

_POLL_SECONDS = 0.01
_STOP_SECONDS = 30.0  # time the daemon gets to stop after SIGTERM before SIGKILL


class _LineCounter:
    """Counts the newlines of a file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self.lines = 0

    def update(self) -> int:
        with contextlib.suppress(FileNotFoundError), self._path.open("rb") as stream:
            stream.seek(self._offset)
            while chunk := stream.read(1 << 20):
                self._offset += len(chunk)
                self.lines += chunk.count(b"\n")
        return self.lines


def _write_config(run_dir: Path, simulator: SimulatorProcess, since: str, output: Path) -> Path:
    config = {
        "state_dir": str(run_dir / "state"),
        "sources": {"main": {"api_url": simulator.url, "since": since}},
        "sinks": {"archive": {"type": "file", "path": str(output), "fsync": "batch"}},
        # The health and metrics listener is not needed; it stays on loopback.
        "service": {"host": "127.0.0.1", "port": 0},
    }
    path = run_dir / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def _stop(process: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    """Stop the daemon with SIGTERM, or SIGKILL after _STOP_SECONDS; return status and usage."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_SECONDS
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            raise BenchError(f"runtools-tail run did not stop within {_STOP_SECONDS:.0f} s")
        time.sleep(_POLL_SECONDS)


def run_daemon_file(
    simulator: SimulatorProcess, since: str, expected: int, workdir: Path
) -> BackfillRun:
    """Run `runtools-tail run` with one file sink until its file contains `expected` lines."""
    run_dir = workdir / "daemon"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    output = run_dir / "events.ndjson"
    config = _write_config(run_dir, simulator, since, output)
    argv = [*product_command(), "run", "--config", str(config), "--log-format", "json"]
    log = run_dir / "daemon.log"
    counter = _LineCounter(output)
    deadline = time.perf_counter() + timeout_for(expected, 500.0)

    with log.open("wb") as stderr:
        before = simulator.cpu_seconds()
        started = time.perf_counter()
        process = start_child(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            while counter.update() < expected:
                if process.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise BenchError(
                        f"runtools-tail run exited with status {process.returncode} after "
                        f"{counter.lines} of {expected} events. Its stderr:\n{tail}"
                    )
                if time.perf_counter() > deadline:
                    raise BenchError(
                        f"runtools-tail run delivered {counter.lines} of {expected} events "
                        "before the deadline"
                    )
                time.sleep(_POLL_SECONDS)
            finished = time.perf_counter()
            simulator_cpu = simulator.cpu_seconds() - before
        finally:
            status, usage = _stop(process)

    if status != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"runtools-tail run stopped with status {status}. Its stderr:\n{tail}")
    lines = counter.update()
    if lines != expected:
        raise BenchError(f"runtools-tail run wrote {lines} lines to its file, expected {expected}")
    shutil.rmtree(run_dir)
    return BackfillRun(
        events=expected,
        wall_seconds=finished - started,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports ru_maxrss in KiB
        simulator_cpu_seconds=simulator_cpu,
    )
