"""The command as a user runs it: real subprocesses, a real simulator, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import localservers
import orjson
import pytest
from localservers import KEY
from pydantic import SecretStr

from tailer.cli import Environment, _attach_dash_values, build_tail_command, tail_parser
from tailer.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


class SimulatorProcess(localservers.SimulatorProcess):
    """The simulator, started without any RUNTOOLS_ variable of the test runner."""

    def __init__(self, *args: str) -> None:
        super().__init__(*args, env=command_env())

    def ground_truth(self) -> list[dict[str, object]]:
        events = self.control("GET", "/_control/events")
        assert isinstance(events, list)
        return events


@pytest.fixture
def simulator() -> Iterator[SimulatorProcess]:
    process = SimulatorProcess("--backlog", "3000", "--backlog-span", "2h", "--seed", "7")
    yield process
    process.stop()


def tail(
    url: str, *args: str, key: str = KEY, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tailer", "--api-url", url, *args],
        capture_output=True,
        timeout=timeout,
        env=command_env(RUNTOOLS_API_KEY=key),
        check=False,
    )


def test_one_shot_json_with_faults_prints_exact_window() -> None:
    sim = SimulatorProcess(
        "--backlog",
        "5000",
        "--backlog-span",
        "3h",
        "--seed",
        "3",
        "--fault-429",
        "0.1",
        "--fault-5xx",
        "0.1",
        "--fault-drop",
        "0.05",
        "--fault-truncate",
        "0.05",
    )
    try:
        result = tail(sim.url, "--since", "1h", "--output", "json", "--retry-max-wait", "1")
        lines = result.stdout.splitlines()
        printed = [orjson.loads(line) for line in lines]
        since = printed[0]["createdAt"] if printed else None
        truth = sim.ground_truth()
    finally:
        sim.stop()

    assert result.returncode == 0, result.stderr.decode()
    assert since is not None
    newest = truth[-1]
    expected = [e for e in truth if str(e["createdAt"]) >= str(since)]
    assert [e["id"] for e in printed] == [e["id"] for e in expected]
    assert printed == expected
    assert printed[-1] == newest
    assert 1500 < len(printed) < 2000


def test_pipe_to_head_exits_quietly(simulator: SimulatorProcess) -> None:
    result = subprocess.run(
        f"{sys.executable} -m tailer --api-url {simulator.url} --since 2h -f -o json | head -5; "
        'exit "${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        timeout=60,
        env=command_env(RUNTOOLS_API_KEY=KEY),
        check=False,
    )

    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 5
    assert result.stderr == b""


def test_wrong_key_exits_with_auth_code(simulator: SimulatorProcess) -> None:
    result = tail(simulator.url, "--since", "1h", key="rt_test_wrong_secret_value")

    assert result.returncode == 3
    stderr = result.stderr.decode()
    assert "HTTP 401" in stderr
    assert "RUNTOOLS_API_KEY" in stderr
    assert "rt_test_wrong_secret_value" not in stderr
    assert result.stdout == b""


def test_another_users_activity_needs_admin() -> None:
    member = "rt_test_member_key"
    sim = SimulatorProcess(
        "--backlog", "10", "--member-key", f"{member}:0b7e9d1c-5a9f-4e53-9f0e-3c2f1a6b8d41"
    )
    try:
        result = tail(
            sim.url, "--actor-user-id", "5f3c1a2e-9b8d-4c7a-8e6f-2d1b0a9c8e7f", key=member
        )
    finally:
        sim.stop()

    assert result.returncode == 3
    assert "HTTP 403" in result.stderr.decode()


def test_invalid_options_listed_together_with_usage_code(simulator: SimulatorProcess) -> None:
    result = tail(
        simulator.url, "--since", "yesterday", "--severity", "fatal", "--page-size", "900"
    )

    assert result.returncode == 2
    stderr = result.stderr.decode().splitlines()
    assert len(stderr) == 3
    assert "--since 'yesterday' is invalid" in stderr[0]
    assert "--severity has invalid value 'fatal'; allowed: " in stderr[1]
    assert "--page-size 900 is outside 1..500" in stderr[2]


def test_missing_key_is_a_usage_error(simulator: SimulatorProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tailer", "--api-url", simulator.url],
        capture_output=True,
        timeout=30,
        env=command_env(),
        check=False,
    )

    assert result.returncode == 2
    assert b"no API key: set RUNTOOLS_API_KEY or pass --token-file FILE" in result.stderr


def test_token_file_and_x_api_key_header(simulator: SimulatorProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "key"
    token_file.write_text(KEY + "\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailer",
            "--api-url",
            simulator.url,
            "--since",
            "5m",
            "--token-file",
            str(token_file),
            "--auth-header",
            "x-api-key",
            "-o",
            "json",
        ],
        capture_output=True,
        timeout=30,
        env=command_env(),
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_follow_stops_on_signal(simulator: SimulatorProcess, signum: int, code: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tailer", "--api-url", simulator.url, "-f", "--since", "2h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command_env(RUNTOOLS_API_KEY=KEY),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith(b"{")

    process.send_signal(signum)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == code
    assert b"Traceback" not in stderr


def test_help_lists_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tailer", "--help"], capture_output=True, timeout=30, check=True
    )
    text = result.stdout.decode()

    for line in (
        "  2    usage or config error",
        "  3    authentication failure",
        "  4    API error",
    ):
        assert line in text


def test_plain_http_to_remote_host_rejected() -> None:
    args = tail_parser().parse_args(["--api-url", "http://api.example.invalid"])
    with pytest.raises(ConfigError) as caught:
        build_tail_command(
            args, Environment(api_key=SecretStr(KEY)), stdout_is_tty=False, color=False
        )

    assert any("plain HTTP" in problem for problem in caught.value.problems)
    assert any("--allow-insecure-http" in problem for problem in caught.value.problems)


def test_piped_output_defaults_to_json_and_template_implies_template() -> None:
    env = Environment(api_key=SecretStr(KEY), api_url="http://127.0.0.1:9")
    piped = build_tail_command(tail_parser().parse_args([]), env, stdout_is_tty=False, color=False)
    templated = build_tail_command(
        tail_parser().parse_args(["--template", "{id}"]), env, stdout_is_tty=True, color=False
    )

    assert type(piped.formatter).__name__ == "JsonFormatter"
    assert type(templated.formatter).__name__ == "TemplateFormatter"
    assert piped.client.retry.max_attempts == 8


def test_example_terminal_env_loads() -> None:
    env = Environment(_env_file=REPO / "config" / "terminal.env")  # type: ignore[call-arg]

    assert env.api_url == "https://api.runtools.ai"
    assert env.api_key is not None
    assert env.api_key.get_secret_value() == "rt_test_replace_me"
    assert "rt_test_replace_me" not in repr(env)


def test_follow_serves_metrics_when_asked(simulator: SimulatorProcess) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tailer", "--api-url", simulator.url, "-f", "--since", "2h"),
            *("--service-port", "0", "--log-level", "info", "--log-format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command_env(RUNTOOLS_API_KEY=KEY),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    port = 0
    while not port:
        entry = orjson.loads(process.stderr.readline())
        if entry["event"] == "service.started":
            port = entry["port"]
    lines = [process.stdout.readline() for _ in range(3000)]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        ready = orjson.loads(response.read())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)

    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert all(line.startswith(b"{") for line in lines)
    assert ready == {"ready": True, "sources": {"main": {"ready": True, "reason": None}}}
    assert values[("runtools_tail_events_new_total", (("source", "main"),))] == 3000
    assert "runtools_tail_journal_bytes" not in text


def test_since_after_until_is_usage_error(simulator: SimulatorProcess) -> None:
    result = tail(
        simulator.url, "--since", "2026-12-04T21:00:00Z", "--until", "2026-12-04T20:00:00Z"
    )

    assert result.returncode == 2
    assert b"--until 2026-12-04T20:00:00.000Z is before --since 2026-12-04T21:00:00.000Z" in (
        result.stderr
    )


def test_minus_durations_as_separate_words(simulator: SimulatorProcess) -> None:
    # The backlog spans the two hours before the simulator started.
    everything = tail(simulator.url, "--since", "-3h", "--until", "-0s", "--output", "json")
    recent = tail(simulator.url, "--since=-1h", "--output", "json")

    assert everything.returncode == 0, everything.stderr.decode()
    assert recent.returncode == 0, recent.stderr.decode()
    truth = [event["id"] for event in simulator.ground_truth()]
    assert [orjson.loads(line)["id"] for line in everything.stdout.splitlines()] == truth
    recent_ids = [orjson.loads(line)["id"] for line in recent.stdout.splitlines()]
    assert 1000 < len(recent_ids) < 2000
    assert recent_ids == truth[-len(recent_ids) :]


@pytest.mark.parametrize(
    ("words", "parsed"),
    [
        (["--since", "-5m", "-f"], ["--since=-5m", "-f"]),
        (["--until", "-1h30m", "--since", "2h"], ["--until=-1h30m", "--since", "2h"]),
        (["--since", "--follow"], ["--since", "--follow"]),
        (["--since"], ["--since"]),
        (["--", "--since", "-5m"], ["--", "--since", "-5m"]),
        (["--severity", "-5m"], ["--severity", "-5m"]),
    ],
)
def test_only_dash_digit_values_joined(words: list[str], parsed: list[str]) -> None:
    assert _attach_dash_values(words) == parsed
