"""The journal: the durable, ordered hand-off between pollers and sinks.

The problem. A poller must not advance its high-water mark past events that no
sink has confirmed, because a crash would lose them. And a sink must not
receive an event twice because the poller re-read it after a restart.

The chosen way: one SQLite database in WAL mode. Each poller round is one
transaction that stores the round's new events, records their ids in the
`seen_rounds` table (the dedupe window that survives restarts) and replaces the
source's checkpoint. Either all of it is on disk or none of it, so after a
`kill -9` the poller resumes exactly where the last committed round ended.
Each sink's offset, the last sequence number it confirmed, is committed in its
own transaction, together with the sink's own state (a file sink's size) and
cleared of the batch it had in flight. Events every sink has passed are
deleted.

Every event has its own sequence number, but events are stored in chunks: one
row contains up to CHUNK_EVENTS consecutive events of one round, as their ids,
their times and their JSON lines. One `seen_rounds` row contains the ids of a
round. With a row per event, SQLite was the daemon's largest cost; a chunk
costs one insert. Readers get each event's stored JSON back unparsed, and
parse it only when a filter or an encoding needs its fields. The dedupe check
runs against each source's window in memory, loaded on first use.

`synchronous=NORMAL` in WAL mode survives a process crash; a power loss may
roll back the last commits, and then the poller state and the events roll back
together, so the API is read again from there.

NOTE: calls run on the event loop thread. Each is one short transaction
(milliseconds for a page of events), which is cheaper than handing the
connection to a thread for every call. What is not short, copying the
write-ahead log into the database with its fsyncs, runs on a thread of its
own (`_Checkpointer`); sqlite3 releases the GIL while it waits for the disk.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
import structlog

from tailer.dedupe import DedupeWindow
from tailer.errors import ConfigError
from tailer.event import Event, stored_event
from tailer.fileio import fsync_directory, fsync_file

__all__ = [
    "CHUNK_EVENTS",
    "PAGE_SIZE",
    "SCHEMA_VERSION",
    "WAL_SIZE_LIMIT_BYTES",
    "Journal",
    "JournalEntry",
    "SinkCheckpoint",
    "StoredRun",
]

SCHEMA_VERSION = 2
# Maximum events per chunk row, so a reader that needs a few of them never
# parses many more.
CHUNK_EVENTS = 1000
# Chunks recently stored or read stay in memory up to this many bytes of JSON,
# so a sink that keeps up reads what the poller just journaled without SQLite.
RECENT_CHUNK_BYTES = 8 * 1024 * 1024
# SQLite truncates its write-ahead log back to this size after each checkpoint,
# and a log longer than this is checkpointed in the mode that rewinds it.
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024
# The checkpoint thread runs after this many bytes of events were journaled,
# and at least every CHECKPOINT_INTERVAL_SECS.
CHECKPOINT_AFTER_BYTES = 4 * 1024 * 1024
CHECKPOINT_INTERVAL_SECS = 1.0
# Further passive checkpoints the checkpoint thread runs at most before a restart one.
_PASSES_BEFORE_RESTART = 4
# Should that thread stop working, the committing connection checkpoints by
# itself once the log contains this many bytes of pages, so the log stays bounded.
_FALLBACK_CHECKPOINT_BYTES = 64 * 1024 * 1024
# The page size of a new journal. Most of its bytes are chunks of event lines,
# stored across overflow pages: 16 KiB pages take a quarter of the page writes,
# log frames and reads of 4 KiB ones per chunk. An existing journal keeps its
# page size until `compact` writes its copy with this one.
PAGE_SIZE = 16384

_log = structlog.get_logger("tailer.journal")

_INSERT_CHUNK = (
    "INSERT INTO chunks (last_seq, first_seq, source, ids, times, events) VALUES (?, ?, ?, ?, ?, ?)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    last_seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    ids BLOB NOT NULL,     -- JSON array of the events' ids, first_seq first
    times BLOB NOT NULL,   -- JSON array of their times, ns since the epoch
    events BLOB NOT NULL   -- their JSON objects, one per line, joined by LF
);
CREATE TABLE IF NOT EXISTS seen_rounds (
    source TEXT NOT NULL,
    newest_ns INTEGER NOT NULL,
    ids BLOB NOT NULL,     -- JSON array of the ids one round journaled
    times BLOB NOT NULL    -- JSON array of their times, ns since the epoch
);
CREATE INDEX IF NOT EXISTS seen_rounds_by_time ON seen_rounds (source, newest_ns);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    checkpoint BLOB NOT NULL,
    updated_ns INTEGER NOT NULL,
    seen_since_ns INTEGER  -- ids older than this are forgotten, NULL keeps all
);
CREATE TABLE IF NOT EXISTS sinks (
    name TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    state BLOB,
    pending_first INTEGER,
    pending_last INTEGER
);
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled event with its sequence number and source name."""

    seq: int
    source: str
    event: Event


@dataclass(frozen=True, slots=True)
class StoredRun:
    """Consecutive journaled events of one source, as stored: ids, times and JSON lines.

    The events have the sequence numbers `first_seq` to `last_seq`; `lines[i]`
    is the line orjson wrote for the event `ids[i]`, with no line break inside.
    """

    first_seq: int
    source: str
    ids: list[str]
    times: list[int]
    lines: list[bytes]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.ids) - 1

    def events(self) -> list[Event]:
        """Return the events; their `raw` is decoded when first read."""
        return list(map(stored_event, self.ids, self.times, self.lines))


@dataclass(frozen=True, slots=True)
class SinkCheckpoint:
    """A sink's committed position: its offset, its own state and the batch in flight."""

    offset: int
    state: dict[str, Any] | None
    pending: tuple[int, int] | None


def _create_private(path: Path) -> None:
    """Create `path` with mode 0600 if it does not exist, so no other user can read it."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


class Journal:
    """The SQLite journal in `directory`. Use `open()` first and `close()` at the end."""

    FILE_NAME = "journal.sqlite"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILE_NAME
        self._db: sqlite3.Connection | None = None
        # Per source: the dedupe window and the time before which ids are forgotten.
        self._windows: dict[str, tuple[DedupeWindow, int | None]] = {}
        # Recent chunks by last sequence number, in the order they were stored or read,
        # with their bytes of JSON.
        self._recent: collections.OrderedDict[int, tuple[StoredRun, int]] = (
            collections.OrderedDict()
        )
        self._recent_bytes = 0
        self._checkpointer: _Checkpointer | None = None

    # -- lifecycle ---------------------------------------------------------

    def open(self, *, upgrade: bool = False) -> None:
        """Open the database, creating it when missing.

        A journal in an older format is converted only with `upgrade`, which a
        caller passes while it holds the state directory's lock: a daemon of an
        older version may still be using the journal otherwise. Raises
        ConfigError for a format this version cannot use.
        """
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The WAL and shared-memory files inherit the main file's permissions.
            _create_private(self.path)
        except OSError as exc:
            raise ConfigError(
                f"journal {str(self.path)!r} cannot be opened for writing: "
                f"{exc.strerror or exc}; give the user that runs runtools-tail write access "
                "to it, or set state_dir to a directory of that user's"
            ) from None
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Sets the page size of a new database and of compact's copy; an existing
            # database keeps its own.
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA wal_autocheckpoint={_FALLBACK_CHECKPOINT_BYTES // page_size}")
            # Debian builds SQLite to zero every freed page, which for pruned chunks
            # wrote their size again as zeros. FAST still clears deleted cells in
            # table pages; freed overflow pages keep old bytes until reused, inside
            # a file only the owner can read.
            db.execute("PRAGMA secure_delete=FAST")
            db.execute("PRAGMA foreign_keys=ON")
            with self._transaction(db):
                version = _schema_version(db)
                if version == 1 and upgrade:
                    started = time.monotonic()
                    events = _migrate_from_version_1(db)
                    _log.info(
                        "journal.upgraded",
                        path=str(self.path),
                        from_version=1,
                        to_version=SCHEMA_VERSION,
                        events=events,
                        seconds=round(time.monotonic() - started, 3),
                    )
                elif version is not None and version != SCHEMA_VERSION:
                    raise ConfigError(self._format_problem(version))
                _create_tables(db)
                if version != SCHEMA_VERSION:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
        except BaseException:
            db.close()
            raise
        self._db = db
        self._checkpointer = _Checkpointer(self.path)

    def _format_problem(self, version: int) -> str:
        if version < SCHEMA_VERSION:
            return (
                f"journal {self.path} is in format version {version}, which "
                f"`runtools-tail run` of this version converts to version {SCHEMA_VERSION} when "
                "it starts; stop a daemon of the older version first if one is running, then "
                "start `runtools-tail run`"
            )
        return (
            f"journal {self.path} is in format version {version}, and this version of "
            f"runtools-tail reads version {SCHEMA_VERSION}; run the newer version that wrote "
            "it, or move the state directory aside to start afresh"
        )

    def close(self) -> None:
        """Close the database; closing twice is harmless."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None
        self._windows.clear()
        self._recent.clear()
        self._recent_bytes = 0

    @property
    def _log_path(self) -> Path:
        """The write-ahead log SQLite keeps beside the database."""
        return self.path.with_name(self.path.name + "-wal")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is not open")
        return self._db

    @staticmethod
    def _transaction(db: sqlite3.Connection) -> _Transaction:
        return _Transaction(db)

    # -- sources -----------------------------------------------------------

    def append(
        self,
        source: str,
        events: Iterable[Event],
        checkpoint: dict[str, Any],
        *,
        forget_before_ns: int | None = None,
    ) -> int:
        """Journal a poller round in one transaction; return how many events were new.

        An event whose id the source has already journaled is skipped. Ids older
        than `forget_before_ns` are dropped from the dedupe window.
        """
        db = self.db
        window, since_ns = self._window(source)
        fresh, ids = _unseen(window, events)
        times = [event.time_ns for event in fresh]
        if forget_before_ns is not None and (since_ns is None or forget_before_ns > since_ns):
            since_ns = forget_before_ns
        # Ids older than the forget time would be forgotten at once. In a backfill,
        # that is all but the last few seconds of a round.
        kept_ids, kept_times = _not_before(ids, times, since_ns)
        with self._transaction(db):
            stored = self._store_chunks(db, source, fresh, ids, times) if fresh else []
            if kept_ids:
                db.execute(
                    "INSERT INTO seen_rounds (source, newest_ns, ids, times) VALUES (?, ?, ?, ?)",
                    (source, max(kept_times), orjson.dumps(kept_ids), orjson.dumps(kept_times)),
                )
            if forget_before_ns is not None:
                db.execute(
                    "DELETE FROM seen_rounds WHERE source = ? AND newest_ns < ?",
                    (source, since_ns),
                )
            db.execute(
                "INSERT OR REPLACE INTO sources (name, checkpoint, updated_ns, seen_since_ns) "
                "VALUES (?, ?, ?, ?)",
                (source, orjson.dumps(checkpoint), time.time_ns(), since_ns),
            )
        stored_bytes = 0
        for run, size in stored:
            self._remember_chunk(run, size)
            stored_bytes += size
        if self._checkpointer is not None:
            self._checkpointer.written(stored_bytes)
        # Only now that the round is on disk does the window in memory change.
        _remember(window, kept_ids, kept_times, since_ns)
        self._windows[source] = (window, since_ns)
        return len(fresh)

    def _store_chunks(
        self,
        db: sqlite3.Connection,
        source: str,
        events: list[Event],
        ids: list[str],
        times: list[int],
    ) -> list[tuple[StoredRun, int]]:
        """Store `events` as the next chunks; return each chunk with its bytes of JSON."""
        newest = self.newest_seq()
        stored: list[tuple[StoredRun, int]] = []
        for start in range(0, len(events), CHUNK_EVENTS):
            stop = min(start + CHUNK_EVENTS, len(events))
            lines = [event.to_json() for event in events[start:stop]]
            joined = b"\n".join(lines)
            chunk_ids, chunk_times = ids[start:stop], times[start:stop]
            db.execute(
                _INSERT_CHUNK,
                (
                    newest + stop,
                    newest + start + 1,
                    source,
                    orjson.dumps(chunk_ids),
                    orjson.dumps(chunk_times),
                    joined,
                ),
            )
            run = StoredRun(newest + start + 1, source, chunk_ids, chunk_times, lines)
            stored.append((run, len(joined)))
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('newest_seq', ?)",
            (str(newest + len(events)),),
        )
        return stored

    def _window(self, source: str) -> tuple[DedupeWindow, int | None]:
        """Return the source's dedupe window and forget time, loading them on first use."""
        loaded = self._windows.get(source)
        if loaded is None:
            row = self.db.execute(
                "SELECT seen_since_ns FROM sources WHERE name = ?", (source,)
            ).fetchone()
            since_ns = row[0] if row is not None else None
            window = DedupeWindow()
            rows = self.db.execute(
                "SELECT ids, times FROM seen_rounds WHERE source = ? ORDER BY rowid", (source,)
            )
            for ids, times in rows:
                _remember(window, orjson.loads(ids), orjson.loads(times), since_ns)
            loaded = self._windows[source] = (window, since_ns)
        return loaded

    def source_checkpoint(self, source: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT checkpoint FROM sources WHERE name = ?", (source,)).fetchone()
        if row is None:
            return None
        value = orjson.loads(row[0])
        assert isinstance(value, dict)
        return value

    def seen_ids(self, source: str) -> Iterator[tuple[str, int]]:
        """Yield the (id, time_ns) pairs of the source's dedupe window."""
        yield from self._window(source)[0].items()

    def reset_source(self, source: str, checkpoint: dict[str, Any]) -> None:
        """Replace a source's checkpoint and forget its dedupe window, so it reads again."""
        with self._transaction(self.db):
            self.db.execute("DELETE FROM seen_rounds WHERE source = ?", (source,))
            self.db.execute(
                "INSERT OR REPLACE INTO sources (name, checkpoint, updated_ns) VALUES (?, ?, ?)",
                (source, orjson.dumps(checkpoint), time.time_ns()),
            )
        self._windows.pop(source, None)

    def source_names(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM sources ORDER BY name")]

    # -- sinks -------------------------------------------------------------

    def register_sink(self, sink: str) -> SinkCheckpoint:
        """Return the sink's checkpoint; a new sink starts after the newest journaled event."""
        db = self.db
        with self._transaction(db):
            row = db.execute(
                "SELECT offset, state, pending_first, pending_last FROM sinks WHERE name = ?",
                (sink,),
            ).fetchone()
            if row is None:
                newest = self.newest_seq()
                db.execute("INSERT INTO sinks (name, offset) VALUES (?, ?)", (sink, newest))
                return SinkCheckpoint(newest, None, None)
        offset, state, first, last = row
        pending = (first, last) if first is not None else None
        return SinkCheckpoint(offset, orjson.loads(state) if state else None, pending)

    def mark_pending(self, sink: str, first_seq: int, last_seq: int) -> None:
        """Record the batch a sink is about to send, so a restart resends exactly it."""
        with self._transaction(self.db):
            self.db.execute(
                "UPDATE sinks SET pending_first = ?, pending_last = ? WHERE name = ?",
                (first_seq, last_seq, sink),
            )

    def commit_offset(self, sink: str, offset: int, state: dict[str, Any] | None) -> None:
        """Record that the sink confirmed everything up to `offset`, with its own state."""
        with self._transaction(self.db):
            self.db.execute(
                "UPDATE sinks SET offset = ?, state = ?, pending_first = NULL, "
                "pending_last = NULL WHERE name = ?",
                (offset, orjson.dumps(state) if state is not None else None, sink),
            )

    def commit_sink_state(self, sink: str, state: dict[str, Any] | None) -> None:
        """Record a sink's own state without moving its offset, after a replay."""
        with self._transaction(self.db):
            self.db.execute(
                "UPDATE sinks SET state = ? WHERE name = ?",
                (orjson.dumps(state) if state is not None else None, sink),
            )

    def sink_offsets(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, offset FROM sinks ORDER BY name"))

    # -- status ----------------------------------------------------------------

    def set_status(self, key: str, value: str | None) -> None:
        """Record (or clear, with None) a status line that `state show` reports."""
        name = f"status:{key}"
        with self._transaction(self.db):
            if value is None:
                self.db.execute("DELETE FROM meta WHERE key = ?", (name,))
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (name, value)
                )

    def statuses(self) -> dict[str, str]:
        rows = self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'status:%'")
        return {key.removeprefix("status:"): value for key, value in rows}

    # -- reading and pruning ------------------------------------------------

    def read(
        self, after_seq: int, limit: int, *, until_seq: int | None = None
    ) -> list[JournalEntry]:
        """Return up to `limit` entries with seq > `after_seq` (and <= `until_seq`), in order."""
        entries: list[JournalEntry] = []
        for run in self.read_stored(after_seq, limit, until_seq=until_seq):
            entries.extend(
                map(
                    JournalEntry,
                    range(run.first_seq, run.last_seq + 1),
                    repeat(run.source),
                    run.events(),
                )
            )
        return entries

    def read_stored(
        self, after_seq: int, limit: int, *, until_seq: int | None = None
    ) -> list[StoredRun]:
        """Return the same events as `read`, as runs of ids, times and stored JSON lines.

        Nothing is decoded and no `Event` is made, so a sink that writes the
        journaled lines unchanged pays nothing per event.
        """
        last = after_seq + limit
        if until_seq is not None:
            last = min(last, until_seq)
        runs: list[StoredRun] = []
        spans = self.db.execute(
            "SELECT last_seq, first_seq FROM chunks WHERE last_seq > ? AND first_seq <= ? "
            "ORDER BY last_seq",
            (after_seq, last),
        ).fetchall()
        for chunk_last, first in spans:
            chunk = self._chunk(chunk_last)
            start = max(after_seq + 1 - first, 0)
            stop = min(last, chunk_last) - first + 1
            if start == 0 and stop == len(chunk.ids):
                runs.append(chunk)
            else:
                runs.append(
                    StoredRun(
                        first + start,
                        chunk.source,
                        chunk.ids[start:stop],
                        chunk.times[start:stop],
                        chunk.lines[start:stop],
                    )
                )
        return runs

    def _chunk(self, last_seq: int) -> StoredRun:
        """Return the chunk ending at `last_seq`, split into lines, from memory when recent.

        Sinks read batches that start and end inside chunks, so the next read
        usually begins in the chunk the previous one ended in, and a sink that
        keeps up reads chunks the last append stored.
        """
        recent = self._recent.get(last_seq)
        if recent is not None:
            return recent[0]
        first, source, ids, times, lines = self.db.execute(
            "SELECT first_seq, source, ids, times, events FROM chunks WHERE last_seq = ?",
            (last_seq,),
        ).fetchone()
        chunk = StoredRun(first, source, orjson.loads(ids), orjson.loads(times), lines.split(b"\n"))
        self._remember_chunk(chunk, len(lines))
        return chunk

    def _remember_chunk(self, chunk: StoredRun, size: int) -> None:
        """Keep `chunk` in memory, forgetting the oldest ones past RECENT_CHUNK_BYTES."""
        previous = self._recent.pop(chunk.last_seq, None)
        if previous is not None:
            self._recent_bytes -= previous[1]
        self._recent[chunk.last_seq] = (chunk, size)
        self._recent_bytes += size
        # The newest chunk stays even when it alone is larger than the limit.
        while self._recent_bytes > RECENT_CHUNK_BYTES and len(self._recent) > 1:
            _, (_, forgotten) = self._recent.popitem(last=False)
            self._recent_bytes -= forgotten

    def _forget_chunks(self, through_seq: int) -> None:
        """Drop chunks ending at or before `through_seq` from memory."""
        # A chunk read after a restart may come after newer ones, so all are checked.
        for last_seq in [seq for seq in self._recent if seq <= through_seq]:
            _, size = self._recent.pop(last_seq)
            self._recent_bytes -= size

    def newest_seq(self) -> int:
        """Return the sequence number of the newest event ever journaled, 0 before the first."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'newest_seq'").fetchone()
        return int(row[0]) if row is not None else 0

    def backlog(self, offset: int) -> int:
        """Return how many journaled events lie after `offset`."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(last_seq - MAX(first_seq, ? + 1) + 1), 0) FROM chunks "
            "WHERE last_seq > ?",
            (offset, offset),
        ).fetchone()
        return int(row[0])

    def prune(self, sinks: Iterable[str]) -> int:
        """Delete events that every named sink has confirmed; return how many.

        A chunk goes once all of its events are confirmed.
        """
        names = list(sinks)
        if not names:
            return 0
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT MIN(offset), COUNT(*) FROM sinks WHERE name IN ({marks})", names
        ).fetchone()
        if row[1] != len(names):
            return 0  # a sink not registered yet has confirmed nothing
        with self._transaction(self.db):
            removed = self.db.execute(
                "DELETE FROM chunks WHERE last_seq <= ? RETURNING last_seq - first_seq + 1",
                (row[0],),
            ).fetchall()
        self._forget_chunks(row[0])
        return sum(count for (count,) in removed)

    def file_bytes(self) -> int:
        """Return the size of the database and write-ahead log files on disk.

        SQLite keeps the pages that pruning frees and reuses them, so this stays
        near the largest the journal has been, while `used_bytes` shrinks.
        """
        total = 0
        for path in (self.path, self._log_path):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def compact(self) -> tuple[int, int]:
        """Rewrite the database without its free pages; return its bytes on disk before and after.

        SQLite writes a compacted copy beside the database (`VACUUM INTO`), which
        then replaces it, so this needs free disk of about the journal's live
        bytes. Call it only while holding the state directory's lock, because no
        other connection may use the file while it is swapped. Raises
        ConfigError when another process still has the journal open; the
        journal is then unchanged.
        """
        before = self.file_bytes()
        copy = self.path.with_name(self.path.name + ".compact")
        copy.unlink(missing_ok=True)  # left behind by an interrupted compaction
        _create_private(copy)
        try:
            self.db.execute("VACUUM INTO ?", (str(copy),))
            fsync_file(copy)
            self.close()
            # Closing the last connection copies the log into the database and deletes
            # it. A log still there belongs to another connection, and would be
            # applied to the new file on the next open.
            if self._log_path.exists() and self._log_path.stat().st_size > 0:
                raise ConfigError(
                    f"journal {str(self.path)!r} is open in another process, so it was not "
                    "compacted; stop every runtools-tail command that uses the state "
                    "directory and try again"
                )
        except BaseException:
            copy.unlink(missing_ok=True)
            if self._db is None:
                self.open()
            raise
        os.replace(copy, self.path)
        fsync_directory(self.directory)
        self.open()
        return before, self.file_bytes()

    def used_bytes(self) -> int:
        """Return the bytes the database's live pages occupy.

        Deleted events free their pages at once, so this shrinks as sinks catch
        up. The write-ahead log comes on top; the checkpoint thread rewinds it
        once it grows past WAL_SIZE_LIMIT_BYTES.
        """
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)


def _unseen(window: DedupeWindow, events: Iterable[Event]) -> tuple[list[Event], list[str]]:
    """Return the events whose id is neither in `window` nor earlier in `events`, and their ids."""
    events = list(events)
    ids = [event.id for event in events]
    # The poller hands over only new events, so a round usually passes whole.
    # These checks run in C, where the loop below takes a Python step per event.
    if window.ids().isdisjoint(ids) and len(set(ids)) == len(ids):
        return events, ids
    fresh: list[Event] = []
    fresh_ids: list[str] = []
    batch_ids: set[str] = set()
    for event, event_id in zip(events, ids, strict=True):
        if event_id in window or event_id in batch_ids:
            continue
        batch_ids.add(event_id)
        fresh.append(event)
        fresh_ids.append(event_id)
    return fresh, fresh_ids


def _not_before(
    ids: list[str], times: list[int], since_ns: int | None
) -> tuple[list[str], list[int]]:
    """Return the ids and times of the events at or after `since_ns` (all when it is None)."""
    if since_ns is None or all(time_ns >= since_ns for time_ns in times):
        return ids, times
    recent = [pair for pair in zip(ids, times, strict=True) if pair[1] >= since_ns]
    return [event_id for event_id, _ in recent], [time_ns for _, time_ns in recent]


def _remember(window: DedupeWindow, ids: list[str], times: list[int], since_ns: int | None) -> None:
    """Add one round's ids to `window`, then forget those before `since_ns`."""
    # A round from the poller is in time order already; a caller's may not be.
    window.add_unsorted(ids, times)
    if since_ns is not None:
        window.prune(since_ns)


def _schema_version(db: sqlite3.Connection) -> int | None:
    """Return the journal's format version, None for a new database."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else None


def _create_tables(db: sqlite3.Connection) -> None:
    """Create what is missing of the schema, inside the caller's transaction."""
    # executescript() would commit the caller's transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_from_version_1(db: sqlite3.Connection) -> int:
    """Move the events and seen ids of a version 1 journal, one row each, into chunks.

    Return how many events were moved.
    """
    _create_tables(db)
    moved = 0
    rows = db.execute("SELECT seq, source, id, time_ns, raw FROM events ORDER BY seq")
    chunk: list[tuple[int, str, str, int, bytes]] = []

    def store() -> None:
        db.execute(
            _INSERT_CHUNK,
            (
                chunk[-1][0],
                chunk[0][0],
                chunk[0][1],
                orjson.dumps([row[2] for row in chunk]),
                orjson.dumps([row[3] for row in chunk]),
                # Version 1 stored what orjson wrote, which has no line break inside.
                b"\n".join([row[4] for row in chunk]),
            ),
        )
        chunk.clear()

    for row in rows:
        moved += 1
        if chunk and (
            row[0] != chunk[-1][0] + 1 or row[1] != chunk[0][1] or len(chunk) == CHUNK_EVENTS
        ):
            store()
        chunk.append(row)
    if chunk:
        store()
    db.execute("ALTER TABLE sources ADD COLUMN seen_since_ns INTEGER")
    sources = [name for (name,) in db.execute("SELECT DISTINCT source FROM seen")]
    for name in sources:
        pairs = db.execute(
            "SELECT id, time_ns FROM seen WHERE source = ? ORDER BY time_ns", (name,)
        ).fetchall()
        db.execute(
            "INSERT INTO seen_rounds (source, newest_ns, ids, times) VALUES (?, ?, ?, ?)",
            (
                name,
                pairs[-1][1],
                orjson.dumps([pair[0] for pair in pairs]),
                orjson.dumps([pair[1] for pair in pairs]),
            ),
        )
    db.execute("DROP TABLE seen")
    sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('newest_seq', ?)",
        (str(sequence[0] if sequence else 0),),
    )
    db.execute("DROP TABLE events")
    return moved


class _Checkpointer:
    """Copies the write-ahead log into the database, on its own thread and connection.

    Run inside a commit, as SQLite does by default, a checkpoint made that
    commit wait for the database file to be written and synced. Here the
    committing thread only appends to the log. A passive checkpoint does not
    wait for writers (see SQLite's sqlite3_wal_checkpoint_v2), and the log
    restarts from its beginning at the first commit after a checkpoint that
    copied all of it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._pending_bytes = 0
        self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
        self._thread.start()

    def written(self, size: int) -> None:
        """Count `size` bytes of events committed; past the threshold, checkpoint now."""
        self._pending_bytes += size
        if self._pending_bytes >= CHECKPOINT_AFTER_BYTES:
            self._pending_bytes = 0
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            while not self._stopping:
                self._wake.wait(CHECKPOINT_INTERVAL_SECS)
                self._wake.clear()
                try:
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames * page_size > WAL_SIZE_LIMIT_BYTES:
                        # Under a steady stream of commits a passive checkpoint never
                        # finds the log fully copied, so the log never rewinds. A
                        # restart checkpoint makes the next commit rewind it, but
                        # commits wait while it copies and syncs. Each further passive
                        # pass copies what was committed during the one before, so the
                        # passes shorten and leave the restart little to copy.
                        for _ in range(_PASSES_BEFORE_RESTART):
                            _, grown, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                            if grown == frames:
                                break  # nothing was committed during the last pass
                            frames = grown
                        # A commit may have rewound the log during the passes.
                        if frames * page_size > WAL_SIZE_LIMIT_BYTES:
                            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                except sqlite3.Error as exc:
                    # The committing connection takes over once the log is long.
                    _log.warning("journal.checkpoint_failed", error=str(exc))
        finally:
            db.close()


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
