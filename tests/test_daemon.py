"""The daemon's commands as real subprocesses against the simulator and a local receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from localservers import KEY, ReceiverThread, SimulatorProcess
from oldjournal import schema_version, write_version_1_journal


class Receiver:
    """A webhook receiver whose `status` decides every answer and can change mid-test."""

    def __init__(self) -> None:
        self.status = 204
        self.received: list[str] = []
        self.server = ReceiverThread("/hook", self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    async def _handle(self, request: web.Request) -> web.Response:
        events = orjson.loads(await request.read())
        if self.status < 300:
            self.received.extend(event["id"] for event in events)
        return web.Response(status=self.status)


@pytest.fixture
def simulator() -> Iterator[str]:
    process = SimulatorProcess("--backlog", "300", "--backlog-span", "30m", "--seed", "5")
    yield process.url
    process.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    with running.server:
        yield running


def command(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RUNTOOLS_API_KEY": KEY},
        check=False,
    )


_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def kill_leftover_daemons() -> Iterator[None]:
    """Kill daemons a failed test left running, so none outlives its test."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start(config: Path, log: Path, output: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the daemon with its log on `log` and its stdout on `output`, if given."""
    with log.open("ab") as stream, (output or Path(os.devnull)).open("wb") as stdout:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tailer", "run"),
                *("--config", str(config), "--log-format", "json"),
            ],
            stdout=stdout,
            stderr=stream,
            env={**os.environ, "RUNTOOLS_API_KEY": KEY},
        )
    _started.append(process)
    return process


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def log_events(log: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]


def config_file(tmp_path: Path, api_url: str, sinks: str, extra: str = "") -> Path:
    path = tmp_path / "daemon.yaml"
    path.write_text(
        f"state_dir: {tmp_path / 'state'}\nservice: {{port: 0}}\n{extra}"
        f"sources:\n  main: {{api_url: '{api_url}', since: 1h, poll_interval_secs: 0.2}}\n"
        f"sinks:\n{sinks}"
    )
    path.chmod(0o600)
    return path


@pytest.mark.timeout(120)
def test_state_commands_report_newer_format(tmp_path: Path) -> None:
    import sqlite3

    from tailer.journal import Journal

    journal = Journal(tmp_path / "state")
    journal.open()
    journal.close()
    with sqlite3.connect(journal.path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    config = config_file(tmp_path, "http://127.0.0.1:9", "  out: {type: stdout}\n")
    expected = (
        f"runtools-tail state: journal {journal.path} is in format version 99, and this "
        "version of runtools-tail reads version 2; run the newer version that wrote it, "
        "or move the state directory aside to start afresh\n"
    )

    for action in (["show"], ["reset", "--source", "main", "--since", "1h"], ["compact"]):
        result = command("state", *action, "--config", str(config))
        assert result.returncode == 2, action
        assert result.stderr == expected, action


@pytest.mark.timeout(120)
def test_unusable_paths_are_config_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    bad_state = tmp_path / "bad-state.yaml"
    bad_state.write_text(
        f"state_dir: {blocker / 'state'}\n"
        "sources:\n  main: {api_url: 'http://127.0.0.1:9'}\nsinks:\n  out: {type: stdout}\n"
    )
    bad_state.chmod(0o600)
    bad_sink = config_file(
        tmp_path, "http://127.0.0.1:9", f"  archive: {{type: file, path: '{blocker / 'x'}'}}\n"
    )

    state_result = command("run", "--config", str(bad_state))
    sink_result = command("run", "--config", str(bad_sink), "--log-format", "json")

    assert state_result.returncode == 2
    assert state_result.stderr == (
        f"runtools-tail: state directory {str(blocker / 'state')!r} cannot be used: "
        "Not a directory; check state_dir and the permissions of its parents\n"
    )
    assert sink_result.returncode == 2
    assert "Traceback" not in sink_result.stderr
    assert sink_result.stderr.splitlines()[-1] == (
        f"runtools-tail: sink 'archive' cannot start: file sink 'archive' failed to open "
        f"{blocker}: File exists; fix its settings or the file system, then start again"
    )


@pytest.mark.timeout(60)
def test_missing_sink_secrets_reported_before_start(tmp_path: Path) -> None:
    sinks = (
        f"  archive: {{type: file, path: '{tmp_path / 'archive.ndjson'}'}}\n"
        "  hook:\n    type: webhook\n    url: http://127.0.0.1:9/in\n"
        "    allow_insecure_http: true\n    auth: {type: bearer, token_env: HOOK_TOKEN}\n"
        "  splunk:\n    type: splunk_hec\n    url: http://127.0.0.1:9\n"
        "    allow_insecure_http: true\n    token_env: HEC_TOKEN\n"
    )
    config = config_file(tmp_path, "http://127.0.0.1:9", sinks)
    unset = {"HOOK_TOKEN", "HEC_TOKEN"}
    environment = {name: value for name, value in os.environ.items() if name not in unset}

    result = subprocess.run(
        [sys.executable, "-m", "tailer", "run", "--config", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**environment, "RUNTOOLS_API_KEY": KEY},
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "runtools-tail: sinks.hook.auth.token: environment variable HOOK_TOKEN is not set or empty",
        "runtools-tail: sinks.splunk.token: environment variable HEC_TOKEN is not set or empty",
    ]
    assert not (tmp_path / "archive.ndjson").exists()
    assert not (tmp_path / "state").exists()


@pytest.mark.timeout(60)
def test_missing_tls_file_reported_before_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    sinks = (
        f"  hook: {{type: webhook, url: 'https://127.0.0.1:9/in', tls: {{ca_file: '{missing}'}}}}\n"
    )
    config = config_file(tmp_path, "http://127.0.0.1:9", sinks)

    result = command("run", "--config", str(config), "--log-format", "json")

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"runtools-tail: sinks.hook.tls.ca_file {str(missing)!r} cannot be loaded ([Errno 2] No "
        "such file or directory); it must be a PEM file of CA certificates"
    )
    assert '"sink.started"' not in result.stderr


@pytest.mark.timeout(120)
def test_every_missing_api_key_reported(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "sources:\n"
        f"  main: {{api_url: 'http://127.0.0.1:9', token_file: '{tmp_path / 'absent'}'}}\n"
        "  other: {api_url: 'http://127.0.0.1:9', token_env: OTHER_TEST_KEY}\n"
        "sinks:\n  out: {type: stdout}\n"
    )
    config.chmod(0o600)

    result = subprocess.run(
        [sys.executable, "-m", "tailer", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OTHER_TEST_KEY"},
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"runtools-tail: token file {str(tmp_path / 'absent')!r} not found; "
        "check sources.main.token_file",
        "runtools-tail: source 'other': no API key: set OTHER_TEST_KEY or token_file",
    ]
    assert not (tmp_path / "state").exists()


@pytest.mark.timeout(120)
def test_second_daemon_on_same_state_refused(simulator: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, simulator, "  out: {type: stdout}\n")
    log = tmp_path / "daemon.log"
    first = start(config, log)
    wait_for(lambda: (tmp_path / "state" / "journal.sqlite").exists(), 30, "the first daemon")

    second = command("run", "--config", str(config))

    assert second.returncode == 2
    assert "is in use by another runtools-tail process (PID" in second.stderr
    assert str(first.pid) in second.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0


@pytest.mark.timeout(60)
def test_taken_service_port_fails_before_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = config_file(tmp_path, "http://127.0.0.1:9", "  out: {type: stdout}\n")
        config.write_text(config.read_text().replace("{port: 0}", f"{{port: {port}}}"))
        log = tmp_path / "daemon.log"
        daemon = start(config, log)
        code = daemon.wait(30)

    text = log.read_text()
    assert code == 2, text
    assert f"service listener cannot bind 127.0.0.1:{port} (" in text
    assert "daemon.started" not in text


@pytest.mark.timeout(120)
def test_sigterm_commits_and_state_show_reports(
    simulator: str, receiver: Receiver, tmp_path: Path
) -> None:
    sinks = (
        f"  hook:\n    type: webhook\n    url: {receiver.url}\n"
        "    batch: {max_events: 50, max_wait_secs: 0.1}\n"
    )
    config = config_file(tmp_path, simulator, sinks)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    wait_for(lambda: len(receiver.received) >= 300, 60, "the backlog to arrive")
    daemon.send_signal(signal.SIGTERM)

    assert daemon.wait(30) == 0
    names = [entry["event"] for entry in log_events(log)]
    assert names[:2] == ["service.started", "daemon.started"]
    assert "daemon.stopping" in names
    assert names[-1] == "daemon.stopped"

    shown = command("state", "show", "--config", str(config), "--json")
    report = orjson.loads(shown.stdout)
    assert shown.returncode == 0, shown.stderr
    assert report["sinks"]["hook"]["backlog"] == 0
    assert report["sinks"]["hook"]["offset"] == len(receiver.received)
    assert report["sources"]["main"]["high_water"] is not None

    assert 0 < report["journal_bytes"] <= report["journal_file_bytes"]
    text = command("state", "show", "--config", str(config))
    assert "hook: offset" in text.stdout
    assert "backlog 0 event(s)" in text.stdout
    assert f"{report['journal_file_bytes']} bytes on disk" in text.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("since", ["2h", "-2h"])
def test_state_reset_reads_again(simulator: str, tmp_path: Path, since: str) -> None:
    output = tmp_path / "out.txt"
    sinks = "  out:\n    type: stdout\n    format: template\n    template: '{id}'\n"
    config = config_file(tmp_path, simulator, sinks)
    log = tmp_path / "daemon.log"

    def run_once() -> list[str]:
        with output.open("wb") as stdout, log.open("ab") as stderr:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "tailer", "run", "--config", str(config)],
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, "RUNTOOLS_API_KEY": KEY},
            )
            wait_for(lambda: len(output.read_text().splitlines()) >= 300, 60, "events")
            time.sleep(0.5)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
        return output.read_text().splitlines()

    first = run_once()
    reset = command("state", "reset", "--config", str(config), "--source", "main", "--since", since)
    assert reset.returncode == 0, reset.stderr
    assert "source main: will read again from" in reset.stdout
    assert reset.stdout.endswith(
        "; the sinks receive the events since then again, also those already delivered\n"
    )
    second = run_once()

    assert len(first) == 300
    assert second == first


@pytest.mark.timeout(60)
def test_state_reset_rejects_future_time(tmp_path: Path) -> None:
    from tailer.journal import Journal

    config = config_file(tmp_path, "http://127.0.0.1:9", "  out: {type: stdout}\n")
    journal = Journal(tmp_path / "state")
    journal.open()
    journal.close()

    reset = command(
        "state",
        "reset",
        "--config",
        str(config),
        "--source",
        "main",
        "--since",
        "2030-01-01T00:00:00Z",
    )

    assert reset.returncode == 2
    assert reset.stdout == ""
    assert "--since 2030-01-01T00:00:00.000Z is in the future (this machine's clock reads " in (
        reset.stderr
    )
    assert reset.stderr.endswith(
        "so the source would deliver nothing until then: give a past time, or a duration "
        "such as 30m\n"
    )
    journal.open()
    try:
        assert journal.source_checkpoint("main") is None
    finally:
        journal.close()


@pytest.mark.timeout(120)
def test_state_compact_waits_for_stopped_daemon(simulator: str, tmp_path: Path) -> None:
    import re

    archive = tmp_path / "archive.ndjson"
    config = config_file(tmp_path, simulator, f"  archive: {{type: file, path: '{archive}'}}\n")
    daemon = start(config, tmp_path / "daemon.log")
    wait_for(
        lambda: archive.exists() and len(archive.read_bytes().splitlines()) == 300, 60, "events"
    )

    busy = command("state", "compact", "--config", str(config))
    assert busy.returncode == 2
    assert "is in use by another runtools-tail process (PID" in busy.stderr
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0

    compacted = command("state", "compact", "--config", str(config))
    assert compacted.returncode == 0, compacted.stderr
    sizes = re.fullmatch(r"journal: (\d+) bytes on disk before, (\d+) after\n", compacted.stdout)
    assert sizes is not None, compacted.stdout
    assert 0 < int(sizes[2]) < int(sizes[1])
    report = orjson.loads(command("state", "show", "--config", str(config), "--json").stdout)
    assert report["newest_seq"] == 300
    assert report["sinks"] == {"archive": {"offset": 300, "backlog": 0}}
    assert report["journal_file_bytes"] == int(sizes[2])


@pytest.mark.timeout(120)
def test_dead_letters_replayed(simulator: str, receiver: Receiver, tmp_path: Path) -> None:
    dead = tmp_path / "hook.dead.ndjson"
    sinks = (
        f"  hook:\n    type: webhook\n    url: {receiver.url}\n"
        f"    dead_letter_path: {dead}\n"
        "    batch: {max_events: 100, max_wait_secs: 0.1}\n"
    )
    config = config_file(tmp_path, simulator, sinks)
    receiver.status = 400
    daemon = start(config, tmp_path / "daemon.log")
    wait_for(lambda: dead.exists() and len(dead.read_bytes().splitlines()) >= 300, 60, "dead")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    dead_ids = [orjson.loads(line)["event"]["id"] for line in dead.read_bytes().splitlines()]
    assert receiver.received == []

    receiver.status = 204
    replay = command("dead-letters", "replay", "hook", "--config", str(config))

    assert replay.returncode == 0, replay.stderr
    assert "replayed 300 event(s); 0 remain dead-lettered" in replay.stdout
    assert receiver.received == dead_ids
    assert not dead.exists()


def add_large_events(simulator: str) -> None:
    """Add 200 events of 8 kB each, so the backlog passes a 1 MiB journal cap."""
    for _ in range(4):
        big = [{"attributes": {"pad": "x" * 8000}} for _ in range(50)]
        request = urllib.request.Request(
            simulator + "/_control/events",
            data=orjson.dumps(big),
            method="POST",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass


@pytest.mark.timeout(120)
def test_short_pauses_for_a_healthy_sink_not_reported(simulator: str, tmp_path: Path) -> None:
    archive = tmp_path / "archive.ndjson"
    sinks = f"  archive:\n    type: file\n    path: {archive}\n"
    config = config_file(tmp_path, simulator, sinks, extra="max_journal_bytes: 1048576\n")
    add_large_events(simulator)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    wait_for(
        lambda: archive.exists() and len(archive.read_bytes().splitlines()) >= 500,
        60,
        "the backlog in the file",
    )
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0

    names = [entry["event"] for entry in log_events(log)]
    assert "journal.full" not in names
    assert "journal.resumed" not in names
    assert len(archive.read_bytes().splitlines()) == 500


@pytest.mark.timeout(120)
def test_full_journal_pauses_polling(simulator: str, receiver: Receiver, tmp_path: Path) -> None:
    receiver.status = 503
    # The file sink keeps up, so only the webhook may be named as holding polling back.
    sinks = (
        f"  archive:\n    type: file\n    path: {tmp_path / 'archive.ndjson'}\n"
        f"  hook:\n    type: webhook\n    url: {receiver.url}\n"
        "    retry: {initial_backoff_secs: 0.05, max_backoff_secs: 0.1}\n"
    )
    config = config_file(tmp_path, simulator, sinks, extra="max_journal_bytes: 1048576\n")
    add_large_events(simulator)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    wait_for(lambda: any(e["event"] == "journal.full" for e in log_events(log)), 60, "the pause")
    held_back = "status: paused: journal full; held back by sink hook\n"
    wait_for(
        lambda: held_back in command("state", "show", "--config", str(config)).stdout,
        30,
        "the status to name the webhook alone",
    )

    full = [e for e in log_events(log) if e["event"] == "journal.full"]
    assert len(full) == 1
    assert full[0]["sinks"] == ["hook"]

    receiver.status = 204
    wait_for(
        lambda: any(e["event"] == "journal.resumed" for e in log_events(log)), 60, "the resume"
    )
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert len(set(receiver.received)) == len(receiver.received)
    assert len(receiver.received) >= 500


@pytest.mark.timeout(60)
def test_config_readable_by_others_warned(simulator: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, simulator, "  out: {type: stdout}\n")
    config.chmod(0o644)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    wait_for(lambda: b"daemon.started" in log.read_bytes(), 30, "the start")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0

    warnings = [e for e in log_events(log) if e["event"] == "file.permissions_too_open"]
    assert len(warnings) == 1
    assert warnings[0]["path"] == str(config)
    assert warnings[0]["mode"] == "0644"


@pytest.mark.timeout(120)
def test_old_journal_upgraded_by_run_not_show(simulator: str, tmp_path: Path) -> None:
    output = tmp_path / "out.txt"
    sinks = "  out:\n    type: stdout\n    format: template\n    template: '{id}'\n"
    config = config_file(tmp_path, simulator, sinks)
    (tmp_path / "state").mkdir(mode=0o700)
    journal_path = tmp_path / "state" / "journal.sqlite"
    now_ns = time.time_ns()
    old_events = [
        (
            "main",
            f"old-{number}",
            now_ns - (40 - number) * 60 * 10**9,
            {"id": f"old-{number}", "createdAt": "2026-12-04T10:00:00Z"},
        )
        for number in (1, 2, 3)
    ]
    write_version_1_journal(journal_path, old_events, sources={}, sinks=[("out", 0, None, None)])

    shown = command("state", "show", "--config", str(config))
    assert shown.returncode == 2
    assert "is in format version 1" in shown.stderr
    assert "stop a daemon of the older version first if one is running" in shown.stderr
    assert schema_version(journal_path) == "1"

    log = tmp_path / "daemon.log"
    daemon = start(config, log, output)
    wait_for(lambda: len(output.read_text().splitlines()) >= 303, 60, "every event")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0

    lines = output.read_text().splitlines()
    assert lines[:3] == ["old-1", "old-2", "old-3"]
    assert len(lines) == 303
    assert len(set(lines)) == 303
    (upgraded,) = [entry for entry in log_events(log) if entry["event"] == "journal.upgraded"]
    assert upgraded["events"] == 3
    assert schema_version(journal_path) == "2"
