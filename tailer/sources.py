"""Turn a source's config section into the client options and poller settings it needs."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tailer.client import ClientOptions
from tailer.config import SourceConfig
from tailer.credentials import Token
from tailer.errors import ConfigError
from tailer.filters import QueryFilters
from tailer.poller import PollerSettings, TimeBound
from tailer.retry import RetryPolicy
from tailer.timeparse import NS_PER_SECOND

__all__ = ["build_source", "build_sources"]


def build_sources(
    sections: Mapping[str, SourceConfig], environ: Mapping[str, str] | None = None
) -> dict[str, tuple[ClientOptions, PollerSettings]]:
    """Build every source; raise one ConfigError that lists the problems of all of them."""
    built: dict[str, tuple[ClientOptions, PollerSettings]] = {}
    problems: list[str] = []
    for name, section in sections.items():
        try:
            built[name] = build_source(name, section, environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return built


def build_source(
    name: str, config: SourceConfig, environ: Mapping[str, str] | None = None
) -> tuple[ClientOptions, PollerSettings]:
    """Build a following source; raise ConfigError when its token cannot be found."""
    env = os.environ if environ is None else environ
    if config.token_file is not None:
        token = Token.from_file(config.token_file, setting=f"sources.{name}.token_file")
    else:
        value = env.get(config.token_env, "").strip()
        if not value:
            raise ConfigError(f"source {name!r}: no API key: set {config.token_env} or token_file")
        token = Token(value, source=f"${config.token_env}")
    client = ClientOptions(
        base_url=config.api_url,
        token=token,
        auth_header=config.auth_header,
        timeout=config.timeout_secs,
        proxy=config.proxy,
        ca_file=str(config.ca_file) if config.ca_file else None,
        verify_tls=config.verify_tls,
        retry=RetryPolicy(max_delay=config.retry_max_wait_secs, max_attempts=None),
    )
    poller = PollerSettings(
        since=TimeBound.parse(config.since),
        follow=True,
        filters=QueryFilters.from_mapping(config.filters),
        lateness_ns=int(config.lateness_secs * NS_PER_SECOND),
        page_size=config.page_size,
        min_interval=config.poll_interval_secs,
        max_interval=max(config.poll_max_interval_secs, config.poll_interval_secs),
        window_capacity=config.max_buffered_events,
    )
    return client, poller
