"""Exit codes of the `runtools-tail` command, documented in `--help` and the README."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EXIT_CODES_HELP", "ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    INTERNAL_ERROR = 1
    USAGE_ERROR = 2
    AUTH_ERROR = 3
    API_ERROR = 4
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODES_HELP = """\
exit codes:
  0    success; in follow mode, --until was reached
  1    internal error (a bug: please report it with the log)
  2    usage or config error: an invalid option, value, token file or CA file
  3    authentication failure: the API rejected the key (401) or its access (403)
  4    API error: a rejected request (400), an unreadable response, or retries exhausted
  130  interrupted by SIGINT (Ctrl-C)
  143  terminated by SIGTERM"""
