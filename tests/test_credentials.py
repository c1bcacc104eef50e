"""Token: reading, following a rotated file, and the permission warning.

A fake monotonic clock paces the file checks, so nothing sleeps. Kubernetes
secret volumes are rebuilt in tmp_path with the same symlink layout the kubelet
uses: `key -> ..data/key`, `..data -> ..<timestamp>`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from structlog.typing import EventDict

import tailer.credentials
from tailer.credentials import Token, _readable_by_others, warn_if_readable_by_others
from tailer.errors import ConfigError
from tailer.redaction import redact_text

OLD_KEY = "rt_test_old0000000001"
NEW_KEY = "rt_test_new0000000002"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Capture structlog events from tailer.credentials, whatever logging an earlier test set up."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            monkeypatch.setattr(
                tailer.credentials, "_log", structlog.get_logger("tailer.credentials")
            )
            yield logs
    finally:
        structlog.configure(**saved)


def private_file(path: Path, content: str) -> Path:
    path.write_text(content)
    path.chmod(0o600)
    return path


class SecretVolume:
    """A directory laid out as the kubelet lays out a mounted Kubernetes Secret."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.generation = 0
        self._write(key)
        (root / "key").symlink_to("..data/key")

    @property
    def path(self) -> Path:
        return self.root / "key"

    def _write(self, key: str) -> None:
        self.generation += 1
        directory = self.root / f"..2026_05_10_00_00_0{self.generation}"
        directory.mkdir()
        private_file(directory / "key", key + "\n")
        link = self.root / "..data_tmp"
        link.symlink_to(directory.name)
        os.replace(link, self.root / "..data")

    def rotate(self, key: str) -> None:
        """Write `key` into a new directory, swap `..data` to it, and remove the old one."""
        old = (self.root / "..data").readlink()
        self._write(key)
        shutil.rmtree(self.root / old)


# --- reading --------------------------------------------------------------------------


def test_repr_hides_value() -> None:
    token = Token(OLD_KEY, source="$RUNTOOLS_API_KEY")

    assert repr(token) == "Token(source='$RUNTOOLS_API_KEY', value='***')"
    assert str(token) == repr(token)
    assert token.reveal() == OLD_KEY


def test_token_registered_for_redaction() -> None:
    Token("tok-registered-91c3", source="test")

    assert redact_text("sent tok-registered-91c3") == "sent ***"


def test_from_file_strips_whitespace(tmp_path: Path) -> None:
    token = Token.from_file(private_file(tmp_path / "key", f"  {OLD_KEY}\n\n"))

    assert token.reveal() == OLD_KEY
    assert token.source == f"file {tmp_path / 'key'}"


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda path: None, "not found; check --token-file"),
        (
            lambda path: path.write_text(" \n"),
            "is empty; write the API key into it (--token-file)",
        ),
        (
            lambda path: path.mkdir(),
            "cannot be read (Is a directory); check --token-file",
        ),
        (
            lambda path: path.write_bytes(b"\xff\xfe"),
            "is not UTF-8 text; write the API key into it (--token-file)",
        ),
    ],
    ids=["missing", "empty", "directory", "binary"],
)
def test_unusable_file_rejected(
    tmp_path: Path, setup: Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "key"
    setup(path)

    with pytest.raises(ConfigError) as caught:
        Token.from_file(path)

    assert str(caught.value) == f"token file {str(path)!r} {problem}"


def test_missing_file_names_config_field(tmp_path: Path) -> None:
    path = tmp_path / "key"

    with pytest.raises(ConfigError) as caught:
        Token.from_file(path, setting="sources.main.token_file")

    assert str(caught.value) == f"token file {str(path)!r} not found; check sources.main.token_file"


def test_from_env_strips_or_none() -> None:
    token = Token.from_env({"RUNTOOLS_API_KEY": f" {OLD_KEY}\n"})

    assert token is not None
    assert token.reveal() == OLD_KEY
    assert token.source == "$RUNTOOLS_API_KEY"
    assert Token.from_env({"RUNTOOLS_API_KEY": "  "}) is None


# --- following the file ---------------------------------------------------------------


def test_change_seen_after_one_second(
    tmp_path: Path, clock: FakeMonotonic, captured_logs: list[EventDict]
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    path.write_text(NEW_KEY + "-longer")

    clock.now += 0.9
    before = token.reveal()
    clock.now += 0.1
    after = token.reveal()

    assert before == OLD_KEY
    assert after == NEW_KEY + "-longer"
    assert captured_logs == [
        {
            "event": "token.reloaded",
            "log_level": "info",
            "path": str(path),
            "reason": "file changed",
        }
    ]


def test_file_checked_once_per_second(
    tmp_path: Path, clock: FakeMonotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    checks: list[float] = []
    real_identity = tailer.credentials._identity

    def counting_identity(status: os.stat_result) -> tailer.credentials.FileIdentity:
        checks.append(clock.now)
        return real_identity(status)

    monkeypatch.setattr(tailer.credentials, "_identity", counting_identity)
    for _ in range(30):
        clock.now += 0.25
        token.reveal()

    assert checks == [501.0, 502.0, 503.0, 504.0, 505.0, 506.0, 507.0]


def test_unchanged_file_not_read_again(
    tmp_path: Path, clock: FakeMonotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    reads: list[Path] = []
    real_read = tailer.credentials._read_token_file

    def counting_read(file: Path, setting: str) -> tuple[str, tailer.credentials.FileIdentity]:
        reads.append(file)
        return real_read(file, setting)

    monkeypatch.setattr(tailer.credentials, "_read_token_file", counting_read)
    for _ in range(5):
        clock.now += 1
        token.reveal()

    assert reads == []


def test_same_size_rewrite_seen(tmp_path: Path, clock: FakeMonotonic) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    status = path.stat()
    path.write_text(NEW_KEY)
    # The kernel's file timestamps are coarse, so set a later one as a slower writer would.
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10_000_000))

    clock.now += 1

    assert token.reveal() == NEW_KEY


def test_kubernetes_rotation_followed(tmp_path: Path, clock: FakeMonotonic) -> None:
    volume = SecretVolume(tmp_path, OLD_KEY)
    token = Token.from_file(volume.path, clock=clock)

    volume.rotate(NEW_KEY)
    clock.now += 1
    first = token.reveal()
    volume.rotate(OLD_KEY)
    clock.now += 1
    second = token.reveal()

    assert first == NEW_KEY
    assert second == OLD_KEY
    assert [path.name for path in sorted(tmp_path.iterdir())] == [
        "..2026_05_10_00_00_03",
        "..data",
        "key",
    ]


def test_empty_file_keeps_old_token(
    tmp_path: Path, clock: FakeMonotonic, captured_logs: list[EventDict]
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)

    path.write_text("")
    values = []
    for _ in range(3):
        clock.now += 1
        values.append(token.reveal())
    path.write_text(NEW_KEY)
    clock.now += 1
    values.append(token.reveal())

    assert values == [OLD_KEY, OLD_KEY, OLD_KEY, NEW_KEY]
    assert captured_logs == [
        {
            "event": "token.reload_failed",
            "log_level": "warning",
            "repeats": 0,
            "path": str(path),
            "error": f"token file {str(path)!r} is empty; write the API key into it (--token-file)",
        },
        {
            "event": "token.reloaded",
            "log_level": "info",
            "path": str(path),
            "reason": "file changed",
        },
    ]


def test_missing_file_keeps_old_token(
    tmp_path: Path, clock: FakeMonotonic, captured_logs: list[EventDict]
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)

    path.unlink()
    clock.now += 1

    assert token.reveal() == OLD_KEY
    assert captured_logs == [
        {
            "event": "token.reload_failed",
            "log_level": "warning",
            "repeats": 0,
            "path": str(path),
            "error": "FileNotFoundError: No such file or directory",
        }
    ]


def test_reload_failures_rate_limited(
    tmp_path: Path, clock: FakeMonotonic, captured_logs: list[EventDict]
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)

    path.unlink()
    for _ in range(61):
        clock.now += 1
        token.reveal()

    assert [(entry["event"], entry["repeats"]) for entry in captured_logs] == [
        ("token.reload_failed", 0),
        ("token.reload_failed", 59),
    ]


def test_reload_reads_at_once(
    tmp_path: Path, clock: FakeMonotonic, captured_logs: list[EventDict]
) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    path.write_text(NEW_KEY)

    before = token.reveal()
    changed = token.reload()
    after = token.reveal()
    changed_again = token.reload()

    assert (before, changed, after, changed_again) == (OLD_KEY, True, NEW_KEY, False)
    assert captured_logs == [
        {
            "event": "token.reloaded",
            "log_level": "info",
            "path": str(path),
            "reason": "rejected by the API",
        }
    ]


def test_reloaded_value_registered(tmp_path: Path, clock: FakeMonotonic) -> None:
    path = private_file(tmp_path / "key", OLD_KEY)
    token = Token.from_file(path, clock=clock)
    path.write_text("rotated-key-5c7e19")

    token.reload()

    assert redact_text("sent rotated-key-5c7e19") == "sent ***"


def test_token_without_file_never_reloads() -> None:
    token = Token(OLD_KEY, source="$RUNTOOLS_API_KEY")

    assert token.reload() is False
    assert token.reveal() == OLD_KEY


# --- permissions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "readable_by"),
    [(0o644, "group and others"), (0o640, "group"), (0o604, "others")],
)
def test_open_file_warned(
    tmp_path: Path, captured_logs: list[EventDict], mode: int, readable_by: str
) -> None:
    path = tmp_path / "tail.yaml"
    path.write_text("sources: {}\n")
    path.chmod(mode)

    warned = warn_if_readable_by_others(path, "config file")

    assert warned is True
    assert captured_logs == [
        {
            "event": "file.permissions_too_open",
            "log_level": "warning",
            "path": str(path),
            "kind": "config file",
            "mode": f"{mode:04o}",
            "readable_by": readable_by,
            "fix": f"chmod 600 {path}",
        }
    ]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_file_not_warned(tmp_path: Path, captured_logs: list[EventDict], mode: int) -> None:
    path = tmp_path / "key"
    path.write_text(OLD_KEY)
    path.chmod(mode)

    assert warn_if_readable_by_others(path, "token file") is False
    assert captured_logs == []


def test_missing_file_not_warned(tmp_path: Path, captured_logs: list[EventDict]) -> None:
    assert warn_if_readable_by_others(tmp_path / "absent", "token file") is False
    assert captured_logs == []


def test_kubernetes_volume_fix_named(tmp_path: Path, captured_logs: list[EventDict]) -> None:
    volume = SecretVolume(tmp_path, OLD_KEY)
    (tmp_path / "..data" / "key").chmod(0o644)

    warn_if_readable_by_others(volume.path, "token file")

    [entry] = captured_logs
    assert entry["path"] == str(volume.path)
    assert entry["mode"] == "0644"
    assert entry["fix"] == (
        "set defaultMode: 0400 (or 0440 with fsGroup) on the Kubernetes secret volume"
    )


def test_from_file_warns_without_content(tmp_path: Path, captured_logs: list[EventDict]) -> None:
    path = tmp_path / "key"
    path.write_text(OLD_KEY)
    path.chmod(0o644)

    Token.from_file(path)

    assert [entry["event"] for entry in captured_logs] == ["file.permissions_too_open"]
    assert captured_logs[0]["kind"] == "token file"
    assert OLD_KEY not in repr(captured_logs)


def fake_status(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, gid, 10, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "owner", "group", "euid", "groups", "expected"),
    [
        # Owned by this process's user: every group or other bit is too open.
        (0o100640, 1000, 2000, 1000, [2000], "group"),
        (0o100600, 1000, 2000, 1000, [2000], None),
        # Owned by root, read through this process's group, as with fsGroup: fine.
        (0o100440, 0, 2000, 1000, [2000], None),
        (0o100444, 0, 2000, 1000, [2000], "others"),
        # The process does not belong to the file's group, so the group is others.
        (0o100440, 0, 3000, 1000, [2000], "group"),
        # Root reads everything, so the group bit is never needed.
        (0o100440, 1000, 2000, 0, [0], "group"),
    ],
)
def test_group_read_needed_by_process(
    mode: int, owner: int, group: int, euid: int, groups: list[int], expected: str | None
) -> None:
    status = fake_status(mode, owner, group)

    assert _readable_by_others(status, euid, groups, groups[0]) == expected


def test_sink_secret_file_readable_by_others_warned(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from tailer.sinks._http import read_secret

    secret_file = tmp_path / "hec-token"
    secret_file.write_text("hec-token-value-1234\n")
    secret_file.chmod(0o644)

    with capture_logs() as logs:
        value = read_secret(None, None, secret_file, "token")

    warnings = [entry for entry in logs if entry["event"] == "file.permissions_too_open"]
    assert value == "hec-token-value-1234"
    assert len(warnings) == 1
    assert warnings[0]["path"] == str(secret_file)
    assert "hec-token-value-1234" not in repr(logs)
