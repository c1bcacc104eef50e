"""configure_logging and the rate-limited repeats helper.

Each test that calls `configure_logging` restores structlog's settings and the
root logger's handlers afterwards, and logs through fresh loggers, because a
logger cached on first use keeps the stream it was configured with.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from tailer.logs import RepeatedLog, configure_logging, log_repeated
from tailer.redaction import redact_secrets


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- configure_logging ----------------------------------------------------------------


def test_json_line_fields() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    structlog.get_logger("test").info("batch.sent", sink="archive", count=3)

    [line] = json_lines(stream)
    assert line.pop("timestamp").endswith("Z")
    assert line == {"event": "batch.sent", "sink": "archive", "count": 3, "level": "info"}


def test_auto_format_is_json_off_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)

    structlog.get_logger("test").info("poll.completed", source="main")

    [line] = json_lines(stream)
    assert line["event"] == "poll.completed"
    assert line["source"] == "main"


def test_console_line_readable() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)

    structlog.get_logger("test").warning("sink.failed", sink="hook", error="HTTP 503")

    text = stream.getvalue()
    assert "\x1b[" not in text
    assert "[warning  ] sink.failed" in text
    assert "sink=hook" in text
    assert "error='HTTP 503'" in text


def test_level_filters_lower_lines() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = structlog.get_logger("test")

    log.info("poll.completed")
    log.debug("batch.encoded")
    log.warning("request.retrying")

    assert [line["event"] for line in json_lines(stream)] == ["request.retrying"]


def test_exception_rendered_as_text() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    try:
        raise ValueError("bad offset")
    except ValueError:
        structlog.get_logger("test").exception("sink.crashed", sink="hook")

    [line] = json_lines(stream)
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: bad offset")


def test_console_exception_under_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)

    try:
        raise ValueError("bad offset")
    except ValueError:
        structlog.get_logger("test").exception("sink.crashed", sink="hook")

    first, *rest = stream.getvalue().splitlines()
    assert "sink.crashed" in first
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: bad offset"


def test_stdlib_logger_same_processors() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    logging.getLogger("aiohttp.client").warning("connection to %s lost", "127.0.0.1")

    [line] = json_lines(stream)
    assert line.pop("timestamp").endswith("Z")
    assert line == {
        "event": "connection to 127.0.0.1 lost",
        "level": "warning",
        "logger": "aiohttp.client",
    }


def test_stdlib_info_stays_quiet_at_info() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    logging.getLogger("aiohttp.access").info("GET /v1/activity 200")

    assert stream.getvalue() == ""


def test_stdlib_exception_rendered() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)

    try:
        raise OSError("socket closed")
    except OSError:
        logging.getLogger("aiohttp.server").exception("Error handling request")

    text = stream.getvalue()
    assert "Error handling request" in text
    assert "[aiohttp.server]" in text
    assert text.rstrip().endswith("OSError: socket closed")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_redaction_last_before_renderer(log_format: Any) -> None:
    configure_logging("info", log_format, io.StringIO())

    processors = structlog.get_config()["processors"]
    assert processors[-2] is redact_secrets
    assert processors[-3] is structlog.processors.format_exc_info

    [handler] = logging.getLogger().handlers
    formatter = handler.formatter
    assert isinstance(formatter, structlog.stdlib.ProcessorFormatter)
    assert formatter.processors[-2] is redact_secrets


def test_secret_field_masked_in_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    structlog.get_logger("test").info("request.sent", headers={"X-API-Key": "k-1234abcd"})

    [line] = json_lines(stream)
    assert line["headers"] == {"X-API-Key": "***"}


# --- repeated lines -------------------------------------------------------------------


def test_repeated_first_then_count_per_interval() -> None:
    clock = FakeMonotonic()
    repeated = RepeatedLog(60.0, clock)
    log = structlog.get_logger("test")

    with structlog.testing.capture_logs() as logs:
        logged = [repeated.log(log, "hook", "sink.failed", sink="hook", error="HTTP 503")]
        for _ in range(4):
            clock.now += 10
            logged.append(repeated.log(log, "hook", "sink.failed", sink="hook", error="HTTP 503"))
        clock.now += 20
        logged.append(repeated.log(log, "hook", "sink.failed", sink="hook", error="HTTP 502"))

    assert logged == [True, False, False, False, False, True]
    assert logs == [
        {
            "event": "sink.failed",
            "log_level": "warning",
            "repeats": 0,
            "sink": "hook",
            "error": "HTTP 503",
        },
        {
            "event": "sink.failed",
            "log_level": "warning",
            "repeats": 4,
            "sink": "hook",
            "error": "HTTP 502",
        },
    ]


def test_repeated_keys_counted_apart() -> None:
    clock = FakeMonotonic()
    repeated = RepeatedLog(60.0, clock)
    log = structlog.get_logger("test")

    with structlog.testing.capture_logs() as logs:
        repeated.log(log, "hook", "sink.failed", sink="hook")
        repeated.log(log, "archive", "sink.failed", sink="archive")
        repeated.log(log, "hook", "ack.failed", sink="hook")
        repeated.log(log, "hook", "sink.failed", sink="hook")

    assert [(entry["event"], entry["sink"]) for entry in logs] == [
        ("sink.failed", "hook"),
        ("sink.failed", "archive"),
        ("ack.failed", "hook"),
    ]


def test_repeated_level_chosen() -> None:
    repeated = RepeatedLog(60.0, FakeMonotonic())

    with structlog.testing.capture_logs() as logs:
        repeated.log(structlog.get_logger("test"), "main", "poll.failed", level="error")

    assert logs == [{"event": "poll.failed", "log_level": "error", "repeats": 0}]


def test_repeated_reset_logs_next_at_once() -> None:
    clock = FakeMonotonic()
    repeated = RepeatedLog(60.0, clock)
    log = structlog.get_logger("test")

    with structlog.testing.capture_logs() as logs:
        repeated.log(log, "hook", "sink.failed")
        repeated.log(log, "hook", "sink.failed")
        repeated.reset("hook", "sink.failed")
        repeated.log(log, "hook", "sink.failed")

    assert [entry["repeats"] for entry in logs] == [0, 0]


def test_log_repeated_shared_per_interval() -> None:
    log = structlog.get_logger("test")

    with structlog.testing.capture_logs() as logs:
        first = log_repeated(log, "test-shared-key", 3600.0, "sink.failed", sink="hook")
        second = log_repeated(log, "test-shared-key", 3600.0, "sink.failed", sink="hook")

    assert (first, second) == (True, False)
    assert logs == [
        {"event": "sink.failed", "log_level": "warning", "repeats": 0, "sink": "hook"},
    ]


def test_repeated_line_through_configured_logging() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    clock = FakeMonotonic()
    repeated = RepeatedLog(30.0, clock)
    log = structlog.get_logger("test")

    for _ in range(3):
        repeated.log(log, "main", "poll.failed", source="main", error="timed out")
        clock.now += 15

    lines = json_lines(stream)
    assert [(line["event"], line["repeats"], line["source"]) for line in lines] == [
        ("poll.failed", 0, "main"),
        ("poll.failed", 1, "main"),
    ]
