"""Health, readiness and metrics of a running daemon, scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from localservers import KEY, ReceiverThread, SimulatorProcess
from prometheus_client.parser import text_string_to_metric_families

from tailer.service import HEALTH_PATH, METRICS_PATH, READY_PATH


class Daemon:
    """`runtools-tail run` as a subprocess with its service on an ephemeral port."""

    def __init__(self, config: Path, log: Path, *, key: str = KEY) -> None:
        self.log = log
        with log.open("ab") as stream:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tailer", "run"),
                    *("--config", str(config), "--log-format", "json"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stream,
                env={**os.environ, "RUNTOOLS_API_KEY": key},
            )
        self.port = 0
        try:
            wait_for(lambda: self._find_port() > 0, 30, "the service listener")
        except AssertionError:
            self.process.kill()
            self.process.wait(10)
            raise

    def _find_port(self) -> int:
        for line in self.log.read_bytes().splitlines():
            entry = orjson.loads(line) if line.startswith(b"{") else {}
            if entry.get("event") == "service.started":
                self.port = int(entry["port"])
        return self.port

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get(METRICS_PATH)
        assert status == 200
        values = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        assert code == 0


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.fixture
def simulator() -> Iterator[SimulatorProcess]:
    process = SimulatorProcess("--backlog", "400", "--backlog-span", "30m", "--seed", "8")
    yield process
    process.stop()


def write_config(tmp_path: Path, api_url: str, sinks: str) -> Path:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "service: {port: 0, sink_failure_unready_secs: 1}\n"
        f"sources:\n  main: {{api_url: '{api_url}', since: 1h, poll_interval_secs: 0.2}}\n"
        f"sinks:\n{sinks}"
    )
    return config


@pytest.mark.timeout(120)
def test_truncated_syslog_events_counted(simulator: SimulatorProcess, tmp_path: Path) -> None:
    import socket
    import threading

    messages: list[bytes] = []

    def receive(listener: socket.socket) -> None:
        """Read octet-counted frames ("LENGTH SP MESSAGE") until 400 messages arrived."""
        connection, _ = listener.accept()
        with connection:
            buffered = b""
            while len(messages) < 400:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffered += chunk
                while b" " in buffered:
                    length, _, rest = buffered.partition(b" ")
                    if len(rest) < int(length):
                        break
                    messages.append(rest[: int(length)])
                    buffered = rest[int(length) :]

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = listener.getsockname()[1]
        reader = threading.Thread(target=receive, args=(listener,), daemon=True)
        reader.start()
        # The simulator's events are about 800 bytes as JSON, so 480 cuts every one.
        sinks = (
            f"  logs: {{type: syslog, host: 127.0.0.1, port: {port}, protocol: tcp, "
            "max_message_bytes: 480}\n"
        )
        daemon = Daemon(write_config(tmp_path, simulator.url, sinks), tmp_path / "daemon.log")
        try:
            reader.join(30)
            wait_for(
                lambda: (
                    daemon.metrics().get(
                        ("runtools_tail_sink_events_delivered_total", (("sink", "logs"),))
                    )
                    == 400
                ),
                30,
                "the backlog to be confirmed",
            )
            metrics = daemon.metrics()
        finally:
            daemon.stop()

    sink = (("sink", "logs"),)
    assert metrics[("runtools_tail_sink_events_truncated_total", sink)] == 400
    assert len(messages) == 400
    assert all(len(message) <= 480 for message in messages)
    assert all(message.endswith("…[truncated]".encode()) for message in messages)


@pytest.mark.timeout(120)
def test_endpoints_report_flowing_events(simulator: SimulatorProcess, tmp_path: Path) -> None:
    archive = tmp_path / "archive.ndjson"
    config = write_config(tmp_path, simulator.url, f"  archive: {{type: file, path: {archive}}}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert daemon.get(HEALTH_PATH) == (200, b'{"status": "ok"}')
        wait_for(lambda: daemon.get(READY_PATH)[0] == 200, 30, "readiness")
        wait_for(
            lambda: archive.exists() and len(archive.read_bytes().splitlines()) == 400, 30, "events"
        )
        first = daemon.metrics()
        simulator.control("POST", "/_control/events", [{} for _ in range(25)])
        wait_for(lambda: lines(archive) == 425, 30, "the injected events")
        second = daemon.metrics()
        status, body = daemon.get(READY_PATH)
    finally:
        daemon.stop()

    source = (("source", "main"),)
    sink = (("sink", "archive"),)
    assert first[("runtools_tail_events_new_total", source)] == 400
    assert second[("runtools_tail_events_new_total", source)] == 425
    assert second[("runtools_tail_sink_events_delivered_total", sink)] == 425
    assert second[("runtools_tail_sink_backlog_events", sink)] == 0
    assert second[("runtools_tail_sink_events_truncated_total", sink)] == 0
    assert second[("runtools_tail_events_received_total", source)] >= 425
    assert second[("runtools_tail_events_invalid_total", source)] == 0
    assert second[("runtools_tail_api_requests_total", (("code", "200"), *source))] > 1
    assert second[("runtools_tail_api_request_duration_seconds_count", source)] > 1
    assert second[("runtools_tail_sink_batch_duration_seconds_count", sink)] >= 1
    assert second[("runtools_tail_source_lag_seconds", source)] < 60
    assert (
        second[("runtools_tail_source_last_success_timestamp_seconds", source)] > time.time() - 60
    )
    assert second[("runtools_tail_polling_paused", ())] == 0
    assert status == 200
    assert orjson.loads(body) == {
        "ready": True,
        "sources": {"main": {"ready": True, "reason": None}},
        "sinks": {"archive": {"ready": True, "reason": None}},
    }


@pytest.mark.timeout(120)
def test_lag_reported_when_restarted_during_outage(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    from tailer.timeparse import parse_time

    archive = tmp_path / "archive.ndjson"
    sinks = f"  archive: {{type: file, path: {archive}}}\n"
    daemon = Daemon(write_config(tmp_path, simulator.url, sinks), tmp_path / "daemon.log")
    try:
        wait_for(lambda: lines(archive) == 400, 30, "events")
    finally:
        daemon.stop()
    newest = max(
        parse_time(orjson.loads(line)["createdAt"]) for line in archive.read_bytes().splitlines()
    )

    # Nothing listens on port 9 of 127.0.0.1, so every request of the restarted daemon fails.
    unreachable = write_config(tmp_path, "http://127.0.0.1:9", sinks)
    daemon = Daemon(unreachable, tmp_path / "daemon-down.log")
    lag_key = ("runtools_tail_source_lag_seconds", (("source", "main"),))
    try:
        wait_for(lambda: lag_key in daemon.metrics(), 30, "the lag gauge")
        before = time.time()
        lag = daemon.metrics()[lag_key]
        after = time.time()
        status, _ = daemon.get(READY_PATH)
    finally:
        daemon.stop()

    assert before - newest / 1e9 - 1 <= lag <= after - newest / 1e9 + 1
    assert status == 503


@pytest.mark.timeout(120)
def test_not_ready_while_source_cannot_authenticate(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    config = write_config(tmp_path, simulator.url, "  out: {type: stdout}\n")
    daemon = Daemon(config, tmp_path / "daemon.log", key="rt_test_wrong_key_value")
    try:
        wait_for(lambda: b"source.failed" in daemon.log.read_bytes(), 30, "the failure")
        status, body = daemon.get(READY_PATH)
    finally:
        daemon.stop()

    report = orjson.loads(body)
    assert status == 503
    assert report["ready"] is False
    assert report["sources"]["main"]["ready"] is False
    assert "AuthenticationError" in report["sources"]["main"]["reason"]
    assert "rt_test_wrong_key_value" not in body.decode()


@pytest.mark.timeout(120)
def test_not_ready_while_sink_is_stuck(simulator: SimulatorProcess, tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=503)

    with ReceiverThread("/hook", refuse) as receiver:
        sinks = (
            f"  hook:\n    type: webhook\n    url: {receiver.url}\n"
            "    retry: {initial_backoff_secs: 0.05, max_backoff_secs: 0.1}\n"
        )
        daemon = Daemon(write_config(tmp_path, simulator.url, sinks), tmp_path / "daemon.log")
        try:

            def sink_stuck_source_ready() -> bool:
                report = orjson.loads(daemon.get(READY_PATH)[1])
                source_ready = report["sources"]["main"]["ready"]
                return bool(source_ready and not report["sinks"]["hook"]["ready"])

            wait_for(sink_stuck_source_ready, 30, "the sink to be stuck")
            status, body = daemon.get(READY_PATH)
            metrics = daemon.metrics()
        finally:
            daemon.stop()

    report = orjson.loads(body)
    assert status == 503
    assert report["sinks"]["hook"]["ready"] is False
    assert report["sinks"]["hook"]["reason"].startswith("failing for")
    assert metrics[("runtools_tail_sink_batch_failures_total", (("sink", "hook"),))] > 3
    assert metrics[("runtools_tail_sink_backlog_events", (("sink", "hook"),))] == 400
