"""Writes a journal in format version 1, one row per event, as releases before chunks did."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

_VERSION_1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, id TEXT NOT NULL,
    time_ns INTEGER NOT NULL, raw BLOB NOT NULL);
CREATE TABLE seen (
    source TEXT NOT NULL, id TEXT NOT NULL, time_ns INTEGER NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE INDEX seen_by_time ON seen (source, time_ns);
CREATE TABLE sources (
    name TEXT PRIMARY KEY, checkpoint BLOB NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE sinks (
    name TEXT PRIMARY KEY, offset INTEGER NOT NULL, state BLOB,
    pending_first INTEGER, pending_last INTEGER);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def write_version_1_journal(
    path: Path,
    events: Sequence[tuple[str, str, int, Mapping[str, object]]],
    sources: Mapping[str, Mapping[str, object]],
    sinks: list[tuple[str, int, dict[str, object] | None, tuple[int, int] | None]],
    pruned: int = 0,
) -> None:
    """Write `events` as (source, id, time_ns, raw), their ids as seen, and the checkpoints.

    `sinks` are (name, offset, state, pending range). The first `pruned` events
    are deleted again, as a prune before the upgrade would have left them.
    """
    database = sqlite3.connect(path)
    database.executescript(_VERSION_1_SCHEMA)
    for source, event_id, time_ns, raw in events:
        database.execute(
            "INSERT INTO events (source, id, time_ns, raw) VALUES (?, ?, ?, ?)",
            (source, event_id, time_ns, orjson.dumps(raw)),
        )
        database.execute("INSERT INTO seen VALUES (?, ?, ?)", (source, event_id, time_ns))
    database.execute("DELETE FROM events WHERE seq <= ?", (pruned,))
    for name, checkpoint in sources.items():
        database.execute("INSERT INTO sources VALUES (?, ?, 1)", (name, orjson.dumps(checkpoint)))
    for name, offset, state, pending in sinks:
        first, last = pending if pending is not None else (None, None)
        database.execute(
            "INSERT INTO sinks VALUES (?, ?, ?, ?, ?)",
            (name, offset, orjson.dumps(state) if state is not None else None, first, last),
        )
    database.commit()
    database.close()


def schema_version(path: Path) -> str:
    database = sqlite3.connect(path)
    try:
        return str(
            database.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )
    finally:
        database.close()
