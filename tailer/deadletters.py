"""Dead letters: batches a sink gave up on, kept as NDJSON for replay.

Each line is one event: `{"sink", "batch", "error", "failed_at", "event"}`,
where `event` is the raw event as the API sent it, its JSON text unchanged. The file is created with
mode 0600 and fsynced after every batch, because the runner commits the
sink's offset right after: a dead letter is the only copy of that event.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tailer.event import Event, decode_event_text
from tailer.fileio import write_all
from tailer.jsontext import dumps_json
from tailer.sinks.base import Batch

__all__ = ["DeadLetter", "DeadLetterFile"]


class DeadLetter:
    """One dead-lettered event and why it was given up on."""

    __slots__ = ("batch", "error", "event", "failed_at", "sink")

    def __init__(
        self, sink: str, event: dict[str, Any], batch: str, error: str, failed_at: str
    ) -> None:
        self.sink = sink
        self.event = event
        self.batch = batch
        self.error = error
        self.failed_at = failed_at


class DeadLetterFile:
    """Appends dead-lettered batches to one NDJSON file and reads them back."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def write(self, batch: Batch, error: str) -> None:
        failed_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = b"".join(
            orjson.dumps(
                {
                    "sink": batch.sink,
                    "batch": batch.key,
                    "error": error,
                    "failed_at": failed_at,
                    # The text itself, so every value stays as the API sent it.
                    "event": orjson.Fragment(event.to_json()),
                }
            )
            + b"\n"
            for event in batch.events
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Iterator[DeadLetter]:
        """Yield every dead letter in the file, none when the file does not exist."""
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = decode_event_text(line)
                except ValueError:
                    raise ValueError(
                        f"{self.path}:{number}: not a dead letter (invalid JSON); "
                        "fix or remove that line and replay again"
                    ) from None
                yield DeadLetter(
                    record.get("sink", ""),
                    record["event"],
                    record.get("batch", ""),
                    record.get("error", ""),
                    record.get("failed_at", ""),
                )

    def replace(self, letters: list[DeadLetter]) -> None:
        """Rewrite the file with `letters` only (those a replay could not deliver)."""
        if not letters:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for letter in letters:
                write_all(
                    fd,
                    dumps_json(
                        {
                            "sink": letter.sink,
                            "batch": letter.batch,
                            "error": letter.error,
                            "failed_at": letter.failed_at,
                            "event": letter.event,
                        }
                    )
                    + b"\n",
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)


def event_of(letter: DeadLetter) -> Event:
    """Rebuild the Event of a dead letter for sending again."""
    from tailer.event import parse_event

    return parse_event(letter.event)
