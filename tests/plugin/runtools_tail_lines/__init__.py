"""A sink from outside runtools-tail: writes `<id> <eventType>` lines to a file."""

from __future__ import annotations

from pathlib import Path

from tailer.sinks import Batch, Sink, SinkConfig, SinkState


class LinesConfig(SinkConfig):
    path: Path
    prefix: str = ""


class LinesSink(Sink):
    config_model = LinesConfig

    async def open(self, state: SinkState) -> None:
        assert isinstance(self.config, LinesConfig)
        self._path = self.config.path
        self._prefix = self.config.prefix

    async def send(self, batch: Batch) -> SinkState:
        with self._path.open("a", encoding="utf-8") as file:
            for event in batch.events:
                file.write(f"{self._prefix}{event.id} {event.raw.get('eventType')}\n")
        return None

    async def close(self) -> None:
        pass
