"""The sink runner: moves journaled events into one sink, in order, once.

One runner per sink reads the journal from that sink's offset, applies the
sink's filter and encoding, and builds a batch (up to `max_events` events or
`max_bytes` of payload, or whatever arrived within `max_wait_secs` of the
first event). Before sending, it records the batch's sequence range in the
journal, so after a crash the same batch, with the same key, is sent first.
It retries with full-jitter backoff. Once the retry budget is spent, or at
once for a rejection that retrying cannot fix, the batch goes to the sink's
dead-letter file when one is configured. Without one, the runner keeps
retrying at the maximum backoff. The offset is committed only after the sink
confirmed the batch or the dead-letter file holds it, and no batch is sent
before the previous one is settled, so order within a sink is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from tailer.clock import Clock, SystemClock
from tailer.config import BatchSettings, SinkSection
from tailer.deadletters import DeadLetterFile
from tailer.encodings import JsonEncoder, get_encoder
from tailer.errors import ConfigError
from tailer.event import Event, StoredEvents
from tailer.journal import Journal, StoredRun
from tailer.ratelimit import RepeatLimiter
from tailer.retry import RetryPolicy
from tailer.sinks.base import Batch, Sink, SinkError, SinkState

__all__ = ["RunnerStatistics", "SinkRunner", "batch_limits"]

_log = structlog.get_logger("tailer.runner")


def batch_limits(section: SinkSection, sink_type: type[Sink]) -> BatchSettings:
    """Return the sink's batch limits: its section's, else its type's, else the runner's."""
    configured = section.batch.model_dump(exclude_unset=True)
    return BatchSettings.model_validate({**sink_type.batch_defaults, **configured})


class ShutdownRequested(Exception):
    """The runner stopped with a batch unsettled; the journal still marks it pending."""


@dataclass
class RunnerStatistics:
    """Counters since the runner started."""

    batches: int = 0
    delivered: int = 0
    filtered: int = 0
    retries: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    truncated: int = 0
    """Events the sink sent cut short to fit its receiver (syslog's `oversize: truncate`)."""
    failing_since: float | None = None
    """Wall-clock time of the first failure of the batch now being retried."""
    last_error: str | None = None
    past_budget: bool = False
    """True while a batch that used up its retry budget is retried for lack of dead letters."""


class SinkRunner:
    """Feeds one sink from the journal. Call `wake()` after journaling new events."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        section: SinkSection,
        journal: Journal,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        observe_batch: Callable[[str, float], None] | None = None,
    ) -> None:
        self.name = name
        self.sink = sink
        self.section = section
        self._journal = journal
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._encoder = get_encoder(section.encoding)
        # Receives (sink name, seconds) for every confirmed batch, for a latency histogram.
        self._observe_batch = observe_batch
        self._policy = RetryPolicy(
            base_delay=section.retry.initial_backoff_secs,
            max_delay=section.retry.max_backoff_secs,
            max_attempts=section.retry.max_attempts,
        )
        self._dead_letters = (
            DeadLetterFile(section.dead_letter_path) if section.dead_letter_path else None
        )
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._retry_log = RepeatLimiter(interval=60.0)
        self.statistics = RunnerStatistics()
        self.offset = 0
        self._state: SinkState = None
        self._sends_stored_lines = section.filter.admits_all and isinstance(
            self._encoder, JsonEncoder
        )
        self.batch_limits = batch_limits(section, type(sink))

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        """Ask the runner to finish: it settles or abandons the current batch, then returns."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver until `stop()`; the sink is opened here and closed on the way out."""
        # Bound for this task only, so the sink's own log lines carry its name too.
        structlog.contextvars.bind_contextvars(sink=self.name)
        checkpoint = self._journal.register_sink(self.name)
        self.offset = checkpoint.offset
        self._state = checkpoint.state
        try:
            await self.sink.open(self._state)
        except SinkError as exc:
            # Sinks retry transient failures in `send`, so a failed open needs a person to act.
            raise ConfigError(
                f"sink {self.name!r} cannot start: {exc}; fix its settings or the file "
                "system, then start again"
            ) from None
        except ConfigError as exc:
            # A sink names only its own options, such as auth.token: add its section.
            raise ConfigError(
                [f"sinks.{self.name}.{problem}" for problem in exc.problems]
            ) from None
        _log.info("sink.started", sink=self.name, offset=self.offset, type=self.section.type)
        try:
            if checkpoint.pending is not None:
                first, last = checkpoint.pending
                await self._settle(self._read_range(first, last), first, last)
            while not self._stopping.is_set():
                await self._next_batch()
        except ShutdownRequested:
            pass
        finally:
            await self.sink.close()
            stats = self.statistics
            _log.info(
                "sink.stopped",
                sink=self.name,
                offset=self.offset,
                delivered=stats.delivered,
                dead_lettered=stats.dead_lettered,
            )

    # -- building batches ----------------------------------------------------

    def _read_range(self, first: int, last: int) -> list[Event]:
        events: list[Event] = []
        cursor = first - 1
        while cursor < last:
            chunk = self._journal.read(cursor, 1000, until_seq=last)
            if not chunk:
                break
            events.extend(entry.event for entry in chunk)
            cursor = chunk[-1].seq
        return events

    async def _next_batch(self) -> None:
        """Collect one batch after the offset and settle it; return when nothing is pending."""
        limits = self.batch_limits
        draft = _Draft(limits.max_events, limits.max_bytes)
        # Without a filter, the `json` encoding is the journaled line itself, so the
        # batch is built from the stored lines and no event is decoded or made.
        take = self._take_stored if self._sends_stored_lines else self._take_encoded
        scanned = self.offset
        deadline: float | None = None
        while True:
            self._wakeup.clear()
            scanned = take(draft, scanned)
            if draft.full or self._stopping.is_set():
                break
            if draft.payloads and deadline is None:
                deadline = self._clock.monotonic() + limits.max_wait_secs
            if deadline is not None and self._clock.monotonic() >= deadline:
                break
            if not draft.payloads and scanned > self.offset:
                break  # only filtered-out events: move the offset on without a batch
            timeout = None if deadline is None else deadline - self._clock.monotonic()
            await self._wait_for_events(timeout)
            if self._stopping.is_set() and not draft.payloads:
                return

        if scanned == self.offset:
            return
        if not draft.payloads:
            self._journal.commit_offset(self.name, scanned, self._state)
            self.offset = scanned
            return
        await self._settle(draft.batch_events(), self.offset + 1, scanned, draft.payloads)

    def _take_encoded(self, draft: _Draft, scanned: int) -> int:
        """Filter and encode events after `scanned` into `draft`; return the last seq taken."""
        admits = None if self.section.filter.admits_all else self.section.filter.admits
        for entry in self._journal.read(scanned, draft.room()):
            if admits is not None and not admits(entry.event.raw):
                scanned = entry.seq
                self.statistics.filtered += 1
                continue
            if not draft.add(entry.event, self._encoder.encode(entry.event)):
                break
            scanned = entry.seq
        return scanned

    def _take_stored(self, draft: _Draft, scanned: int) -> int:
        """Add the stored lines after `scanned` to `draft`; return the last seq taken."""
        for run in self._journal.read_stored(scanned, draft.room()):
            added = draft.add_stored(run)
            if added:
                scanned = run.first_seq + added - 1
            if added < len(run.ids):
                break
        return scanned

    async def _wait_for_events(self, seconds: float | None) -> None:
        # asyncio.timeout, not asyncio.wait_for. In Python 3.11, wait_for returns
        # normally when the task is cancelled just as the event is set, so a
        # cancelled runner would go on. Python 3.12 rewrote wait_for on timeout.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()

    # -- sending ---------------------------------------------------------------

    async def _settle(
        self,
        events: Sequence[Event],
        first: int,
        last: int,
        payloads: list[bytes] | None = None,
    ) -> None:
        """Send one batch until it is confirmed or dead-lettered, then commit the offset.

        Without `payloads`, `events` may include events the filter rejects (a
        batch rebuilt after a restart). With them, `events` are the admitted
        events and `payloads` their encodings.
        """
        if payloads is None:
            events = [e for e in events if self.section.filter.admits(e.raw)]
            payloads = [self._encoder.encode(e) for e in events]
        batch = Batch(
            sink=self.name,
            events=events,
            payloads=payloads,
            first_seq=first,
            last_seq=last,
            encoding=self._encoder.name,
        )
        self._journal.mark_pending(self.name, first, last)
        if batch.events:
            self._state = await self._deliver(batch)
        self._journal.commit_offset(self.name, last, self._state)
        self.offset = last

    async def _deliver(self, batch: Batch) -> SinkState:
        stats = self.statistics
        attempts = 0
        while True:
            attempts += 1
            started = self._clock.monotonic()
            try:
                state = await self.sink.send(batch)
            except SinkError as exc:
                error = exc
            except Exception as exc:  # a sink's bug must not stop the other sinks
                error = SinkError(f"{exc.__class__.__name__}: {exc}", retriable=True)
            else:
                seconds = self._clock.monotonic() - started
                stats.batches += 1
                stats.delivered += len(batch.events)
                stats.truncated = self.sink.truncated
                if stats.failing_since is not None:
                    # Retry lines are rate-limited, so this line marks when the sink works again.
                    _log.info(
                        "sink.recovered",
                        sink=self.name,
                        batch=batch.key,
                        attempts=attempts,
                        failing_seconds=round(time.time() - stats.failing_since, 3),
                    )
                stats.failing_since = None
                stats.past_budget = False
                if self._observe_batch is not None:
                    self._observe_batch(self.name, seconds)
                _log.debug(
                    "batch.sent",
                    sink=self.name,
                    count=len(batch.events),
                    batch=batch.key,
                    seconds=round(seconds, 4),
                )
                return state

            stats.failed_attempts += 1
            stats.last_error = str(error)
            if stats.failing_since is None:
                stats.failing_since = time.time()
            exhausted = not error.retriable or self._policy.gives_up_after(attempts)
            if exhausted and self._dead_letters is not None:
                self._dead_letters.write(batch, str(error))
                stats.dead_lettered += len(batch.events)
                stats.failing_since = None
                _log.error(
                    "batch.dead_lettered",
                    sink=self.name,
                    count=len(batch.events),
                    batch=batch.key,
                    error=str(error),
                    retriable=error.retriable,
                    path=str(self._dead_letters.path),
                )
                return self._state

            if self._stopping.is_set():
                raise ShutdownRequested
            stats.retries += 1
            if exhausted:
                # No dead-letter file: keep the batch and retry at the longest backoff.
                stats.past_budget = True
                wait = self._policy.max_delay
            elif error.retry_after is not None:
                wait = self._policy.clamp(error.retry_after)
            else:
                wait = self._policy.backoff(attempts, self._rng)
            repeats = self._retry_log.record(self.name)
            if repeats is not None:
                _log.warning(
                    "batch.retrying",
                    sink=self.name,
                    batch=batch.key,
                    attempt=attempts,
                    wait_seconds=round(wait, 3),
                    error=str(error),
                    retriable=error.retriable,
                    repeats=repeats,
                )
            await self._sleep_unless_stopping(wait)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        """Sleep, but wake early on `stop()` so the batch gets one last try."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._stopping.wait()


class _Draft:
    """The batch being collected: its events and payloads, and whether it is full.

    A batch is full at `max_events` events or `max_bytes` of payload. The event
    that would pass `max_bytes` starts the next batch, unless it is the first.
    A draft takes either encoded events (`add`) or stored lines (`add_stored`).
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.payloads: list[bytes] = []
        self.size = 0
        self.full = False
        self._events: list[Event] = []
        self._ids: list[str] = []
        self._times: list[int] = []

    def room(self) -> int:
        return self.max_events - len(self.payloads)

    def add(self, event: Event, payload: bytes) -> bool:
        """Add one event; return False, and mark the draft full, when it does not fit."""
        if self.payloads and self.size + len(payload) > self.max_bytes:
            self.full = True
            return False
        self._events.append(event)
        self.payloads.append(payload)
        self.size += len(payload)
        self._check_full()
        return True

    def add_stored(self, run: StoredRun) -> int:
        """Add as many of `run`'s events as fit, in order; return how many."""
        lines = run.lines
        count = len(lines)
        size = self.size + sum(map(len, lines))
        if size > self.max_bytes:
            count, size = 0, self.size
            for line in lines:
                if (self.payloads or count) and size + len(line) > self.max_bytes:
                    self.full = True
                    break
                size += len(line)
                count += 1
        self._ids.extend(run.ids[:count])
        self._times.extend(run.times[:count])
        self.payloads.extend(lines[:count])
        self.size = size
        self._check_full()
        return count

    def _check_full(self) -> None:
        if len(self.payloads) >= self.max_events or self.size >= self.max_bytes:
            self.full = True

    def batch_events(self) -> Sequence[Event]:
        if self._ids:
            return StoredEvents(self._ids, self._times, self.payloads)
        return self._events
