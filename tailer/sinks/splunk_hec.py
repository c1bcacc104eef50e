"""The Splunk HTTP Event Collector (HEC) sink: POSTs batches to `{url}/services/collector/event`.

The body is Splunk's batch format: one JSON object per event, separated by a
newline, each of the form

    {"time": 1733340302.123456, "host": ..., "source": ..., "sourcetype": ...,
     "index": ..., "fields": {...}, "event": ...}

`time` is the event's `time_ns` as epoch seconds with six decimals, truncated
to the microsecond. `host` and `index` are sent only when set, so the token's
defaults apply otherwise. `source` defaults to `runtools:activity` and is left
out when set to null. `sourcetype` defaults to `_json` for the json and ecs
encodings and to `cef` for cef. `fields` (indexed fields) is sent only when
not empty. `event` is the encoded payload: a JSON object for json and ecs, a
JSON string for cef. Every request carries `Authorization: Splunk <token>`.

Responses are `{"text": ..., "code": N}`. The HTTP status decides, by the
rule in `tailer.retry`, whether the runner retries the batch. The HEC code
only makes the message precise. The codes and statuses below are Splunk's
list of HEC error codes as client libraries reproduce it. They were not
checked against a Splunk server:

    HTTP  HEC code  text                                       outcome
    200   0         Success                                    confirmed
    403   1         Token disabled                             final
    401   2         Token is required                          final
    401   3         Invalid authorization                      final
    403   4         Invalid token                              final
    400   5         No data                                    final
    400   6         Invalid data format                        final
    400   7         Incorrect index                            final
    500   8         Internal server error                      retried
    503   9         Server is busy                             retried
    400   10        Data channel is missing                    final
    400   11        Invalid data channel                       final
    400   12        Event field is required                    final
    400   13        Event field cannot be blank                final
    400   14        ACK is disabled                            final
    400   15        Error in handling indexed fields           final
    400   16        Query string authorization is not enabled  final
    other 5xx but 501, 408, 429, network error, timeout        retried
    404, 413, 3xx (redirects are not followed), other 4xx      final

"Final" raises a `SinkError` that is not retriable, so the runner
dead-letters the batch. "Retried" raises a retriable one that carries the
`Retry-After` wait. A 400 names the rejected event when the response has
`invalid-event-number`. A 2xx whose body has a code other than 0 is final,
because confirming a response that reports an error could lose the batch.
NOTE: codes above 16 (17 is the health endpoint's "HEC is healthy") are left
out because their numbers could not be checked. The HTTP status decides the
outcome for them too.

Indexer acknowledgement (`ack.enabled`, Splunk Enterprise only): each
request carries `X-Splunk-Request-Channel`, the response carries an `ackId`,
and `send` then polls `POST {url}/services/collector/ack?channel=...` with
`{"acks": [id]}` until the answer is `{"acks": {"<id>": true}}`. So `send`
returns, and the runner commits the offset, only after the indexer stored
the batch. Without an answer of true within `ack.timeout_secs`, `send` raises
a retriable `SinkError` and the runner sends the batch again. That can
duplicate the batch in Splunk, because the indexer may have stored it after
all. A query that fails with a retriable status or a network error is
repeated until the timeout, and any other failure is final. Behind a load
balancer, acknowledgement needs sticky sessions, so that each query reaches
the HEC instance that received the batch (Splunk's load-balancing guide for
Splunk Connect for Kafka asks for them for this reason).

The channel is `ack.channel` when set. Otherwise the sink generates a UUID,
returns it in its state, and takes it back from the state on `open`, so it
stays the same across batches and restarts.

HEC has no idempotency key, so a batch that is sent again after a timeout or
a crash is stored again. Each repeated event keeps its `id`, by which a
search can drop the repeats.

The token comes from `token`, `token_env` or `token_file`, and is read again
on every `open()`. The sink puts it in no `repr`, log or error message of its
own, and replaces it by `***` where a receiver echoes it in an error body.
TLS, proxy and token-source handling are those of the webhook sink.
"""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from tailer import __version__
from tailer.clock import Clock, SystemClock
from tailer.config import PathOption
from tailer.errors import ConfigError
from tailer.ratelimit import RepeatLimiter
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

__all__ = ["HecAck", "SplunkHecSink", "SplunkHecSinkConfig", "format_hec_time"]

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
CHANNEL_HEADER = "X-Splunk-Request-Channel"
DEFAULT_SOURCE = "runtools:activity"

# The default sourcetype of each encoding the sink accepts. Only json and ecs payloads are JSON.
_DEFAULT_SOURCETYPES = {"json": "_json", "ecs": "_json", "cef": "cef"}
_JSON_ENCODINGS = frozenset({"json", "ecs"})

# Hints appended to an error message, by HEC code.
_CODE_HINTS = {
    1: "the token is disabled in Splunk; enable it or use another token",
    2: "the request carried no token; set token, token_env or token_file",
    3: "Splunk rejected the Authorization header; check token, token_env or token_file",
    4: "Splunk does not know this token; check token, token_env or token_file",
    7: "the token may not write to this index; check the index option and the token's indexes",
    10: "indexer acknowledgement is on for this token; set ack.enabled: true",
    11: "Splunk rejected the channel; set ack.channel to a UUID or leave it unset",
    14: "indexer acknowledgement is off for this token; turn it on in Splunk or set "
    "ack.enabled: false",
    15: "check the fields option: names are strings, values strings or lists of strings",
    16: "the sink sends the token in the Authorization header, not in the query string",
}
_STATUS_HINTS = {
    404: f"url must be the HEC base address, such as https://splunk.example.com:8088, "
    f"to which the sink adds {EVENT_PATH}",
    413: "the batch is larger than the receiver accepts (max_content_length in Splunk's "
    "limits.conf); lower the sink's batch.max_bytes",
}

_MAX_BODY_READ = 4096  # bytes of a response body read
_MAX_EXCERPT = 200  # characters of a body quoted in a message
_GZIP_IN_THREAD_BYTES = 256 * 1024  # larger bodies are compressed off the event loop
_GZIP_LEVEL = 6
_POLL_FAILURE_LOG_INTERVAL = 60.0  # seconds between warnings about failing ack polls

_log = structlog.get_logger("tailer.sinks.splunk_hec")


# --- configuration --------------------------------------------------------------------


class HecAck(SinkConfig):
    """Indexer acknowledgement: `send` returns only once Splunk has indexed the batch."""

    enabled: bool = False
    """Wait for each batch's acknowledgement. The token must have indexer acknowledgement on."""

    channel: uuid.UUID | None = None
    """Channel UUID. Unset, the sink generates one and keeps it in its state across restarts."""

    poll_interval_secs: float = Field(default=1.0, gt=0)
    """Seconds between acknowledgement queries."""

    timeout_secs: float = Field(default=300.0, gt=0)
    """Seconds to wait for an acknowledgement before the batch is sent again."""


class SplunkHecSinkConfig(SinkConfig):
    """Options of the Splunk HEC sink.

    The text of a ValidationError never quotes the input, because it may be the token.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    """HEC base address, such as https://splunk.example.com:8088, without /services/collector."""

    token: SecretStr | None = None
    """HEC token, sent as `Authorization: Splunk <token>`."""

    token_env: str | None = Field(default=None, min_length=1)
    """Environment variable that contains the token."""

    token_file: PathOption | None = None
    """File that contains the token. Surrounding whitespace is ignored."""

    host: str | None = Field(default=None, min_length=1)
    """`host` of every event. Unset, Splunk uses the token's default or its own host name."""

    source: str | None = Field(default=DEFAULT_SOURCE, min_length=1)
    """`source` of every event. Null leaves it out, so the token's default applies."""

    sourcetype: str | None = Field(default=None, min_length=1)
    """`sourcetype` of every event. Unset: `_json` for the json and ecs encodings, `cef` for cef."""

    index: str | None = Field(default=None, min_length=1)
    """`index` of every event. Unset, the token's default index applies."""

    fields: dict[str, str | list[str]] = Field(default_factory=dict)
    """Indexed fields added to every event."""

    gzip: bool = False
    """Compress each body and send `Content-Encoding: gzip`."""

    tls: TlsOptions = Field(default_factory=TlsOptions)
    """`ca_file`, `cert_file`, `key_file` and `verify` (true), as for the webhook sink."""

    proxy: str | None = None
    """HTTP proxy URL, `http://[user:password@]host:port`. Hosts in `NO_PROXY` bypass it."""

    timeout_secs: float = Field(default=30.0, gt=0)
    """Time limit for one request, from connecting to reading the response, in seconds."""

    ack: HecAck = Field(default_factory=HecAck)

    allow_insecure_http: bool = False
    """Accept http to a host that is not loopback, sending events and the token unencrypted."""

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = split_url(value)
        if parts is None:
            raise ValueError(
                f"url {display_url(value)!r} is invalid; expected https://host[:port][/path]"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"url {display_url(value)!r} contains credentials; "
                "set the HEC token with token, token_env or token_file"
            )
        if parts.query or parts.fragment:
            raise ValueError(
                f"url {display_url(value)!r} has a query or fragment; "
                "give the HEC base address only, such as https://splunk.example.com:8088"
            )
        if "/services/collector" in parts.path:
            raise ValueError(
                f"url {value!r} contains /services/collector; give the HEC base address, "
                f"such as https://splunk.example.com:8088, and the sink adds {EVENT_PATH}"
            )
        return value

    @field_validator("fields")
    @classmethod
    def _valid_fields(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for name in value:
            if not name.strip():
                raise ValueError("fields: a field name is empty")
        return value

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if value is not None and split_url(value) is None:
            raise ValueError(f"proxy {display_url(value)!r} is invalid; expected http://host:port")
        return value

    @model_validator(mode="after")
    def _secure_transport_and_one_token(self) -> SplunkHecSinkConfig:
        parts = split_url(self.url)
        assert parts is not None  # checked by _valid_url
        loopback = is_loopback(parts.hostname or "")
        if parts.scheme == "http" and not self.allow_insecure_http and not loopback:
            raise ValueError(
                f"url {display_url(self.url)!r} uses plain http to a host that is not "
                "loopback; use https, or set allow_insecure_http: true to send events and "
                "the token unencrypted"
            )
        check_one_source(self, "splunk_hec", "token", "token_env", "token_file")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "proxy" and value is not None:
                yield name, display_url(value)
            else:
                yield name, value


# --- the body -------------------------------------------------------------------------


def format_hec_time(time_ns: int) -> str:
    """Format nanoseconds since the epoch as HEC's `time`: seconds with six decimals.

    Integer arithmetic truncates exactly (toward zero) and always prints six
    decimals, where float seconds would be rounded and printed in shortest form.
    """
    sign = "-" if time_ns < 0 else ""
    seconds, nanoseconds = divmod(abs(time_ns), 1_000_000_000)
    return f"{sign}{seconds}.{nanoseconds // 1000:06d}"


def _metadata_members(config: SplunkHecSinkConfig, encoding: str) -> bytes:
    """Return the envelope's members other than `time` and `event`, as `"k":v,` bytes."""
    metadata: dict[str, Any] = {}
    if config.host is not None:
        metadata["host"] = config.host
    if config.source is not None:
        metadata["source"] = config.source
    metadata["sourcetype"] = config.sourcetype or _DEFAULT_SOURCETYPES[encoding]
    if config.index is not None:
        metadata["index"] = config.index
    if config.fields:
        metadata["fields"] = config.fields
    # The object's members without its braces, each followed by the comma before "event".
    return orjson.dumps(metadata)[1:-1] + b","


# --- the sink -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    retry_after: float | None


@dataclass(frozen=True)
class _AckPoll:
    """One acknowledgement query: acknowledged, or pending with an optional retriable failure."""

    acknowledged: bool
    failure: SinkError | None = None


def _read_token(options: SplunkHecSinkConfig) -> str:
    """Return the HEC token from the config, the environment or a file; raise ConfigError."""
    token = read_secret(options.token, options.token_env, options.token_file, "token")
    if any(character.isspace() or not character.isprintable() for character in token):
        raise ConfigError(
            "token contains whitespace or a control character; "
            "an HEC token is one word, such as a GUID"
        )
    return token


class SplunkHecSink(Sink):
    """Sends batches to Splunk HEC. See the module docstring for the body, errors and acks."""

    config_model: ClassVar[type[SinkConfig]] = SplunkHecSinkConfig

    def __init__(self, name: str, config: SinkConfig, *, clock: Clock | None = None) -> None:
        if not isinstance(config, SplunkHecSinkConfig):
            raise TypeError(
                f"SplunkHecSink needs a SplunkHecSinkConfig, not {type(config).__name__}"
            )
        super().__init__(name, config)
        self._options = config
        self._clock = clock or SystemClock()

        base = config.url.rstrip("/")
        self._event_url = base + EVENT_PATH
        self._ack_url = base + ACK_PATH
        self._channel = str(config.ack.channel or uuid.uuid4())
        self._metadata = {
            encoding: _metadata_members(config, encoding) for encoding in _DEFAULT_SOURCETYPES
        }

        self._session: aiohttp.ClientSession | None = None
        self._authorization: str | None = None
        self._masked: tuple[str, ...] = ()
        self._proxy: str | None = None
        self._poll_failures = RepeatLimiter(_POLL_FAILURE_LOG_INTERVAL, self._clock.monotonic)

    def __repr__(self) -> str:
        return (
            f"SplunkHecSink(name={self.name!r}, url={self._event_url!r}, "
            f"ack={self._options.ack.enabled!r})"
        )

    @property
    def channel(self) -> str:
        """The `X-Splunk-Request-Channel` UUID, sent when acknowledgement is on."""
        return self._channel

    def credential_problems(self) -> list[str]:
        problems = tls_problems(self._options.tls)
        try:
            _read_token(self._options)
        except ConfigError as exc:
            problems = exc.problems + problems
        return problems

    async def open(self, state: SinkState) -> None:
        """Read the token and TLS files and open the HTTP session. A second call starts afresh.

        Takes the channel back from `state` unless `ack.channel` is set. Raises
        ConfigError when the token or a TLS file is missing or invalid.
        """
        await self.close()
        options = self._options

        token = _read_token(options)
        self._authorization = f"Splunk {token}"
        masked = [token]
        if options.proxy is not None:
            masked.append(urlsplit(options.proxy).password or "")
        self._masked = tuple(sorted({text for text in masked if text}, key=len, reverse=True))
        for secret in self._masked:
            register_secret(secret)

        if options.ack.channel is None:
            self._channel = _channel_from_state(state) or self._channel

        ssl_context = build_ssl_context(options.tls)
        parts = split_url(options.url)
        assert parts is not None  # checked by the config model
        self._proxy = select_proxy(options.proxy, parts)

        # Only User-Agent is a session header: aiohttp sends session headers on a
        # proxy's CONNECT too, and the token must not reach the proxy.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=options.timeout_secs),
            headers={"User-Agent": f"runtools-tail/{__version__}"},
            trust_env=False,
        )
        _log.debug(
            "splunk_hec.opened",
            sink=self.name,
            url=self._event_url,
            ack=options.ack.enabled,
            channel=self._channel if options.ack.enabled else None,
            proxy=display_url(self._proxy) if self._proxy else None,
        )

    async def close(self) -> None:
        """Close the HTTP session. Closing twice, or before `open`, is harmless."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, batch: Batch) -> SinkState:
        """POST the batch, wait for its acknowledgement when `ack.enabled`, or raise SinkError.

        Returns the channel as state when acknowledgement is on, else None. An
        empty batch sends nothing.
        """
        session = self._session
        if session is None:
            raise RuntimeError(f"splunk_hec sink {self.name!r} is not open; call open() first")
        if not batch.payloads:
            return self._state()

        body = self._body(batch)
        data = await self._compress(body)
        headers = self._headers()
        headers["Content-Type"] = "application/json"
        if self._options.gzip:
            headers["Content-Encoding"] = "gzip"

        try:
            response = await self._post(session, self._event_url, data, headers, params=None)
        except SinkError as error:
            raise self._failed(error) from None
        reply = _parse_reply(response.body)
        if not 200 <= response.status <= 299:
            raise self._failed(self._status_error(response, reply, batch))
        code = reply.get("code") if reply is not None else None
        if isinstance(code, int) and code != 0:
            raise self._failed(
                SinkError(
                    f"POST {self._event_url} returned HTTP {response.status} with "
                    f"{self._describe(reply, response.body)} for the {_label(batch)}; "
                    "Splunk answers an accepted batch with code 0, so this one is not confirmed",
                    retriable=False,
                )
            )

        ack_id = None
        if self._options.ack.enabled:
            ack_id = self._ack_id(reply, response.body, batch)
            await self._wait_for_ack(session, ack_id, batch)

        _log.debug(
            "splunk_hec.posted",
            sink=self.name,
            url=self._event_url,
            status=response.status,
            batch=batch.key,
            count=len(batch.payloads),
            bytes=len(data),
            ack_id=ack_id,
        )
        return self._state()

    def _state(self) -> SinkState:
        return {"channel": self._channel} if self._options.ack.enabled else None

    # --- building the request ---------------------------------------------------------

    def _body(self, batch: Batch) -> bytes:
        """Build the batch body: one HEC event object per payload, separated by newlines."""
        encoding = batch.encoding
        metadata = self._metadata.get(encoding)
        if metadata is None:
            supported = ", ".join(sorted(_DEFAULT_SOURCETYPES))
            raise self._failed(
                SinkError(
                    f"splunk_hec sink {self.name!r} cannot send encoding {encoding!r}; "
                    f"set the sink's encoding to one of {supported}",
                    retriable=False,
                )
            )

        objects = []
        for index, (event, payload) in enumerate(zip(batch.events, batch.payloads, strict=True)):
            if encoding in _JSON_ENCODINGS:
                event_value = payload
            else:
                try:
                    event_value = orjson.dumps(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    raise self._failed(
                        SinkError(
                            f"event {index + 1} of the {_label(batch)} (id {event.id!r}) "
                            f"is not valid UTF-8 in the {encoding} encoding",
                            retriable=False,
                        )
                    ) from None
            time = format_hec_time(event.time_ns).encode("ascii")
            objects.append(b'{"time":' + time + b"," + metadata + b'"event":' + event_value + b"}")
        return b"\n".join(objects)

    async def _compress(self, body: bytes) -> bytes:
        if not self._options.gzip:
            return body
        if len(body) < _GZIP_IN_THREAD_BYTES:
            return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        return await asyncio.to_thread(gzip.compress, body, compresslevel=_GZIP_LEVEL, mtime=0)

    def _headers(self) -> dict[str, str]:
        assert self._authorization is not None  # set by open()
        headers = {"Authorization": self._authorization}
        if self._options.ack.enabled:
            headers[CHANNEL_HEADER] = self._channel
        return headers

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        data: bytes,
        headers: dict[str, str],
        *,
        params: dict[str, str] | None,
    ) -> _Response:
        """POST once and return the response. Raise a retriable SinkError when none arrives."""
        try:
            async with session.post(
                url,
                data=data,
                headers=headers,
                params=params,
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                body = await read_prefix(response, _MAX_BODY_READ)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"),
                    server_date=response.headers.get("Date"),
                    now=self._clock.time(),
                )
                return _Response(response.status, body, retry_after)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkError(self._network_failure(url, exc), retriable=True) from None

    # --- acknowledgement --------------------------------------------------------------

    def _ack_id(self, reply: dict[str, Any] | None, body: bytes, batch: Batch) -> int:
        ack_id = reply.get("ackId") if reply is not None else None
        if isinstance(ack_id, int) and not isinstance(ack_id, bool) and ack_id >= 0:
            return ack_id
        raise self._failed(
            SinkError(
                f"POST {self._event_url} accepted the {_label(batch)} but returned no ackId "
                f"({self._describe(reply, body)}); indexer acknowledgement is off for this "
                "token, so turn it on in Splunk or set ack.enabled: false. The batch may be "
                "stored already, so replaying it can duplicate its events",
                retriable=False,
            )
        )

    async def _wait_for_ack(
        self, session: aiohttp.ClientSession, ack_id: int, batch: Batch
    ) -> None:
        """Poll until Splunk acknowledges `ack_id`, or raise SinkError at `ack.timeout_secs`."""
        ack = self._options.ack
        clock = self._clock
        started = clock.monotonic()
        deadline = started + ack.timeout_secs
        polls = 0
        last_failure: SinkError | None = None
        wait = ack.poll_interval_secs

        while (remaining := deadline - clock.monotonic()) > 0:
            await clock.sleep(min(wait, remaining))
            polls += 1
            result = await self._poll_ack(session, ack_id, batch)
            if result.acknowledged:
                self._poll_failures.reset(self.name)
                _log.debug(
                    "splunk_hec.acknowledged",
                    sink=self.name,
                    batch=batch.key,
                    ack_id=ack_id,
                    polls=polls,
                    seconds=round(clock.monotonic() - started, 3),
                )
                return

            wait = ack.poll_interval_secs
            if result.failure is not None:
                last_failure = result.failure
                self._log_poll_failure(result.failure, batch, ack_id)
                if result.failure.retry_after is not None:
                    wait = max(wait, result.failure.retry_after)

        message = (
            f"Splunk did not acknowledge the {_label(batch)} (ackId {ack_id}, channel "
            f"{self._channel}) within {ack.timeout_secs:g} s (ack.timeout_secs) after "
            f"{polls} queries; the batch is sent again, which duplicates its events in "
            "Splunk if the indexer stored them after all"
        )
        if last_failure is not None:
            message += f". The last failed query: {last_failure}"
        raise self._failed(SinkError(message, retriable=True))

    async def _poll_ack(
        self, session: aiohttp.ClientSession, ack_id: int, batch: Batch
    ) -> _AckPoll:
        """Query one acknowledgement. Raise SinkError if final, return a retriable failure."""
        headers = self._headers()
        headers["Content-Type"] = "application/json"
        body = orjson.dumps({"acks": [ack_id]})
        try:
            response = await self._post(
                session, self._ack_url, body, headers, params={"channel": self._channel}
            )
        except SinkError as network_error:
            return _AckPoll(acknowledged=False, failure=network_error)

        reply = _parse_reply(response.body)
        if not 200 <= response.status <= 299:
            status_error = self._status_error(response, reply, batch, url=self._ack_url)
            if status_error.retriable:
                return _AckPoll(acknowledged=False, failure=status_error)
            raise self._failed(
                SinkError(
                    f"{status_error}. Splunk accepted the batch (ackId {ack_id}) before "
                    "this failure, so replaying it can duplicate its events",
                    retriable=False,
                )
            )

        acks = reply.get("acks") if reply is not None else None
        if not isinstance(acks, dict):
            raise self._failed(
                SinkError(
                    f"POST {self._ack_url} returned HTTP {response.status} without an acks "
                    f"object ({self._describe(reply, response.body)}); expected "
                    f'{{"acks": {{"{ack_id}": true}}}}. Check that url points at Splunk HEC',
                    retriable=False,
                )
            )
        return _AckPoll(acknowledged=acks.get(str(ack_id)) is True)

    def _log_poll_failure(self, error: SinkError, batch: Batch, ack_id: int) -> None:
        # Logged at WARNING because the sink recovers by querying again, so this error
        # never reaches the runner, which logs the errors it gets.
        suppressed = self._poll_failures.record(self.name)
        log = _log.warning if suppressed is not None else _log.debug
        log(
            "splunk_hec.ack_query_failed",
            sink=self.name,
            batch=batch.key,
            ack_id=ack_id,
            error=str(error),
            repeats=suppressed,
        )

    # --- errors -----------------------------------------------------------------------

    def _status_error(
        self,
        response: _Response,
        reply: dict[str, Any] | None,
        batch: Batch,
        *,
        url: str | None = None,
    ) -> SinkError:
        """Build the SinkError for a status other than 2xx, retriable by `tailer.retry`."""
        status = response.status
        message = (
            f"POST {url or self._event_url} returned HTTP {status} for the {_label(batch)}: "
            f"{self._describe(reply, response.body)}"
        )
        message += _invalid_event(reply, batch)

        code = reply.get("code") if reply is not None else None
        hint = _CODE_HINTS.get(code) if isinstance(code, int) else None
        if hint is None and 300 <= status <= 399:
            hint = "redirects are not followed; set url to the final address"
        if hint is None:
            hint = _STATUS_HINTS.get(status)
        if hint is not None:
            message += f"; {hint}"

        if is_retriable_status(status):
            return SinkError(message, retriable=True, retry_after=response.retry_after)
        return SinkError(message, retriable=False)

    def _describe(self, reply: dict[str, Any] | None, body: bytes) -> str:
        """Describe a response body: `HEC code N "text"`, or an excerpt of other content."""
        if reply is not None and isinstance(reply.get("code"), int):
            text = reply.get("text")
            detail = f"HEC code {reply['code']}"
            if isinstance(text, str):
                detail += f" {self._mask(text)!r}"
            return detail
        return self._excerpt(body)

    def _excerpt(self, body: bytes) -> str:
        text = " ".join(self._mask(body.decode("utf-8", "replace")).split())
        if len(text) > _MAX_EXCERPT:
            text = text[:_MAX_EXCERPT] + "…"
        return text or "(empty body)"

    def _mask(self, text: str) -> str:
        for secret in self._masked:
            text = text.replace(secret, "***")
        return text

    def _network_failure(self, url: str, exc: BaseException) -> str:
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
        return self._mask(f"POST {url} failed: {reason}")

    def _failed(self, error: SinkError) -> SinkError:
        """Log a failure at DEBUG and return it. The runner logs the failure it acts on."""
        _log.debug(
            "splunk_hec.failed",
            sink=self.name,
            url=self._event_url,
            retriable=error.retriable,
            error=str(error),
        )
        return error


def _label(batch: Batch) -> str:
    count = len(batch.payloads)
    return f"batch {batch.key} of {count} event" + ("" if count == 1 else "s")


def _parse_reply(body: bytes) -> dict[str, Any] | None:
    """Parse an HEC JSON object response, or return None for an empty or other body."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return reply if isinstance(reply, dict) else None


def _invalid_event(reply: dict[str, Any] | None, batch: Batch) -> str:
    """Name the event a 400 rejected, from the response's `invalid-event-number`."""
    number = reply.get("invalid-event-number") if reply is not None else None
    if not isinstance(number, int) or isinstance(number, bool):
        return ""
    if 0 <= number < len(batch.events):
        return f" at event {number + 1} of {len(batch.events)} (id {batch.events[number].id!r})"
    return f" at invalid-event-number {number}"


def _channel_from_state(state: SinkState) -> str | None:
    """Return the channel a previous `send` stored in the state, if it is a valid UUID."""
    if not isinstance(state, dict):
        return None
    value = state.get("channel")
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
