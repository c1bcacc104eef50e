"""The file sink: appends each event to a local file as one NDJSON line, and rotates it.

Each payload becomes one line: the payload bytes and b"\\n". A payload that contains
a newline would split its event across two lines, so the batch is rejected with a
non-retriable `SinkError` naming the event. The runner then dead-letters the batch
when the sink has a dead-letter file.

Crash safety
------------

The promise is that a crash, `kill -9` included, leaves no line twice and no
half-written line. The runner commits a batch's offset only after `send`
returned, so a crash between the write and the commit leaves lines on disk
that the runner sends again after the restart. Writing only after the commit
is impossible, because the commit must follow a successful write.

So the state `send` returns names the file (device, inode) and its size after
the batch, and the runner commits it together with the offset. On `open`,
bytes beyond that size were written but never confirmed, and are truncated
away. That removes a half-written line too. Two cases need more than the state:

* Lines went into a file that no committed state names yet: the file started on
  first start, by a rotation, or after the old one was moved away. Before the
  first byte goes into such a file, the sink writes a start marker
  `.<name>.start` next to `path`, with the file's identity and its size at that
  moment, and fsyncs it. On `open`, a file that matches the marker is truncated
  to the recorded size. Other content, such as lines of another program, is
  never truncated. The marker is removed once a committed state names the file.
  This relies on the runner committing a batch's state before it sends the next
  batch.
* The state's file was moved away (logrotate) while the last batch was written
  into it. On `open`, the sink looks it up among the files in the directory of
  the state's path whose names start with that file's name, and truncates it
  where it is.

A file is recognised by device, inode and a SHA-256 of its first bytes,
because ext4 gives a new file the inode number of a file just deleted.

The sink's own rotation runs before a batch is written, so a rotated file holds
only confirmed lines and is safe to compress at once.

With no state (first start, or a lost state) and no matching marker, the
existing file is kept and appended to. If it does not end in a newline (a
partial line of another writer), the sink writes b"\\n" first, so its own lines
start on a line of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tailer.clock import Clock, SystemClock
from tailer.config import PathOption
from tailer.fileio import fsync_directory, write_all
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState

__all__ = ["FileSink", "FileSinkConfig"]

_log = structlog.get_logger("tailer.sinks.file")

# Mode of every file the sink creates, before the umask: audit data is for its owner only.
_FILE_MODE = 0o600

# Prefix hashed to tell a file from a later one that reuses its inode number.
_HEAD_BYTES = 512
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_COPY_CHUNK_BYTES = 1 << 20
# Errors that retrying the same batch cannot fix: the path itself is unusable.
_PERMANENT_ERRNOS = frozenset({errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG})


class FileSinkConfig(SinkConfig):
    """Options of the file sink. Sizes are in bytes, durations in seconds."""

    path: PathOption
    """The active file. Missing parent directories are created. Files the sink creates get
    mode 0600. The start marker `.<name>.start` may appear next to it."""

    rotate_max_bytes: int | None = Field(default=None, gt=0)
    """Rotate before a batch that would make the file larger than this. A batch larger than
    the limit still goes into one file. None turns size rotation off."""

    rotate_interval_secs: float | None = Field(default=None, gt=0)
    """Rotate before the first batch that arrives this long after the file was started.
    Checked only when a batch arrives. None turns time rotation off."""

    compress: bool = False
    """Compress rotated files with gzip to `<rotated name>.gz`, in a worker thread."""

    keep_files: int | None = Field(default=None, ge=1)
    """Number of rotated files kept. Older ones are deleted. None keeps all."""

    fsync: Literal["batch", "interval"] = "batch"
    """`batch`: fsync before `send` returns, so a confirmed line survives a power loss.
    `interval`: fsync at most once per `fsync_interval_secs`, so a power loss can lose
    confirmed lines (see `FileSink`)."""

    fsync_interval_secs: float = Field(default=1.0, gt=0)
    """With `fsync: interval`, the maximum time that written lines stay unsynced."""


class _FileRecord(BaseModel):
    """A file's identity and a size in it: the sink's state, and the start marker."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: str
    device: int
    inode: int
    size: int = Field(ge=0)
    head_sha256: str
    """SHA-256 of the first min(size, 512) bytes."""
    started_at: float
    """Wall time, in seconds since the epoch, at which the sink started the file."""


@dataclass
class _RotatedFile:
    """One rotated file of the sink, in any of its forms on disk."""

    stem: Path
    order: tuple[str, int]
    plain: bool = False
    compressed: bool = False
    partial: bool = False  # an unfinished `.gz.tmp`


class FileSink(Sink):
    """Appends batches to `path` as NDJSON. See the module docstring for crash safety.

    With `fsync: interval`, `send` returns before its lines are fsynced. A process crash
    loses nothing, because the written data is in the kernel's page cache. A power loss or kernel
    crash can lose the lines of the last `fsync_interval_secs`, although the runner has
    committed their offset. The next `open` then finds the file shorter than the state,
    logs `file.bytes_missing`, removes a partial last line and appends after the lines
    that remain.

    A batch's lines are written, and with `fsync: batch` synced, in one call on a
    worker thread, so the event loop goes on while the kernel copies them and the
    disk syncs. The fsyncs of a file switch (rotation, reopen) run on the loop,
    once per file.
    """

    config_model: ClassVar[type[SinkConfig]] = FileSinkConfig
    # A file takes large batches, and each batch costs an fsync and two journal
    # commits. On the 2-core benchmark machine a 200,000-event backfill took
    # 2.73 s with these limits and 2.91 s with the runner's 500 events and 1 MiB
    # (medians of five alternating runs).
    batch_defaults: ClassVar[dict[str, float]] = {"max_events": 2000, "max_bytes": 4 * 1024 * 1024}

    def __init__(self, name: str, config: SinkConfig, *, clock: Clock | None = None) -> None:
        if not isinstance(config, FileSinkConfig):
            raise TypeError(f"FileSink needs a FileSinkConfig, not {type(config).__name__}")
        super().__init__(name, config)
        self._options = config
        self._clock = clock or SystemClock()
        self._path = config.path.absolute()
        self._marker_path = self._path.with_name(f".{self._path.name}.start")
        # Serialises send, reopen, close and the delayed fsync, which await between steps.
        self._lock = asyncio.Lock()

        # The active file.
        self._fd: int | None = None
        self._device = 0
        self._inode = 0
        self._started_at = 0.0
        self._confirmed_size = 0  # bytes confirmed by the last send, or kept by open

        self._marker_pending = False  # the marker names the active file
        self._returned_identity: tuple[int, int] | None = None  # file of the last state
        self._last_key: str | None = None
        self._size_before_last = 0

        self._unsynced = False
        self._last_fsync = float("-inf")
        self._fsync_timer: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._tidy_requested = False

    def __repr__(self) -> str:
        return f"FileSink(name={self.name!r}, path={str(self._path)!r})"

    # -- the contract ----------------------------------------------------------

    async def open(self, state: SinkState) -> None:
        """Open `path`, first removing lines that were written but never confirmed.

        Raises SinkError when the state is invalid or the file cannot be opened.
        A second call starts afresh.
        """
        await self.close()
        saved = self._parse_state(state)
        async with self._lock:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._recover(saved)
            except OSError as exc:
                raise self._os_error("open", self._path, exc) from exc
            self._returned_identity = None
            self._last_key = None
        self._schedule_housekeeping()

    async def send(self, batch: Batch) -> SinkState:
        """Append one line per payload and return the state to commit with the offset.

        Raises a non-retriable SinkError when a payload contains a newline, and a retriable one
        when the file cannot be written or synced. Nothing of a failed batch stays in
        the file once the next `send` or `open` runs.
        """
        async with self._lock:
            self._require_open()
            data = self._encode_lines(batch)
            try:
                fd, size_before = self._prepare(batch, len(data))
            except OSError as exc:
                raise self._os_error("write", self._path, exc) from exc

            sync = self._options.fsync == "batch"
            try:
                await _run_to_end(self._append_and_sync, fd, data, sync)
            except _FileActionError as failed:
                raise self._os_error(failed.action, self._path, failed.error) from failed.error
            if sync:
                self._unsynced = False
                self._last_fsync = self._clock.monotonic()
            else:
                try:
                    await self._sync_after_batch(fd)
                except OSError as exc:
                    raise self._os_error("fsync", self._path, exc) from exc

            self._confirmed_size = os.fstat(fd).st_size
            self._last_key = batch.key
            self._size_before_last = size_before
            self._returned_identity = (self._device, self._inode)
            record = _describe(self._path, fd, self._confirmed_size, self._started_at)
            return record.model_dump()

    async def reopen(self) -> None:
        """Switch to the file now at `path`, creating it, after an external rotation.

        Errors are logged rather than raised, because the caller is a signal handler.
        The next `send` checks the path again and raises there.
        """
        async with self._lock:
            if self._fd is None:
                return
            try:
                self._follow_path("reopen requested")
            except OSError as exc:
                _log.error(
                    "file.reopen_failed",
                    sink=self.name,
                    path=str(self._path),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )

    async def close(self) -> None:
        """Fsync and close the file, then wait for compression. Closing twice is harmless."""
        async with self._lock:
            timer, self._fsync_timer = self._fsync_timer, None
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            fd, self._fd = self._fd, None
            if fd is not None:
                if self._unsynced:
                    self._fsync_logged(fd)
                os.close(fd)

        housekeeping, self._housekeeping = self._housekeeping, None
        if housekeeping is not None:
            await housekeeping

    # -- open ------------------------------------------------------------------

    def _parse_state(self, state: SinkState) -> _FileRecord | None:
        if state is None:
            return None
        try:
            return _FileRecord.model_validate(state)
        except ValidationError as exc:
            raise SinkError(
                f"file sink {self.name!r}: the saved state is invalid, so unconfirmed lines "
                f"cannot be told from confirmed ones: {exc}",
                retriable=False,
            ) from None

    def _recover(self, saved: _FileRecord | None) -> None:
        """Open `path` and cut every unconfirmed byte the sink can find."""
        fd = _open_append(self._path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SinkError(
                    f"file sink {self.name!r}: {self._path} is not a regular file",
                    retriable=False,
                )
            self._adopt_at_open(fd, st, saved)
            self._end_with_newline()
        except BaseException:
            self._fd = None
            os.close(fd)
            raise

    def _adopt_at_open(self, fd: int, st: os.stat_result, saved: _FileRecord | None) -> None:
        marker = self._read_marker()

        # The usual case: the file of the last confirmed batch is still at `path`.
        if saved is not None and _is_recorded_file(fd, st, saved):
            if not self._cut_to_confirmed(fd, self._path, st.st_size, saved.size):
                self._cut_partial_line(fd)
            self._activate(fd, os.fstat(fd), saved.started_at)
            self._remove_marker()
            _log.debug("file.opened", sink=self.name, path=str(self._path), found_by="state")
            return

        # The state's file was rotated, moved or deleted, and may contain unconfirmed lines.
        if saved is not None:
            self._repair_moved_file(saved)

        # The file at `path` received lines before any committed state named it.
        if marker is not None and _is_recorded_file(fd, st, marker):
            if st.st_size > marker.size:
                self._truncate(fd, self._path, st.st_size, marker.size)
            self._activate(fd, os.fstat(fd), marker.started_at)
            self._marker_pending = True
            _log.debug("file.opened", sink=self.name, path=str(self._path), found_by="marker")
            return

        # A new file, or one the sink never wrote to: keep what it contains.
        self._start_file(fd, st, self._clock.time())
        _log.debug(
            "file.opened", sink=self.name, path=str(self._path), found_by="new", size=st.st_size
        )

    def _cut_to_confirmed(self, fd: int, path: Path | str, size: int, confirmed: int) -> bool:
        """Truncate the file behind `fd` to `confirmed` bytes.

        Return False, after logging an error, when the file is shorter than that.
        """
        if size > confirmed:
            self._truncate(fd, path, size, confirmed)
        elif size < confirmed:
            _log.error(
                "file.bytes_missing",
                sink=self.name,
                path=str(path),
                missing_bytes=confirmed - size,
                reason="the file is shorter than its last confirmed size: a power loss "
                "before fsync, or another program truncated it",
            )
            return False
        return True

    def _cut_partial_line(self, fd: int) -> None:
        """Remove the start of a line whose end was lost, so every line is whole."""
        size = os.fstat(fd).st_size
        keep = 0
        end = size
        while end > 0:
            start = max(0, end - _COPY_CHUNK_BYTES)
            newline = os.pread(fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        if keep < size:
            self._truncate(fd, self._path, size, keep)

    def _truncate(self, fd: int, path: Path | str, size: int, keep: int) -> None:
        """Truncate to `keep` bytes what a crash left unconfirmed, durably."""
        os.ftruncate(fd, keep)
        os.fsync(fd)
        _log.warning(
            "file.repaired", sink=self.name, path=str(path), removed_bytes=size - keep, size=keep
        )

    def _repair_moved_file(self, saved: _FileRecord) -> None:
        """Find the state's file next to its old path and truncate it to the confirmed size."""
        old_path = Path(saved.path)
        try:
            entries = list(os.scandir(old_path.parent))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.name.startswith(old_path.name) or entry.path == str(self._path):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
                    saved.device,
                    saved.inode,
                ):
                    continue
                fd = os.open(entry.path, os.O_RDWR)
                try:
                    st = os.fstat(fd)
                    if _is_recorded_file(fd, st, saved):
                        self._cut_to_confirmed(fd, entry.path, st.st_size, saved.size)
                        return
                finally:
                    os.close(fd)
        # Our own rotation compressed it, or another program moved or deleted it.
        # NOTE: a file moved out of this directory, or compressed by logrotate, while a
        # batch was being written into it keeps that batch's lines, which are written again.
        _log.info(
            "file.previous_not_found",
            sink=self.name,
            path=saved.path,
            inode=saved.inode,
        )

    # -- the start marker ------------------------------------------------------

    def _read_marker(self) -> _FileRecord | None:
        try:
            content = self._marker_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _FileRecord.model_validate_json(content)
        except ValidationError as exc:
            _log.warning(
                "file.marker_invalid", sink=self.name, path=str(self._marker_path), error=str(exc)
            )
            return None

    def _write_marker(self, record: _FileRecord) -> None:
        """Write the marker atomically and durably: temporary file, fsync, rename, fsync."""
        temporary = self._marker_path.with_name(self._marker_path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        try:
            write_all(fd, record.model_dump_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self._marker_path)
        fsync_directory(self._marker_path.parent)

    def _remove_marker(self) -> None:
        try:
            self._marker_path.unlink()
        except FileNotFoundError:
            pass
        else:
            fsync_directory(self._marker_path.parent)
        self._marker_pending = False

    # -- the active file -------------------------------------------------------

    def _require_open(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"file sink {self.name!r} is not open")
        return self._fd

    def _activate(self, fd: int, st: os.stat_result, started_at: float) -> None:
        self._fd = fd
        self._device = st.st_dev
        self._inode = st.st_ino
        self._confirmed_size = st.st_size
        self._started_at = started_at
        self._last_key = None
        self._unsynced = False

    def _start_file(self, fd: int, st: os.stat_result, started_at: float) -> None:
        """Make `fd` the active file, recording it in the marker before anything is written.

        The old file is closed only after the new one is open, so the new file cannot
        get the old inode number while a state may still name it.
        """
        self._write_marker(_describe(self._path, fd, st.st_size, started_at))
        old = self._fd
        if old is not None:
            if self._unsynced:
                self._fsync_logged(old)
            os.close(old)
        self._activate(fd, st, started_at)
        self._marker_pending = True

    def _follow_path(self, reason: str) -> None:
        """Switch to the file at `path` when it is not the open one; create it if missing."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_append(self._path)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (self._device, self._inode):
            os.close(fd)
            return
        try:
            self._start_file(fd, st, self._clock.time())
        except BaseException:
            os.close(fd)
            raise
        self._end_with_newline()
        _log.info("file.reopened", sink=self.name, path=str(self._path), reason=reason)

    def _end_with_newline(self) -> None:
        """Start the sink's lines on a new line when the file ends in a partial one."""
        fd = self._require_open()
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            write_all(fd, b"\n")
            size += 1
        self._confirmed_size = size

    # -- sending ---------------------------------------------------------------

    def _encode_lines(self, batch: Batch) -> bytes:
        if not batch.payloads:
            return b""
        # The empty payload at the end adds the last newline. Appending it to the
        # joined bytes instead would copy the whole batch once more.
        data = b"\n".join([*batch.payloads, b""])
        # One count over the joined lines finds a payload with a newline inside
        # at a fraction of the cost of a search per payload.
        if data.count(b"\n") != len(batch.payloads):
            for event, payload in zip(batch.events, batch.payloads, strict=True):
                if b"\n" in payload:
                    raise SinkError(
                        f"event {event.id} is encoded with a newline inside, which would split "
                        f"it across two lines of {self._path}. The file sink needs an encoding "
                        f"without raw newlines, such as JSON.",
                        retriable=False,
                    )
        return data

    def _prepare(self, batch: Batch, size: int) -> tuple[int, int]:
        """Bring the file to its confirmed state and rotate if due.

        Return the active fd and the file's size before the batch.
        """
        fd = self._require_open()
        if batch.key == self._last_key:
            # The runner sends a confirmed batch again only when it failed to commit the
            # state: replace the batch's lines rather than add them twice.
            os.ftruncate(fd, self._size_before_last)
            self._confirmed_size = self._size_before_last
            _log.warning("batch.repeated", sink=self.name, batch=batch.key, path=str(self._path))
        elif self._marker_pending and self._returned_identity == (self._device, self._inode):
            # A new batch means the runner committed the last state, which names this file.
            self._remove_marker()

        self._check_path()
        self._discard_unconfirmed()
        if size > 0 and self._rotation_due(size):
            self._rotate()
        return self._require_open(), self._confirmed_size

    def _check_path(self) -> None:
        """Reopen when the file at `path` was moved or deleted since the last batch."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            # A rename and a deletion look the same once the name is gone.
            self._follow_path("moved or deleted")
            return
        if (st.st_dev, st.st_ino) != (self._device, self._inode):
            self._follow_path("replaced by another file")

    def _discard_unconfirmed(self) -> None:
        """Cut what a failed attempt left behind, so a retried batch is written once."""
        fd = self._require_open()
        size = os.fstat(fd).st_size
        if size > self._confirmed_size:
            os.ftruncate(fd, self._confirmed_size)
        elif size < self._confirmed_size:
            # Another program truncated the file, as logrotate's copytruncate does.
            _log.warning(
                "file.truncated_externally",
                sink=self.name,
                path=str(self._path),
                size=size,
                expected_size=self._confirmed_size,
            )
            self._end_with_newline()

    def _append_and_sync(self, fd: int, data: bytes, sync: bool) -> None:
        """Append `data` and, with `sync`, fsync the file. Raise _FileActionError on failure.

        It runs on a worker thread, because copying batches into the page cache
        took a tenth of the event loop's time in a backfill (a py-spy profile on
        the benchmark machine), and os.write and os.fsync release the GIL.
        """
        try:
            write_all(fd, data)
        except OSError as exc:
            # Best effort: what remains is cut by the next send or open.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._confirmed_size)
            raise _FileActionError("write", exc) from exc
        if sync:
            try:
                os.fsync(fd)
            except OSError as exc:
                raise _FileActionError("fsync", exc) from exc

    # -- rotation --------------------------------------------------------------

    def _rotation_due(self, size: int) -> bool:
        if self._confirmed_size == 0:
            return False
        max_bytes = self._options.rotate_max_bytes
        if max_bytes is not None and self._confirmed_size + size > max_bytes:
            return True
        interval = self._options.rotate_interval_secs
        return interval is not None and self._clock.time() - self._started_at >= interval

    def _rotate(self) -> None:
        """Rename the active file to its rotated name and start a new one at `path`."""
        fd = self._require_open()
        now = self._clock.time()
        target = self._rotated_path(now)
        os.fsync(fd)
        self._unsynced = False
        os.rename(self._path, target)

        new_fd = _open_append(self._path)
        try:
            self._start_file(new_fd, os.fstat(new_fd), now)
        except BaseException:
            os.close(new_fd)
            raise
        # Normally empty, unless another program created `path` since the rename.
        self._end_with_newline()
        _log.info("file.rotated", sink=self.name, path=str(self._path), rotated_path=str(target))
        self._schedule_housekeeping()

    def _rotated_path(self, now: float) -> Path:
        """Return `<path>.<UTC time>`, with `.1`, `.2`... added for later rotations in that second.

        The number is one above the highest of that second's files still on disk. A
        lower number freed by `keep_files` is not used again: the file would sort
        before older files of the same second and be deleted before them.
        """
        stamp = time.strftime(_TIMESTAMP_FORMAT, time.gmtime(now))
        base = f"{self._path.name}.{stamp}"
        rotated = _find_rotated_files(self._path)
        numbers = [item.order[1] for item in rotated if item.order[0] == stamp]
        if not numbers:
            return self._path.with_name(base)
        return self._path.with_name(f"{base}.{max(numbers) + 1}")

    # -- compression and retention ---------------------------------------------

    def _schedule_housekeeping(self) -> None:
        """Compress and prune rotated files in a worker thread, one pass at a time."""
        self._tidy_requested = True
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = asyncio.create_task(self._housekeep())

    async def _housekeep(self) -> None:
        while self._tidy_requested:
            self._tidy_requested = False
            try:
                await asyncio.to_thread(self._tidy_rotated_files)
            except Exception as exc:
                # A background task has no caller to raise to. The rotated files stay
                # as they are, and the next rotation or open tries again.
                _log.error(
                    "file.housekeeping_failed",
                    sink=self.name,
                    path=str(self._path),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )

    def _tidy_rotated_files(self) -> None:
        """Finish interrupted compressions, compress new rotated files, delete old ones."""
        rotated = _find_rotated_files(self._path)
        for item in rotated:
            if item.partial:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{item.stem}.gz.tmp")
            if item.plain and item.compressed:
                # The .gz was complete before it got its name, so the plain copy is a leftover.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(item.stem)
            elif item.plain and self._options.compress:
                self._compress_logged(item.stem)

        keep = self._options.keep_files
        complete = [item for item in rotated if item.plain or item.compressed]
        if keep is None or len(complete) <= keep:
            return
        for item in complete[:-keep]:
            for suffix in ("", ".gz", ".gz.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{item.stem}{suffix}")
            _log.info("file.removed", sink=self.name, path=str(item.stem), keep_files=keep)

    def _compress_logged(self, source: Path) -> None:
        try:
            _gzip_file(source)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(f"{source}.gz.tmp")
            _log.warning(
                "file.compress_failed",
                sink=self.name,
                path=str(source),
                error=str(exc),
                error_type=type(exc).__name__,
            )
        else:
            _log.debug("file.compressed", sink=self.name, path=f"{source}.gz")

    # -- fsync -----------------------------------------------------------------

    async def _sync_after_batch(self, fd: int) -> None:
        if self._options.fsync == "batch":
            await self._fsync(fd)
            return

        self._unsynced = True
        interval = self._options.fsync_interval_secs
        elapsed = self._clock.monotonic() - self._last_fsync
        if elapsed >= interval:
            await self._fsync(fd)
        elif self._fsync_timer is None or self._fsync_timer.done():
            deadline = self._last_fsync + interval
            self._fsync_timer = asyncio.create_task(self._fsync_later(deadline))

    async def _fsync(self, fd: int) -> None:
        await asyncio.to_thread(os.fsync, fd)
        self._unsynced = False
        self._last_fsync = self._clock.monotonic()

    async def _fsync_later(self, deadline: float) -> None:
        """Fsync at `deadline` (monotonic) lines that no batch has synced since."""
        await self._clock.sleep(deadline - self._clock.monotonic())
        async with self._lock:
            if self._fd is None or not self._unsynced:
                return
            try:
                await self._fsync(self._fd)
            except OSError as exc:
                self._log_fsync_failure(exc)

    def _fsync_logged(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._log_fsync_failure(exc)
        self._unsynced = False

    def _log_fsync_failure(self, exc: OSError) -> None:
        # The runner has committed these lines, so a power loss before the next fsync loses them.
        _log.error(
            "file.fsync_failed",
            sink=self.name,
            path=str(self._path),
            error=str(exc),
            error_type=type(exc).__name__,
        )

    def _os_error(self, action: str, path: Path, exc: OSError) -> SinkError:
        where = exc.filename if exc.filename is not None else path
        return SinkError(
            f"file sink {self.name!r} failed to {action} {where}: {exc.strerror or exc}",
            retriable=exc.errno not in _PERMANENT_ERRNOS,
        )


# -- helpers without sink state -----------------------------------------------


class _FileActionError(Exception):
    """An OSError of a file action (`write` or `fsync`) that ran on a worker thread."""

    def __init__(self, action: str, error: OSError) -> None:
        super().__init__(f"{action} failed: {error}")
        self.action = action
        self.error = error


async def _run_to_end(function: Callable[..., None], *args: object) -> None:
    """Run `function` on a worker thread and wait for its end, even when cancelled.

    Cancelled, the caller would release the sink's lock and let `close` close
    the file descriptor while the thread still writes to it, and a file opened
    meanwhile could take the same number.
    """
    thread = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        await asyncio.shield(thread)
    except asyncio.CancelledError:
        while not thread.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([thread])
        if not thread.cancelled():
            thread.exception()  # retrieved, so asyncio does not log it as lost
        raise


def _open_append(path: Path) -> int:
    # Read access too, for the head hash and the final-newline check.
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)


def _head_sha256(fd: int, size: int) -> str:
    return hashlib.sha256(os.pread(fd, min(size, _HEAD_BYTES), 0)).hexdigest()


def _describe(path: Path, fd: int, size: int, started_at: float) -> _FileRecord:
    st = os.fstat(fd)
    return _FileRecord(
        path=str(path),
        device=st.st_dev,
        inode=st.st_ino,
        size=size,
        head_sha256=_head_sha256(fd, size),
        started_at=started_at,
    )


def _is_recorded_file(fd: int, st: os.stat_result, record: _FileRecord) -> bool:
    """Tell whether `fd` is the file `record` names: same device, inode and first bytes."""
    if (st.st_dev, st.st_ino) != (record.device, record.inode):
        return False
    return _head_sha256(fd, record.size) == record.head_sha256


def _find_rotated_files(path: Path) -> list[_RotatedFile]:
    """List the sink's rotated files of `path`, oldest first.

    NOTE: the order comes from the UTC time in the name, so after the wall clock was
    set back, a newer file can sort before older ones and be deleted first.
    """
    pattern = re.compile(
        rf"({re.escape(path.name)}\.(\d{{8}}T\d{{6}}Z)(?:\.(\d+))?)(\.gz|\.gz\.tmp)?"
    )
    found: dict[str, _RotatedFile] = {}
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        stem, stamp, counter, suffix = match.groups()
        item = found.setdefault(
            stem, _RotatedFile(path.with_name(stem), (stamp, int(counter or 0)))
        )
        if suffix is None:
            item.plain = True
        elif suffix == ".gz":
            item.compressed = True
        else:
            item.partial = True
    return sorted(found.values(), key=lambda item: item.order)


def _gzip_file(source: Path) -> None:
    """Compress `source` to `source.gz` durably, then delete `source`.

    The compressed data goes to `.gz.tmp` first and gets its final name only once
    fsynced, so a `.gz` file is always complete.
    """
    target = Path(f"{source}.gz")
    temporary = Path(f"{source}.gz.tmp")
    mtime = int(os.stat(source).st_mtime)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    with os.fdopen(fd, "wb") as raw:
        with (
            source.open("rb") as original,
            gzip.GzipFile(
                filename=source.name, mode="wb", compresslevel=6, fileobj=raw, mtime=mtime
            ) as compressed,
        ):
            shutil.copyfileobj(original, compressed, _COPY_CHUNK_BYTES)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temporary, target)
    fsync_directory(source.parent)
    os.unlink(source)
