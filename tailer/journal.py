"""The journal: the durable, ordered hand-off between pollers and sinks.

The problem. A poller must not advance its high-water mark past events that no
sink has confirmed, because a crash would lose them. And a sink must not
receive an event twice because the poller re-read it after a restart.

The chosen way: one SQLite database in WAL mode. Each poller round is one
transaction that inserts the round's new events, records their ids in the
`seen` table (the dedupe window that survives restarts) and replaces the
source's checkpoint. Either all of it is on disk or none of it, so after a
`kill -9` the poller resumes exactly where the last committed round ended.
Each sink's offset, the last sequence number it confirmed, is committed in its
own transaction, together with the sink's own state (a file sink's size) and
cleared of the batch it had in flight. Events every sink has passed are
deleted.

`synchronous=NORMAL` in WAL mode survives a process crash; a power loss may
roll back the last commits, and then the poller state and the events roll back
together, so the API is read again from there.

NOTE: calls run on the event loop thread. Each is one short transaction
(milliseconds for a page of events), which is cheaper than handing the
connection to a thread for every call.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tailer.event import Event

__all__ = ["SCHEMA_VERSION", "WAL_SIZE_LIMIT_BYTES", "Journal", "JournalEntry", "SinkCheckpoint"]

SCHEMA_VERSION = 1
# SQLite truncates its write-ahead log back to this size after each checkpoint.
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (source, time_ns);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    checkpoint BLOB NOT NULL,
    updated_ns INTEGER NOT NULL
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

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The WAL and shared-memory files inherit the main file's permissions.
        _create_private(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        with self._transaction(db):
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) != SCHEMA_VERSION:
                db.close()
                raise RuntimeError(
                    f"journal {self.path} has schema version {row[0]}, this version reads "
                    f"{SCHEMA_VERSION}; move the state directory aside to start afresh"
                )
        self._db = db

    def close(self) -> None:
        """Close the database; closing twice is harmless."""
        if self._db is not None:
            self._db.close()
            self._db = None

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
        added = 0
        with self._transaction(db):
            for event in events:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO seen (source, id, time_ns) VALUES (?, ?, ?)",
                    (source, event.id, event.time_ns),
                )
                if cursor.rowcount == 0:
                    continue
                db.execute(
                    "INSERT INTO events (source, id, time_ns, raw) VALUES (?, ?, ?, ?)",
                    (source, event.id, event.time_ns, event.to_json()),
                )
                added += 1
            if forget_before_ns is not None:
                db.execute(
                    "DELETE FROM seen WHERE source = ? AND time_ns < ?", (source, forget_before_ns)
                )
            db.execute(
                "INSERT OR REPLACE INTO sources (name, checkpoint, updated_ns) VALUES (?, ?, ?)",
                (source, orjson.dumps(checkpoint), time.time_ns()),
            )
        return added

    def source_checkpoint(self, source: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT checkpoint FROM sources WHERE name = ?", (source,)).fetchone()
        if row is None:
            return None
        value = orjson.loads(row[0])
        assert isinstance(value, dict)
        return value

    def seen_ids(self, source: str) -> Iterator[tuple[str, int]]:
        """Yield the (id, time_ns) pairs of the source's dedupe window."""
        yield from self.db.execute("SELECT id, time_ns FROM seen WHERE source = ?", (source,))

    def reset_source(self, source: str, checkpoint: dict[str, Any]) -> None:
        """Replace a source's checkpoint and forget its dedupe window, so it reads again."""
        with self._transaction(self.db):
            self.db.execute("DELETE FROM seen WHERE source = ?", (source,))
            self.db.execute(
                "INSERT OR REPLACE INTO sources (name, checkpoint, updated_ns) VALUES (?, ?, ?)",
                (source, orjson.dumps(checkpoint), time.time_ns()),
            )

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
                newest = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
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
        query = "SELECT seq, source, id, time_ns, raw FROM events WHERE seq > ?"
        params: list[int] = [after_seq]
        if until_seq is not None:
            query += " AND seq <= ?"
            params.append(until_seq)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [
            JournalEntry(seq, source, Event(event_id, time_ns, orjson.loads(raw)))
            for seq, source, event_id, time_ns, raw in self.db.execute(query, params)
        ]

    def newest_seq(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def backlog(self, offset: int) -> int:
        """Return how many journaled events lie after `offset`."""
        row = self.db.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (offset,)).fetchone()
        return int(row[0])

    def prune(self, sinks: Iterable[str]) -> int:
        """Delete events that every named sink has confirmed; return how many."""
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
            cursor = self.db.execute("DELETE FROM events WHERE seq <= ?", (row[0],))
        return cursor.rowcount

    def used_bytes(self) -> int:
        """Return the bytes the database's live pages occupy.

        Deleted events free their pages at once, so this shrinks as sinks catch
        up. The write-ahead log comes on top, kept under WAL_SIZE_LIMIT_BYTES.
        """
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)


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
