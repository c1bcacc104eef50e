import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailer.event import Event
from tailer.journal import Journal, SinkCheckpoint


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
    journal.append("main", [event(n) for n in range(1, 6)], checkpoint(5))
    journal.commit_offset("fast", 5, None)
    journal.commit_offset("slow", 2, None)

    assert journal.prune(["fast", "slow"]) == 2
    assert [e.seq for e in journal.read(0, 10)] == [3, 4, 5]
    assert journal.prune(["fast", "slow", "unregistered"]) == 0
    assert journal.newest_seq() == 5


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


def test_statuses(journal: Journal) -> None:
    journal.set_status("paused", "journal full; held back by sink slow")
    assert journal.statuses() == {"paused": "journal full; held back by sink slow"}
    journal.set_status("paused", None)
    assert journal.statuses() == {}
