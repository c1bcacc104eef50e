"""A third-party sink package, installed into a directory on the path, used by the daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from localservers import KEY, SimulatorProcess

PLUGIN = Path(__file__).resolve().parent / "plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def environment(plugin_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(plugin_path), "RUNTOOLS_API_KEY": KEY}


@pytest.mark.timeout(120)
def test_third_party_sink_receives_events(plugin_path: Path, tmp_path: Path) -> None:
    simulator = SimulatorProcess("--backlog", "50", "--backlog-span", "10m", "--seed", "11")
    url = simulator.url

    output = tmp_path / "lines.txt"
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nservice: {{port: 0}}\n"
        f"sources:\n  main: {{api_url: '{url}', since: 1h, poll_interval_secs: 0.2}}\n"
        f"sinks:\n  third_party:\n    type: lines\n    path: {output}\n    prefix: '> '\n"
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        checked = subprocess.run(
            [sys.executable, "-m", "tailer", "check-config", str(config)],
            env=environment(plugin_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr
        assert "third_party (lines)" in checked.stdout

        daemon = subprocess.Popen(
            [sys.executable, "-m", "tailer", "run", "--config", str(config)],
            env=environment(plugin_path),
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if output.exists() and len(output.read_text().splitlines()) >= 50:
                break
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        simulator.stop()

    lines = output.read_text().splitlines()
    assert len(lines) == 50
    assert all(re.fullmatch(r"> [0-9a-f-]{36} [a-z_.]+", line) for line in lines)


def test_without_the_package_the_type_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text("sources:\n  main: {}\nsinks:\n  x: {type: lines, path: /tmp/x}\n")

    checked = subprocess.run(
        [sys.executable, "-m", "tailer", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )

    assert checked.returncode == 2
    assert "sinks.x.type: unknown sink type 'lines'" in checked.stderr
