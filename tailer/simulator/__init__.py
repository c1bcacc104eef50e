"""A local simulator of the RunTools activity API, for tests, benchmarks and demos.

It serves `GET /v1/activity` and the thread and sandbox feeds as the public
docs describe them, with seeded realistic events, keyset pagination, late
events, bursts, retention, expiring cursors and injected faults. Control
endpoints under `/_control` and the methods of `Simulator` inject events,
return the ground truth and change the behaviour while it runs.

    async with Simulator(SimulatorConfig(backlog=1000)) as simulator:
        ...  # point a client at simulator.url with the key rt_test_simulator
"""

from tailer.simulator.cli import add_simulate_arguments, config_from_arguments
from tailer.simulator.config import ApiKey, FaultRates, SimulatorConfig
from tailer.simulator.server import Simulator

__all__ = [
    "ApiKey",
    "FaultRates",
    "Simulator",
    "SimulatorConfig",
    "add_simulate_arguments",
    "config_from_arguments",
]
