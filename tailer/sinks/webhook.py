"""The webhook sink: POSTs each batch to an HTTP(S) endpoint, signed per Standard Webhooks.

Modes choose the body:

* `json_array` (default): one POST per batch, a JSON array of the events.
* `ndjson`: one POST per batch, one event per line, each line ending in a newline.
* `single`: one POST per event, in order. The batch is confirmed only when every
  POST succeeded. When event `i` fails, the events before it were delivered, and
  the runner resends the whole batch, so they repeat. Each event keeps the key
  `"{batch.key}:{i}"` (`i` counts from 0) on every send, so a receiver that
  deduplicates on it drops the repeats.

Every request carries `Idempotency-Key`, `webhook-id` and `webhook-timestamp`.
The key and the id are equal. Both come from `batch.key`, so they stay the same
on every retry of a batch. With a signing secret, `webhook-signature` is
`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, as the
Standard Webhooks specification defines it. With `gzip`, the signature covers
the uncompressed body: the JSON a receiver verifies after decoding the request.

Statuses follow `tailer.retry`: 2xx confirms the batch; 408, 429 and 5xx other
than 501 raise a retriable `SinkError` carrying the `Retry-After` wait; every
other status, 3xx included because redirects are not followed, raises a final
one, so the runner dead-letters the batch instead of retrying it forever. A
network error, a timeout or a failed TLS handshake is retriable: the receiver
never accepted the batch, and fixing the cause needs no change to the batch.

Secrets (the bearer token, the basic password, the signing secret) come from
the config, an environment variable or a file, and are read again on every
`open()`. The sink puts them in no `repr`, log or error message of its own, and
replaces them by `***` where a receiver echoes them verbatim in an error body.

Proxies: the `proxy` option, else `HTTPS_PROXY`/`HTTP_PROXY` from the
environment; a host listed in `NO_PROXY` is reached directly either way. The
proxy is chosen here rather than with aiohttp's `trust_env`, because that also
reads ~/.netrc, whose Basic credentials aiohttp would send to the receiver, or
reject next to an explicit Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
import structlog
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from tailer import __version__
from tailer.clock import Clock, SystemClock
from tailer.config import PathOption
from tailer.errors import ConfigError
from tailer.redaction import register_secret
from tailer.retry import is_retriable_status, parse_retry_after
from tailer.sinks._http import (
    TlsOptions,
    build_ssl_context,
    check_one_source,
    display_url,
    read_prefix,
    read_secret,
    select_proxy,
    split_url,
    tls_problems,
)
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState
from tailer.urls import is_loopback

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "TlsOptions",
    "WebhookSink",
    "WebhookSinkConfig",
    "decode_signing_secret",
    "sign_payload",
]

SIGNING_SECRET_PREFIX = "whsec_"

# Headers the sink sets itself. Overriding one through `headers` would break the
# body's framing or encoding, the signature or deduplication, or bypass `auth`.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "idempotency-key",
        "proxy-authorization",
        "transfer-encoding",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# NOTE: these types assume the runner encodes events as JSON; the sink does not check.
_CONTENT_TYPES = {
    "json_array": "application/json",
    "ndjson": "application/x-ndjson",
    "single": "application/json",
}
_MAX_BODY_READ = 4096  # bytes of a response body read for an error message
_MAX_EXCERPT = 200  # characters of that body quoted in the message
_GZIP_IN_THREAD_BYTES = 256 * 1024  # larger bodies are compressed off the event loop
_GZIP_LEVEL = 6

_log = structlog.get_logger("tailer.sinks.webhook")


# --- configuration --------------------------------------------------------------------


class BearerAuth(SinkConfig):
    """`Authorization: Bearer <token>`, the token given inline, by variable or by file."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["bearer"]
    token: SecretStr | None = None
    token_env: str | None = Field(default=None, min_length=1)
    token_file: PathOption | None = None

    @model_validator(mode="after")
    def _one_token_source(self) -> BearerAuth:
        check_one_source(self, "auth (bearer)", "token", "token_env", "token_file")
        return self


class BasicAuth(SinkConfig):
    """`Authorization: Basic`, with the password given inline, by variable or by file."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_env: str | None = Field(default=None, min_length=1)
    password_file: PathOption | None = None

    @field_validator("username")
    @classmethod
    def _username_without_colon(cls, value: str) -> str:
        # RFC 7617: the first colon separates the user name from the password.
        if ":" in value:
            raise ValueError(f"auth.username {value!r} is invalid: it must not contain ':'")
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> BasicAuth:
        check_one_source(self, "auth (basic)", "password", "password_env", "password_file")
        return self


class WebhookSinkConfig(SinkConfig):
    """Options of the webhook sink.

    The text of a ValidationError never quotes the input, because it may be a
    secret. The messages written here quote the values that are safe to show.
    `ValidationError.errors()` still carries each input, so the config loader
    leaves it out for models that set `hide_input_in_errors`.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    """Endpoint to POST to: https, or http to a loopback host unless `allow_insecure_http`."""

    mode: Literal["json_array", "ndjson", "single"] = "json_array"
    """Body layout: a JSON array per batch, NDJSON per batch, or one POST per event."""

    gzip: bool = False
    """Compress each body and send `Content-Encoding: gzip`."""

    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers. Values are kept out of `repr`, because they often carry API keys.
    The headers the sink sets itself (see `RESERVED_HEADERS`) are rejected."""

    auth: Annotated[BearerAuth | BasicAuth, Field(discriminator="type")] | None = None
    """Authorization header: `{type: bearer, ...}` or `{type: basic, ...}`."""

    signing_secret: SecretStr | None = None
    """Standard Webhooks secret, `whsec_` followed by base64 of the key bytes."""

    signing_secret_env: str | None = Field(default=None, min_length=1)
    """Environment variable that contains the signing secret."""

    signing_secret_file: PathOption | None = None
    """File that contains the signing secret. Surrounding whitespace is ignored."""

    tls: TlsOptions = Field(default_factory=TlsOptions)

    proxy: str | None = None
    """HTTP proxy URL, `http://[user:password@]host:port`. Hosts in `NO_PROXY` bypass it."""

    timeout_secs: float = Field(default=30.0, gt=0)
    """Time limit for one request, from connecting to reading the response, in seconds."""

    allow_insecure_http: bool = False
    """Accept http to a host that is not loopback, sending events and credentials unencrypted."""

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = split_url(value)
        if parts is None:
            raise ValueError(
                f"url {display_url(value)!r} is invalid; expected http(s)://host[:port][/path]"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"url {display_url(value)!r} contains credentials; "
                "put them under auth (type: basic) instead"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"headers: {name!r} is not a valid HTTP header name")
            if name.lower() == "authorization":
                raise ValueError(
                    "headers: Authorization is set by auth (type: bearer or basic), "
                    "which keeps the credential out of the config's repr and logs"
                )
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"headers: {name} is set by the webhook sink and cannot be set")
            if _CONTROL_CHARACTERS.search(header_value):
                raise ValueError(f"headers: the value of {name} contains a control character")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _valid_signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_signing_secret(value.get_secret_value(), source="signing_secret")
        return value

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if value is not None and split_url(value) is None:
            raise ValueError(f"proxy {display_url(value)!r} is invalid; expected http://host:port")
        return value

    @model_validator(mode="after")
    def _secure_transport(self) -> WebhookSinkConfig:
        parts = split_url(self.url)
        assert parts is not None  # checked by _valid_url
        loopback = is_loopback(parts.hostname or "")
        if parts.scheme == "http" and not self.allow_insecure_http and not loopback:
            raise ValueError(
                f"url {display_url(self.url)!r} uses plain http to a host that is not "
                "loopback; use https, or set allow_insecure_http: true to send events "
                "and credentials unencrypted"
            )
        sources = [self.signing_secret, self.signing_secret_env, self.signing_secret_file]
        if sum(source is not None for source in sources) > 1:
            raise ValueError(
                "set at most one of signing_secret, signing_secret_env, signing_secret_file"
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "url" or (name == "proxy" and value is not None):
                yield name, display_url(value)
            elif name == "headers":
                yield name, dict.fromkeys(value, "***")
            else:
                yield name, value


# --- signing --------------------------------------------------------------------------


def decode_signing_secret(secret: str, *, source: str) -> bytes:
    """Decode a Standard Webhooks secret, `whsec_<base64>`, into the HMAC key bytes.

    Raises ValueError naming `source` (never the secret) when the prefix is
    missing or the rest is not base64 of at least one byte.
    """
    if not secret.startswith(SIGNING_SECRET_PREFIX):
        raise ValueError(f"{source} is invalid: it must start with {SIGNING_SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SIGNING_SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(
            f"{source} is invalid: the part after {SIGNING_SECRET_PREFIX!r} is not base64"
        ) from None
    if not key:
        raise ValueError(f"{source} is invalid: the key after {SIGNING_SECRET_PREFIX!r} is empty")
    return key


def sign_payload(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the Standard Webhooks `webhook-signature` value for one request body."""
    signed_content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# --- secrets and TLS, loaded on open --------------------------------------------------


@dataclass(frozen=True, repr=False)
class _Credentials:
    """The secrets of one open session, and the strings to mask wherever text leaves the sink."""

    authorization: str | None
    signing_key: bytes | None
    masked: tuple[str, ...]

    def __repr__(self) -> str:
        return "_Credentials(***)"


def _credential_problems(config: WebhookSinkConfig) -> list[str]:
    """Read each configured secret; return the problem of every one that fails."""
    auth = config.auth
    reads: list[tuple[SecretStr | None, str | None, Path | None, str]] = []
    if isinstance(auth, BearerAuth):
        reads.append((auth.token, auth.token_env, auth.token_file, "auth.token"))
    elif isinstance(auth, BasicAuth):
        reads.append((auth.password, auth.password_env, auth.password_file, "auth.password"))
    if config.signing_secret_env is not None or config.signing_secret_file is not None:
        reads.append(
            (None, config.signing_secret_env, config.signing_secret_file, "signing_secret")
        )
    problems = []
    for inline, env, file, option in reads:
        try:
            secret = read_secret(inline, env, file, option, warn=False)
            if option == "signing_secret":
                # Present is not enough: the secret must decode, as `open` will do.
                decode_signing_secret(secret, source=option)
        except ConfigError as exc:
            problems.extend(exc.problems)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _load_credentials(config: WebhookSinkConfig) -> _Credentials:
    authorization = None
    masked: list[str] = []

    auth = config.auth
    if isinstance(auth, BearerAuth):
        token = read_secret(auth.token, auth.token_env, auth.token_file, "auth.token")
        authorization = f"Bearer {token}"
        masked.append(token)
    elif isinstance(auth, BasicAuth):
        password = read_secret(
            auth.password, auth.password_env, auth.password_file, "auth.password"
        )
        encoded = base64.b64encode(f"{auth.username}:{password}".encode()).decode("ascii")
        authorization = f"Basic {encoded}"
        masked += [password, encoded]

    signing_key = None
    if config.signing_secret_env is not None or config.signing_secret_file is not None:
        secret = read_secret(
            None, config.signing_secret_env, config.signing_secret_file, "signing_secret"
        )
    elif config.signing_secret is not None:
        secret = config.signing_secret.get_secret_value()
    else:
        secret = None
    if secret is not None:
        if config.signing_secret_env is not None:
            source = f"signing_secret_env {config.signing_secret_env}"
        elif config.signing_secret_file is not None:
            source = f"signing_secret_file {str(config.signing_secret_file)!r}"
        else:
            source = "signing_secret"
        try:
            signing_key = decode_signing_secret(secret, source=source)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        masked += [secret, secret.removeprefix(SIGNING_SECRET_PREFIX)]

    if config.proxy is not None:
        proxy_password = urlsplit(config.proxy).password
        if proxy_password:
            masked.append(proxy_password)

    # Longest first, so a secret that contains another is masked whole.
    ordered = sorted({text for text in masked if text}, key=len, reverse=True)
    for secret in ordered:
        register_secret(secret)
    return _Credentials(authorization, signing_key, tuple(ordered))


# --- the sink -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """One POST: its body (uncompressed), its idempotency key, and which events it carries."""

    body: bytes
    key: str
    label: str  # "batch of 3 events", "event 2 of 3"
    first_index: int  # index in the batch of the first event this request carries


class WebhookSink(Sink):
    """POSTs batches to a webhook. See the module docstring for modes, signing and errors."""

    config_model: ClassVar[type[SinkConfig]] = WebhookSinkConfig

    def __init__(self, name: str, config: SinkConfig, *, clock: Clock | None = None) -> None:
        if not isinstance(config, WebhookSinkConfig):
            raise TypeError(f"WebhookSink needs a WebhookSinkConfig, not {type(config).__name__}")
        super().__init__(name, config)
        self._options = config
        self._clock = clock or SystemClock()
        self._url = display_url(config.url)
        self._session: aiohttp.ClientSession | None = None
        self._credentials = _Credentials(None, None, ())
        self._proxy: str | None = None

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, url={self._url!r}, mode={self._options.mode!r})"

    def credential_problems(self) -> list[str]:
        return _credential_problems(self._options) + tls_problems(self._options.tls)

    async def open(self, state: SinkState) -> None:
        """Read the secrets and TLS files and open the HTTP session. A second call starts afresh.

        Raises ConfigError when a secret or TLS file is missing or invalid.
        """
        await self.close()
        options = self._options
        self._credentials = _load_credentials(options)
        ssl_context = build_ssl_context(options.tls)
        parts = split_url(options.url)
        assert parts is not None  # checked by the config model
        self._proxy = select_proxy(options.proxy, parts)

        # Only User-Agent is a session header: aiohttp (3.14) sends session headers
        # on a proxy's CONNECT too, so everything else goes with each request.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=options.timeout_secs),
            headers={"User-Agent": f"runtools-tail/{__version__}"},
            trust_env=False,
        )
        _log.debug(
            "webhook.opened",
            sink=self.name,
            url=self._url,
            mode=options.mode,
            proxy=display_url(self._proxy) if self._proxy else None,
        )

    async def close(self) -> None:
        """Close the HTTP session; closing twice, or before `open`, is harmless."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, batch: Batch) -> SinkState:
        """POST the batch, or each of its events in `single` mode, or raise SinkError.

        An empty batch sends nothing.
        """
        session = self._session
        if session is None:
            raise RuntimeError(f"webhook sink {self.name!r} is not open; call open() first")
        if not batch.payloads:
            return None

        for request in self._requests(batch):
            await self._post(session, request, batch)
        return None

    def _requests(self, batch: Batch) -> Iterator[_Request]:
        mode = self._options.mode
        count = len(batch.payloads)
        whole_batch = f"batch of {count} event" + ("" if count == 1 else "s")
        if mode == "single":
            for index, payload in enumerate(batch.payloads):
                yield _Request(
                    payload, f"{batch.key}:{index}", f"event {index + 1} of {count}", index
                )
        elif mode == "ndjson":
            body = b"".join(payload + b"\n" for payload in batch.payloads)
            yield _Request(body, batch.key, whole_batch, 0)
        else:
            body = b"[" + b",".join(batch.payloads) + b"]"
            yield _Request(body, batch.key, whole_batch, 0)

    async def _compress(self, body: bytes) -> bytes:
        """Gzip the body when the `gzip` option is on, else return it unchanged."""
        if not self._options.gzip:
            return body
        if len(body) < _GZIP_IN_THREAD_BYTES:
            return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        return await asyncio.to_thread(gzip.compress, body, compresslevel=_GZIP_LEVEL, mtime=0)

    def _headers(self, request: _Request) -> dict[str, str]:
        options = self._options
        credentials = self._credentials
        timestamp = int(self._clock.time())

        headers = dict(options.headers)
        headers["Content-Type"] = _CONTENT_TYPES[options.mode]
        if options.gzip:
            headers["Content-Encoding"] = "gzip"
        if credentials.authorization is not None:
            headers["Authorization"] = credentials.authorization
        headers["Idempotency-Key"] = request.key
        headers["webhook-id"] = request.key
        headers["webhook-timestamp"] = str(timestamp)
        if credentials.signing_key is not None:
            headers["webhook-signature"] = sign_payload(
                credentials.signing_key, request.key, timestamp, request.body
            )
        return headers

    async def _post(self, session: aiohttp.ClientSession, request: _Request, batch: Batch) -> None:
        """Send one request; return on 2xx, raise SinkError otherwise."""
        headers = self._headers(request)
        data = await self._compress(request.body)
        try:
            async with session.post(
                self._options.url,
                data=data,
                headers=headers,
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await read_prefix(response, _MAX_BODY_READ)
                retry_after_header = response.headers.get("Retry-After")
                date_header = response.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = SinkError(self._network_failure(exc, request), retriable=True)
            self._log_failure(error, request, status=None)
            raise error from None

        if 200 <= status <= 299:
            _log.debug(
                "webhook.posted",
                sink=self.name,
                url=self._url,
                status=status,
                key=request.key,
                count=len(batch.payloads) if self._options.mode != "single" else 1,
                bytes=len(data),
            )
            return

        message = f"POST {self._url} returned HTTP {status} for the {request.label}"
        if status in (301, 302, 303, 307, 308):
            message += " (redirects are not followed; set url to the final address)"
        message += f": {self._excerpt(body)}{self._repeat_note(request)}"
        if is_retriable_status(status):
            retry_after = parse_retry_after(
                retry_after_header, server_date=date_header, now=self._clock.time()
            )
            error = SinkError(message, retriable=True, retry_after=retry_after)
        else:
            error = SinkError(message, retriable=False)
        self._log_failure(error, request, status=status)
        raise error

    def _network_failure(self, exc: BaseException, request: _Request) -> str:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            reason = (
                f"the TLS certificate of {exc.host} failed verification "
                f"({exc.certificate_error}); set tls.ca_file to the CA that issued it"
            )
        elif isinstance(exc, TimeoutError):
            reason = f"timed out after {self._options.timeout_secs:g} s (timeout_secs)"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            reason = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}"
        else:
            reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        return self._mask(
            f"POST {self._url} failed for the {request.label}: {reason}{self._repeat_note(request)}"
        )

    def _repeat_note(self, request: _Request) -> str:
        if request.first_index == 0:
            return ""
        if request.first_index == 1:
            return (
                "; the event before it was delivered and repeats, with the same "
                "idempotency key, when the batch is sent again"
            )
        return (
            f"; the {request.first_index} events before it were delivered and repeat, "
            "with the same idempotency keys, when the batch is sent again"
        )

    def _excerpt(self, body: bytes) -> str:
        text = self._mask(body.decode("utf-8", "replace"))
        text = " ".join(text.split())
        if len(text) > _MAX_EXCERPT:
            text = text[:_MAX_EXCERPT] + "…"
        return text or "(empty body)"

    def _mask(self, text: str) -> str:
        """Replace every secret, and the full URL, which may carry a token in its query."""
        if self._options.url != self._url:
            text = text.replace(self._options.url, self._url)
        for secret in self._credentials.masked:
            text = text.replace(secret, "***")
        return text

    def _log_failure(self, error: SinkError, request: _Request, *, status: int | None) -> None:
        # DEBUG: the runner logs the failure it acts on, with its retry decision.
        _log.debug(
            "webhook.failed",
            sink=self.name,
            url=self._url,
            status=status,
            key=request.key,
            retriable=error.retriable,
            error=str(error),
        )
