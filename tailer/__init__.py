"""runtools-tail: follow the RunTools activity feed and deliver every event once, oldest first."""

# The one place the version is set: pyproject.toml reads it from here. A literal,
# not importlib.metadata, because that import costs every start about 20 ms.
__version__ = "0.1.0"

__all__ = ["__version__"]
