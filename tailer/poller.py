"""The poller: turns a feed of unknown order, with late events, into new events oldest first.

The problem. The API's result order is undocumented, events can become
visible after newer ones were returned, many events can share one timestamp,
the inclusiveness of `since`/`until` is unknown, cursors may expire, and the
local clock may be wrong.

The obvious approach, "ask for everything since the newest event I have
seen", misses late events and events that share the newest timestamp, and on
a newest-first feed it must hold a whole backlog in memory to deliver it
oldest first.

The chosen approach reads the feed as a series of time windows:

* Backfill windows `[floor, floor + width)` cover the past in slices. The
  width adapts so a window contains about half of the window buffer's
  capacity, and the buffer itself cuts a window short when it still fills up,
  so memory stays bounded whatever the order and the backlog.
* Once the floor is within the lateness window of the server's clock, each
  live round reads from 2 s behind the high-water mark to the open end, plus
  one slice of the lateness window before that. The slices take turns, so an
  event that shows up late, but within the lateness window, is still found
  within a few rounds and delivered as soon as it is seen.
* Every query widens its bounds by one second on each side, so whether the
  API treats them as inclusive or exclusive, no event at a boundary is lost.
  The overlap and the lateness re-reads are absorbed by the dedupe window.
* "Now" is the server's clock: the `Date` header of the latest response plus
  the monotonic time since, never the local wall clock (unless the server
  sends no `Date`). Relative `--since` values are measured from it too.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from tailer.client import ActivityClient
from tailer.clock import Clock, SystemClock
from tailer.dedupe import DedupeWindow
from tailer.errors import (
    BadRequestError,
    ConfigError,
    CursorRejectedError,
    PageWalkStalledError,
)
from tailer.event import Event, InvalidEventError, decode_event_text, parse_event
from tailer.filters import QueryFilters
from tailer.page import Page
from tailer.readahead import PageReadahead
from tailer.timeparse import (
    NS_PER_SECOND,
    TIME_BOUND_FORMS,
    format_api_time,
    format_iso,
    parse_ago,
    parse_time,
)
from tailer.window import WindowBuffer

__all__ = ["Poller", "PollerSettings", "PollerStatistics", "TimeBound"]

Deliver = Callable[[list[Event]], Awaitable[None]]

# Widening of every query bound, so boundary events survive exclusive bounds.
OVERLAP_NS = NS_PER_SECOND
MIN_WIDTH_NS = NS_PER_SECOND
MAX_WIDTH_NS = 7 * 86400 * NS_PER_SECOND
# A cursor returned this many times in one walk means the API is going round in circles.
MAX_CURSOR_REPEATS = 3
# This many pages in a row with hasMore but no events means the walk makes no progress.
MAX_EMPTY_PAGES = 20
# Live rounds read from this far behind the high-water mark onwards, plus one slice
# of the rest of the lateness window. The slices take turns round by round.
SHORT_LOOKBACK_NS = 2 * NS_PER_SECOND
MAX_SWEEP_SLICES = 8
# A next window's first page requested during delivery is dropped when the round
# took longer than this many seconds in all, as its cursor may no longer be valid.
EARLY_PAGE_MAX_AGE = 30.0
# Invalid events are reported once per id; this many ids are remembered for that.
MAX_REPORTED_INVALID = 10_000
# Probes for the oldest `since` the API serves stop at this resolution.
REANCHOR_RESOLUTION_NS = NS_PER_SECOND
REANCHOR_MARGIN_NS = 5 * NS_PER_SECOND

_log = structlog.get_logger("tailer.poller")


@dataclass(frozen=True)
class TimeBound:
    """A time given either as absolute ns since the epoch or as ns before the server's now."""

    absolute_ns: int | None = None
    ago_ns: int | None = None

    @classmethod
    def parse(cls, text: str) -> TimeBound:
        """Parse a duration before now (`10m`, `-10m`) or an ISO 8601 time.

        Raises ValueError naming the text and the accepted forms.
        """
        try:
            return cls(ago_ns=parse_ago(text))
        except ValueError:
            pass
        try:
            return cls(absolute_ns=parse_time(text))
        except ValueError:
            raise ValueError(f"{text!r} is invalid; expected {TIME_BOUND_FORMS}") from None

    def resolve(self, now_ns: int) -> int:
        if self.absolute_ns is not None:
            return self.absolute_ns
        return now_ns - (self.ago_ns or 0)


@dataclass(frozen=True)
class PollerSettings:
    """The range to read and the polling pace. Intervals are seconds, times and widths ns."""

    since: TimeBound
    until: TimeBound | None = None
    follow: bool = False
    filters: QueryFilters = field(default_factory=lambda: QueryFilters({}))
    lateness_ns: int = 60 * NS_PER_SECOND
    page_size: int = 500
    min_interval: float = 1.0
    max_interval: float = 10.0
    window_capacity: int = 5_000
    initial_width_ns: int = 60 * NS_PER_SECOND


@dataclass
class PollerStatistics:
    """Counters since the poller started.

    `received` counts every event object in every page, re-reads included.
    `new` counts events handed on. `late` counts new events older than the
    high-water mark at the time they were found.
    """

    rounds: int = 0
    pages: int = 0
    received: int = 0
    new: int = 0
    duplicate: int = 0
    invalid: int = 0
    filtered: int = 0
    outside_window: int = 0
    late: int = 0
    stalled_walks: int = 0
    cursor_rejections: int = 0
    unreadable_windows: int = 0
    last_round_at: float | None = None
    """Wall-clock time the last round completed, in seconds since the epoch."""


@dataclass(frozen=True)
class SourceCheckpoint:
    """The poller state that survives a restart. Times and widths are ns.

    No cursor is kept: a restart reads the interrupted window again from its
    start, because the dedupe window makes the re-read harmless and a cursor
    may have expired meanwhile.
    """

    start_ns: int
    floor_ns: int
    high_water_ns: int | None
    width_ns: int

    def to_dict(self) -> dict[str, int | None]:
        return {
            "start_ns": self.start_ns,
            "floor_ns": self.floor_ns,
            "high_water_ns": self.high_water_ns,
            "width_ns": self.width_ns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceCheckpoint:
        return cls(
            start_ns=int(data["start_ns"]),
            floor_ns=int(data["floor_ns"]),
            high_water_ns=None if data.get("high_water_ns") is None else int(data["high_water_ns"]),
            width_ns=int(data.get("width_ns") or MIN_WIDTH_NS),
        )


@dataclass
class _Round:
    lo: int
    hi: int | None
    live: bool
    # The slice of the lateness window a live round re-reads for late events.
    sweep: tuple[int, int] | None = None


class _WindowTooWide(Exception):
    """The first page of a backfill window showed it contains far more than the buffer takes."""

    def __init__(self, width_ns: int) -> None:
        super().__init__(f"narrow the window to {width_ns} ns")
        self.width_ns = width_ns


class Poller:
    """Reads one source's feed and hands each new event on once, in (time, id) order per round.

    `run` returns once the requested time range is read, or never when
    following without `until`; cancel it to stop.
    """

    def __init__(
        self,
        client: ActivityClient,
        settings: PollerSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        resume: SourceCheckpoint | None = None,
        seen: Iterable[tuple[str, int]] = (),
    ) -> None:
        self._client = client
        self._resume = resume
        self._settings = settings
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._variants = settings.filters.query_variants()
        self._local_filters = settings.filters.local_filters()
        self._seen = DedupeWindow()
        pairs = list(seen)
        self._seen.add_unsorted([pair[0] for pair in pairs], [pair[1] for pair in pairs])
        self._reported_invalid: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._server_time: tuple[int, float] | None = None  # (server ns, local monotonic)

        self.statistics = PollerStatistics()
        self.start_ns = 0
        self.end_ns: int | None = None
        self.floor_ns = 0
        # Known before the first request, so the lag can be reported while the API
        # is still unreachable after a restart.
        self.high_water_ns: int | None = resume.high_water_ns if resume is not None else None
        self.cursor: str | None = None
        self.width_ns = settings.initial_width_ns
        self._interval = settings.min_interval
        self._failures = 0
        self._sweep_slice = 0  # which slice of the lateness window the next live round re-reads

    # -- clock -------------------------------------------------------------

    def _note_server_time(self, page: Page) -> None:
        if page.server_time_ns is not None:
            # The Date header has whole seconds, truncated; the server's time is
            # somewhere in that second, so take its end and never cut the range short.
            server_ns = page.server_time_ns + NS_PER_SECOND - 1
            self._server_time = (server_ns, self._clock.monotonic())

    def server_now_ns(self) -> int:
        """Return the server's current time, estimated from its latest `Date` header."""
        if self._server_time is None:
            # NOTE: only when the API sends no Date header does the local clock decide "now".
            return int(self._clock.time() * NS_PER_SECOND)
        server_ns, at = self._server_time
        return server_ns + int((self._clock.monotonic() - at) * NS_PER_SECOND)

    # -- main loop ---------------------------------------------------------

    async def run(self, deliver: Deliver) -> None:
        """Read the range, awaiting `deliver` after every round with its new events (maybe none)."""
        await self._resolve_range()
        upcoming: tuple[_Round, PageReadahead] | None = None
        while self.end_ns is None or self.floor_ns < self.end_ns:
            started = self._clock.monotonic()
            if upcoming is not None:
                current, started_walk = upcoming
                upcoming = None
            else:
                current, started_walk = self._next_round(), None
            try:
                buffer = await self._read_window(current, started_walk)
            except CursorRejectedError as exc:
                self.statistics.cursor_rejections += 1
                self.width_ns = max(MIN_WIDTH_NS, self.width_ns // 2)
                _log.warning("cursor.rejected", error=str(exc), **self._window_fields(current))
                await self._back_off()
                continue
            except PageWalkStalledError as exc:
                self.statistics.stalled_walks += 1
                _log.warning("walk.stalled", error=str(exc), **self._window_fields(current))
                await self._back_off()
                continue
            except BadRequestError as exc:
                await self._reanchor(current.lo, exc)
                continue
            except _WindowTooWide as narrower:
                _log.debug(
                    "window.narrowed",
                    width_s=narrower.width_ns / NS_PER_SECOND,
                    **self._window_fields(current),
                )
                self.width_ns = narrower.width_ns
                continue

            self._failures = 0
            events = buffer.sorted_events()
            self._commit(current, buffer, events)
            self.statistics.last_round_at = self._clock.time()
            upcoming = self._start_next_backfill_round(current)
            try:
                if upcoming is not None:
                    await asyncio.sleep(0)  # let the request go out before delivering
                # Called for empty rounds too, so a journal can record the advanced floor.
                await deliver(events)
                await self._pause(current, buffer, events, started)
            except BaseException:
                if upcoming is not None:
                    await upcoming[1].close()
                raise
            if upcoming is not None and self._clock.monotonic() - started > EARLY_PAGE_MAX_AGE:
                # Delivery was held up (a full journal pauses it), and the page's
                # cursor may have expired meanwhile: read the window afresh.
                await upcoming[1].close()
                upcoming = None

    def _start_next_backfill_round(self, finished: _Round) -> tuple[_Round, PageReadahead] | None:
        """Request the next backfill window's first page, or return None when none follows.

        Between two backfill windows there is no pause, so the request can go out
        while the finished window's events are delivered. Live rounds wait for
        the poll interval first, so they are not started early.
        """
        if finished.live or (self.end_ns is not None and self.floor_ns >= self.end_ns):
            return None
        upcoming = self._backfill_round()
        if upcoming is None:
            return None
        return upcoming, PageReadahead(self._client, self._window_queries(upcoming)[0])

    async def _resolve_range(self) -> None:
        """Learn the server's clock and turn relative bounds into absolute ones."""
        probe = {**self._variants[0], "limit": "1"}
        page = await self._client.fetch_page(probe)
        self._note_server_time(page)
        if page.server_time_ns is None:
            _log.warning("clock.fallback", reason="the API sent no Date header")
        now = self.server_now_ns()
        settings = self._settings
        # A Date header places "now" within a whole second, and `now` is that second's
        # end. A relative start takes the second's beginning instead, so the range is
        # the widest reading of both bounds: it may start up to 1 s early, never late.
        earliest_now = now - (NS_PER_SECOND - 1) if page.server_time_ns is not None else now
        self.start_ns = settings.since.resolve(earliest_now)
        if settings.until is not None:
            self.end_ns = settings.until.resolve(now)
        elif not settings.follow:
            self.end_ns = now
        self.floor_ns = self.start_ns
        if self._resume is not None:
            self.start_ns = self._resume.start_ns
            self.floor_ns = self._resume.floor_ns
            self.high_water_ns = self._resume.high_water_ns
            self.width_ns = self._resume.width_ns
        if self.end_ns is not None and self.end_ns < self.start_ns:
            raise ConfigError(
                f"--until {format_iso(self.end_ns, digits=3)} is before --since "
                f"{format_iso(self.start_ns, digits=3)}; swap them or widen the range"
            )
        _log.info(
            "poll.started",
            since=format_iso(self.start_ns, digits=3),
            resume_from=format_iso(self.floor_ns, digits=3) if self._resume else None,
            until=format_iso(self.end_ns, digits=3) if self.end_ns is not None else None,
            follow=settings.follow,
            queries_per_round=len(self._variants),
        )

    def _backfill_round(self) -> _Round | None:
        """Return the next window when it is a backfill window, else None (it is live)."""
        settings = self._settings
        hi = self.floor_ns + self.width_ns
        if self.end_ns is not None:
            hi = min(hi, self.end_ns)
        if not settings.follow or hi <= self.server_now_ns() - settings.lateness_ns:
            return _Round(self.floor_ns, hi, live=False)
        return None

    def _next_round(self) -> _Round:
        backfill = self._backfill_round()
        if backfill is not None:
            return backfill

        # Earlier rounds read everything up to the high-water mark, so a live round
        # starts just behind it. Late arrivals before that come from the sweep slices.
        settings = self._settings
        look_back = min(settings.lateness_ns, SHORT_LOOKBACK_NS)
        lo = self.floor_ns
        sweep = None
        if self.high_water_ns is not None:
            lo = self.high_water_ns - look_back
            sweep = self._next_sweep_slice(self.high_water_ns, look_back)
        return _Round(max(lo, self.start_ns), self.end_ns, live=True, sweep=sweep)

    def _next_sweep_slice(self, high_water_ns: int, look_back: int) -> tuple[int, int] | None:
        """Return the part of the lateness window this live round re-reads for late events.

        Re-reading the whole window every round would walk every event in it,
        60,000 at 1,000 events per second and the default 60 s, and delay the new
        events behind that walk. So each round re-reads one slice, and the slices
        cover the window once every few rounds: up to MAX_SWEEP_SLICES while
        polling fast, one (the whole window) when the interval is a quarter of
        the window or more. A late event is found within one cycle.
        """
        settings = self._settings
        sweep_lo = max(high_water_ns - settings.lateness_ns, self.start_ns)
        sweep_hi = high_water_ns - look_back
        if sweep_hi <= sweep_lo:
            return None
        rounds_per_quarter = settings.lateness_ns / NS_PER_SECOND / 4 / self._interval
        slices = min(max(int(rounds_per_quarter), 1), MAX_SWEEP_SLICES)
        index = self._sweep_slice % slices
        self._sweep_slice = index + 1
        width = -(-(sweep_hi - sweep_lo) // slices)  # ceiling division
        start = sweep_lo + index * width
        return start, min(start + width, sweep_hi)

    def _window_queries(self, current: _Round) -> list[dict[str, str]]:
        """Return the first query of each walk of the round's window, one per variant."""
        bounds = {"since": format_api_time(current.lo - OVERLAP_NS)}
        if current.hi is not None:
            bounds["until"] = format_api_time(current.hi + OVERLAP_NS, round_up=True)
        limit = str(self._settings.page_size)
        return [{**variant, **bounds, "limit": limit} for variant in self._variants]

    async def _read_window(
        self, current: _Round, started_walk: PageReadahead | None = None
    ) -> WindowBuffer:
        """Read the round's window and its sweep slice into a new buffer.

        `started_walk`, when given, is the first walk, its first page already requested.
        """
        buffer = WindowBuffer(self._settings.window_capacity, current.lo, current.hi)
        self.statistics.rounds += 1
        # Only a backfill window can be narrowed: a live round's end is open.
        check_width = not current.live and current.hi is not None
        for params in self._window_queries(current):
            requests = started_walk or PageReadahead(self._client, params)
            started_walk = None
            await self._walk(requests, buffer, check_width=check_width)
            check_width = False
        if current.sweep is not None:
            sweep_lo, sweep_hi = current.sweep
            sweep_bounds = {
                "since": format_api_time(sweep_lo - OVERLAP_NS),
                "until": format_api_time(sweep_hi + OVERLAP_NS, round_up=True),
            }
            for variant in self._variants:
                params = {**variant, **sweep_bounds, "limit": str(self._settings.page_size)}
                await self._walk(PageReadahead(self._client, params), buffer)
        if buffer.overflowed:
            _log.warning(
                "window.overflowed",
                held=len(buffer),
                capacity=buffer.capacity,
                reason="more events share one timestamp than the window buffer holds",
            )
        return buffer

    async def _walk(
        self, requests: PageReadahead, buffer: WindowBuffer, *, check_width: bool = False
    ) -> None:
        """Follow one query's cursors to the last page, adding new events to `buffer`.

        `requests` has sent the query's first request. The next page is requested
        before this page's events are processed (see `PageReadahead`), so the
        API's response time overlaps the tailer's own work instead of adding to
        it. With `check_width`, the walk raises _WindowTooWide after the first page
        when that page shows the window contains far more events than the buffer takes.
        """
        recent_cursors: collections.Counter[str] = collections.Counter()
        empty_pages = 0
        self.cursor = None
        try:
            while True:
                page = await requests.page()
                self._note_server_time(page)
                self.statistics.pages += 1
                if page.has_more:
                    cursor = page.next_cursor
                    assert cursor is not None  # parse_page guarantees a cursor when has_more
                    recent_cursors[cursor] += 1
                    if recent_cursors[cursor] >= MAX_CURSOR_REPEATS:
                        raise PageWalkStalledError(
                            f"the API returned the same cursor {recent_cursors[cursor]} times "
                            "in one walk"
                        )
                    empty_pages = 0 if page.lines else empty_pages + 1
                    if empty_pages >= MAX_EMPTY_PAGES:
                        raise PageWalkStalledError(
                            f"the API returned {empty_pages} empty pages in a row that claim "
                            "more follow"
                        )
                    self.cursor = cursor
                    await requests.advance(cursor)

                self._accept_page(page, buffer)
                if not page.has_more:
                    break
                if check_width:
                    check_width = False
                    narrower = self._narrower_width(buffer)
                    if narrower is not None:
                        raise _WindowTooWide(narrower)
        finally:
            await requests.close()
        self.cursor = None

    def _accept_page(self, page: Page, buffer: WindowBuffer) -> None:
        """Add a page's new events to the buffer, dropping invalid, filtered, seen and old ones.

        The loop handles the usual event inline: a string id and a string time in
        the API's format. `_accept` handles the rest, and every event when local
        filters apply. Both decide alike.
        """
        stats = self.statistics
        stats.received += len(page.lines)
        # The oldest event time still in range: before it, an event is either
        # before the requested start or beyond what the dedupe window covers.
        horizon = max(self.start_ns, self._horizon_ns())
        if self._local_filters:
            for line in page.lines:
                self._accept(line, buffer, horizon)
            return

        seen_ids, held_ids = self._seen.ids(), buffer.ids()
        duplicate = outside_window = 0
        for line, event_id, text in zip(page.lines, page.ids, page.times, strict=True):
            if type(event_id) is str and event_id:
                if event_id in seen_ids or event_id in held_ids:
                    duplicate += 1
                    continue
                if type(text) is str:
                    try:
                        time_ns = parse_time(text)
                    except ValueError:
                        pass  # `_accept` reports it
                    else:
                        if time_ns < horizon:
                            outside_window += 1
                        else:
                            buffer.add(Event(event_id, time_ns, None, json=line))
                        continue
            self._accept(line, buffer, horizon)
        stats.duplicate += duplicate
        stats.outside_window += outside_window

    def _accept(self, line: bytes, buffer: WindowBuffer, horizon: int) -> None:
        """Add one event, given as its JSON text, unless invalid, filtered, seen or too old."""
        stats = self.statistics
        raw = decode_event_text(line)
        # Most events of a re-read window were delivered before: drop them by id
        # before paying for validation.
        if type(raw) is dict:
            raw_id = raw.get("id")
            if type(raw_id) is str and (raw_id in self._seen or raw_id in buffer):
                stats.duplicate += 1
                return
        try:
            event = parse_event(raw, json=line)
        except InvalidEventError as exc:
            self._report_invalid(line, exc)
            return
        if self._local_filters and not QueryFilters.matches(event.raw, self._local_filters):
            stats.filtered += 1
            return
        if event.id in self._seen or event.id in buffer:
            stats.duplicate += 1
            return
        if event.time_ns < horizon:
            stats.outside_window += 1
            return
        buffer.add(event)

    def _report_invalid(self, line: bytes, exc: InvalidEventError) -> None:
        key = exc.event_id if exc.event_id is not None else line.decode("utf-8", "replace")
        if key in self._reported_invalid:
            return
        self._reported_invalid[key] = None
        if len(self._reported_invalid) > MAX_REPORTED_INVALID:
            self._reported_invalid.popitem(last=False)
        self.statistics.invalid += 1
        _log.warning("event.invalid", event_id=exc.event_id, error=str(exc))

    def checkpoint(self) -> SourceCheckpoint:
        """Return the state to commit with the events of the round just delivered."""
        return SourceCheckpoint(self.start_ns, self.floor_ns, self.high_water_ns, self.width_ns)

    def dedupe_horizon_ns(self) -> int:
        """Return the event time before which remembered ids can be forgotten."""
        return self._horizon_ns()

    @property
    def dedupe_size(self) -> int:
        """Return how many event ids the dedupe window holds."""
        return len(self._seen)

    def _horizon_ns(self) -> int:
        """Return the oldest event time the dedupe window must still remember.

        Backfill windows re-read from the floor (less the overlap); live rounds
        also re-read the lateness window behind the high-water mark. Without
        `follow` no live round ever runs, so only the floor counts.
        """
        oldest_query_start = self.floor_ns
        if self._settings.follow and self.high_water_ns is not None:
            oldest_query_start = min(
                oldest_query_start, self.high_water_ns - self._settings.lateness_ns
            )
        return oldest_query_start - 2 * OVERLAP_NS

    def _commit(self, current: _Round, buffer: WindowBuffer, events: list[Event]) -> None:
        """Record a completed window: dedupe ids, high-water mark, floor and next width."""
        stats = self.statistics
        if self.high_water_ns is not None:
            stats.late += sum(1 for event in events if event.time_ns < self.high_water_ns)
        stats.new += len(events)
        if events and (self.high_water_ns is None or events[-1].time_ns > self.high_water_ns):
            self.high_water_ns = events[-1].time_ns

        if buffer.cutoff_ns is not None and (current.hi is None or buffer.cutoff_ns < current.hi):
            covered_until = buffer.cutoff_ns
        elif current.live:
            covered_until = self.server_now_ns() - self._settings.lateness_ns
        else:
            assert current.hi is not None
            covered_until = current.hi
        previous_floor = self.floor_ns
        self.floor_ns = max(self.floor_ns, covered_until)
        if not current.live:
            self._adapt_width(self.floor_ns - previous_floor, len(buffer))

        # Only ids a later query can return again need remembering; in a backfill
        # that is a few seconds' worth, not the whole window.
        horizon = self._horizon_ns()
        remembered = [event for event in events if event.time_ns >= horizon]
        self._seen.add_sorted(
            [event.id for event in remembered], [event.time_ns for event in remembered]
        )
        self._seen.prune(horizon)
        _log.debug(
            "poll.completed",
            new=len(events),
            live=current.live,
            floor=format_iso(self.floor_ns, digits=3),
            dedupe_ids=len(self._seen),
        )

    def _narrower_width(self, buffer: WindowBuffer) -> int | None:
        """Return a width for the window being read when its first page shows it is too wide.

        The buffer contains the first page's new events. When the API returns the
        window newest or oldest first, that page covers one end of it densely,
        and its events per ns predict the whole window. A newest-first window
        that overflows the buffer is read to its end and its newer part read
        again, so narrowing it now costs one page instead. Pages in any other
        order spread over the whole window, so they seldom narrow it.
        """
        count = len(buffer)
        span_ns = buffer.span_ns()
        capacity = self._settings.window_capacity
        if count < 2 or span_ns <= 0 or buffer.cutoff_ns is None:
            return None
        estimated = count * (buffer.cutoff_ns - buffer.floor_ns) // span_ns
        if estimated <= capacity:
            return None
        target = max(capacity // 2, 1)
        width = max(span_ns * target // count, MIN_WIDTH_NS)
        # Narrow only by half or more, so that repeated narrowing ends quickly.
        return width if width <= self.width_ns // 2 else None

    def _adapt_width(self, covered_ns: int, count: int) -> None:
        """Size the next backfill window to hold about half of the buffer's capacity."""
        target = max(self._settings.window_capacity // 2, 1)
        # An empty window gives no density, so widen by the maximum step.
        proposed = self.width_ns * 4 if count == 0 else max(covered_ns, 1) * target // count
        # Grow at most 4x per window, because an empty window tells little about
        # the next one. Shrink at once, because a full window measured the density.
        proposed = min(proposed, self.width_ns * 4)
        self.width_ns = min(max(proposed, MIN_WIDTH_NS), MAX_WIDTH_NS)

    async def _pause(
        self, current: _Round, buffer: WindowBuffer, events: list[Event], started: float
    ) -> None:
        """Wait before the next round: not at all in backfill, adaptively when live."""
        settings = self._settings
        cut_short = buffer.cutoff_ns is not None and buffer.cutoff_ns != current.hi
        if not current.live or cut_short:
            return
        if events:
            self._interval = settings.min_interval
        else:
            self._interval = min(self._interval * 2, settings.max_interval)
        elapsed = self._clock.monotonic() - started
        await self._clock.sleep(self._interval - elapsed)

    async def _back_off(self) -> None:
        """Wait after a failed round, longer with each failure in a row, with full jitter."""
        self._failures += 1
        bound = min(
            self._settings.max_interval, self._settings.min_interval * 2 ** (self._failures - 1)
        )
        await self._clock.sleep(self._rng.uniform(bound / 2, bound))

    # -- windows the API will not serve -------------------------------------

    async def _accepts_since(self, since_ns: int) -> bool:
        query = {**self._variants[0], "since": format_api_time(since_ns - OVERLAP_NS), "limit": "1"}
        try:
            page = await self._client.fetch_page(query)
        except BadRequestError:
            return False
        self._note_server_time(page)
        return True

    async def _reanchor(self, lo: int, error: BadRequestError) -> None:
        """Skip the part of the range the API rejects, or re-raise when the request itself is bad.

        A `since` older than the API's retention is rejected with 400. If a
        recent `since` is accepted, the tailer searches for the oldest accepted
        one, reports the gap it cannot read, and carries on from there.
        """
        recent = max(lo, self.server_now_ns() - self._settings.lateness_ns)
        if recent == lo or not await self._accepts_since(recent):
            raise error
        rejected, accepted = lo, recent
        while accepted - rejected > REANCHOR_RESOLUTION_NS:
            middle = (rejected + accepted) // 2
            if await self._accepts_since(middle):
                accepted = middle
            else:
                rejected = middle
        resume = min(accepted + REANCHOR_MARGIN_NS, recent)
        self.statistics.unreadable_windows += 1
        _log.warning(
            "window.unreadable",
            since=format_iso(lo, digits=3),
            until=format_iso(resume, digits=3),
            error=str(error),
            reason="the API rejects this range; events in it cannot be read",
        )
        # Older events can no longer be read, so they count as outside the range.
        self.start_ns = max(self.start_ns, resume)
        self.floor_ns = max(self.floor_ns, resume)

    @staticmethod
    def _window_fields(current: _Round) -> dict[str, object]:
        return {
            "since": format_iso(current.lo, digits=3),
            "until": format_iso(current.hi, digits=3) if current.hi is not None else None,
        }
