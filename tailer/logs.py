"""Logging: structlog on stderr, JSON lines for machines, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import orjson
import structlog

__all__ = ["LOG_LEVELS", "LogFormat", "configure_logging"]

LogFormat = Literal["auto", "console", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error")


def _orjson_dumps(value: object, default: object = None) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    level: str = "info", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's loggers once for the process.

    `auto` picks console output when the stream is a terminal and JSON otherwise.
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
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=output.isatty())

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=True,
    )

    # aiohttp and asyncio log through the standard library; send them the same way.
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.WARNING))
