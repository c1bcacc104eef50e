"""Low-level file writes shared by the file sink and the dead-letter file."""

from __future__ import annotations

import os

__all__ = ["write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`: os.write may write less than asked, on a full disk for one."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
