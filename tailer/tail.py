"""The terminal command: poll one feed and write its events to stdout."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog

from tailer.client import ActivityClient, ClientOptions
from tailer.clock import Clock
from tailer.errors import (
    AccessDeniedError,
    ApiError,
    AuthenticationError,
    ConfigError,
)
from tailer.event import Event
from tailer.exitcodes import ExitCode
from tailer.output import Formatter
from tailer.poller import Poller, PollerSettings

if TYPE_CHECKING:
    from tailer.metrics import SourceSnapshot
    from tailer.runner import RunnerStatistics

__all__ = ["EventWriter", "TailCommand", "run_main", "run_tail"]

_log = structlog.get_logger("tailer.tail")


class EventWriter:
    """Writes formatted events to a binary stream.

    Every round's events are flushed at once, so a pipe or a file sees them
    without waiting for a buffer to fill.
    """

    def __init__(self, stream: BinaryIO, formatter: Formatter) -> None:
        self._stream = stream
        self._formatter = formatter
        self.written = 0

    async def write(self, events: list[Event]) -> None:
        # One write per round: the events of a round are all known at once, so a
        # reader sees each of them as early as with a flush per event.
        if events:
            self._stream.write(self._formatter.format_many(events))
            self.written += len(events)
        self._stream.flush()


@dataclass(frozen=True)
class TailCommand:
    """Everything the terminal command needs, validated."""

    client: ClientOptions
    poller: PollerSettings
    formatter: Formatter
    service_address: tuple[str, int] | None = None
    """Host and port of the /healthz, /readyz and /metrics listener; None turns it off."""


class _TailStatistics:
    """The terminal command as the metrics collector sees it: one source, no sinks."""

    SOURCE = "main"

    def __init__(self, poller: Poller, client: ActivityClient) -> None:
        self._poller = poller
        self._client = client

    def source_snapshots(self) -> dict[str, SourceSnapshot]:
        from tailer.metrics import SourceSnapshot

        poller, client = self._poller, self._client
        return {
            self.SOURCE: SourceSnapshot(
                poller.statistics, poller.high_water_ns, client.retries, client.rate_limit_waits
            )
        }

    def sink_statistics(self) -> dict[str, RunnerStatistics]:
        return {}

    def sink_backlogs(self) -> dict[str, int]:
        return {}

    def journal_bytes(self) -> None:
        return None

    def polling_paused(self) -> bool:
        return False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self._poller.statistics.last_round_at is not None
        reason = None if ready else "the first poll has not completed"
        return ready, {"sources": {self.SOURCE: {"ready": ready, "reason": reason}}}


async def run_tail(command: TailCommand, stdout: BinaryIO, *, clock: Clock | None = None) -> int:
    """Follow or read the feed into `stdout`; return the number of events written."""
    writer = EventWriter(stdout, command.formatter)
    metrics = None
    observe = None
    if command.service_address is not None:
        # Imported on demand: prometheus-client and aiohttp.web add about 60 ms to
        # every start, which a one-shot read does not need.
        from tailer.metrics import Metrics

        metrics = Metrics()
        observe = functools.partial(metrics.observe_request, _TailStatistics.SOURCE)
    async with ActivityClient(command.client, clock=clock, on_response=observe) as client:
        poller = Poller(client, command.poller, clock=clock)
        service = None
        if metrics is not None and command.service_address is not None:
            from tailer.service import ServiceListener

            view = _TailStatistics(poller, client)
            metrics.watch(view)
            host, port = command.service_address
            service = ServiceListener(host, port, metrics.registry, view.readiness)
            await service.start()
        try:
            await poller.run(writer.write)
        finally:
            if service is not None:
                await service.stop()
            stats = poller.statistics
            _log.info(
                "poll.stopped",
                written=writer.written,
                pages=stats.pages,
                duplicate=stats.duplicate,
                invalid=stats.invalid,
                late=stats.late,
                retries=client.retries,
            )
    return writer.written


def _exit_code_for(exc: BaseException) -> ExitCode:
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE_ERROR
    if isinstance(exc, AuthenticationError | AccessDeniedError):
        return ExitCode.AUTH_ERROR
    if isinstance(exc, ApiError):
        return ExitCode.API_ERROR
    return ExitCode.INTERNAL_ERROR


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, ExitCode]], ExitCode]:
    try:
        import uvloop
    except ImportError:  # platforms without uvloop, such as Windows
        return asyncio.run
    return uvloop.run


# Collect the youngest generation after this many new container objects instead of
# CPython's 700. A page of 500 events allocates about 1,500 dicts and Event objects,
# so the default collected twice a page, and every few pages the older generations,
# where the window buffer's events are. That was about 15 % of a catch-up's CPU time.
_GC_YOUNG_THRESHOLD = 50_000


def _tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector away from the per-event allocations.

    The events hold no reference cycles, so they are freed by reference
    counting; the collector only has to find the rare cycle. Freezing moves
    the objects that exist after start-up (modules, classes, configuration)
    out of every later collection. There is no collection first: it took
    about 12 ms for the little garbage that start-up leaves.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, oldest)


def run_main(
    main: Callable[[], Awaitable[None]],
    *,
    stop_code: ExitCode | None = None,
) -> ExitCode:
    """Run `main` on uvloop where available and map its outcome to an exit code.

    SIGINT and SIGTERM cancel `main`; it exits with `stop_code` when given (for
    commands whose normal end is a signal), else with 130 or 143.
    A closed stdout (`| head`) ends the command quietly with status 0.
    """

    async def guarded() -> ExitCode:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        received: list[int] = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
        try:
            await main()
        except asyncio.CancelledError:
            if not received:
                raise
            if received[0] == signal.SIGTERM:
                return stop_code if stop_code is not None else ExitCode.TERMINATED
            return stop_code if stop_code is not None else ExitCode.INTERRUPTED
        return ExitCode.OK

    _tune_garbage_collector()
    try:
        return _event_loop_runner()(guarded())
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.OK
    except KeyboardInterrupt:
        return stop_code if stop_code is not None else ExitCode.INTERRUPTED
    except (ConfigError, ApiError) as exc:
        for problem in exc.problems if isinstance(exc, ConfigError) else [str(exc)]:
            print(f"runtools-tail: {problem}", file=sys.stderr)
        return _exit_code_for(exc)
