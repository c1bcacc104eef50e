"""The background task that creates live events: a Poisson stream, bursts and late events.

Events arrive at exponentially distributed intervals with mean 1 / `rate`,
drawn from the seeded timing generator. Every `burst_every` seconds
`burst_size` events share one timestamp. A live event is late with
probability `late_fraction`: it is stored at once with its creation time,
but stays invisible for up to `late_max` seconds, so it later appears between
events that clients have already read. Waits use the event loop's monotonic
clock; event times use the simulator's clock.
"""

from __future__ import annotations

import asyncio
import contextlib

from tailer.simulator.engine import Engine
from tailer.timeparse import NS_PER_SECOND

__all__ = ["LiveGenerator"]


class LiveGenerator:
    """Create live events in the background at the configured rate and bursts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wakeup = asyncio.Event()
        engine.config_changed.append(self._wakeup.set)

    async def run(self) -> None:
        """Create events until cancelled. Config changes apply from the next event on."""
        loop = asyncio.get_running_loop()
        timing = self._engine.timing_rng
        next_event: float | None = None
        next_burst: float | None = None
        rate = burst_every = 0.0

        while True:
            config = self._engine.config
            now = loop.time()
            if config.rate != rate:
                rate = config.rate
                next_event = now + timing.expovariate(rate) if rate > 0 else None
            if config.burst_size <= 0:
                next_burst = None
            elif next_burst is None or config.burst_every != burst_every:
                next_burst = now + config.burst_every
            burst_every = config.burst_every

            deadlines = [due for due in (next_event, next_burst) if due is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            self._wakeup.clear()
            # Not asyncio.wait_for, which in Python 3.11 can swallow a cancellation
            # that arrives as the event is set, and then `stop` would wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            if self._wakeup.is_set():
                continue  # the config changed: reschedule before creating anything

            now = loop.time()
            while next_event is not None and next_event <= now:
                self._create(count=1)
                next_event += timing.expovariate(rate)
            if next_burst is not None and next_burst <= now:
                self._create(count=config.burst_size)
                next_burst = now + config.burst_every

    def _create(self, *, count: int) -> None:
        engine = self._engine
        config = engine.config
        timing = engine.timing_rng
        time_ns = engine.now_ns()
        for _ in range(count):
            visible_at_ns = time_ns
            late = timing.random() < config.late_fraction
            delay = timing.uniform(0.0, config.late_max)
            if late and config.late_max > 0:
                visible_at_ns += round(delay * NS_PER_SECOND)
            engine.store_generated(time_ns, visible_at_ns)
