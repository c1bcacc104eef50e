"""The sink runner against a real journal and a recording sink that fails on request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tailer.config import SinkSection
from tailer.errors import ConfigError
from tailer.event import Event
from tailer.journal import Journal
from tailer.runner import SinkRunner, batch_limits
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState
from tailer.sinks.file import FileSink


class RecordingSink(Sink):
    """Records every batch it is sent; `failures` lists errors to raise first, in order."""

    config_model = SinkConfig

    def __init__(self, failures: list[SinkError] | None = None) -> None:
        super().__init__("rec", SinkConfig())
        self.failures = list(failures or [])
        self.attempts: list[Batch] = []
        self.accepted: list[Batch] = []
        self.opened_with: list[SinkState] = []
        self.closed = 0
        self.attempted = asyncio.Event()

    async def open(self, state: SinkState) -> None:
        self.opened_with.append(state)

    async def send(self, batch: Batch) -> SinkState:
        self.attempts.append(batch)
        self.attempted.set()
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append(batch)
        return {"batches": len(self.accepted)}

    async def close(self) -> None:
        self.closed += 1


def event(number: int, severity: str = "info") -> Event:
    event_id = f"evt-{number:04d}"
    return Event(event_id, number, {"id": event_id, "severity": severity})


def section(**options: Any) -> SinkSection:
    values: dict[str, Any] = {
        "type": "recording",
        "retry": {"initial_backoff_secs": 0.001, "max_backoff_secs": 0.01},
        "batch": {"max_events": 10, "max_wait_secs": 0.05},
    }
    values.update(options)
    return SinkSection(**values)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "state")
    opened.open()
    yield opened
    opened.close()


def fill(journal: Journal, events: list[Event]) -> None:
    journal.append(
        "main", events, {"start_ns": 0, "floor_ns": 0, "high_water_ns": 0, "width_ns": 1}
    )


async def run_until(runner: SinkRunner, offset: int) -> None:
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            while runner.offset < offset:
                runner.wake()
                await asyncio.sleep(0.005)
    finally:
        runner.stop()
        await task


def delivered_ids(sink: RecordingSink) -> list[str]:
    return [e.id for batch in sink.accepted for e in batch.events]


class UnopenableSink(RecordingSink):
    """A sink whose `open` finds its options invalid, as a plug-in without a pre-check may."""

    async def open(self, state: SinkState) -> None:
        raise ConfigError(["auth.token: file '/run/x' not found", "tls.ca_file: not PEM"])


async def test_open_problems_name_sink(journal: Journal) -> None:
    runner = SinkRunner("plugin", UnopenableSink(), section(), journal)

    with pytest.raises(ConfigError) as caught:
        await asyncio.wait_for(runner.run(), 10)

    assert caught.value.problems == [
        "sinks.plugin.auth.token: file '/run/x' not found",
        "sinks.plugin.tls.ca_file: not PEM",
    ]


async def test_batches_by_count_in_order(journal: Journal) -> None:
    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 26)])

    await run_until(runner, 25)

    assert [(b.first_seq, b.last_seq) for b in sink.accepted] == [(1, 10), (11, 20), (21, 25)]
    assert [b.key for b in sink.accepted] == ["rec:1-10", "rec:11-20", "rec:21-25"]
    assert delivered_ids(sink) == [f"evt-{n:04d}" for n in range(1, 26)]
    assert sink.accepted[0].payloads[0] == b'{"id":"evt-0001","severity":"info"}'
    assert journal.register_sink("rec").offset == 25
    assert journal.register_sink("rec").state == {"batches": 3}
    assert sink.closed == 1


class LargeBatchSink(RecordingSink):
    batch_defaults: ClassVar[dict[str, float]] = {"max_events": 4, "max_bytes": 4096}


async def test_sink_type_batch_defaults(journal: Journal) -> None:
    sink = LargeBatchSink()
    # The section sets max_wait_secs only, so the sink type's other limits apply.
    runner = SinkRunner("rec", sink, section(batch={"max_wait_secs": 0.05}), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 11)])

    await run_until(runner, 10)

    assert [(b.first_seq, b.last_seq) for b in sink.accepted] == [(1, 4), (5, 8), (9, 10)]
    assert runner.batch_limits.model_dump() == {
        "max_events": 4,
        "max_bytes": 4096,
        "max_wait_secs": 0.05,
    }


def test_section_batch_limits_override_sink_type() -> None:
    limits = batch_limits(section(batch={"max_events": 7}), LargeBatchSink)

    assert limits.model_dump() == {"max_events": 7, "max_bytes": 4096, "max_wait_secs": 1.0}
    assert batch_limits(SinkSection(type="recording"), RecordingSink).model_dump() == {
        "max_events": 500,
        "max_bytes": 1_048_576,
        "max_wait_secs": 1.0,
    }
    assert batch_limits(SinkSection(type="file"), FileSink).model_dump() == {
        "max_events": 2000,
        "max_bytes": 4 * 1_048_576,
        "max_wait_secs": 1.0,
    }


async def test_cancel_with_wakeup_stops_runner(journal: Journal) -> None:
    sink = RecordingSink()
    limits = {"max_events": 10, "max_wait_secs": 30}
    runner = SinkRunner("rec", sink, section(batch=limits), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 4)])
    task = asyncio.create_task(runner.run())
    # A few turns of the loop: the runner takes the three events and waits up to
    # 30 s for more, since its sink and journal do no I/O that takes longer.
    for _ in range(5):
        await asyncio.sleep(0)

    # New events and the cancellation arrive together: Python 3.11's asyncio.wait_for
    # returned normally then, and the runner kept running.
    runner.wake()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert sink.accepted == []


async def test_batches_by_bytes(journal: Journal) -> None:
    sink = RecordingSink()
    payload_size = len(b'{"id":"evt-0001","severity":"info"}')
    runner = SinkRunner("rec", sink, section(batch={"max_bytes": payload_size * 3}), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 8)])

    await run_until(runner, 7)

    assert [len(b.events) for b in sink.accepted] == [3, 3, 1]


async def test_filter_skips_events_and_moves_offset(journal: Journal) -> None:
    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(filter={"min_severity": "error"}), journal)
    journal.register_sink("rec")
    fill(journal, [event(n, "error" if n % 3 == 0 else "info") for n in range(1, 13)])

    await run_until(runner, 12)

    assert delivered_ids(sink) == ["evt-0003", "evt-0006", "evt-0009", "evt-0012"]
    assert runner.statistics.filtered == 8


async def test_filter_decodes_numbers_beyond_double_range(journal: Journal) -> None:
    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(filter={"min_severity": "error"}), journal)
    journal.register_sink("rec")
    text = b'{"id": "evt-0001", "severity": "error", "huge": 1E+400}'
    fill(journal, [Event("evt-0001", 1, None, json=text), event(2)])

    await run_until(runner, 2)

    assert [b.payloads for b in sink.accepted] == [[text]]
    assert runner.statistics.filtered == 1


async def test_only_filtered_events_move_offset_without_batch(journal: Journal) -> None:
    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(filter={"min_severity": "error"}), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 5)])

    await run_until(runner, 4)

    assert sink.attempts == []
    assert journal.register_sink("rec").offset == 4


async def test_retries_keep_batch_and_key(journal: Journal) -> None:
    sink = RecordingSink([SinkError("busy"), SinkError("busy", retry_after=0.001)])
    runner = SinkRunner("rec", sink, section(), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 4)])

    with capture_logs() as logs:
        await run_until(runner, 3)

    assert [b.key for b in sink.attempts] == ["rec:1-3"] * 3
    assert delivered_ids(sink) == ["evt-0001", "evt-0002", "evt-0003"]
    assert runner.statistics.retries == 2
    (recovered,) = [entry for entry in logs if entry["event"] == "sink.recovered"]
    assert (recovered["batch"], recovered["attempts"]) == ("rec:1-3", 3)


async def test_rejected_batch_dead_lettered_at_once(journal: Journal, tmp_path: Path) -> None:
    dead = tmp_path / "dead.ndjson"
    sink = RecordingSink([SinkError("HTTP 422: bad payload", retriable=False)])
    runner = SinkRunner("rec", sink, section(dead_letter_path=dead), journal)
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 16)])

    await run_until(runner, 15)

    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [letter["event"]["id"] for letter in letters] == [f"evt-{n:04d}" for n in range(1, 11)]
    assert {letter["error"] for letter in letters} == {"HTTP 422: bad payload"}
    assert {letter["batch"] for letter in letters} == {"rec:1-10"}
    assert delivered_ids(sink) == [f"evt-{n:04d}" for n in range(11, 16)]
    assert len(sink.attempts) == 2
    assert runner.statistics.dead_lettered == 10
    assert dead.stat().st_mode & 0o077 == 0


async def test_retry_budget_then_dead_letter(journal: Journal, tmp_path: Path) -> None:
    dead = tmp_path / "dead.ndjson"
    sink = RecordingSink([SinkError("down")] * 3)
    options = section(
        dead_letter_path=dead,
        retry={"initial_backoff_secs": 0.001, "max_backoff_secs": 0.01, "max_attempts": 3},
    )
    runner = SinkRunner("rec", sink, options, journal)
    journal.register_sink("rec")
    fill(journal, [event(1)])

    await run_until(runner, 1)

    assert len(sink.attempts) == 3
    assert len(dead.read_bytes().splitlines()) == 1


async def test_without_dead_letters_retries_continue(journal: Journal) -> None:
    sink = RecordingSink([SinkError("gone", retriable=False)] * 5)
    runner = SinkRunner(
        "rec",
        sink,
        section(retry={"initial_backoff_secs": 0.001, "max_backoff_secs": 0.001}),
        journal,
    )
    journal.register_sink("rec")
    fill(journal, [event(1)])

    await run_until(runner, 1)

    assert len(sink.attempts) == 6
    assert delivered_ids(sink) == ["evt-0001"]


async def test_pending_batch_resent_first_after_restart(journal: Journal) -> None:
    journal.register_sink("rec")
    fill(journal, [event(n) for n in range(1, 21)])
    journal.mark_pending("rec", 1, 4)
    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(), journal)

    await run_until(runner, 20)

    assert [b.key for b in sink.accepted] == ["rec:1-4", "rec:5-14", "rec:15-20"]
    assert delivered_ids(sink) == [f"evt-{n:04d}" for n in range(1, 21)]


async def test_stop_during_backoff_tries_once_more_then_leaves_batch_pending(
    journal: Journal,
) -> None:
    sink = RecordingSink([SinkError("down")] * 100)
    options = section(retry={"initial_backoff_secs": 30, "max_backoff_secs": 30})
    runner = SinkRunner("rec", sink, options, journal)
    journal.register_sink("rec")
    fill(journal, [event(1), event(2)])

    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        await sink.attempted.wait()
    runner.stop()
    async with asyncio.timeout(5):
        await task

    assert len(sink.attempts) == 2
    checkpoint = journal.register_sink("rec")
    assert checkpoint.offset == 0
    assert checkpoint.pending == (1, 2)


@pytest.mark.parametrize("encoding", ["ecs", "cef"])
async def test_encoding_applied_to_payloads(journal: Journal, encoding: str) -> None:
    from tailer.encodings import get_encoder

    sink = RecordingSink()
    runner = SinkRunner("rec", sink, section(encoding=encoding), journal)
    journal.register_sink("rec")
    events = [event(1), event(2)]
    fill(journal, events)

    await run_until(runner, 2)

    encoder = get_encoder(encoding)
    assert sink.accepted[0].encoding == encoding
    assert sink.accepted[0].payloads == [encoder.encode(e) for e in events]


async def test_stdout_sink_prints_encoded_payload_for_json_format() -> None:
    import io

    from tailer.encodings import get_encoder
    from tailer.sinks.stdout import StdoutSink, StdoutSinkConfig

    stream = io.BytesIO()
    sink = StdoutSink("out", StdoutSinkConfig(format="json"), stream=stream)
    await sink.open(None)
    events = [event(1, "error")]
    payloads = [get_encoder("cef").encode(e) for e in events]

    await sink.send(Batch("out", events, payloads, 1, 1, encoding="cef"))

    assert stream.getvalue() == payloads[0] + b"\n"
    assert stream.getvalue().startswith(b"CEF:0|RunTools|runtools-tail|")


def expected_batches(payloads: list[bytes], max_events: int, max_bytes: int) -> list[list[bytes]]:
    """The batching rule, written out plainly: the event that would pass `max_bytes`
    starts the next batch unless it is the first of its batch."""
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for payload in payloads:
        if current and size + len(payload) > max_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(payload)
        size += len(payload)
        if len(current) >= max_events or size >= max_bytes:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


@settings(max_examples=40, deadline=None)
@given(
    rounds=st.lists(
        st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40),
        min_size=1,
        max_size=6,
    ),
    max_events=st.integers(min_value=1, max_value=25),
    max_bytes=st.integers(min_value=1, max_value=4000),
)
def test_stored_and_encoded_batches_match(
    tmp_path_factory: pytest.TempPathFactory,
    rounds: list[list[int]],
    max_events: int,
    max_bytes: int,
) -> None:
    """Without a filter the runner sends the journaled lines, and with one it encodes each event.

    A filter that admits every event here must give the same batches, keys and
    bytes, and both must follow the count and byte limits.
    """
    journal = Journal(tmp_path_factory.mktemp("state"))
    journal.open()
    journal.register_sink("plain")
    journal.register_sink("filtered")
    number = 0
    for pads in rounds:
        events = []
        for pad in pads:
            number += 1
            event_id = f"evt-{number:04d}"
            events.append(Event(event_id, number, {"id": event_id, "pad": "x" * pad}))
        fill(journal, events)
    batch = {"max_events": max_events, "max_bytes": max_bytes, "max_wait_secs": 0.05}
    plain, filtered = RecordingSink(), RecordingSink()
    runners = [
        SinkRunner("plain", plain, section(batch=batch), journal),
        SinkRunner(
            "filtered", filtered, section(batch=batch, filter={"min_severity": "info"}), journal
        ),
    ]

    async def deliver() -> None:
        for runner in runners:
            await run_until(runner, number)

    asyncio.run(deliver())
    journal.close()

    payloads = [
        b'{"id":"evt-%04d","pad":"%s"}' % (n, b"x" * pad)
        for n, pad in enumerate((pad for pads in rounds for pad in pads), start=1)
    ]
    expected = expected_batches(payloads, max_events, max_bytes)
    assert [b.payloads for b in plain.accepted] == expected
    assert [b.payloads for b in filtered.accepted] == expected
    assert [b.key for b in plain.accepted] == [
        b.key.replace("filtered", "plain") for b in filtered.accepted
    ]
    events = [e for b in plain.accepted for e in b.events]
    assert [(e.id, e.time_ns) for e in events] == [
        (f"evt-{n:04d}", n) for n in range(1, number + 1)
    ]
    assert [e.raw["pad"] for e in events] == ["x" * pad for pads in rounds for pad in pads]


def test_dead_letters_survive_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tailer import deadletters

    # A regular file takes short writes only when the disk is full, which cannot
    # be arranged here, so os.write is wrapped to write at most 100 bytes a call.
    real_write = os.write
    calls: list[int] = []

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:100]))

    monkeypatch.setattr(os, "write", short_write)
    events = [Event(f"act_{n}", n, {"id": f"act_{n}", "title": "x" * 150}) for n in range(3)]
    letters = deadletters.DeadLetterFile(tmp_path / "dead.ndjson")

    letters.write(Batch("out", events, [b""] * 3, 1, 3), "HTTP 400")

    assert [letter.event["id"] for letter in letters.read()] == ["act_0", "act_1", "act_2"]
    assert len(calls) > 3


def test_dead_letters_keep_event_text(tmp_path: Path) -> None:
    from tailer import deadletters

    text = b'{"id": "act_1", "big": 123456789012345678901234567890, "huge": 1E+400, "r": 1.50}'
    letters = deadletters.DeadLetterFile(tmp_path / "dead.ndjson")

    letters.write(Batch("out", [Event("act_1", 1, None, json=text)], [text], 1, 1), "HTTP 400")

    line = (tmp_path / "dead.ndjson").read_bytes()
    assert line.endswith(b',"event":' + text + b"}\n")
    (letter,) = letters.read()
    assert letter.event == {
        "id": "act_1",
        "big": 123456789012345678901234567890,
        "huge": float("inf"),
        "r": 1.5,
    }
    letters.replace([letter])

    def reject(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    rewritten = json.loads((tmp_path / "dead.ndjson").read_bytes(), parse_constant=reject)
    assert rewritten["event"]["huge"] is None
    assert rewritten["event"]["big"] == 123456789012345678901234567890
