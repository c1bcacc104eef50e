"""Machinery shared by the HTTP sinks (webhook, Splunk HEC): URLs, secrets, TLS, proxies."""

from __future__ import annotations

import os
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import aiohttp
from pydantic import SecretStr, model_validator

from tailer.config import PathOption
from tailer.credentials import warn_if_readable_by_others
from tailer.errors import ConfigError
from tailer.sinks.base import SinkConfig

__all__ = [
    "TlsOptions",
    "build_ssl_context",
    "check_one_source",
    "display_url",
    "read_prefix",
    "read_secret",
    "select_proxy",
    "split_url",
    "tls_problems",
]


def check_one_source(model: SinkConfig, label: str, *fields: str) -> None:
    """Raise ValueError unless exactly one of `fields` is set on `model`."""
    set_fields = [name for name in fields if getattr(model, name) is not None]
    if len(set_fields) != 1:
        choices = ", ".join(fields)
        found = ", ".join(set_fields) if set_fields else "none"
        raise ValueError(f"{label} needs exactly one of {choices}; found {found}")


class TlsOptions(SinkConfig):
    """TLS settings. `ca_file` adds CAs to the system's trust store instead of replacing it.

    `cert_file` is a client certificate in PEM. `key_file` is its private key,
    needed unless `cert_file` contains the key as well. `verify: false` turns
    off checking of the receiver's certificate and host name, and is the only
    way to do so. `ca_file` is then unused.
    """

    ca_file: PathOption | None = None
    cert_file: PathOption | None = None
    key_file: PathOption | None = None
    verify: bool = True

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> TlsOptions:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file is set without tls.cert_file; set both")
        return self


def split_url(url: str) -> SplitResult | None:
    """Split an http(s) URL with a host and a valid port, or return None."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError unless the port is a number in 0-65535
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts


def display_url(url: str) -> str:
    """Return the URL without user info, and with its query (which may hold a token) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    query = "?***" if parts.query else ""
    if not parts.netloc:
        # No "//": `host:8088` would read as scheme "host", so show the text as
        # written, up to the query, and without anything before an "@".
        written = url.partition("?")[0].partition("#")[0].rpartition("@")[2]
        return f"{written}{query}"
    host = parts.netloc.rpartition("@")[2]
    scheme = f"{parts.scheme}:" if parts.scheme else ""
    return f"{scheme}//{host}{parts.path}{query}"


def read_secret(
    inline: SecretStr | None,
    env: str | None,
    file: Path | None,
    option: str,
    *,
    warn: bool = True,
) -> str:
    """Return a secret from the config, the environment or a file, or raise ConfigError.

    With `warn`, a file that others may read is logged; a check before `open` passes
    False, so that the warning appears once.
    """
    if inline is not None:
        return inline.get_secret_value()
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{option}: environment variable {env} is not set or empty")
        return value
    assert file is not None
    if warn:
        warn_if_readable_by_others(file, f"{option} file")
    try:
        value = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{option}: file {str(file)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{option}: file {str(file)!r} cannot be read: {exc.__class__.__name__}"
        ) from None
    if not value:
        raise ConfigError(f"{option}: file {str(file)!r} is empty")
    return value


def tls_problems(tls: TlsOptions) -> list[str]:
    """Load the TLS files as `build_ssl_context` does; return the problem, if any."""
    if tls.ca_file is None and tls.cert_file is None:
        # Nothing here can fail, and `open` loads the system CAs anyway.
        return []
    try:
        build_ssl_context(tls)
    except ConfigError as exc:
        return exc.problems
    return []


def build_ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """Build the client TLS context: system CAs plus `ca_file`, the client certificate if any."""
    context = ssl.create_default_context()
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls.ca_file {str(tls.ca_file)!r} cannot be loaded ({exc}); "
                "it must be a PEM file of CA certificates"
            ) from None
    if tls.cert_file is not None:
        key_path = tls.key_file or tls.cert_file

        def reject_key_password() -> bytes:
            # Without this callback, OpenSSL would prompt for a password on the terminal.
            raise ConfigError(
                f"the private key in {str(key_path)!r} is encrypted; "
                "this sink needs an unencrypted key"
            )

        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password=reject_key_password)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(repr(str(path)) for path in (tls.cert_file, tls.key_file) if path)
            raise ConfigError(
                f"tls.cert_file/tls.key_file ({files}) cannot be loaded ({exc}); "
                "they must be a PEM certificate and its unencrypted private key"
            ) from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def select_proxy(option: str | None, parts: SplitResult) -> str | None:
    """Return None when NO_PROXY lists the host, else the option, else the environment's."""
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    if option is not None:
        return option
    return urllib.request.getproxies().get(parts.scheme)


async def read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read up to `limit` bytes of the response body; the rest is dropped with the connection."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
