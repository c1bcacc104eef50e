"""The stdout sink: events on standard output in the terminal formats."""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO, Literal

from pydantic import model_validator

from tailer.errors import ConfigError
from tailer.output import make_formatter
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState

__all__ = ["StdoutSink", "StdoutSinkConfig"]


class StdoutSinkConfig(SinkConfig):
    """`format` as the command's `--output`; `template` for the template format."""

    format: Literal["pretty", "json", "template"] = "json"
    template: str | None = None
    utc: bool = True
    color: bool = False

    @model_validator(mode="after")
    def _check_template(self) -> StdoutSinkConfig:
        try:
            make_formatter(self.format, template=self.template)
        except ConfigError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        return self


class StdoutSink(Sink):
    """Writes each event as one line to stdout and flushes after every batch.

    `pretty` and `template` lines read as they do in the command. `json`
    prints the raw event as the command does with the `json` encoding, and
    the encoded payload with `ecs` or `cef`.
    """

    config_model = StdoutSinkConfig
    config: StdoutSinkConfig

    def __init__(self, name: str, config: SinkConfig, stream: BinaryIO | None = None) -> None:
        super().__init__(name, config)
        assert isinstance(config, StdoutSinkConfig)
        self._stream = stream
        self._formatter = make_formatter(
            config.format, color=config.color, utc=config.utc, template=config.template
        )

    async def open(self, state: SinkState) -> None:
        if self._stream is None:
            self._stream = sys.stdout.buffer

    async def send(self, batch: Batch) -> SinkState:
        assert self._stream is not None
        if self.config.format == "json" and batch.encoding != "json":
            lines = b"".join(payload + b"\n" for payload in batch.payloads)
        else:
            lines = b"".join(self._formatter.format(event) for event in batch.events)
        try:
            self._stream.write(lines)
            self._stream.flush()
        except BrokenPipeError as exc:
            raise SinkError("stdout is closed: the reading process has exited") from exc
        return None

    async def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._stream.flush()
