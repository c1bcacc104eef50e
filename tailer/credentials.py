"""Where the API token comes from, and the rule that it never appears in text.

A token read from a file follows the file. In a container the file is often a
Kubernetes Secret, which the kubelet updates in place when the secret rotates.
It writes the new files into a fresh directory and swaps the `..data` symlink
that the visible file points through. A secret mounted with `subPath` is never
updated, so mount the whole volume.

`Token.reveal` notices a change by the file's identity (device, inode, size,
modification time), checked at most once per second. `Token.reload` reads the
file at once, for the client to call after a 401.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from tailer.errors import ConfigError
from tailer.logs import RepeatedLog
from tailer.redaction import register_secret

__all__ = ["TOKEN_ENV_VAR", "Token", "warn_if_readable_by_others"]

TOKEN_ENV_VAR = "RUNTOOLS_API_KEY"

# Minimum seconds between two looks by `reveal` at the token file's identity.
FILE_CHECK_INTERVAL_SECS = 1.0
# A token file that cannot be read is logged at most this often.
_RELOAD_FAILURE_LOG_INTERVAL_SECS = 60.0
_RELOAD_FAILED = "token.reload_failed"

_log = structlog.get_logger("tailer.credentials")

# (device, inode, size, modification time in ns): a change means new content.
# NOTE: a rewrite in place that keeps the size and lands within the filesystem's
# timestamp granularity keeps the identity too, so only a 401 reveals it.
FileIdentity = tuple[int, int, int, int]


def _identity(status: os.stat_result) -> FileIdentity:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _read_token_file(file: Path, setting: str) -> tuple[str, FileIdentity]:
    """Read a token file; return its stripped content and the identity of what was read.

    The identity comes from the open file, so it describes the content even
    when the path is swapped between the read and the check. `setting` names
    where the path was configured, for the error message.
    """
    try:
        with file.open("rb") as handle:
            identity = _identity(os.fstat(handle.fileno()))
            value = handle.read().decode("utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"token file {str(file)!r} not found; check {setting}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"token file {str(file)!r} is not UTF-8 text; write the API key into it ({setting})"
        ) from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"token file {str(file)!r} cannot be read ({reason}); check {setting}"
        ) from None
    if not value:
        raise ConfigError(
            f"token file {str(file)!r} is empty; write the API key into it ({setting})"
        )
    return value, identity


@dataclass
class _FollowedFile:
    """The file a token was read from, and when it was last checked for a new token."""

    path: Path
    setting: str
    identity: FileIdentity
    clock: Callable[[], float]
    checked_at: float
    failure_log: RepeatedLog


class Token:
    """An API token. `repr` and `str` never show its value; `reveal()` does.

    Read from a file, the token is the file's content without surrounding
    whitespace, so a trailing newline from `echo` or a Kubernetes secret is fine.
    Every value a token takes is registered with `tailer.redaction`, so log
    lines show `***` in its place.
    """

    __slots__ = ("_file", "_source", "_value")

    def __init__(self, value: str, *, source: str) -> None:
        register_secret(value)
        self._value = value
        self._source = source
        self._file: _FollowedFile | None = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        setting: str = "--token-file",
        clock: Callable[[], float] = time.monotonic,
    ) -> Token:
        """Read the token from a file, and follow the file as it changes.

        Raises ConfigError when the file is missing, unreadable or empty. Logs
        `file.permissions_too_open` when other users may read it. `setting`
        names the option or config field that gave the path, for messages.
        `clock` gives the monotonic seconds that pace the checks for a new file.
        """
        file = Path(path)
        value, identity = _read_token_file(file, setting)
        warn_if_readable_by_others(file, "token file")

        token = cls(value, source=f"file {file}")
        token._file = _FollowedFile(
            path=file,
            setting=setting,
            identity=identity,
            clock=clock,
            checked_at=clock(),
            failure_log=RepeatedLog(_RELOAD_FAILURE_LOG_INTERVAL_SECS, clock),
        )
        return token

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str]) -> Token | None:
        value = environ.get(TOKEN_ENV_VAR, "").strip()
        return cls(value, source=f"${TOKEN_ENV_VAR}") if value else None

    @property
    def source(self) -> str:
        """Where the token came from, safe to show in messages."""
        return self._source

    def reveal(self) -> str:
        """Return the token's value, read again first if its file has changed.

        The file is checked at most once per second, by one `stat` call. A file
        that cannot be read keeps the previous value, and a warning is logged.
        """
        file = self._file
        if file is not None:
            now = file.clock()
            if now - file.checked_at >= FILE_CHECK_INTERVAL_SECS:
                file.checked_at = now
                self._reload_if_changed(file)
        return self._value

    def reload(self) -> bool:
        """Read the token file now, whatever its identity; return whether the value changed.

        The client calls this after a 401. A token not read from a file never changes.
        """
        file = self._file
        if file is None:
            return False
        file.checked_at = file.clock()
        return self._reload(file, "rejected by the API")

    def _reload_if_changed(self, file: _FollowedFile) -> None:
        try:
            identity = _identity(os.stat(file.path))
        except OSError as exc:
            self._log_reload_failure(file, f"{exc.__class__.__name__}: {exc.strerror or exc}")
            return
        if identity != file.identity:
            self._reload(file, "file changed")

    def _reload(self, file: _FollowedFile, reason: str) -> bool:
        try:
            value, identity = _read_token_file(file.path, file.setting)
        except ConfigError as exc:
            # In-place writers truncate before they write, so an empty or missing file
            # may be a moment in a rotation. The old token stays until the next check.
            self._log_reload_failure(file, str(exc))
            return False

        file.identity = identity
        file.failure_log.reset(str(file.path), _RELOAD_FAILED)
        if value == self._value:
            return False
        register_secret(value)
        self._value = value
        _log.info("token.reloaded", path=str(file.path), reason=reason)
        return True

    def _log_reload_failure(self, file: _FollowedFile, error: str) -> None:
        path = str(file.path)
        file.failure_log.log(_log, path, _RELOAD_FAILED, path=path, error=error)

    def __repr__(self) -> str:
        return f"Token(source={self._source!r}, value='***')"

    __str__ = __repr__


def warn_if_readable_by_others(path: str | os.PathLike[str], what: str) -> bool:
    """Log `file.permissions_too_open` when users other than the owner may read `path`.

    `what` names what the file contains, such as "token file" or "config file". The
    line names the path, the mode and the fix, never the content. Group read
    access is accepted when it is how this process reads a file that another
    user owns, as with a Kubernetes secret volume with `fsGroup` and mode 0440.
    Returns whether it warned. A file that cannot be examined is left to the
    caller's read to report, and on Windows, where modes mean little, nothing
    is checked.
    """
    if os.name == "nt":
        return False
    try:
        status = os.stat(path)
    except OSError:
        return False

    readable_by = _readable_by_others(status, os.geteuid(), os.getgroups(), os.getegid())
    if readable_by is None:
        return False

    file = Path(path)
    if (file.parent / "..data").is_symlink():
        fix = "set defaultMode: 0400 (or 0440 with fsGroup) on the Kubernetes secret volume"
    else:
        fix = f"chmod 600 {file}"
    _log.warning(
        "file.permissions_too_open",
        path=str(file),
        kind=what,
        mode=f"{stat.S_IMODE(status.st_mode):04o}",
        readable_by=readable_by,
        fix=fix,
    )
    return True


def _readable_by_others(
    status: os.stat_result, euid: int, groups: list[int], egid: int
) -> str | None:
    """Return who besides the owner may read the file ("group", "others", "group and others")."""
    mode = status.st_mode
    group = bool(mode & stat.S_IRGRP)
    others = bool(mode & stat.S_IROTH)
    if group and euid != 0 and status.st_uid != euid and status.st_gid in (egid, *groups):
        # This process reads the file through its group, so the group bit is needed.
        group = False
    if group and others:
        return "group and others"
    if group:
        return "group"
    if others:
        return "others"
    return None
