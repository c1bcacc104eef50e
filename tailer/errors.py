"""Exceptions raised by runtools-tail.

Every error the package raises derives from `TailerError`. aiohttp's own
exceptions are translated in `tailer.client` and never reach callers.

    TailerError
    ├── ConfigError                  invalid option, config value or token source
    ├── ApiError                     the API answered with something unusable
    │   ├── AuthenticationError      401: the token is missing, wrong or expired
    │   ├── AccessDeniedError        403: the token may not read what was requested
    │   ├── BadRequestError          400: a parameter was rejected
    │   │   └── CursorRejectedError  400 on a request that carried a cursor
    │   ├── PageFormatError          a 200 whose body is not a page we can read
    │   └── RetriesExhaustedError    a retriable failure outlived the retry budget
    └── PageWalkStalledError         the API kept returning the same page or cursor

`retriable` tells the caller whether trying the same request again later can
succeed without anyone changing the config or the credentials.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "CursorRejectedError",
    "PageFormatError",
    "PageWalkStalledError",
    "RetriesExhaustedError",
    "TailerError",
]


class TailerError(Exception):
    """Root of every error raised by runtools-tail."""

    retriable: bool = False


class ConfigError(TailerError):
    """An option, config value or token source is invalid.

    `problems` lists every invalid item, so a user fixes them all in one go.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ApiError(TailerError):
    """The API returned a response the tailer cannot use.

    `status` is the HTTP status, or None when no response arrived.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ApiError):
    """The API rejected the credentials (401)."""


class AccessDeniedError(ApiError):
    """The credentials are valid but may not read the requested events (403)."""


class BadRequestError(ApiError):
    """The API rejected a request parameter (400)."""


class CursorRejectedError(BadRequestError):
    """The API rejected a page cursor, usually because it expired (400)."""


class PageFormatError(ApiError):
    """A 200 response is not JSON, or its events or paging fields cannot be found."""


class RetriesExhaustedError(ApiError):
    """A network error, 429 or 5xx persisted through every allowed retry."""


class PageWalkStalledError(TailerError):
    """A page walk returned a cursor it had already followed, or made no progress."""

    retriable = True
