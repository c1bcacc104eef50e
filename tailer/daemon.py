"""The daemon: pollers into the journal, the journal into every sink, until a signal.

Shutdown order on SIGTERM or SIGINT: polling stops first, so nothing new
enters the journal. Then each sink runner settles its batch within the grace
period, and a runner asleep in backoff wakes for one last try. Last, the
sinks, the journal and the lock are closed. Everything committed is on disk at every moment, so
a second signal exits at once without losing anything committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import time
from collections.abc import Mapping
from typing import Any

import structlog

from tailer.client import ActivityClient, ClientOptions
from tailer.config import DaemonConfig
from tailer.errors import ApiError, ConfigError
from tailer.event import Event
from tailer.journal import Journal
from tailer.lock import StateLock
from tailer.metrics import Metrics, SourceSnapshot
from tailer.poller import Poller, PollerSettings, SourceCheckpoint
from tailer.runner import RunnerStatistics, SinkRunner
from tailer.service import ServiceListener
from tailer.sinks import Sink, load_sink_class
from tailer.sources import build_sources

__all__ = ["Daemon", "build_sinks"]

_log = structlog.get_logger("tailer.daemon")

PRUNE_INTERVAL_SECS = 2.0
CAP_CHECK_INTERVAL_SECS = 0.1
# A shorter pause is the sinks catching up with the round just journaled, not
# a sink holding polling back, so it is neither logged nor shown as a status.
CAP_REPORT_AFTER_SECS = 5.0
# After a source fails for good (401, 403, 400), wait this long before trying it again.
SOURCE_RESTART_SECS = 60.0


def build_sinks(config: DaemonConfig) -> dict[str, Sink]:
    """Instantiate every configured sink from its registered type."""
    sinks: dict[str, Sink] = {}
    for name, section in config.sinks.items():
        sink_class = load_sink_class(section.type)
        options = sink_class.config_model.model_validate(section.sink_options())
        sinks[name] = sink_class(name, options)
    return sinks


def build_sources_and_sinks(
    config: DaemonConfig, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, tuple[ClientOptions, PollerSettings]], dict[str, Sink]]:
    """Build every source and sink, reading their keys and secrets as `run` does.

    Raises ConfigError listing the problems of all sources and sinks at once.
    """
    problems: list[str] = []
    sources: dict[str, tuple[ClientOptions, PollerSettings]] = {}
    try:
        sources = build_sources(config.sources, environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
    sinks = build_sinks(config)
    for name, sink in sinks.items():
        problems.extend(f"sinks.{name}.{problem}" for problem in sink.credential_problems())
    if problems:
        raise ConfigError(problems)
    return sources, sinks


class Daemon:
    """Runs every source and sink of one config until `request_stop()`."""

    def __init__(self, config: DaemonConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._environ = environ
        self.journal = Journal(config.state_dir)
        self._lock = StateLock(config.state_dir)
        self._stop = asyncio.Event()
        self._signals = 0
        self.runners: dict[str, SinkRunner] = {}
        self.pollers: dict[str, Poller] = {}
        self.clients: dict[str, ActivityClient] = {}
        # What the status names while a pause lasts past CAP_REPORT_AFTER_SECS.
        self.paused_by: str | None = None
        self._paused_sources: set[str] = set()
        # Per source: None once a round succeeded, else why the source is not ready.
        self._source_problems: dict[str, str | None] = dict.fromkeys(
            config.sources, "the first poll has not completed"
        )
        self.metrics = Metrics()
        self.metrics.watch(self)
        self.service: ServiceListener | None = None

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop gracefully; a second request exits the process at once."""
        self._signals += 1
        if self._signals > 1:
            _log.warning("daemon.killed", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        _log.info("daemon.stopping", signal=signal.Signals(signum).name)
        self._stop.set()

    async def run(self) -> None:
        # Read every source's key and every sink's secrets before taking the lock, so
        # config errors surface first, all of them in one go.
        sources, sinks = build_sources_and_sinks(self.config, self._environ)
        self._lock.acquire()
        try:
            self.journal.open(upgrade=True)
            try:
                await self._run(sources, sinks)
            finally:
                self.journal.close()
        finally:
            self._lock.release()

    async def _run(
        self, sources: dict[str, tuple[ClientOptions, PollerSettings]], sinks: dict[str, Sink]
    ) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reopen()))

        for name, sink in sinks.items():
            self.runners[name] = SinkRunner(
                name,
                sink,
                self.config.sinks[name],
                self.journal,
                observe_batch=self.metrics.observe_batch,
            )
        settings = self.config.service
        if settings.enabled:
            self.service = ServiceListener(
                settings.host, settings.port, self.metrics.registry, self.readiness
            )
            await self.service.start()
        # Logged once the port is bound, because a start that fails there never stops.
        _log.info(
            "daemon.started",
            sources=sorted(sources),
            sinks=sorted(sinks),
            state_dir=str(self.config.state_dir),
        )

        runner_tasks = [
            asyncio.create_task(runner.run(), name=f"sink:{name}")
            for name, runner in self.runners.items()
        ]
        poller_tasks = [
            asyncio.create_task(self._follow(name, *options), name=f"source:{name}")
            for name, options in sources.items()
        ]
        pruner = asyncio.create_task(self._prune_forever(), name="pruner")
        stop_waiter = asyncio.create_task(self._stop.wait())
        everything = [*runner_tasks, *poller_tasks, pruner]
        try:
            done, _ = await asyncio.wait(
                [stop_waiter, *everything], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = None if task is stop_waiter else task.exception()
                if error is not None:
                    raise error
        finally:
            stop_waiter.cancel()
            await self._shut_down(poller_tasks, runner_tasks, pruner)

    async def _shut_down(
        self,
        poller_tasks: list[asyncio.Task[None]],
        runner_tasks: list[asyncio.Task[None]],
        pruner: asyncio.Task[None],
    ) -> None:
        for task in (*poller_tasks, pruner):
            task.cancel()
        await asyncio.gather(*poller_tasks, pruner, return_exceptions=True)

        for runner in self.runners.values():
            runner.stop()
        _, late = await asyncio.wait(runner_tasks, timeout=self.config.shutdown_grace_secs)
        for task in late:
            # The batch stays pending in the journal and is sent first at the next start.
            _log.warning(
                "sink.abandoned",
                sink=task.get_name().removeprefix("sink:"),
                grace_seconds=self.config.shutdown_grace_secs,
            )
            task.cancel()
        await asyncio.gather(*runner_tasks, return_exceptions=True)
        self.journal.prune(self.runners)
        if self.service is not None:
            await self.service.stop()
        _log.info(
            "daemon.stopped",
            delivered={name: r.statistics.delivered for name, r in self.runners.items()},
            abandoned_batches=len(late),
        )

    async def _reopen(self) -> None:
        for name, runner in self.runners.items():
            try:
                await runner.sink.reopen()
            except Exception as exc:  # one sink's failure must not keep the others from reopening
                _log.error(
                    "sink.reopen_failed",
                    sink=name,
                    error=str(exc),
                    error_type=exc.__class__.__name__,
                )
        _log.info("sinks.reopened", sinks=sorted(self.runners))

    # -- sources -----------------------------------------------------------

    async def _follow(
        self, name: str, client_options: ClientOptions, settings: PollerSettings
    ) -> None:
        """Follow one source for ever; a source rejected by the API retries after a pause."""
        # Each task has its own context, so every line logged on this source's
        # behalf (the client's retries included) carries its name.
        structlog.contextvars.bind_contextvars(source=name)
        while True:
            stored = self.journal.source_checkpoint(name)
            resume = SourceCheckpoint.from_dict(stored) if stored else None
            seen = list(self.journal.seen_ids(name))
            observe = functools.partial(self.metrics.observe_request, name)
            async with ActivityClient(client_options, on_response=observe) as client:
                poller = Poller(client, settings, resume=resume, seen=seen)
                self.pollers[name] = poller
                self.clients[name] = client

                async def deliver(events: list[Event], poller: Poller = poller) -> None:
                    await self._journal_round(name, poller, events)

                try:
                    await poller.run(deliver)
                    return
                except (ApiError, ConfigError) as exc:
                    self._source_problems[name] = f"{exc.__class__.__name__}: {exc}"
                    _log.error(
                        "source.failed",
                        source=name,
                        error=str(exc),
                        error_type=exc.__class__.__name__,
                        retry_in_seconds=SOURCE_RESTART_SECS,
                    )
            await asyncio.sleep(SOURCE_RESTART_SECS * random.uniform(0.5, 1.0))

    async def _journal_round(self, name: str, poller: Poller, events: list[Event]) -> None:
        self._source_problems[name] = None
        added = self.journal.append(
            name,
            events,
            poller.checkpoint().to_dict(),
            forget_before_ns=poller.dedupe_horizon_ns(),
        )
        if added:
            for runner in self.runners.values():
                runner.wake()
        await self._wait_below_cap(name)

    async def _wait_below_cap(self, source: str) -> None:
        """Pause this source's polling while the journal is over its disk cap."""
        cap = self.config.max_journal_bytes
        waiting_since: float | None = None
        while self.journal.used_bytes() > cap:
            self.journal.prune(self.runners)
            if self.journal.used_bytes() <= cap:
                break
            now = time.monotonic()
            if waiting_since is None:
                waiting_since = now
                self._paused_sources.add(source)
            elif now - waiting_since >= CAP_REPORT_AFTER_SECS:
                self._report_pause(source, cap)
            await asyncio.sleep(CAP_CHECK_INTERVAL_SECS)
        self._paused_sources.discard(source)
        if self.paused_by is not None:
            _log.info("journal.resumed", source=source)
            self.paused_by = None
            self.journal.set_status("paused", None)

    def _report_pause(self, source: str, cap: int) -> None:
        """Log the pause once and keep the status naming the sinks at the lowest offset."""
        # Those sinks change as they progress, so the status is checked every time.
        slowest = self._slowest_sinks()
        held_by = f"sink {slowest[0]}" if len(slowest) == 1 else f"sinks {', '.join(slowest)}"
        if held_by == self.paused_by:
            return
        self.journal.set_status("paused", f"journal full; held back by {held_by}")
        if self.paused_by is None:
            _log.warning(
                "journal.full",
                source=source,
                sinks=slowest,
                used_bytes=self.journal.used_bytes(),
                max_journal_bytes=cap,
            )
        self.paused_by = held_by

    def _slowest_sinks(self) -> list[str]:
        """Return the names of the sinks at the lowest offset, in name order."""
        lowest = min(runner.offset for runner in self.runners.values())
        return sorted(name for name, runner in self.runners.items() if runner.offset == lowest)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_SECS)
            removed = self.journal.prune(self.runners)
            if removed:
                _log.debug("journal.pruned", count=removed)

    # -- what the service endpoints read -----------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Tell whether every source polled successfully and no sink is stuck, and why not."""
        sources = {
            name: {"ready": problem is None, "reason": problem}
            for name, problem in self._source_problems.items()
        }
        limit = self.config.service.sink_failure_unready_secs
        now = time.time()
        sinks = {}
        for name, runner in self.runners.items():
            stats = runner.statistics
            reason = None
            if stats.past_budget:
                reason = f"past its retry budget: {stats.last_error}"
            elif stats.failing_since is not None and now - stats.failing_since > limit:
                reason = f"failing for {now - stats.failing_since:.0f} s: {stats.last_error}"
            sinks[name] = {"ready": reason is None, "reason": reason}
        ready = all(item["ready"] for item in (*sources.values(), *sinks.values()))
        return ready, {"sources": sources, "sinks": sinks}

    def source_snapshots(self) -> dict[str, SourceSnapshot]:
        snapshots = {}
        for name, poller in self.pollers.items():
            client = self.clients[name]
            snapshots[name] = SourceSnapshot(
                poller.statistics, poller.high_water_ns, client.retries, client.rate_limit_waits
            )
        return snapshots

    def sink_statistics(self) -> dict[str, RunnerStatistics]:
        return {name: runner.statistics for name, runner in self.runners.items()}

    def sink_backlogs(self) -> dict[str, int]:
        # Events above the lowest offset are never pruned and sequence numbers
        # have no gaps, so the backlog is a subtraction.
        newest = self.journal.newest_seq()
        return {name: max(newest - runner.offset, 0) for name, runner in self.runners.items()}

    def journal_bytes(self) -> int:
        return self.journal.used_bytes()

    def polling_paused(self) -> bool:
        return bool(self._paused_sources)
