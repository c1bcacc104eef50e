"""The stdout sink: events on standard output in the terminal formats."""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO, Literal

from tailer.output import make_formatter
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState

__all__ = ["StdoutSink", "StdoutSinkConfig"]


class StdoutSinkConfig(SinkConfig):
    """`format` as the command's `--output`; `template` for the template format."""

    format: Literal["pretty", "json", "template"] = "json"
    template: str | None = None
    utc: bool = True
    color: bool = False


class StdoutSink(Sink):
    """Writes each event as one line to stdout and flushes after every batch.

    The line is the terminal format, not the runner's encoding, so the
    `pretty` and `template` formats read as they do in the command.
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
        try:
            self._stream.write(b"".join(self._formatter.format(event) for event in batch.events))
            self._stream.flush()
        except BrokenPipeError as exc:
            raise SinkError("stdout is closed: the reading process has exited") from exc
        return None

    async def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._stream.flush()
