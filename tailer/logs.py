"""Logging: structlog on stderr, JSON lines for machines, readable lines on a terminal.

Every line carries `timestamp`, `level` and `event`, a dotted past-tense name
such as `batch.sent`. Callers pass the fixed fields that apply: `source` (the
daemon's source name) or `sink` (the sink's name) when the line concerns one,
`count` for a number of events, and `error` and `error_type` for a failure.
aiohttp's and asyncio's standard-library loggers pass through the same
processors and also carry `logger`, their logger's name.

Secrets are masked in every line by `tailer.redaction.redact_secrets`, which
runs after exceptions are formatted and right before rendering.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

import orjson
import structlog

from tailer.ratelimit import RepeatLimiter
from tailer.redaction import redact_secrets

__all__ = ["LOG_LEVELS", "LogFormat", "RepeatedLog", "configure_logging", "log_repeated"]

LogFormat = Literal["auto", "console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS = ("debug", "info", "warning", "error")


def _orjson_dumps(value: object, default: object = None) -> str:
    # Non-string keys are allowed, because a logged dict of headers has `istr` keys.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(
    level: str = "info", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's loggers once for the process.

    `auto` picks console output when the stream is a terminal and JSON otherwise.
    Module loggers are cached on first use, so a later call does not reach
    loggers that have already logged.
    """
    output = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "console" if output.isatty() else "json"
    numeric_level = logging.getLevelNamesMapping()[level.upper()]

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        # NO_COLOR (no-color.org) turns colour off whatever the terminal.
        colors = output.isatty() and not os.environ.get("NO_COLOR")
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    # Exceptions become text before redaction, in both formats, so the traceback and
    # the exception's arguments are cleaned too. The console renderer then prints
    # that text under the line instead of formatting the exception itself.
    final: list[structlog.types.Processor] = [
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]

    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=True,
    )

    # aiohttp and asyncio log through the standard library; send them the same way.
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.WARNING))


class RepeatedLog:
    """Logs a repeating event the first time, then at most once per `interval` seconds.

    Each line carries `repeats`, the number of occurrences left unlogged since
    the previous line (0 on the first). Occurrences with the same key and event
    share one count.

    NOTE: the count is emitted with the next occurrence after the interval, so
    the repeats after the last logged line are never reported.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = RepeatLimiter(interval, clock)

    def log(
        self, logger: Any, key: str, event: str, *, level: LogLevel = "warning", **fields: Any
    ) -> bool:
        """Log `event` with `fields` at `level` unless the interval has not passed.

        Returns whether a line was logged. `logger` is a structlog logger.
        """
        repeats = self._limiter.record(f"{event}\x00{key}")
        if repeats is None:
            return False
        getattr(logger, level)(event, repeats=repeats, **fields)
        return True

    def reset(self, key: str, event: str) -> None:
        """Forget earlier occurrences, so the next one is logged at once."""
        self._limiter.reset(f"{event}\x00{key}")


_shared_logs: dict[float, RepeatedLog] = {}


def log_repeated(
    logger: Any,
    key: str,
    interval: float,
    event: str,
    *,
    level: LogLevel = "warning",
    **fields: Any,
) -> bool:
    """Log `event` the first time, then at most once per `interval` seconds with `repeats`.

    `key` names what repeats, such as the sink's name. The counts live in one
    `RepeatedLog` per interval for the whole process; use a `RepeatedLog` of
    your own to inject a clock. Returns whether a line was logged.
    """
    repeated = _shared_logs.get(interval)
    if repeated is None:
        repeated = _shared_logs.setdefault(interval, RepeatedLog(interval))
    return repeated.log(logger, key, event, level=level, **fields)
