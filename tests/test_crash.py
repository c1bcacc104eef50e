"""No loss across `kill -9`: the daemon as a subprocess, killed at random moments and restarted.

The simulator runs with a backlog, live events, late events and API faults; a
webhook receiver on 127.0.0.1 fails for stretches and rejects some batches for
good; a file sink archives everything. At the end every sink must hold exactly
what its filter admits.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from localservers import KEY, ReceiverThread, SimulatorProcess

from tailer.timeparse import parse_time

KILLS = 22
SEED = 20261204
LATE_MAX_SECS = 2.0
POISON_SUFFIX = "0"  # the receiver rejects, with 422, any batch holding such an id


class Receiver:
    """A webhook receiver: records batches, fails on a schedule, rejects poisoned batches."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, list[str]]] = []
        self.rejected: list[tuple[str, list[str]]] = []
        self.requests = 0
        self.server = ReceiverThread("/events", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        key = request.headers["Idempotency-Key"]
        ids = [event["id"] for event in orjson.loads(await request.read())]
        # Fails for stretches: 6 of every 20 requests get a 503.
        if self.requests % 20 < 6:
            return web.Response(status=503, text="maintenance")
        if any(event_id.endswith(POISON_SUFFIX) for event_id in ids):
            self.rejected.append((key, ids))
            return web.Response(status=422, text="unprocessable event")
        self.accepted.append((key, ids))
        return web.Response(status=204)


def write_config(tmp_path: Path, api_url: str, webhook_url: str) -> Path:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"""
state_dir: {tmp_path / "state"}
shutdown_grace_secs: 5
service: {{port: 0}}
sources:
  main:
    api_url: {api_url}
    since: 3h
    lateness_secs: 5
    poll_interval_secs: 0.2
    poll_max_interval_secs: 0.5
    page_size: 100
    retry_max_wait_secs: 0.5
sinks:
  archive:
    type: file
    path: {tmp_path / "archive.ndjson"}
    batch: {{max_events: 200, max_wait_secs: 0.1}}
  hook:
    type: webhook
    url: {webhook_url}
    filter: {{min_severity: warning}}
    batch: {{max_events: 3, max_wait_secs: 0.1}}
    retry: {{initial_backoff_secs: 0.05, max_backoff_secs: 0.2, max_attempts: 40}}
    dead_letter_path: {tmp_path / "hook.dead.ndjson"}
"""
    )
    return config


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNTOOLS_API_KEY": KEY}
    with log.open("ab") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tailer",
                "run",
                "--config",
                str(config),
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=env,
        )


def file_ids(path: Path, *, writer_running: bool = False) -> list[dict[str, Any]]:
    """Return the file's events. While the daemon runs, a batch it is appending is
    left out; once it has stopped, a partial last line fails the test."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if writer_running:
        data = data[: data.rfind(b"\n") + 1]
    assert data == b"" or data.endswith(b"\n"), "the file ends in a partial line"
    return [orjson.loads(line) for line in data.splitlines()]


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    with running.server:
        yield running


@pytest.mark.timeout(420)
def test_kill_9_loses_nothing_and_repeats_nothing(tmp_path: Path, receiver: Receiver) -> None:
    simulator = SimulatorProcess(
        "--backlog",
        "3000",
        "--backlog-span",
        "2h",
        "--rate",
        "20",
        "--seed",
        str(SEED),
        "--late-max",
        str(LATE_MAX_SECS),
        "--late-fraction",
        "0.2",
        "--fault-5xx",
        "0.05",
        "--fault-429",
        "0.03",
        "--precision",
        "ms",
    )
    config = write_config(tmp_path, simulator.url, receiver.server.url)
    log = tmp_path / "daemon.log"
    archive = tmp_path / "archive.ndjson"
    rng = random.Random(SEED)
    daemon: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(KILLS):
            daemon = start_daemon(config, log)
            time.sleep(rng.uniform(0.3, 1.5))
            daemon.send_signal(signal.SIGKILL)
            assert daemon.wait(10) == -signal.SIGKILL

        simulator.control("PATCH", "/_control/behaviour", {"rate": 0})
        time.sleep(LATE_MAX_SECS + 0.5)  # every late event is visible by now
        truth = simulator.control("GET", "/_control/events")
        truth_ids = [event["id"] for event in truth]

        daemon = start_daemon(config, log)
        wait_for(
            lambda: len(file_ids(archive, writer_running=True)) >= len(truth_ids),
            120,
            "the archive to fill",
        )
        expected_hook = {e["id"] for e in truth if e.get("severity") in ("warning", "error")}

        def hook_settled() -> bool:
            seen = {i for _, ids in receiver.accepted for i in ids}
            dead = tmp_path / "hook.dead.ndjson"
            if dead.exists():
                data = dead.read_bytes()
                # The daemon may be appending a batch right now: read complete lines
                # only, and the rest at the next look.
                complete = data[: data.rfind(b"\n") + 1]
                seen |= {orjson.loads(line)["event"]["id"] for line in complete.splitlines()}
            return expected_hook <= seen

        wait_for(hook_settled, 120, "the webhook sink to settle")
        time.sleep(1.0)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        simulator.stop()

    # The file: each id once, no partial line, oldest first up to late events.
    written = file_ids(archive)
    written_ids = [event["id"] for event in written]
    assert len(written_ids) == len(set(written_ids)), "the file holds a duplicate line"
    assert sorted(written_ids) == sorted(truth_ids)
    newest = -1
    for event in written:
        time_ns = parse_time(event["createdAt"])
        # An event older than one already written must be a late one.
        assert time_ns >= newest - int((LATE_MAX_SECS + 1.5) * 1e9), event["id"]
        newest = max(newest, time_ns)

    # The webhook: duplicates only as whole repeated batches with the same key.
    batches_by_key: dict[str, list[list[str]]] = defaultdict(list)
    for key, ids in receiver.accepted:
        batches_by_key[key].append(ids)
    owner: dict[str, str] = {}
    for key, copies in batches_by_key.items():
        assert all(copy == copies[0] for copy in copies), f"batch {key} changed between tries"
        for event_id in copies[0]:
            assert owner.setdefault(event_id, key) == key, f"{event_id} sent in two batches"
    accepted_ids = set(owner)

    # Dead letters: exactly the events of batches the receiver rejected for good.
    dead_lines = (tmp_path / "hook.dead.ndjson").read_bytes().splitlines()
    dead_ids = {orjson.loads(line)["event"]["id"] for line in dead_lines}
    rejected_ids = {event_id for _, ids in receiver.rejected for event_id in ids}
    assert dead_ids == rejected_ids
    assert not dead_ids & accepted_ids
    assert accepted_ids | dead_ids == expected_hook
    assert rejected_ids, "the run never exercised a rejected batch"

    repeats = sum(len(copies) - 1 for copies in batches_by_key.values())
    print(
        f"\ncrash test: {KILLS} kills, {len(truth_ids)} events, file lines {len(written_ids)}, "
        f"webhook events {len(accepted_ids)} in {len(batches_by_key)} batches "
        f"({repeats} batch repeats), dead letters {len(dead_ids)}"
    )
