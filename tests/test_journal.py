import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oldjournal import schema_version, write_version_1_journal
from structlog.testing import capture_logs

import tailer.journal
from tailer.errors import ConfigError
from tailer.event import Event
from tailer.journal import (
    CHECKPOINT_INTERVAL_SECS,
    CHUNK_EVENTS,
    PAGE_SIZE,
    Journal,
    SinkCheckpoint,
)


def event(number: int, time_ns: int | None = None) -> Event:
    event_id = f"evt-{number:04d}"
    return Event(event_id, number if time_ns is None else time_ns, {"id": event_id, "n": number})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "state")
    opened.open()
    yield opened
    opened.close()


def checkpoint(floor: int) -> dict[str, int | None]:
    return {"start_ns": 0, "floor_ns": floor, "high_water_ns": floor, "width_ns": 1}


def test_append_assigns_sequence_and_keeps_raw(journal: Journal) -> None:
    added = journal.append("main", [event(1), event(2)], checkpoint(2))

    entries = journal.read(0, 10)
    assert added == 2
    assert [(e.seq, e.source, e.event.id) for e in entries] == [
        (1, "main", "evt-0001"),
        (2, "main", "evt-0002"),
    ]
    assert entries[0].event.raw == {"id": "evt-0001", "n": 1}
    assert journal.source_checkpoint("main") == checkpoint(2)


def test_append_skips_ids_already_journaled(journal: Journal) -> None:
    journal.append("main", [event(1), event(2)], checkpoint(2))
    added = journal.append("main", [event(2), event(3)], checkpoint(3))

    assert added == 1
    assert [e.event.id for e in journal.read(0, 10)] == ["evt-0001", "evt-0002", "evt-0003"]


def test_same_id_in_two_sources_kept_twice(journal: Journal) -> None:
    journal.append("a", [event(1)], checkpoint(1))
    journal.append("b", [event(1)], checkpoint(1))

    assert [e.source for e in journal.read(0, 10)] == ["a", "b"]


def test_dedupe_survives_reopen_until_forgotten(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.open()
    first.append("main", [event(1, time_ns=100), event(2, time_ns=200)], checkpoint(2))
    first.close()

    second = Journal(tmp_path)
    second.open()
    assert sorted(second.seen_ids("main")) == [("evt-0001", 100), ("evt-0002", 200)]
    second.append("main", [], checkpoint(2), forget_before_ns=150)
    assert list(second.seen_ids("main")) == [("evt-0002", 200)]
    assert second.append("main", [event(2, time_ns=200)], checkpoint(2)) == 0
    second.close()


def test_failed_round_leaves_nothing(journal: Journal) -> None:
    journal.append("main", [event(1)], checkpoint(1))

    class Broken(Event):
        def to_json(self) -> bytes:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        journal.append("main", [event(2), Broken("x", 3, {})], checkpoint(3))

    assert [e.event.id for e in journal.read(0, 10)] == ["evt-0001"]
    assert journal.source_checkpoint("main") == checkpoint(1)
    assert sorted(i for i, _ in journal.seen_ids("main")) == ["evt-0001"]


def test_new_sink_starts_after_newest_event(journal: Journal) -> None:
    journal.append("main", [event(1), event(2)], checkpoint(2))

    assert journal.register_sink("late") == SinkCheckpoint(2, None, None)
    assert journal.register_sink("late") == SinkCheckpoint(2, None, None)


def test_offset_state_and_pending_batch(journal: Journal) -> None:
    journal.register_sink("file")
    journal.append("main", [event(n) for n in range(1, 6)], checkpoint(5))

    journal.mark_pending("file", 1, 3)
    assert journal.register_sink("file") == SinkCheckpoint(0, None, (1, 3))

    journal.commit_offset("file", 3, {"size": 42})
    assert journal.register_sink("file") == SinkCheckpoint(3, {"size": 42}, None)
    assert journal.backlog(3) == 2

    journal.commit_sink_state("file", {"size": 50})
    assert journal.register_sink("file") == SinkCheckpoint(3, {"size": 50}, None)


def test_prune_keeps_what_any_sink_still_needs(journal: Journal) -> None:
    journal.register_sink("fast")
    journal.register_sink("slow")
    journal.append("main", [event(1), event(2)], checkpoint(2))
    journal.append("main", [event(n) for n in range(3, 6)], checkpoint(5))
    journal.commit_offset("fast", 5, None)
    journal.commit_offset("slow", 2, None)

    assert journal.prune(["fast", "slow"]) == 2
    assert [e.seq for e in journal.read(0, 10)] == [3, 4, 5]
    assert journal.prune(["fast", "slow", "unregistered"]) == 0
    assert journal.newest_seq() == 5


def test_prune_keeps_partly_confirmed_chunk(journal: Journal) -> None:
    journal.register_sink("only")
    journal.append("main", [event(n) for n in range(1, 6)], checkpoint(5))
    journal.commit_offset("only", 4, None)

    assert journal.prune(["only"]) == 0
    assert [e.seq for e in journal.read(4, 10)] == [5]
    assert journal.backlog(4) == 1
    journal.commit_offset("only", 5, None)
    assert journal.prune(["only"]) == 5
    assert journal.backlog(0) == 0


def test_sequence_numbers_never_reused_after_prune(journal: Journal) -> None:
    journal.register_sink("only")
    journal.append("main", [event(1), event(2)], checkpoint(2))
    journal.commit_offset("only", 2, None)
    journal.prune(["only"])
    journal.append("main", [event(3)], checkpoint(3))

    assert [e.seq for e in journal.read(0, 10)] == [3]


def test_read_range_and_limit(journal: Journal) -> None:
    journal.append("main", [event(n) for n in range(1, 11)], checkpoint(10))

    assert [e.seq for e in journal.read(2, 3)] == [3, 4, 5]
    assert [e.seq for e in journal.read(2, 100, until_seq=4)] == [3, 4]


def test_reset_source_forgets_dedupe(journal: Journal) -> None:
    journal.append("main", [event(1)], checkpoint(1))
    journal.reset_source("main", checkpoint(0))

    assert list(journal.seen_ids("main")) == []
    assert journal.append("main", [event(1)], checkpoint(1)) == 1


def test_state_files_are_owner_only(tmp_path: Path) -> None:
    opened = Journal(tmp_path / "state")
    opened.open()
    opened.append("main", [event(1)], checkpoint(1))

    for path in (tmp_path / "state").iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.name} has mode {oct(mode)}"
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    opened.close()
    opened.close()


def test_used_bytes_grows_and_shrinks(journal: Journal) -> None:
    journal.register_sink("only")
    empty = journal.used_bytes()
    big = [Event(f"e{n}", n, {"id": f"e{n}", "pad": "x" * 2000}) for n in range(500)]
    journal.append("main", big, checkpoint(500))
    full = journal.used_bytes()
    journal.commit_offset("only", 500, None)
    journal.prune(["only"])
    journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    assert full > empty + 500 * 2000
    assert journal.used_bytes() < full - 500 * 1500


def test_compact_frees_pages_keeps_backlog(journal: Journal) -> None:
    journal.register_sink("s")
    padding = "x" * 2000
    for start in range(0, 3000, 500):
        events = [
            Event(f"evt-{n:05d}", n, {"id": f"evt-{n:05d}", "pad": padding})
            for n in range(start + 1, start + 501)
        ]
        journal.append("main", events, checkpoint(start + 500))
    journal.commit_offset("s", 2900, {"size": 1})
    assert journal.prune(["s"]) == 2500  # each round is a chunk; 2501-3000 is partly confirmed
    before_file = journal.file_bytes()

    before, after = journal.compact()

    # The checkpoint thread may copy the log into the database file meanwhile,
    # which makes it larger before the compaction starts, never smaller.
    assert before >= before_file
    assert after < before / 2
    assert after == journal.file_bytes()
    assert [e.event.id for e in journal.read(2900, 200)] == [
        f"evt-{n:05d}" for n in range(2901, 3001)
    ]
    assert journal.register_sink("s").offset == 2900
    journal.append("main", [event(5000)], checkpoint(5000))  # still writable
    assert journal.newest_seq() == 3001


def test_compact_rejected_while_journal_open(journal: Journal) -> None:
    import sqlite3

    journal.append("main", [event(n) for n in range(1, 11)], checkpoint(10))
    other = sqlite3.connect(journal.path)
    try:
        assert other.execute("SELECT COUNT(*) FROM chunks").fetchone() == (1,)
        with pytest.raises(ConfigError, match="is open in another process, so it was not"):
            journal.compact()
    finally:
        other.close()

    assert [e.event.id for e in journal.read(0, 20)] == [f"evt-{n:04d}" for n in range(1, 11)]
    assert not journal.path.with_name("journal.sqlite.compact").exists()
    before, after = journal.compact()
    assert after <= before
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


def test_statuses(journal: Journal) -> None:
    journal.set_status("paused", "journal full; held back by sink slow")
    assert journal.statuses() == {"paused": "journal full; held back by sink slow"}
    journal.set_status("paused", None)
    assert journal.statuses() == {}


def test_append_splits_large_round_into_chunks(journal: Journal) -> None:
    count = CHUNK_EVENTS * 2 + 3
    journal.append("main", [event(n) for n in range(1, count + 1)], checkpoint(count))

    rows = journal.db.execute("SELECT first_seq, last_seq FROM chunks ORDER BY last_seq")
    assert rows.fetchall() == [
        (1, CHUNK_EVENTS),
        (CHUNK_EVENTS + 1, 2 * CHUNK_EVENTS),
        (2 * CHUNK_EVENTS + 1, count),
    ]
    entries = journal.read(CHUNK_EVENTS - 2, 5)
    assert [(e.seq, e.event.id) for e in entries] == [
        (n, f"evt-{n:04d}") for n in range(CHUNK_EVENTS - 1, CHUNK_EVENTS + 4)
    ]
    assert journal.backlog(CHUNK_EVENTS - 2) == count - CHUNK_EVENTS + 2


def chunk_reads(journal: Journal) -> list[str]:
    """Start recording the statements that read a chunk's events from SQLite."""
    statements: list[str] = []
    journal.db.set_trace_callback(
        lambda sql: statements.append(sql) if "events FROM chunks" in sql else None
    )
    return statements


def test_recent_chunks_read_from_memory(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    journal.open()
    count = CHUNK_EVENTS * 2 + 3
    journal.append("main", [event(n) for n in range(1, count + 1)], checkpoint(count))
    reads = chunk_reads(journal)

    runs = journal.read_stored(CHUNK_EVENTS - 2, count)

    assert reads == []
    assert [(run.first_seq, run.last_seq) for run in runs] == [
        (CHUNK_EVENTS - 1, CHUNK_EVENTS),
        (CHUNK_EVENTS + 1, 2 * CHUNK_EVENTS),
        (2 * CHUNK_EVENTS + 1, count),
    ]
    journal.close()
    journal.open()
    reads = chunk_reads(journal)

    assert journal.read_stored(CHUNK_EVENTS - 2, count) == runs
    assert len(reads) == 3
    journal.close()


def test_recent_chunks_bounded_in_memory(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each chunk's JSON is about 25 KB, so two of them pass the limit.
    monkeypatch.setattr(tailer.journal, "RECENT_CHUNK_BYTES", 40_000)
    count = CHUNK_EVENTS * 3
    journal.append("main", [event(n) for n in range(1, count + 1)], checkpoint(count))
    reads = chunk_reads(journal)

    newest = journal.read_stored(2 * CHUNK_EVENTS, 5)
    assert reads == []
    oldest = journal.read_stored(0, 5)
    assert len(reads) == 1
    assert [line for run in newest + oldest for line in run.lines] == [
        event(n).to_json()
        for n in [*range(2 * CHUNK_EVENTS + 1, 2 * CHUNK_EVENTS + 6), 1, 2, 3, 4, 5]
    ]


def test_pruned_chunks_not_read_from_memory(journal: Journal) -> None:
    journal.register_sink("a")
    journal.append("main", [event(n) for n in range(1, 4)], checkpoint(3))
    journal.commit_offset("a", 3, None)

    assert journal.prune(["a"]) == 3
    assert journal.read_stored(0, 10) == []
    assert journal.read(0, 10) == []


def test_read_returns_stored_json_line(journal: Journal) -> None:
    raw = {"id": "evt-0001", "text": "line\nbreak", "unknown": {"nested": [1, 2.5, None]}}
    journal.append("main", [Event("evt-0001", 7, raw)], checkpoint(7))

    (entry,) = journal.read(0, 10)
    assert (
        entry.event.json
        == b'{"id":"evt-0001","text":"line\\nbreak","unknown":{"nested":[1,2.5,null]}}'
    )
    assert entry.event.to_json() == entry.event.json
    assert entry.event.raw == raw
    assert (entry.event.id, entry.event.time_ns) == ("evt-0001", 7)


def test_duplicates_within_one_round_are_journaled_once(journal: Journal) -> None:
    added = journal.append("main", [event(1), event(2), event(1)], checkpoint(2))

    assert added == 2
    assert [e.event.id for e in journal.read(0, 10)] == ["evt-0001", "evt-0002"]


def test_forget_drops_ids_by_event_time(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.open()
    first.append("main", [event(1, time_ns=100), event(2, time_ns=300)], checkpoint(2))
    first.append("main", [event(3, time_ns=200)], checkpoint(3), forget_before_ns=250)

    assert sorted(first.seen_ids("main")) == [("evt-0002", 300)]
    # A forgotten id may be journaled again; a remembered one may not.
    assert first.append("main", [event(1, time_ns=100), event(2, time_ns=300)], checkpoint(3)) == 1
    first.close()

    second = Journal(tmp_path)
    second.open()
    assert sorted(second.seen_ids("main")) == [("evt-0002", 300)]
    assert [e.event.id for e in second.read(0, 10)] == [
        "evt-0001",
        "evt-0002",
        "evt-0003",
        "evt-0001",
    ]
    second.close()


def test_round_remembers_ids_after_forget_time(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.open()
    round_events = [event(1, time_ns=100), event(2, time_ns=300), event(3, time_ns=250)]
    assert first.append("main", round_events, checkpoint(3), forget_before_ns=250) == 3
    stored = first.db.execute("SELECT newest_ns, ids, times FROM seen_rounds").fetchall()
    assert stored == [(300, b'["evt-0002","evt-0003"]', b"[300,250]")]
    assert sorted(first.seen_ids("main")) == [("evt-0002", 300), ("evt-0003", 250)]

    # A round entirely before the forget time leaves no row behind.
    first.append("main", [event(4, time_ns=120)], checkpoint(4), forget_before_ns=250)
    assert first.db.execute("SELECT COUNT(*) FROM seen_rounds").fetchone() == (1,)
    first.close()

    second = Journal(tmp_path)
    second.open()
    assert sorted(second.seen_ids("main")) == [("evt-0002", 300), ("evt-0003", 250)]
    assert [e.event.id for e in second.read(0, 10)] == [
        "evt-0001",
        "evt-0002",
        "evt-0003",
        "evt-0004",
    ]
    second.close()


def write_old_journal(directory: Path) -> None:
    events = [
        ("a", "e1", 10, {"id": "e1", "v": 1}),
        ("a", "e2", 20, {"id": "e2", "v": 2}),
        ("b", "e3", 30, {"id": "e3", "v": 3}),
        ("a", "e4", 40, {"id": "e4", "v": 4}),
    ]
    write_version_1_journal(
        directory / Journal.FILE_NAME,
        events,
        sources={"a": {"floor_ns": 9}},
        sinks=[("file", 1, {"size": 10}, (2, 3))],
        pruned=1,
    )


def test_upgrade_converts_a_version_1_journal(tmp_path: Path) -> None:
    write_old_journal(tmp_path)

    journal = Journal(tmp_path)
    with capture_logs() as logs:
        journal.open(upgrade=True)
    assert [(e.seq, e.source, e.event.raw) for e in journal.read(0, 10)] == [
        (2, "a", {"id": "e2", "v": 2}),
        (3, "b", {"id": "e3", "v": 3}),
        (4, "a", {"id": "e4", "v": 4}),
    ]
    assert journal.newest_seq() == 4
    assert journal.register_sink("file") == SinkCheckpoint(1, {"size": 10}, (2, 3))
    assert journal.source_checkpoint("a") == {"floor_ns": 9}
    assert sorted(journal.seen_ids("a")) == [("e1", 10), ("e2", 20), ("e4", 40)]
    assert journal.append("a", [Event("e4", 40, {"id": "e4"}), event(5)], checkpoint(5)) == 1
    assert [e.seq for e in journal.read(4, 10)] == [5]
    journal.close()
    (upgraded,) = [entry for entry in logs if entry["event"] == "journal.upgraded"]
    assert (upgraded["from_version"], upgraded["to_version"], upgraded["events"]) == (1, 2, 3)
    assert schema_version(tmp_path / Journal.FILE_NAME) == "2"


def test_open_without_upgrade_leaves_version_1_alone(tmp_path: Path) -> None:
    write_old_journal(tmp_path)

    journal = Journal(tmp_path)
    with pytest.raises(ConfigError, match="format version 1, which `runtools-tail run` of this"):
        journal.open()
    journal.close()

    assert schema_version(tmp_path / Journal.FILE_NAME) == "1"
    tables = sqlite3.connect(tmp_path / Journal.FILE_NAME).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    assert [name for (name,) in tables] == [
        "events",
        "meta",
        "seen",
        "sinks",
        "sources",
        "sqlite_sequence",
    ]


def write_database(directory: Path, *statements: str) -> None:
    """Create the journal's file in `directory` as another program would, with `statements`."""
    db = sqlite3.connect(directory / Journal.FILE_NAME)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def test_open_rejects_newer_schema(tmp_path: Path) -> None:
    write_database(
        tmp_path,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta VALUES ('schema_version', '99')",
    )

    journal = Journal(tmp_path)
    with pytest.raises(
        ConfigError, match=r"format version 99, and this version .* reads version 2"
    ):
        journal.open(upgrade=True)
    journal.close()


def test_unwritable_journal_path_is_config_error(tmp_path: Path) -> None:
    # A journal file the user may not write fails the same way, but root may write
    # any file, so the test puts a directory in the journal's place.
    (tmp_path / Journal.FILE_NAME).mkdir()
    journal = Journal(tmp_path)
    with pytest.raises(
        ConfigError, match=r"journal .* cannot be opened for writing: Is a directory"
    ):
        journal.open()


def test_compact_gives_old_journal_large_pages(tmp_path: Path) -> None:
    write_database(tmp_path, "PRAGMA page_size=4096", "PRAGMA journal_mode=WAL")
    journal = Journal(tmp_path)
    journal.open()
    journal.append("main", [event(n) for n in range(1, 11)], checkpoint(10))

    journal.compact()
    assert journal.db.execute("PRAGMA page_size").fetchone() == (16384,)
    assert [e.event.id for e in journal.read(0, 20)] == [f"evt-{n:04d}" for n in range(1, 11)]
    journal.close()


def test_new_journal_uses_large_pages(journal: Journal) -> None:
    assert PAGE_SIZE == 16384
    assert journal.db.execute("PRAGMA page_size").fetchone() == (16384,)
    # The fallback checkpoint keeps its size in bytes: 64 MiB of 16 KiB pages.
    assert journal.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (4096,)


def test_journal_keeps_its_page_size(tmp_path: Path) -> None:
    write_database(tmp_path, "PRAGMA page_size=4096", "PRAGMA journal_mode=WAL")

    first = Journal(tmp_path)
    first.open()
    assert first.db.execute("PRAGMA page_size").fetchone() == (4096,)
    assert first.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (16384,)
    first.append("main", [event(n) for n in range(1, 1501)], checkpoint(1500))
    first.close()

    second = Journal(tmp_path)
    second.open()
    assert second.db.execute("PRAGMA page_size").fetchone() == (4096,)
    entries = second.read(1498, 10)
    assert [(e.seq, e.event.id) for e in entries] == [(1499, "evt-1499"), (1500, "evt-1500")]
    second.close()


def test_checkpoint_thread_rewinds_the_log(journal: Journal) -> None:
    big = [Event(f"e{n}", n, {"id": f"e{n}", "pad": "x" * 1000}) for n in range(6000)]
    journal.append("main", big, checkpoint(6000))
    wal = journal.path.with_name(journal.path.name + "-wal")
    assert wal.stat().st_size > 6000 * 1000

    # The checkpoint thread runs within CHECKPOINT_INTERVAL_SECS; wait for the
    # database file to hold the events, then for the log to restart.
    deadline = time.monotonic() + 10 * CHECKPOINT_INTERVAL_SECS
    while journal.path.stat().st_size < 6000 * 1000:
        assert time.monotonic() < deadline, "no checkpoint copied the log into the database"
        time.sleep(0.01)
    journal.set_status("probe", "x")  # the first commit after a full checkpoint rewinds the log
    frames = journal.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames[1] < 10, f"the log still holds {frames[1]} frames"


@settings(max_examples=60, deadline=None)
@given(
    rounds=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=12),
    after=st.integers(min_value=0, max_value=200),
    limit=st.integers(min_value=1, max_value=60),
    until=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
)
def test_read_matches_one_row_per_event(
    tmp_path_factory: pytest.TempPathFactory,
    rounds: list[int],
    after: int,
    limit: int,
    until: int | None,
) -> None:
    journal = Journal(tmp_path_factory.mktemp("state"))
    journal.open()
    number = 0
    for size in rounds:
        events = [event(n) for n in range(number + 1, number + size + 1)]
        journal.append("main", events, checkpoint(number + size))
        number += size

    last = min(number, after + limit, until if until is not None else number)
    expected = [(n, f"evt-{n:04d}") for n in range(after + 1, last + 1)]
    entries = journal.read(after, limit, until_seq=until)
    assert [(e.seq, e.event.id) for e in entries] == expected
    assert journal.backlog(after) == max(number - after, 0)

    runs = journal.read_stored(after, limit, until_seq=until)
    stored = [
        (run.first_seq + i, event_id, time_ns, line)
        for run in runs
        for i, (event_id, time_ns, line) in enumerate(
            zip(run.ids, run.times, run.lines, strict=True)
        )
    ]
    assert stored == [
        (n, f"evt-{n:04d}", n, b'{"id":"evt-%04d","n":%d}' % (n, n)) for n, _ in expected
    ]
    assert all(run.last_seq == run.first_seq + len(run.lines) - 1 for run in runs)
    journal.close()
