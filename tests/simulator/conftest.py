"""Fixtures of the simulator tests: started simulators, a fake clock and API clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sim_support import Api, FakeClock, StartSimulator

from tailer.simulator import Simulator, SimulatorConfig


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """Start simulators with config fields as keywords, and stop them after the test."""
    started: list[Simulator] = []

    async def start(clock: Callable[[], float] | None = None, **fields: Any) -> Simulator:
        simulator = Simulator(SimulatorConfig(**fields), clock=clock)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        await simulator.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_api(
    session: aiohttp.ClientSession, start_simulator: StartSimulator
) -> Callable[..., Awaitable[Api]]:
    """Start a simulator with the given fields and return a client of it."""

    async def make(clock: Callable[[], float] | None = None, **fields: Any) -> Api:
        return Api(session, await start_simulator(clock, **fields))

    return make
