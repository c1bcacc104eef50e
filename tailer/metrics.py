"""Prometheus metrics of the daemon, in a registry of their own.

Most figures already exist as counters on the pollers, clients and runners,
so a custom collector reads those snapshots at scrape time instead of
updating a second set of counters on the hot path. Only the two latency
histograms are observed as they happen. Label values are source and sink
names from the config and HTTP status codes, so their cardinality is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailer.poller import PollerStatistics
from tailer.runner import RunnerStatistics

__all__ = ["Metrics", "MetricsSource", "SourceSnapshot"]

PREFIX = "runtools_tail"
# Seconds: API calls range from a few ms to the 30 s request timeout.
_API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds: a batch may also wait for an indexer acknowledgement.
_BATCH_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


@dataclass(frozen=True)
class SourceSnapshot:
    """The figures the collector reads about one source."""

    statistics: PollerStatistics
    high_water_ns: int | None
    retries: int
    rate_limit_waits: int


class MetricsSource(Protocol):
    """The daemon, as the collector sees it."""

    def source_snapshots(self) -> Mapping[str, SourceSnapshot]: ...

    def sink_statistics(self) -> Mapping[str, RunnerStatistics]: ...

    def sink_backlogs(self) -> Mapping[str, int]: ...

    def journal_bytes(self) -> int | None:
        """Return the journal's size, or None where there is no journal (terminal mode)."""
        ...

    def polling_paused(self) -> bool: ...


class Metrics:
    """The registry, the live histograms and counters, and the snapshot collector."""

    def __init__(self) -> None:
        # The `_created` series double every counter and no dashboard here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
        self.registry = CollectorRegistry()
        self.api_requests = Counter(
            f"{PREFIX}_api_requests",
            "API requests by source and HTTP status code; code is 'error' when no response came.",
            ["source", "code"],
            registry=self.registry,
        )
        self.api_request_seconds = Histogram(
            f"{PREFIX}_api_request_duration_seconds",
            "Time from sending an API request to reading its whole response.",
            ["source"],
            buckets=_API_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}_sink_batch_duration_seconds",
            "Time a sink took to confirm a batch, retries not included.",
            ["sink"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, source: str, status: int | None, seconds: float) -> None:
        code = str(status) if status is not None else "error"
        self.api_requests.labels(source, code).inc()
        self.api_request_seconds.labels(source).observe(seconds)

    def observe_batch(self, sink: str, seconds: float) -> None:
        self.batch_seconds.labels(sink).observe(seconds)

    def watch(self, daemon: MetricsSource) -> None:
        """Read the daemon's statistics at every scrape."""
        self.registry.register(_SnapshotCollector(daemon))


class _SnapshotCollector(Collector):
    def __init__(self, daemon: MetricsSource) -> None:
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        yield from self._source_metrics()
        yield from self._sink_metrics()
        journal_bytes = self._daemon.journal_bytes()
        if journal_bytes is None:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_journal_bytes",
            "Bytes the journal's live database pages occupy.",
            value=journal_bytes,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_polling_paused",
            "1 while polling is paused because the journal reached max_journal_bytes.",
            value=1 if self._daemon.polling_paused() else 0,
        )

    def _source_metrics(self) -> Iterator[Metric]:
        counters = {
            "received": "Event objects read from API pages, re-reads included.",
            "new": "Events journaled for the first time.",
            "duplicate": "Events dropped because their id was already delivered.",
            "invalid": "Events without a usable id or time, counted once per id.",
        }
        families = {
            name: CounterMetricFamily(f"{PREFIX}_events_{name}", text, labels=["source"])
            for name, text in counters.items()
        }
        retries = CounterMetricFamily(
            f"{PREFIX}_api_retries", "API requests retried after a failure.", labels=["source"]
        )
        waits = CounterMetricFamily(
            f"{PREFIX}_api_rate_limit_waits",
            "Waits after a 429 response from the API.",
            labels=["source"],
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}_source_lag_seconds",
            "Seconds between now and the source's high-water mark.",
            labels=["source"],
        )
        last_success = GaugeMetricFamily(
            f"{PREFIX}_source_last_success_timestamp_seconds",
            "Time the source's last poll round completed, in seconds since the epoch.",
            labels=["source"],
        )
        now = time.time()
        for source, snapshot in self._daemon.source_snapshots().items():
            stats = snapshot.statistics
            for name, family in families.items():
                family.add_metric([source], getattr(stats, name))
            retries.add_metric([source], snapshot.retries)
            waits.add_metric([source], snapshot.rate_limit_waits)
            if snapshot.high_water_ns is not None:
                lag.add_metric([source], max(now - snapshot.high_water_ns / 1e9, 0.0))
            if stats.last_round_at is not None:
                last_success.add_metric([source], stats.last_round_at)
        yield from families.values()
        yield from (retries, waits, lag, last_success)

    def _sink_metrics(self) -> Iterator[Metric]:
        delivered = CounterMetricFamily(
            f"{PREFIX}_sink_events_delivered", "Events a sink confirmed.", labels=["sink"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_sink_batch_failures",
            "Batch sends that failed and were retried or dead-lettered.",
            labels=["sink"],
        )
        dead = CounterMetricFamily(
            f"{PREFIX}_sink_events_dead_lettered",
            "Events written to the sink's dead-letter file.",
            labels=["sink"],
        )
        truncated = CounterMetricFamily(
            f"{PREFIX}_sink_events_truncated",
            "Events a sink sent cut short to fit its receiver's message size.",
            labels=["sink"],
        )
        backlog = GaugeMetricFamily(
            f"{PREFIX}_sink_backlog_events",
            "Journaled events the sink has not confirmed yet.",
            labels=["sink"],
        )
        backlogs = self._daemon.sink_backlogs()
        for sink, stats in self._daemon.sink_statistics().items():
            delivered.add_metric([sink], stats.delivered)
            failed.add_metric([sink], stats.failed_attempts)
            dead.add_metric([sink], stats.dead_lettered)
            truncated.add_metric([sink], stats.truncated)
            if sink in backlogs:
                backlog.add_metric([sink], backlogs[sink])
        yield from (delivered, failed, dead, truncated, backlog)
