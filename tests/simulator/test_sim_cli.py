"""Options of `runtools-tail simulate`, their conversion to a config, and `serve`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import sys

import aiohttp
import pytest

from tailer.errors import ConfigError
from tailer.simulator import (
    ApiKey,
    FaultRates,
    SimulatorConfig,
    add_simulate_arguments,
    config_from_arguments,
)
from tailer.simulator.cli import serve

MEMBER_ID = "6a1d4b2e-8f3c-4e9a-b7d5-2c0f9e8a1b34"


def _config(*argv: str) -> SimulatorConfig:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return config_from_arguments(parser.parse_args(argv))


def _problems(*argv: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _config(*argv)
    return caught.value.problems


def test_defaults_match_config_except_port() -> None:
    config = _config()

    assert config == SimulatorConfig(port=8080)


def test_every_option_sets_its_field() -> None:
    config = _config(
        "--host", "127.0.0.2",
        "--port", "0",
        "--key", "rt_test_a",
        "--member-key", f"rt_test_m:{MEMBER_ID}",
        "--seed", "7",
        "--backlog", "100",
        "--backlog-span", "2h",
        "--rate", "2.5",
        "--order", "oldest",
        "--envelope", "guide",
        "--time-field", "occurredAt",
        "--precision", "s",
        "--utc-offset-minutes", "-300",
        "--late-max", "30s",
        "--late-fraction", "0.5",
        "--burst-size", "20",
        "--burst-every", "1m",
        "--cursor-ttl", "90",
        "--retention", "7d",
        "--default-limit", "100",
        "--sparse-fraction", "0.1",
        "--extra-fields",
        "--clock-offset=-30s",
        "--fault-429", "0.1",
        "--fault-5xx", "0.2",
        "--fault-slow", "0.3",
        "--slow-seconds", "500ms",
        "--fault-drop", "0.05",
        "--fault-truncate", "0.15",
    )  # fmt: skip

    assert config == SimulatorConfig(
        host="127.0.0.2",
        port=0,
        keys=[
            ApiKey(key="rt_test_a"),
            ApiKey(key="rt_test_m", user_id=MEMBER_ID, admin=False),
        ],
        seed=7,
        backlog=100,
        backlog_span=7200.0,
        rate=2.5,
        order="oldest",
        envelope="guide",
        time_field="occurredAt",
        precision="s",
        utc_offset_minutes=-300,
        late_max=30.0,
        late_fraction=0.5,
        burst_size=20,
        burst_every=60.0,
        cursor_ttl=90.0,
        retention=7 * 86400.0,
        default_limit=100,
        sparse_fraction=0.1,
        extra_fields=True,
        clock_offset=-30.0,
        faults=FaultRates(
            rate_limited=0.1,
            server_error=0.2,
            slow=0.3,
            slow_seconds=0.5,
            dropped=0.05,
            truncated=0.15,
        ),
    )


def test_member_key_keeps_default_admin() -> None:
    config = _config("--member-key", f"rt_test_m:{MEMBER_ID}")

    assert config.keys == [
        ApiKey(key="rt_test_simulator"),
        ApiKey(key="rt_test_m", user_id=MEMBER_ID, admin=False),
    ]


def test_repeated_keys_accepted() -> None:
    config = _config("--key", "rt_test_a", "--key", "rt_test_b")

    assert [api_key.key.get_secret_value() for api_key in config.keys] == [
        "rt_test_a",
        "rt_test_b",
    ]


def test_invalid_options_all_listed() -> None:
    problems = _problems(
        "--backlog-span", "forever",
        "--member-key", "rt_test_m",
        "--member-key", "rt_test_n:not-a-uuid",
        "--default-limit", "0",
        "--fault-429", "2",
    )  # fmt: skip

    assert problems[0].startswith("--backlog-span: invalid duration 'forever'")
    assert problems[1:] == [
        "--member-key 'rt_test_m': expected KEY:USER_ID, such as rt_test_member:<user uuid>",
        "--member-key 'rt_test_n:not-a-uuid': the user id is not a uuid",
        "--default-limit: Input should be greater than or equal to 1 (got 0)",
        "--fault-429: Input should be less than or equal to 1 (got 2.0)",
    ]


def test_fault_sum_names_options() -> None:
    problems = _problems("--fault-drop", "0.7", "--fault-5xx", "0.7")

    assert len(problems) == 1
    assert problems[0].startswith("--fault-429/--fault-5xx/--fault-drop/--fault-truncate: ")
    assert "add up to 1.4" in problems[0]


def test_help_names_units() -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)

    text = parser.format_help()

    assert "30s, 10m, 2h or 7d" in text
    assert "live events created per second" in text


class _Stderr(io.StringIO):
    """A stderr replacement that sets an event when something is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


async def test_serve_prints_url_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = _Stderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    task = asyncio.create_task(serve(SimulatorConfig()))
    try:
        async with asyncio.timeout(5):
            await stderr.written.wait()
        line = stderr.getvalue()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url is not None
        headers = {"Authorization": "Bearer rt_test_simulator"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(url.group() + "/v1/activity", headers=headers) as response,
        ):
            status = response.status
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert status == 200
    assert line.startswith("RunTools API simulator listening on http://127.0.0.1:")
    assert line.endswith("with admin key rt_test_simulator. Press Ctrl+C to stop.\n")
