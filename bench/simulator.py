"""The API simulator in a process of its own, on an ephemeral port of 127.0.0.1.

The simulator runs apart from the programs it serves, so its CPU time can be
read on its own (`cpu_seconds`) and the benchmark can tell whether it, and
not the client, limited a run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.processes import API_KEY, BenchError, child_environment, sample_process

__all__ = ["PAGE_SIZE", "SimulatorProcess"]

PAGE_SIZE = 500
"""Events per page, the API's maximum, for the simulator's default and every client."""

_URL_LINE = re.compile(rb"listening on (http://127\.0\.0\.1:\d+) ")
_CONTROL_TIMEOUT = 30.0  # seconds per control request


class SimulatorProcess:
    """`runtools-tail simulate` as a child process, stopped on exit from the `with` block.

    The backlog is loaded before the simulator prints its URL, so `start`
    returns once every backlog event is served. `backlog_span` is seconds.
    """

    def __init__(
        self,
        *,
        backlog: int = 0,
        backlog_span: float = 3600.0,
        rate: float = 0.0,
        extra_args: Sequence[str] = (),
        start_timeout: float = 180.0,
    ) -> None:
        self._argv = [
            sys.executable,
            "-m",
            "tailer",
            "simulate",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--key",
            API_KEY,
            "--backlog",
            str(backlog),
            "--backlog-span",
            f"{backlog_span:g}",
            "--rate",
            f"{rate:g}",
            "--order",
            "newest",
            "--default-limit",
            str(PAGE_SIZE),
            "--log-level",
            "warning",
            *extra_args,
        ]
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.url = ""
        self.started_at = 0.0
        """Epoch seconds just before the process started: no backlog event is newer."""

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError("The simulator is not running.")
        return self._process.pid

    def start(self) -> None:
        """Start the process and wait until it prints its URL. Raises BenchError on failure."""
        descriptor, name = tempfile.mkstemp(prefix="bench-simulator-", suffix=".log")
        self._log = Path(name)
        self.started_at = time.time()
        try:
            self._process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=descriptor,
                env=child_environment(),
                start_new_session=True,
            )
        finally:
            os.close(descriptor)

        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            match = _URL_LINE.search(self._log.read_bytes())
            if match:
                self.url = match.group(1).decode()
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise BenchError(f"The simulator did not start. Its output:\n{output}")

    def stop(self) -> None:
        """Stop the process with SIGINT, which ends it cleanly, then SIGKILL if it lingers.

        Stopping removes the log, so read `output` before.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def output(self) -> str:
        """Return what the simulator wrote to stderr so far."""
        if self._log is None:
            return ""
        return self._log.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """Return the CPU time the simulator used so far, at the clock-tick resolution."""
        return sample_process(self.pid).cpu_seconds

    def control(self, method: str, path: str, body: object = None) -> Any:
        """Send a request to a control endpoint, such as `/_control/stats`, and return its JSON."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        # The URL is always http://127.0.0.1, so no proxy or other host is involved.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=_CONTROL_TIMEOUT) as response:
            return json.loads(response.read())

    def statistics(self) -> dict[str, int]:
        """Return the simulator's counters of requests, faults and events."""
        result: dict[str, int] = self.control("GET", "/_control/stats")
        return result
