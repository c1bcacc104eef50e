"""runtools-tail: follow the RunTools activity feed and deliver every event once, oldest first."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("runtools-tail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
