"""The single-writer lock on a state directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tailer.errors import ConfigError

__all__ = ["StateLock"]


class StateLock:
    """An exclusive `flock` on `<state_dir>/lock`, held while the process runs.

    The kernel releases it when the process dies, `kill -9` included, so a
    crash never leaves a stale lock behind. The file records the holder's PID
    for the error message of the next process.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"state directory {str(self.path.parent)!r} cannot be used: "
                f"{exc.strerror or exc}; check state_dir and the permissions of its parents"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"state directory {str(self.path.parent)!r} is in use by another runtools-tail "
                f"process (PID {holder}); stop it first, or give this one its own state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock; releasing twice is harmless."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
