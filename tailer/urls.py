"""The rule for API and receiver URLs: HTTPS, or plain HTTP only to this machine."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback", "url_problem"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, allow_insecure_http: bool, option: str | None) -> str | None:
    """Return why `url` is not acceptable, or None when it is.

    Plain HTTP to another host would send credentials unencrypted, so it needs
    the explicit `allow_insecure_http` (`--allow-insecure-http`) opt-in. The
    message starts with `option` when given; config errors name the field before it.
    """
    named = f"{option} {url!r}" if option else repr(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"{named} is invalid; expected https://host[:port], "
            "or http:// to this machine (localhost, 127.0.0.1, ::1)"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        return (
            f"{named} uses plain HTTP, which would send the API key unencrypted; "
            f"use https://, or set allow_insecure_http (--allow-insecure-http) to accept that"
        )
    return None
