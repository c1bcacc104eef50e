"""Low-level file writes and syncs shared by the file sink, the dead-letter file and the journal."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "fsync_file", "write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`: os.write may write less than asked, on a full disk for one."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_file(path: Path) -> None:
    """Flush the contents of the file at `path` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make renames, creations and deletions in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
