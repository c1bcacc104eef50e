"""The poller against the bundled simulator on 127.0.0.1: every event once, oldest first."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tailer.client import ActivityClient, ClientOptions
from tailer.clock import SystemClock
from tailer.credentials import Token
from tailer.event import Event
from tailer.filters import QueryFilters
from tailer.poller import Poller, PollerSettings, TimeBound
from tailer.retry import RetryPolicy
from tailer.simulator import FaultRates, Simulator, SimulatorConfig
from tailer.timeparse import NS_PER_SECOND, format_iso

KEY = "rt_test_simulator"
ORDERS = ("newest", "oldest")
ENVELOPES = ("reference", "guide")
MATRIX = list(itertools.product(ORDERS, ENVELOPES))


def simulator_config(order: str, envelope: str, **changes: Any) -> SimulatorConfig:
    return SimulatorConfig(order=order, envelope=envelope, **changes)  # type: ignore[arg-type]


def client_for(simulator: Simulator, *, clock: SystemClock | None = None) -> ActivityClient:
    options = ClientOptions(
        base_url=simulator.url,
        token=Token(KEY, source="test"),
        timeout=5.0,
        retry=RetryPolicy(base_delay=0.01, max_delay=0.2),
    )
    return ActivityClient(options, clock=clock)


def settings(**changes: Any) -> PollerSettings:
    values: dict[str, Any] = {
        "since": TimeBound(ago_ns=3600 * NS_PER_SECOND),
        "page_size": 50,
        "min_interval": 0.05,
        "max_interval": 0.2,
        "lateness_ns": 5 * NS_PER_SECOND,
    }
    values.update(changes)
    return PollerSettings(**values)


async def read_once(
    simulator: Simulator, poller_settings: PollerSettings, *, clock: SystemClock | None = None
) -> tuple[list[Event], Poller]:
    delivered: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        delivered.extend(events)

    async with client_for(simulator, clock=clock) as client:
        poller = Poller(client, poller_settings, clock=clock)
        await asyncio.wait_for(poller.run(deliver), timeout=40)
    return delivered, poller


async def follow_until(
    simulator: Simulator,
    poller_settings: PollerSettings,
    done: Callable[[list[Event]], bool],
) -> list[Event]:
    """Follow until `done(delivered)` holds after a round, then stop the poller."""
    delivered: list[Event] = []
    finished = asyncio.Event()

    async def deliver(events: list[Event]) -> None:
        delivered.extend(events)
        if done(delivered):
            finished.set()

    async with client_for(simulator) as client:
        poller = Poller(client, poller_settings)
        task = asyncio.create_task(poller.run(deliver))
        waiter = asyncio.create_task(finished.wait())
        try:
            await asyncio.wait_for(
                asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED), 40
            )
            if task.done():
                task.result()
        finally:
            task.cancel()
            waiter.cancel()
            await asyncio.gather(task, waiter, return_exceptions=True)
    return delivered


def ids(events: list[Event] | list[dict[str, Any]]) -> list[str]:
    return [e.id if isinstance(e, Event) else e["id"] for e in events]


def assert_once_in_order(delivered: list[Event]) -> None:
    keys = [(e.time_ns, e.id) for e in delivered]
    assert len(set(ids(delivered))) == len(delivered), "an event was delivered twice"
    assert keys == sorted(keys), "events were not delivered oldest first"


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_backlog_across_pages_once_in_order(order: str, envelope: str) -> None:
    config = simulator_config(order, envelope, backlog=1200, backlog_span=1800.0)
    async with Simulator(config) as simulator:
        delivered, poller = await read_once(simulator, settings())
        expected = simulator.events()

    assert len(expected) == 1200
    assert ids(delivered) == ids(expected)
    assert [e.raw for e in delivered] == expected
    assert poller.statistics.pages > 1200 // 50


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_more_than_a_page_share_one_timestamp(order: str, envelope: str) -> None:
    config = simulator_config(order, envelope, backlog=40, backlog_span=600.0)
    async with Simulator(config) as simulator:
        instant = format_iso(int((simulator_now(simulator) - 120) * NS_PER_SECOND), digits=3)
        simulator.inject([{"createdAt": instant} for _ in range(1234)])
        delivered, _ = await read_once(simulator, settings(page_size=500))
        expected = simulator.events()

    assert len(expected) == 1274
    assert ids(delivered) == ids(expected)


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_small_window_buffer_keeps_order(order: str, envelope: str) -> None:
    config = simulator_config(order, envelope, backlog=2000, backlog_span=3000.0)
    async with Simulator(config) as simulator:
        delivered, poller = await read_once(simulator, settings(window_capacity=150, page_size=100))
        expected = simulator.events()

    assert ids(delivered) == ids(expected)
    assert poller.width_ns < 3600 * NS_PER_SECOND


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_faults_at_high_rates_lose_nothing(order: str, envelope: str) -> None:
    faults = FaultRates(
        rate_limited=0.1,
        server_error=0.15,
        dropped=0.05,
        truncated=0.05,
        slow=0.02,
        slow_seconds=0.3,
    )
    config = simulator_config(order, envelope, backlog=800, backlog_span=1800.0, faults=faults)
    async with Simulator(config) as simulator:
        delivered, _ = await read_once(simulator, settings(page_size=40))
        expected = simulator.events()
        stats = simulator.statistics()

    assert ids(delivered) == ids(expected)
    assert sum(value for name, value in stats.items() if name.startswith("fault")) > 10


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_late_events_delivered_once_when_following(order: str, envelope: str) -> None:
    config = simulator_config(
        order,
        envelope,
        backlog=100,
        backlog_span=300.0,
        rate=40.0,
        late_max=1.5,
        late_fraction=0.3,
    )
    async with Simulator(config) as simulator:
        target = 100 + 120

        def caught_up(delivered: list[Event]) -> bool:
            return len(delivered) >= target

        delivered = await follow_until(
            simulator, settings(follow=True, lateness_ns=3 * NS_PER_SECOND), caught_up
        )
        first_ids = set(ids(delivered))
        expected_prefix = [e for e in simulator.events() if e["id"] in first_ids]

    assert len(delivered) >= target
    assert len(first_ids) == len(delivered)
    assert sorted(ids(delivered)) == sorted(ids(expected_prefix))
    late = [b for a, b in itertools.pairwise(delivered) if (b.time_ns, b.id) < (a.time_ns, a.id)]
    # Late events arrive after newer ones, by design; everything else is in order.
    assert len(late) <= len(delivered) * 0.3 + 5


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_expiring_cursors_reread_without_loss(order: str, envelope: str) -> None:
    # Retry-After waits outlast the cursor lifetime, so some walks meet an expired cursor.
    config = simulator_config(
        order,
        envelope,
        backlog=600,
        backlog_span=1800.0,
        cursor_ttl=0.3,
        faults=FaultRates(rate_limited=0.08),
    )
    async with Simulator(config) as simulator:
        options = settings(page_size=25)
        delivered: list[Event] = []

        async def deliver(events: list[Event]) -> None:
            delivered.extend(events)

        client = ActivityClient(
            ClientOptions(
                base_url=simulator.url,
                token=Token(KEY, source="test"),
                retry=RetryPolicy(base_delay=0.01, max_delay=0.5),
            )
        )
        async with client:
            poller = Poller(client, options)
            await asyncio.wait_for(poller.run(deliver), timeout=50)
        expected = simulator.events()

    assert ids(delivered) == ids(expected)
    assert poller.statistics.cursor_rejections >= 1


@pytest.mark.parametrize("skew_seconds", [-3600.0, 3600.0])
@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_skewed_local_clock_misses_nothing(
    order: str, envelope: str, skew_seconds: float
) -> None:
    config = simulator_config(order, envelope, backlog=300, backlog_span=1200.0)
    async with Simulator(config) as simulator:
        delivered, _ = await read_once(
            simulator,
            settings(since=TimeBound(ago_ns=1800 * NS_PER_SECOND)),
            clock=SystemClock(offset=skew_seconds),
        )
        expected = simulator.events()

    assert ids(delivered) == ids(expected)


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_repeated_filter_values_merge_once_in_order(order: str, envelope: str) -> None:
    config = simulator_config(order, envelope, backlog=1500, backlog_span=1800.0)
    async with Simulator(config) as simulator:
        filters = QueryFilters.from_mapping({"severity": ["error", "warning", "error"]})
        delivered, _ = await read_once(simulator, settings(filters=filters))
        expected = [e for e in simulator.events() if e["severity"] in ("error", "warning")]

    assert expected
    assert ids(delivered) == ids(expected)
    assert_once_in_order(delivered)


async def test_many_filter_values_applied_locally() -> None:
    config = simulator_config("newest", "reference", backlog=1000, backlog_span=1800.0)
    async with Simulator(config) as simulator:
        every_type = sorted({e["eventType"] for e in simulator.events()})
        wanted = every_type[: len(every_type) // 2 + 1]
        assert len(wanted) > 8
        filters = QueryFilters.from_mapping({"event_type": wanted, "severity": ["info", "error"]})
        delivered, poller = await read_once(simulator, settings(filters=filters))
        expected = [
            e
            for e in simulator.events()
            if e["eventType"] in wanted and e["severity"] in ("info", "error")
        ]

    assert ids(delivered) == ids(expected)
    assert poller.statistics.filtered > 0


@pytest.mark.parametrize(
    ("time_field", "precision", "offset"),
    [
        ("occurredAt", "ms", 0),
        ("createdAt", "s", 0),
        ("createdAt", "ms", 120),
        ("occurredAt", "s", -330),
    ],
)
async def test_time_fields_precisions_and_offsets(
    time_field: str, precision: str, offset: int
) -> None:
    config = SimulatorConfig(
        backlog=700,
        backlog_span=900.0,
        time_field=time_field,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        utc_offset_minutes=offset,
    )
    async with Simulator(config) as simulator:
        delivered, _ = await read_once(simulator, settings(page_size=100))
        expected = simulator.events()

    assert ids(delivered) == ids(expected)
    assert_once_in_order(delivered)


async def test_unknown_and_missing_fields_reach_output_unchanged() -> None:
    config = SimulatorConfig(
        backlog=300, backlog_span=900.0, extra_fields=True, sparse_fraction=0.5
    )
    async with Simulator(config) as simulator:
        delivered, _ = await read_once(simulator, settings())
        expected = simulator.events()

    assert [e.raw for e in delivered] == expected


def simulator_now(simulator: Simulator) -> float:
    """The simulator's clock in epoch seconds, from its newest backlog event."""
    events = simulator.events()
    return max(e.time_ns for e in map(_as_event, events)) / NS_PER_SECOND + 1


def _as_event(raw: dict[str, Any]) -> Event:
    from tailer.event import parse_event

    return parse_event(raw)


@pytest.mark.parametrize(("order", "envelope"), MATRIX)
async def test_events_later_than_short_lookback_found_by_sweep(order: str, envelope: str) -> None:
    config = simulator_config(
        order,
        envelope,
        backlog=50,
        backlog_span=120.0,
        rate=30.0,
        late_max=6.0,
        late_fraction=0.5,
    )
    async with Simulator(config) as simulator:
        stopped = asyncio.Event()
        expected_ids: set[str] = set()

        def all_delivered(delivered: list[Event]) -> bool:
            if not stopped.is_set() and len(delivered) >= 200:
                simulator.update(rate=0.0)
                stopped.set()
            if not stopped.is_set():
                return False
            if not expected_ids:
                return False
            return expected_ids <= set(ids(delivered))

        async def settle() -> None:
            await stopped.wait()
            # Late events become visible up to late_max after their time; no signal marks it.
            await asyncio.sleep(3.5)
            expected_ids.update(ids(simulator.events()))

        settler = asyncio.create_task(settle())
        delivered = await follow_until(
            simulator, settings(follow=True, lateness_ns=6 * NS_PER_SECOND), all_delivered
        )
        await settler

    assert len(set(ids(delivered))) == len(delivered)
    assert set(ids(delivered)) == expected_ids
