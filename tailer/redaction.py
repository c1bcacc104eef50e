"""Keep tokens, passwords and other secrets out of every log line.

A secret reaches a log line by many paths. An API error body quotes the
rejected key, a server echoes request headers, an exception carries a header in
its message or arguments, a stdlib logger inside aiohttp writes its own text, and
a config object's repr shows its fields. Masking the secret in each module that
logs catches only the paths someone thought of, and third-party log lines are
out of reach.

So one structlog processor, `redact_secrets`, runs last before rendering and
cleans every value of every event, in three layers:

1. Registered values. `register_secret` records each secret the process loads
   (the API token, a sink's password), and every occurrence is replaced by `***`,
   in any string, nested dicts and lists included.
2. Patterns, for secrets nobody registered: `Bearer`, `Basic` and `Splunk`
   credentials, RunTools keys (`rt_live_…`, `rt_test_…`), Standard Webhooks
   secrets (`whsec_…`), `Authorization`, `Proxy-Authorization` and `X-API-Key`
   headers written out in text, passwords in URL user info, and values of
   secret-named query parameters, assignments (`token=…`) and quoted keys
   (`"password": …`).
3. Field names. A field or dict key named like a secret (`token`, `password`,
   `x-api-key`, `signing_secret`…) has its whole value replaced.

Objects other than strings, numbers, dates and containers (dicts, lists, tuples,
sets) are converted with `str()` first, as the JSON renderer does, so their text
is cleaned too.
"""

from __future__ import annotations

import datetime
import functools
import re
import string
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_secrets",
    "redact_text",
    "redact_value",
    "register_secret",
]

REDACTED = "***"

# NOTE: values shorter than this are not registered, because masking them would
# garble ordinary words in every line. The patterns still apply to them.
MIN_SECRET_LENGTH = 4

# The shortest text any pattern below can match, such as `?key=x`.
_MIN_PATTERN_TEXT = 6

# Nested containers deeper than this are rendered whole with str() and cleaned as text.
_MAX_DEPTH = 8

_registry_lock = threading.Lock()
_registered: set[str] = set()
# Longest first, so a secret that contains another is masked whole. Replaced, never
# mutated, so readers on other threads need no lock.
_secrets: tuple[str, ...] = ()
_shortest_secret = 0

# Values that cannot hold text, left as they are.
_PLAIN_TYPES = (bool, int, float, type(None), datetime.date, datetime.time, datetime.timedelta)

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:token|secret|password|passwd|authorization|api_key|apikey|cookie)$"
)

# The patterns run on a lower-cased copy of the text and only at the places where
# `str.find` saw their first word: one regex over the whole text with every
# alternative, tried at each position, costs several microseconds per 100 characters.

# `name=value`, `name: value` or `"name": value`, found by the last word of the name.
_NAMED_VALUE_WORDS = ("authorization", "key", "passw", "secret", "sig", "token")
_NAMED_VALUE = re.compile(
    r"""
    (?P<word>authorization|key|passwd|password|secret|signature|sig|token)
    (?P<quote>["']?)
    (?P<separator>[ \t]*+[:=][ \t]*+)
    (?:
        "(?P<double>(?:[^"\\\n]|\\.)*+)"
      | '(?P<single>[^'\n]*+)'
      | (?P<bare>(?:(?:bearer|basic|splunk|digest|negotiate|ntlm|token|apikey)[ \t]++)?
                 [^\s"',;()\[\]{}<>&\#]++)
    )
    """,
    re.VERBOSE,
)
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_HEADER_NAMES = ("authorization", "api-key", "api_key", "apikey")

# The password in URL user info: scheme://user:password@host.
_USERINFO = re.compile(r"://[^\s/?#@:]*+:(?P<secret>[^\s/?#@]++)@")

# RunTools API keys and Standard Webhooks secrets, masked after their readable prefix.
_KEY_PREFIXES = ("rt_live_", "rt_test_", "whsec_")
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=_-]++")

# A credential after an HTTP authentication scheme, judged by `_is_credential`.
_SCHEMES = ("basic", "bearer", "splunk")
_SCHEME_CREDENTIAL = re.compile(r"(?:basic|bearer|splunk)[ \t]++(?P<secret>[a-z0-9._~+/-]++=*+)")
_CREDENTIAL_SYMBOLS = frozenset("0123456789._~+/-=")

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _is_credential(word: str) -> bool:
    """Tell a credential after `Bearer`/`Basic`/`Splunk` from an ordinary word.

    A word counts when it has 8 or more characters and a digit, a symbol or a
    capital letter after its first character: `Splunk rejected` and `Basic
    authentication` stay, `Bearer eyJhbGciOi` and `Basic dXNlcjpwYXNz` go.
    """
    if len(word) < 8:
        return False
    if not _CREDENTIAL_SYMBOLS.isdisjoint(word):
        return True
    return any(character.isupper() for character in word[1:])


def _at_word_start(folded: str, index: int) -> bool:
    return index == 0 or not folded[index - 1].isalnum()


def _named_value_span(folded: str, match: re.Match[str]) -> tuple[int, int] | None:
    """Return the span of the value to mask, or None when the name is not a secret's."""
    name_start = match.start()
    while name_start > 0 and folded[name_start - 1] in _NAME_CHARACTERS:
        name_start -= 1
    name = folded[name_start : match.end("word")]
    in_query = name_start > 0 and folded[name_start - 1] in "?&"
    header = name.endswith(_HEADER_NAMES)

    # `auth.token: variable X is not set` is prose. A colon counts after a quoted
    # key (JSON, a dict's repr) or a header name.
    if ":" in match.group("separator") and not match.group("quote") and not header:
        return None
    # `key` and `sig` alone are secret only as query parameters: `?key=…`, `&sig=…`.
    if match.group("word") in ("key", "signature", "sig") and not (header or in_query):
        return None

    if match.group("bare") is not None:
        end = match.end("bare")
        # `token=Token(source=…)` is the repr of an object, which shows its own fields.
        if folded[end : end + 1] == "(":
            return None
        return match.span("bare")
    group = "double" if match.group("double") is not None else "single"
    return match.span(group)


def _pattern_spans(text: str) -> list[tuple[int, int]]:
    """Find the spans of `text` that the patterns mask, in no particular order."""
    # Outside ASCII, str.lower() can change the length (İ becomes two characters),
    # and the spans found in `folded` must fit `text`.
    folded = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    spans: list[tuple[int, int]] = []

    if "=" in folded or ":" in folded:
        for word in _NAMED_VALUE_WORDS:
            index = folded.find(word)
            while index != -1:
                match = _NAMED_VALUE.match(folded, index)
                if match is not None and (span := _named_value_span(folded, match)):
                    spans.append(span)
                index = folded.find(word, index + 1)

    if "@" in folded:
        index = folded.find("://")
        while index != -1:
            match = _USERINFO.match(folded, index)
            if match is not None:
                spans.append(match.span("secret"))
            index = folded.find("://", index + 1)

    if "_" in folded:
        for prefix in _KEY_PREFIXES:
            index = folded.find(prefix)
            while index != -1:
                body = _KEY_BODY.match(text, index + len(prefix))
                if body is not None and _at_word_start(folded, index):
                    spans.append(body.span())
                index = folded.find(prefix, index + 1)

    if " " in folded or "\t" in folded:
        for scheme in _SCHEMES:
            index = folded.find(scheme)
            while index != -1:
                match = _SCHEME_CREDENTIAL.match(folded, index)
                if (
                    match is not None
                    and _at_word_start(folded, index)
                    and _is_credential(text[match.start("secret") : match.end("secret")])
                ):
                    spans.append(match.span("secret"))
                index = folded.find(scheme, index + 1)

    return spans


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace each span, overlapping ones merged, with `***`."""
    spans.sort()
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        if start >= position:
            pieces.append(text[position:start])
            pieces.append(REDACTED)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def register_secret(value: str) -> None:
    """Record a secret, so every later log line shows `***` wherever it appears.

    The value is registered as given, stripped of surrounding whitespace, and
    percent-encoded, the form it takes in a URL. Values shorter than 4
    characters are ignored. Registering a value again is harmless.
    """
    global _secrets, _shortest_secret

    forms = {value, value.strip(), quote(value.strip(), safe="")}
    with _registry_lock:
        added = {form for form in forms if len(form) >= MIN_SECRET_LENGTH} - _registered
        if not added:
            return
        _registered.update(added)
        _secrets = tuple(sorted(_registered, key=len, reverse=True))
        _shortest_secret = len(_secrets[-1])


def redact_text(text: str) -> str:
    """Return `text` with every registered secret and every secret-like pattern masked."""
    secrets = _secrets
    if secrets and len(text) >= _shortest_secret:
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
    if len(text) >= _MIN_PATTERN_TEXT:
        spans = _pattern_spans(text)
        if spans:
            text = _mask_spans(text, spans)
    return text


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """Return whether a field or key named `name` contains a secret, ignoring case.

    True for `token`, `secret`, `password`, `passwd`, `authorization`,
    `api_key`, `apikey` and `cookie`, alone or at the end of a longer name
    (`access_token`, `X-API-Key`, `Proxy-Authorization`). `token_file` and
    `auth_header` name where a secret is or how it is sent, so they stay.
    """
    normalized = name.lower().replace("-", "_")
    return _SECRET_NAME.search(normalized) is not None


def redact_value(value: object, _depth: int = 0) -> object:
    """Return a copy of `value` with secrets masked, walking dicts, lists, tuples and sets.

    Strings are cleaned by `redact_text`. In a dict, the value of a key that
    `is_secret_name` accepts is replaced whole. Numbers, booleans, None and
    dates are returned as they are, and any other object becomes its cleaned `str()`.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if _depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return _redact_mapping(value, _depth + 1)
        if isinstance(value, list | tuple | set | frozenset):
            return [redact_value(item, _depth + 1) for item in value]
    return redact_text(str(value))


def _redact_mapping(
    mapping: Mapping[Any, Any], depth: int, kept: frozenset[str] = frozenset()
) -> dict[Any, Any]:
    cleaned: dict[Any, Any] = {}
    for key, item in mapping.items():
        if key in kept:
            cleaned[key] = item
            continue
        if isinstance(key, str):
            key = str(key)  # a subclass such as multidict's `istr` becomes a plain str
            if is_secret_name(key) and item is not None:
                cleaned[redact_text(key)] = REDACTED
                continue
            key = redact_text(key)
        if type(item) is str:
            cleaned[key] = redact_text(item)
        else:
            cleaned[key] = redact_value(item, depth)
    return cleaned


# Fields that structlog's own processors write (`add_log_level`, `TimeStamper`),
# which cannot contain a secret.
_GENERATED_FIELDS = frozenset({"level", "timestamp"})


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Mask secrets in every field of a log event, as a structlog processor.

    Install it after `format_exc_info`, so exception text is cleaned too, and
    right before the renderer, so no later processor adds uncleaned text.
    `level` and `timestamp` are left as they are.
    """
    return _redact_mapping(event_dict, 1, _GENERATED_FIELDS)
