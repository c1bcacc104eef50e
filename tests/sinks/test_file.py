"""FileSink against real files in tmp_path, and against real SIGKILLs of a writer process.

A fake clock drives rotation by time and the fsync interval, so no test waits for
them. A crash that happens after `send` returned but before the runner committed
its state is simulated by closing the sink and opening a new one with the older
state. `close` only fsyncs and finishes compression, which a restarted sink would
do too, so the disk then contains what a crash would leave. The SIGKILL tests
crash for real.
"""

# The async tests read and write small files in tmp_path on purpose. Blocking the
# loop for that is harmless in a test, unlike in the package.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import calendar
import errno
import gzip
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError
from structlog.typing import EventDict

import tailer.sinks.file
from tailer.event import Event
from tailer.sinks.base import Batch, SinkError
from tailer.sinks.file import FileSink, FileSinkConfig

NOW = float(calendar.timegm((2026, 12, 4, 20, 15, 30)))
STAMP = "20261204T201530Z"
LINE_BYTES = 19  # len(b'{"id":"evt-00001"}\n')


class FakeClock:
    """Wall and monotonic time that move only in `advance`, which also ends due sleeps."""

    def __init__(self, wall: float = NOW) -> None:
        self.wall = wall
        self.mono = 1_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.mono + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
        for deadline, future in list(self._sleepers):
            if deadline <= self.mono:
                self._sleepers.remove((deadline, future))
                if not future.done():
                    future.set_result(None)


def make_batch(first: int, count: int) -> Batch:
    """Events `first`..`first + count - 1`, each encoded as `{"id":"evt-NNNNN"}`."""
    events = [
        Event(f"evt-{n:05d}", n * 1_000_000_000, {"id": f"evt-{n:05d}"})
        for n in range(first, first + count)
    ]
    return Batch(
        sink="archive",
        events=events,
        payloads=[event.to_json() for event in events],
        first_seq=first,
        last_seq=first + count - 1,
    )


def lines(first: int, count: int) -> bytes:
    """The exact bytes `make_batch(first, count)` must leave in the file."""
    return b"".join(b'{"id":"evt-%05d"}\n' % n for n in range(first, first + count))


def rotated_files(path: Path) -> list[str]:
    """Names of the rotated files of `path`, sorted."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "."))


SinkFactory = Callable[..., FileSink]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "events.ndjson"


@pytest.fixture
async def make_sink(clock: FakeClock) -> AsyncIterator[SinkFactory]:
    """Build sinks on the fake clock; every sink built is closed after the test."""
    created: list[FileSink] = []

    def make(path: Path, **options: Any) -> FileSink:
        sink = FileSink("archive", FileSinkConfig(path=path, **options), clock=clock)
        created.append(sink)
        return sink

    yield make
    for sink in created:
        await sink.close()


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Capture the sink's structlog events, whatever logging an earlier test set up."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            monkeypatch.setattr(
                tailer.sinks.file, "_log", structlog.get_logger("tailer.sinks.file")
            )
            yield logs
    finally:
        structlog.configure(**saved)


def count_fsyncs(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """Replace os.fsync with a wrapper that records each fsync of the file now at `path`.

    Returns the list the wrapper appends the inode to. Fsyncs of directories and of
    the start marker are not recorded.
    """
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        inode = os.fstat(fd).st_ino
        if path.exists() and inode == path.stat().st_ino:
            synced.append(inode)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let the event loop and worker threads run until `condition` is true, for at most 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


# -- config ----------------------------------------------------------------------


def test_config_defaults(path: Path) -> None:
    config = FileSinkConfig(path=path)

    assert config.rotate_max_bytes is None
    assert config.rotate_interval_secs is None
    assert config.compress is False
    assert config.keep_files is None
    assert config.fsync == "batch"
    assert config.fsync_interval_secs == 1.0


@pytest.mark.parametrize(
    "options",
    [
        {"rotate_max_bytes": 0},
        {"rotate_interval_secs": 0},
        {"keep_files": 0},
        {"fsync": "never"},
        {"fsync_interval_secs": 0},
        {"max_bytes": 100},
    ],
)
def test_config_rejects_invalid_option(path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FileSinkConfig.model_validate({"path": str(path), **options})


# -- writing ---------------------------------------------------------------------


async def test_send_writes_one_line_per_payload(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)

    await sink.send(make_batch(1, 2))
    state = await sink.send(make_batch(3, 1))

    assert path.read_bytes() == lines(1, 3)
    assert state is not None
    assert state["path"] == str(path)
    assert state["inode"] == path.stat().st_ino
    assert state["device"] == path.stat().st_dev
    assert state["size"] == 3 * LINE_BYTES
    assert state["started_at"] == NOW


async def test_cancelled_send_waits_for_its_write(
    path: Path, make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(path)
    await sink.open(None)
    entered, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:
        entered.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    send = asyncio.create_task(sink.send(make_batch(1, 2)))
    await asyncio.to_thread(entered.wait, 10)
    send.cancel()

    # The cancelled send keeps the sink's lock until the worker thread is done,
    # so `close` cannot close the file descriptor under it.
    closing = asyncio.create_task(sink.close())
    done, _ = await asyncio.wait([send, closing], timeout=0.2)
    assert done == set()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await send
    await closing
    assert path.read_bytes() == lines(1, 2)


async def test_new_file_private_in_new_directory(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 1))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == lines(1, 1)


async def test_payload_with_newline_is_rejected(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 1))
    event = Event("evt-multi", 0, {"id": "evt-multi"})
    batch = Batch(
        sink="archive",
        events=[make_batch(2, 1).events[0], event],
        payloads=[b'{"id":"evt-00002"}', b'{"id":\n"evt-multi"}'],
        first_seq=2,
        last_seq=3,
    )

    with pytest.raises(SinkError, match="event evt-multi") as caught:
        await sink.send(batch)

    assert caught.value.retriable is False
    assert path.read_bytes() == lines(1, 1)


async def test_first_start_appends_to_existing_lines(path: Path, make_sink: SinkFactory) -> None:
    path.parent.mkdir()
    path.write_bytes(b"older line\n")
    sink = make_sink(path)
    await sink.open(None)

    await sink.send(make_batch(1, 2))

    assert path.read_bytes() == b"older line\n" + lines(1, 2)


async def test_first_start_ends_partial_line_first(path: Path, make_sink: SinkFactory) -> None:
    path.parent.mkdir()
    path.write_bytes(b"partial line of another writer")
    sink = make_sink(path)
    await sink.open(None)

    await sink.send(make_batch(1, 1))

    assert path.read_bytes() == b"partial line of another writer\n" + lines(1, 1)


async def test_send_before_open_raises(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)

    with pytest.raises(RuntimeError, match="not open"):
        await sink.send(make_batch(1, 1))

    assert not path.exists()


async def test_close_twice_is_harmless(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.close()
    await sink.open(None)
    await sink.send(make_batch(1, 1))

    await sink.close()
    await sink.close()

    assert path.read_bytes() == lines(1, 1)


async def test_invalid_state_is_rejected(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)

    with pytest.raises(SinkError, match="saved state is invalid") as caught:
        await sink.open({"path": str(path), "size": -1})

    assert caught.value.retriable is False


async def test_directory_path_is_rejected(tmp_path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(tmp_path)

    with pytest.raises(SinkError, match="Is a directory") as caught:
        await sink.open(None)

    assert caught.value.retriable is False
    assert list(tmp_path.iterdir()) == []


# -- rotation --------------------------------------------------------------------


async def test_size_rotation_names_and_contents(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path, rotate_max_bytes=4 * LINE_BYTES)
    await sink.open(None)

    await sink.send(make_batch(1, 2))
    await sink.send(make_batch(3, 2))  # exactly the limit: no rotation
    await sink.send(make_batch(5, 1))  # would exceed it: rotation first
    await sink.send(make_batch(6, 3))
    state = await sink.send(make_batch(9, 1))  # the same second again: a counter

    assert rotated_files(path) == [f"events.ndjson.{STAMP}", f"events.ndjson.{STAMP}.1"]
    assert (path.parent / f"events.ndjson.{STAMP}").read_bytes() == lines(1, 4)
    assert (path.parent / f"events.ndjson.{STAMP}.1").read_bytes() == lines(5, 4)
    assert path.read_bytes() == lines(9, 1)
    assert state is not None
    assert state["size"] == LINE_BYTES


async def test_oversize_batch_stays_in_one_file(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path, rotate_max_bytes=LINE_BYTES)
    await sink.open(None)

    await sink.send(make_batch(1, 3))
    await sink.send(make_batch(4, 3))

    assert rotated_files(path) == [f"events.ndjson.{STAMP}"]
    assert (path.parent / f"events.ndjson.{STAMP}").read_bytes() == lines(1, 3)
    assert path.read_bytes() == lines(4, 3)


async def test_time_rotation_follows_clock(
    path: Path, make_sink: SinkFactory, clock: FakeClock
) -> None:
    sink = make_sink(path, rotate_interval_secs=3600)
    await sink.open(None)

    await sink.send(make_batch(1, 1))
    clock.advance(3599)
    await sink.send(make_batch(2, 1))
    clock.advance(1)
    await sink.send(make_batch(3, 1))

    assert rotated_files(path) == ["events.ndjson.20261204T211530Z"]
    assert (path.parent / "events.ndjson.20261204T211530Z").read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(3, 1)


async def test_time_rotation_survives_restart(
    path: Path, make_sink: SinkFactory, clock: FakeClock
) -> None:
    first = make_sink(path, rotate_interval_secs=3600)
    await first.open(None)
    state = await first.send(make_batch(1, 1))
    await first.close()
    clock.advance(3000)

    second = make_sink(path, rotate_interval_secs=3600)
    await second.open(state)
    await second.send(make_batch(2, 1))
    assert rotated_files(path) == []
    clock.advance(600)
    await second.send(make_batch(3, 1))

    assert rotated_files(path) == ["events.ndjson.20261204T211530Z"]
    assert (path.parent / "events.ndjson.20261204T211530Z").read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(3, 1)


async def test_rotated_file_is_compressed(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path, rotate_max_bytes=2 * LINE_BYTES, compress=True)
    await sink.open(None)

    await sink.send(make_batch(1, 2))
    await sink.send(make_batch(3, 1))
    await sink.close()

    compressed = path.parent / f"events.ndjson.{STAMP}.gz"
    assert rotated_files(path) == [compressed.name]
    assert gzip.decompress(compressed.read_bytes()) == lines(1, 2)
    assert stat.S_IMODE(compressed.stat().st_mode) == 0o600
    assert path.read_bytes() == lines(3, 1)


@pytest.mark.parametrize(
    ("seconds_apart", "batches", "kept_names", "first_kept"),
    [
        (1, 5, ["events.ndjson.20261204T201533Z.gz", "events.ndjson.20261204T201534Z.gz"], 3),
        # Six rotations in one second: the names that keep_files frees must not come
        # back, or a newer file would sort before older ones and be deleted in their place.
        (0, 7, [f"events.ndjson.{STAMP}.4.gz", f"events.ndjson.{STAMP}.5.gz"], 5),
    ],
)
async def test_keep_files_removes_oldest(
    path: Path,
    make_sink: SinkFactory,
    clock: FakeClock,
    seconds_apart: int,
    batches: int,
    kept_names: list[str],
    first_kept: int,
) -> None:
    sink = make_sink(path, rotate_max_bytes=LINE_BYTES, keep_files=2, compress=True)
    await sink.open(None)

    for number in range(1, batches + 1):
        await sink.send(make_batch(number, 1))
        assert sink._housekeeping is not None
        await sink._housekeeping
        clock.advance(seconds_apart)
    await sink.close()

    assert rotated_files(path) == kept_names
    for offset, name in enumerate(kept_names):
        assert gzip.decompress((path.parent / name).read_bytes()) == lines(first_kept + offset, 1)
    assert path.read_bytes() == lines(batches, 1)


async def test_open_finishes_interrupted_compression(path: Path, make_sink: SinkFactory) -> None:
    path.parent.mkdir()
    unfinished = path.parent / f"events.ndjson.{STAMP}"
    unfinished.write_bytes(lines(1, 2))
    Path(f"{unfinished}.gz.tmp").write_bytes(b"\x1f\x8b half a gzip stream")
    renamed = path.parent / "events.ndjson.20261204T201531Z"
    renamed.write_bytes(lines(3, 2))
    Path(f"{renamed}.gz").write_bytes(gzip.compress(lines(3, 2)))
    sink = make_sink(path, compress=True)

    await sink.open(None)
    await sink.close()

    assert rotated_files(path) == [f"{unfinished.name}.gz", f"{renamed.name}.gz"]
    assert gzip.decompress(Path(f"{unfinished}.gz").read_bytes()) == lines(1, 2)
    assert gzip.decompress(Path(f"{renamed}.gz").read_bytes()) == lines(3, 2)
    assert path.read_bytes() == b""


# -- reopening -------------------------------------------------------------------


async def test_reopen_after_logrotate_move(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 2))

    path.rename(path.with_name("events.ndjson.1"))
    await sink.reopen()
    state = await sink.send(make_batch(3, 1))

    assert path.with_name("events.ndjson.1").read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(3, 1)
    assert state is not None
    assert state["inode"] == path.stat().st_ino


async def test_reopen_keeps_unmoved_file(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 1))

    await sink.reopen()
    await sink.send(make_batch(2, 1))

    assert path.read_bytes() == lines(1, 2)


@pytest.mark.parametrize(
    ("replaced", "reason"), [(False, "moved or deleted"), (True, "replaced by another file")]
)
async def test_send_notices_moved_file(
    path: Path,
    make_sink: SinkFactory,
    captured_logs: list[EventDict],
    replaced: bool,
    reason: str,
) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 2))

    path.rename(path.with_name("events.ndjson.old"))
    if replaced:
        path.write_bytes(lines(9, 1))
    await sink.send(make_batch(3, 1))

    assert path.with_name("events.ndjson.old").read_bytes() == lines(1, 2)
    assert path.read_bytes() == (lines(9, 1) if replaced else b"") + lines(3, 1)
    reopened = [log for log in captured_logs if log["event"] == "file.reopened"]
    assert [log["reason"] for log in reopened] == [reason]


async def test_send_notices_deleted_file(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 2))

    path.unlink()
    await sink.send(make_batch(3, 1))

    assert path.read_bytes() == lines(3, 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- repair after a crash --------------------------------------------------------


async def test_open_cuts_lines_beyond_state(path: Path, make_sink: SinkFactory) -> None:
    first = make_sink(path)
    await first.open(None)
    state = await first.send(make_batch(1, 2))
    await first.send(make_batch(3, 2))  # returned, but the runner never committed it
    await first.close()

    second = make_sink(path)
    await second.open(state)
    assert path.read_bytes() == lines(1, 2)
    await second.send(make_batch(3, 2))

    assert path.read_bytes() == lines(1, 4)


async def test_open_removes_half_written_line(path: Path, make_sink: SinkFactory) -> None:
    first = make_sink(path)
    await first.open(None)
    state = await first.send(make_batch(1, 2))
    await first.close()
    with path.open("ab") as file:
        file.write(lines(3, 1)[:7])

    second = make_sink(path)
    await second.open(state)
    assert path.read_bytes() == lines(1, 2)
    await second.send(make_batch(3, 1))

    assert path.read_bytes() == lines(1, 3)


async def test_open_with_lost_confirmed_bytes(
    path: Path, make_sink: SinkFactory, captured_logs: list[EventDict]
) -> None:
    first = make_sink(path)
    await first.open(None)
    await first.send(make_batch(1, 30))
    state = await first.send(make_batch(31, 2))
    await first.close()
    # A power loss with `fsync: interval`: the end of a committed batch never reached disk.
    os.truncate(path, 31 * LINE_BYTES - 5)

    second = make_sink(path)
    await second.open(state)
    await second.send(make_batch(33, 1))

    assert path.read_bytes() == lines(1, 30) + lines(33, 1)
    missing = [log for log in captured_logs if log["event"] == "file.bytes_missing"]
    assert len(missing) == 1
    assert missing[0]["missing_bytes"] == LINE_BYTES + 5
    assert missing[0]["log_level"] == "error"


@pytest.mark.parametrize("compress", [False, True])
async def test_rotation_then_crash_before_commit(
    path: Path, make_sink: SinkFactory, compress: bool
) -> None:
    first = make_sink(path, rotate_max_bytes=2 * LINE_BYTES, compress=compress)
    await first.open(None)
    state = await first.send(make_batch(1, 2))
    await first.send(make_batch(3, 1))  # rotates, writes, and the commit is lost
    await first.close()

    second = make_sink(path, rotate_max_bytes=2 * LINE_BYTES, compress=compress)
    await second.open(state)
    assert path.read_bytes() == b""
    await second.send(make_batch(3, 1))
    await second.close()

    rotated = path.parent / f"events.ndjson.{STAMP}"
    if compress:
        assert rotated_files(path) == [f"{rotated.name}.gz"]
        assert gzip.decompress(Path(f"{rotated}.gz").read_bytes()) == lines(1, 2)
    else:
        assert rotated_files(path) == [rotated.name]
        assert rotated.read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(3, 1)


async def test_logrotate_move_then_crash_before_commit(path: Path, make_sink: SinkFactory) -> None:
    first = make_sink(path)
    await first.open(None)
    state = await first.send(make_batch(1, 2))
    await first.send(make_batch(3, 2))  # written, then moved away before the commit
    path.rename(path.with_name("events.ndjson.1"))
    path.touch(mode=0o600)  # logrotate's `create`
    await first.close()

    second = make_sink(path)
    await second.open(state)
    await second.send(make_batch(3, 2))

    assert path.with_name("events.ndjson.1").read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(3, 2)


async def test_changed_path_repairs_old_file(tmp_path: Path, make_sink: SinkFactory) -> None:
    old_path = tmp_path / "old.ndjson"
    new_path = tmp_path / "new.ndjson"
    first = make_sink(old_path)
    await first.open(None)
    state = await first.send(make_batch(1, 2))
    await first.send(make_batch(3, 1))  # never committed
    await first.close()

    second = make_sink(new_path)
    await second.open(state)
    await second.send(make_batch(3, 1))

    assert old_path.read_bytes() == lines(1, 2)
    assert new_path.read_bytes() == lines(3, 1)


async def test_crash_during_first_batch(path: Path, make_sink: SinkFactory) -> None:
    path.parent.mkdir()
    path.write_bytes(b"partial line of another writer")
    first = make_sink(path)
    await first.open(None)
    await first.send(make_batch(1, 2))  # the first state is never committed
    await first.close()

    second = make_sink(path)
    await second.open(None)
    assert path.read_bytes() == b"partial line of another writer\n"
    await second.send(make_batch(1, 2))

    assert path.read_bytes() == b"partial line of another writer\n" + lines(1, 2)


async def test_marker_removed_once_state_committed(path: Path, make_sink: SinkFactory) -> None:
    marker = path.with_name(".events.ndjson.start")
    sink = make_sink(path)
    await sink.open(None)
    assert marker.exists()

    await sink.send(make_batch(1, 1))
    assert marker.exists()
    await sink.send(make_batch(2, 1))  # the runner committed the first state

    assert not marker.exists()
    assert path.read_bytes() == lines(1, 2)


async def test_lost_state_keeps_confirmed_lines(path: Path, make_sink: SinkFactory) -> None:
    first = make_sink(path)
    await first.open(None)
    await first.send(make_batch(1, 1))
    await first.send(make_batch(2, 1))
    await first.close()

    second = make_sink(path)
    await second.open(None)
    await second.send(make_batch(3, 1))

    assert path.read_bytes() == lines(1, 3)


async def test_deleted_file_then_two_crashes(path: Path, make_sink: SinkFactory) -> None:
    # ext4 gives the file created after the deletion the freed inode number, so the
    # state's inode then names a file that contains only unconfirmed lines.
    first = make_sink(path)
    await first.open(None)
    await first.send(make_batch(1, 1))
    state = await first.send(make_batch(2, 1))
    await first.close()
    path.unlink()

    second = make_sink(path)
    await second.open(state)
    await second.send(make_batch(3, 1))  # never committed
    await second.close()

    third = make_sink(path)
    await third.open(state)
    assert path.read_bytes() == b""
    await third.send(make_batch(3, 1))

    assert path.read_bytes() == lines(3, 1)


async def test_repeated_batch_replaces_its_lines(path: Path, make_sink: SinkFactory) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 1))
    await sink.send(make_batch(2, 2))

    await sink.send(make_batch(2, 2))  # the runner failed to commit and sends it again
    await sink.send(make_batch(4, 1))

    assert path.read_bytes() == lines(1, 4)


@pytest.mark.parametrize("truncate_fails", [False, True])
async def test_failed_write_leaves_no_lines(
    path: Path, make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch, truncate_fails: bool
) -> None:
    sink = make_sink(path)
    await sink.open(None)
    await sink.send(make_batch(1, 1))
    real_write = os.write
    real_ftruncate = os.ftruncate

    def write_half_then_fail(fd: int, data: Any) -> int:
        if os.fstat(fd).st_ino != path.stat().st_ino:
            return real_write(fd, data)
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def ftruncate_fails(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", write_half_then_fail)
    if truncate_fails:
        monkeypatch.setattr(os, "ftruncate", ftruncate_fails)
    with pytest.raises(SinkError, match="No space left on device") as caught:
        await sink.send(make_batch(2, 3))
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "ftruncate", real_ftruncate)

    assert caught.value.retriable is True
    await sink.send(make_batch(2, 3))
    assert path.read_bytes() == lines(1, 4)


# -- fsync -----------------------------------------------------------------------


async def test_fsync_batch_syncs_every_batch(
    path: Path, make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(path)
    await sink.open(None)
    synced = count_fsyncs(monkeypatch, path)

    for number in range(1, 4):
        await sink.send(make_batch(number, 1))
        assert len(synced) == number

    assert path.read_bytes() == lines(1, 3)


async def test_fsync_interval_limits_syncs(
    path: Path, make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    sink = make_sink(path, fsync="interval", fsync_interval_secs=5)
    await sink.open(None)
    synced = count_fsyncs(monkeypatch, path)

    await sink.send(make_batch(1, 1))
    assert len(synced) == 1
    clock.advance(2)
    await sink.send(make_batch(2, 1))
    await sink.send(make_batch(3, 1))
    assert len(synced) == 1

    clock.advance(3)  # the interval has passed with lines unsynced
    await wait_until(lambda: len(synced) == 2)
    await sink.send(make_batch(4, 1))
    assert len(synced) == 2
    await sink.close()

    assert len(synced) == 3
    assert path.read_bytes() == lines(1, 4)


# -- real crashes ----------------------------------------------------------------

WRITER = """\
import asyncio, json, os, sys
from pathlib import Path

import structlog

from tailer.event import Event
from tailer.sinks.base import Batch
from tailer.sinks.file import FileSink, FileSinkConfig

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def make_batch(index, size):
    first = index * size + 1
    events = [
        Event(f"evt-{n:06d}", n, {"id": f"evt-{n:06d}", "pad": "x" * (n % 40)})
        for n in range(first, first + size)
    ]
    payloads = [event.to_json() for event in events]
    return Batch("archive", events, payloads, first, first + size - 1)


async def main():
    config = FileSinkConfig.model_validate_json(sys.argv[1])
    checkpoint = Path(sys.argv[2])
    batches, size = int(sys.argv[3]), int(sys.argv[4])
    saved = {"next": 0, "state": None}
    if checkpoint.exists():
        saved = json.loads(checkpoint.read_text())
    sink = FileSink("archive", config)
    await sink.open(saved["state"])
    print("ready", flush=True)
    for index in range(saved["next"], batches):
        state = await sink.send(make_batch(index, size))
        # The runner's commit: the state and the next batch, replaced atomically.
        temporary = checkpoint.with_name("checkpoint.tmp")
        temporary.write_text(json.dumps({"next": index + 1, "state": state}))
        os.replace(temporary, checkpoint)
    await sink.close()


asyncio.run(main())
"""

CRASH_BATCH_SIZE = 7
CRASH_KILLS = 8


def expected_crash_output(batches: int) -> bytes:
    numbers = range(1, batches * CRASH_BATCH_SIZE + 1)
    return b"".join(b'{"id":"evt-%06d","pad":"%s"}\n' % (n, b"x" * (n % 40)) for n in numbers)


def run_writer(
    tmp_path: Path, config: FileSinkConfig, batches: int, kill_after: float | None
) -> None:
    """Start the writer and SIGKILL it `kill_after` seconds after it opened the sink.

    With `kill_after` None, wait for the writer to finish.
    """
    command = [
        sys.executable,
        str(tmp_path / "writer.py"),
        config.model_dump_json(),
        str(tmp_path / "checkpoint.json"),
        str(batches),
        str(CRASH_BATCH_SIZE),
    ]
    with (tmp_path / "writer.log").open("ab") as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        assert child.stdout is not None
        try:
            assert child.stdout.readline() == b"ready\n"
            if kill_after is None:
                assert child.wait(timeout=30) == 0
                return
            time.sleep(kill_after)
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=10) in (-signal.SIGKILL, 0)
        finally:
            child.stdout.close()
            if child.poll() is None:
                child.kill()
                child.wait()


def read_rotated_then_active(path: Path) -> bytes:
    """Concatenate the rotated files, oldest first and decompressed, then the active file."""
    pattern = re.compile(r"events\.ndjson\.(\d{8}T\d{6}Z)(?:\.(\d+))?\.gz")
    rotated: list[tuple[str, int, Path]] = []
    for item in path.parent.iterdir():
        match = pattern.fullmatch(item.name)
        if match is not None:
            rotated.append((match[1], int(match[2] or 0), item))
    rotated.sort()
    parts = [gzip.decompress(item.read_bytes()) for _, _, item in rotated]
    return b"".join(parts) + path.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "batches", "options"),
    [
        (1, 1500, {"fsync": "batch"}),
        (2, 4000, {"fsync": "interval", "rotate_max_bytes": 20_000, "compress": True}),
    ],
    ids=["plain", "rotated"],
)
def test_sigkill_leaves_every_line_once(
    tmp_path: Path, seed: int, batches: int, options: dict[str, Any]
) -> None:
    # Batch counts are sized so that the kills land before the writer finishes.
    (tmp_path / "writer.py").write_text(WRITER)
    path = tmp_path / "out" / "events.ndjson"
    config = FileSinkConfig(path=path, **options)
    rng = random.Random(seed)

    for _ in range(CRASH_KILLS):
        run_writer(tmp_path, config, batches, kill_after=rng.uniform(0.0, 0.12))
    run_writer(tmp_path, config, batches, kill_after=None)

    assert json.loads((tmp_path / "checkpoint.json").read_text())["next"] == batches
    if "rotate_max_bytes" in options:
        assert not list(path.parent.glob("*.tmp"))
        assert [p.name for p in path.parent.iterdir() if p.name.startswith("events.ndjson.")]
        content = read_rotated_then_active(path)
    else:
        content = path.read_bytes()
    assert content == expected_crash_output(batches)
