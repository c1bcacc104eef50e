"""Where the API token comes from, and the rule that it never appears in text."""

from __future__ import annotations

import os
from pathlib import Path

from tailer.errors import ConfigError

__all__ = ["TOKEN_ENV_VAR", "Token"]

TOKEN_ENV_VAR = "RUNTOOLS_API_KEY"


class Token:
    """An API token. `repr` and `str` never show its value; `reveal()` does.

    Read from a file, the token is the file's content without surrounding
    whitespace, so a trailing newline from `echo` or a Kubernetes secret is fine.
    """

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, *, source: str) -> None:
        self._value = value
        self._source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Token:
        file = Path(path)
        try:
            value = file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"token file {str(file)!r} not found; check --token-file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"token file {str(file)!r} cannot be read: {exc.__class__.__name__}"
            ) from None
        if not value:
            raise ConfigError(f"token file {str(file)!r} is empty; write the API key into it")
        return cls(value, source=f"file {file}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str]) -> Token | None:
        value = environ.get(TOKEN_ENV_VAR, "").strip()
        return cls(value, source=f"${TOKEN_ENV_VAR}") if value else None

    @property
    def source(self) -> str:
        """Where the token came from, safe to show in messages."""
        return self._source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Token(source={self._source!r}, value='***')"

    __str__ = __repr__
