"""The sink contract: what every sink, bundled or third-party, implements.

A sink is registered under a type name in the `runtools_tail.sinks` entry-point
group, pointing at a `Sink` subclass. Its `config_model` is a pydantic model of
the sink's own options; the daemon validates the sink's config section with it.

The runner, not the sink, owns batching, filtering, encoding, retries, the
retry budget, dead letters and the offset. A sink only moves one batch.

Contract:

* `open(state)` is called once before the first `send`. `state` is the value
  the sink returned from its last confirmed `send` (None on first start), so a
  sink can repair what a crash left behind, such as a half-written line.
* `send(batch)` delivers the whole batch or raises `SinkError`. It returns a
  small JSON-serialisable state that the runner commits together with the
  offset, atomically. On any exception the runner sends the same batch again
  (same events, same `batch.key`), possibly after a restart. A sink must
  therefore accept a repeat. A file sink truncates back to its confirmed state
  on `open`, and an HTTP sink passes `batch.key` on as an idempotency key.
* A partial failure (some events written) is reported by raising; the runner
  resends the whole batch.
* `close()` releases resources; closing twice, or closing an unopened sink, is
  harmless.
* `reopen()` reopens output files, on SIGHUP; sinks without files ignore it.
* `credential_problems()` reads the secrets and TLS files that `open` needs and
  lists what is missing or unreadable, without opening anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tailer.errors import TailerError
from tailer.event import Event

__all__ = ["Batch", "Sink", "SinkConfig", "SinkError", "SinkState"]

SinkState = dict[str, Any] | None


class SinkConfig(BaseModel):
    """Base of every sink's own options. Unknown keys are errors, so typos surface."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SinkError(TailerError):
    """A batch could not be delivered.

    `retriable` is True when the same batch may succeed later. `retry_after`
    is the wait in seconds the receiver requested, if any.
    """

    def __init__(
        self, message: str, *, retriable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Batch:
    """Events a sink sends in one call, with their encoded payloads.

    `payloads[i]` is `events[i]` in the sink's encoding, without a trailing
    newline. `first_seq` and `last_seq` are the journal sequence numbers the
    batch spans (filtered-out events included), and `key` is derived from them:
    it is the same on every retry of this batch, across restarts too.
    """

    sink: str
    events: Sequence[Event]
    payloads: list[bytes]
    first_seq: int
    last_seq: int
    replay_of: str | None = None
    """The key of the dead-lettered batch this one sends again, for a replay."""
    encoding: str = "json"
    """The encoding of `payloads`: `json` and `ecs` are JSON objects, `cef` is text."""

    @property
    def key(self) -> str:
        if self.replay_of is not None:
            return f"{self.sink}:replay:{self.replay_of}:{self.last_seq}"
        return f"{self.sink}:{self.first_seq}-{self.last_seq}"

    @property
    def size_bytes(self) -> int:
        return sum(len(payload) for payload in self.payloads)


class Sink(ABC):
    """One destination. See the module docstring for the contract."""

    config_model: ClassVar[type[SinkConfig]]
    # Batch limits (`max_events`, `max_bytes`, `max_wait_secs`) for this type of sink,
    # used where its config section sets none. The runner's defaults fill the rest.
    batch_defaults: ClassVar[dict[str, float]] = {}
    # Events sent cut short to fit the receiver's size limit, counted by the sinks
    # that cut events (syslog). A class default, so a sink that never cuts, or whose
    # __init__ skips this one, still reads 0.
    truncated: int = 0

    def __init__(self, name: str, config: SinkConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def open(self, state: SinkState) -> None: ...

    @abstractmethod
    async def send(self, batch: Batch) -> SinkState: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def reopen(self) -> None:  # noqa: B027 - optional hook, empty for sinks without files
        """Reopen output files after an external rotation; nothing to do by default."""

    def credential_problems(self) -> list[str]:
        """Read the secrets and TLS files `open` will read; return every problem, by option.

        The daemon calls it for every sink before it starts any, so that all missing
        secrets and files are reported at once. Sinks without them keep this default.
        """
        return []
