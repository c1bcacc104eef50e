"""The syslog sink: sends each event as one syslog message over UDP, TCP or TLS.

Messages
--------

RFC 5424 by default::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [SD-ID id="…" type="…" resource="…" org="…"] MSG

* PRI is `facility * 8 + severity`, the severity taken from the event's `severity`
  by `SEVERITY_CODES` below (missing or unknown: 6, informational).
* TIMESTAMP is the event's time (`createdAt`, else `occurredAt`), not the send
  time, in UTC with microseconds: `2026-05-10T12:00:00.123456Z`.
* PROCID is always the NILVALUE `-`.
* MSGID is the `msgid` option, else the event's `eventType` with every
  character outside printable ASCII replaced by `_` and cut to 32 characters,
  else `-`.
* The structured data element carries the event id, `eventType`, the resource
  as `resourceType/resourceId` (`-` for a missing half) and `orgId`. A param is
  left out when its field is missing or null. `"`, `\\` and `]` are escaped with
  a backslash, and control characters become U+FFFD, since RFC 5424 has no
  escape for them. `sd_id: null` sends the NILVALUE instead.
* MSG is the payload, byte for byte, as the runner encoded it. No BOM is sent
  unless `utf8_bom` is on. RFC 5424 requires a BOM before a MSG in UTF-8, but
  RFC 8259 forbids one before JSON sent over a network, and some JSON parsers,
  orjson among them, reject it. So by default a MSG with non-ASCII text does
  not follow RFC 5424 to the letter.

With `format: rfc3164` (the BSD format), a message is
`<PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME: MSG`. That timestamp has no year, no
time zone and no fraction of a second. The sink writes it in UTC, so a
receiver that reads it as its local time is off by its UTC offset. RFC 3164 has
no MSGID and no structured data, so the event id is only in the payload.

Framing: TCP and TLS use octet counting (`LEN SP MSG`, RFC 6587 and RFC 5425)
unless `framing: newline`. A UDP datagram carries one message and no framing.

Sizes
-----

`max_message_bytes` bounds each message, header included and framing excluded.
Its default depends on the transport:

* UDP, RFC 5424: 1452, so that a datagram with its IPv6 or IPv4 and UDP headers
  fits a 1500-byte Ethernet MTU. RFC 5426 recommends datagrams no larger than
  the smallest MTU of the network, to avoid fragmentation, and a lost fragment
  loses the whole message.
  It requires receivers to accept 480 bytes over IPv4 and 1180 over IPv6, and
  says that all of them should accept 2048.
* UDP, RFC 3164: 1024, the maximum packet size in RFC 3164.
* TCP and TLS: 8096. RFC 5425 says receivers should accept 8192 bytes, but
  rsyslog 8.2302 with its default `maxMessageSize` of 8k keeps only the first
  8096 bytes of a message and passes the rest on as a second message, unmarked.

A message over the limit is, by default, sent truncated: its MSG is cut at a
UTF-8 character boundary and ends in `TRUNCATION_MARKER` (`…[truncated]`), so
the message is exactly as long as the limit or one to three bytes shorter. The sink counts
those messages in `truncated` and logs `syslog.truncated` at WARNING with the
event id (rate-limited). With `oversize: dead_letter`, `send` raises a
non-retriable `SinkError` naming every such event before sending any message
of the batch, so the runner dead-letters the batch. Either way, a datagram
above the limit is never sent. When even the header plus the marker does not
fit, the batch is rejected the same way under both settings.

What a confirmed batch means
----------------------------

`send` returns once the kernel has accepted every byte of the batch: for TCP
and TLS, `loop.sock_sendall` returned for the whole batch, and for UDP, each
datagram was handed to the kernel. The sink writes to the socket itself rather
than through an asyncio stream, because `drain()` returns while up to the
stream's high-water mark (64 KiB by default) is still in process memory, and
in CPython 3.11 a TLS stream does not count the encrypted bytes that wait in
the socket transport at all.

That is all a syslog sender can know, because the receiver never acknowledges
anything. So a confirmed batch survives a crash or `kill -9` of runtools-tail,
since the kernel still sends what it accepted, but it does not survive the
machine going down before the kernel sent it. It does not survive a crash of
the receiver either: bytes in flight, in the receiver's socket buffer or in its
memory are lost, and the runner does not send them again. Confirming receipt
needs a protocol with acknowledgements, such as RELP, which this sink does not
speak.

UDP is weaker: a datagram can be dropped on the way or by a busy receiver, and
nobody finds out. When nothing listens on the port, an ICMP error makes a later
send fail with a retriable `SinkError`, but the datagrams before it are lost.

Connections
-----------

`open` connects. When that fails, it logs `syslog.connect_failed` and returns,
because the runner calls `open` only once; `send` connects again. Before each
batch, the sink checks whether the receiver closed the connection or reset it,
and if so reconnects, so a receiver restarted between two batches loses nothing.
A connection that breaks during `send` is dropped and `send` raises a
retriable `SinkError`: the runner backs off and sends the whole batch again,
so the events before the break can repeat, each with its event id in the
structured data. The sink does not back off by itself.

A receiver may reject a client only after accepting its connection. rsyslog
8.2302 checks client certificates after the TLS handshake, TLS 1.3 reports a
rejected client certificate after the client finished its handshake, and
rsyslog closes connections from senders it does not allow. A message sent into
such a connection is lost. So after connecting, the sink waits
`rejection_wait_secs` and checks that the connection is still open before the
first message goes out.

NOTE: a receiver that takes longer than `rejection_wait_secs` to reject a
connection still loses the first batch sent on it.

TLS verifies the receiver's certificate against the system's CAs plus
`tls.ca_file`, and checks that it was issued for `tls.server_name` (default:
`host`), unless `tls.verify` is false.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import structlog
from pydantic import Field, field_validator, model_validator

from tailer.clock import Clock, SystemClock
from tailer.event import Event
from tailer.jsontext import dumps_json
from tailer.ratelimit import RepeatLimiter
from tailer.sinks._http import TlsOptions, build_ssl_context, tls_problems
from tailer.sinks.base import Batch, Sink, SinkConfig, SinkError, SinkState

__all__ = [
    "FACILITY_CODES",
    "SEVERITY_CODES",
    "TRUNCATION_MARKER",
    "SyslogSink",
    "SyslogSinkConfig",
    "SyslogTls",
]

# Facility names as syslog implementations spell them, with their RFC 5424 codes.
FACILITY_CODES: Mapping[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "audit": 13,
    "alert": 14,
    "clock": 15,
    **{f"local{number}": 16 + number for number in range(8)},
}

# Event severity -> syslog severity. Any other value, or none, is 6 (informational).
SEVERITY_CODES: Mapping[str, int] = {
    "error": 3,  # err
    "warning": 4,  # warning
    "success": 5,  # notice: a normal but significant condition
    "info": 6,  # informational
}
_DEFAULT_SEVERITY = 6

TRUNCATION_MARKER = "…[truncated]".encode()

# 32473 is the private enterprise number that RFC 5612 reserves for documentation.
DEFAULT_SD_ID = "runtools@32473"

_UTF8_BOM = b"\xef\xbb\xbf"
_NILVALUE = "-"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # PRINTUSASCII in RFC 5424: codes 33 to 126
_NOT_PRINTABLE_ASCII = re.compile(r"[^!-~]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# An SD-NAME is printable ASCII except '=', ']' and '"'. A private SD-ID adds '@' and an
# enterprise number.
_PRIVATE_SD_ID = re.compile(r"[!#-<>-?A-\\^-~]+@[0-9]+(?:\.[0-9]+)*")

_MAX_UDP_MESSAGE = 65507  # the largest UDP payload over IPv4
_STREAM_MESSAGE_LIMIT = 8096  # rsyslog's maximum message size by default, see the module docstring
_RECEIVE_CHUNK = 65536
_TRUNCATION_LOG_INTERVAL_SECS = 60.0

_log = structlog.get_logger("tailer.sinks.syslog")


# --- configuration --------------------------------------------------------------------


class SyslogTls(TlsOptions):
    """TLS settings, for `protocol: tls`: those of the HTTP sinks, plus `server_name`."""

    server_name: str | None = Field(default=None, min_length=1)
    """Name the receiver's certificate must be issued for, also sent as SNI. Default: `host`."""


class SyslogSinkConfig(SinkConfig):
    """Options of the syslog sink. Sizes are in bytes, durations in seconds."""

    host: str = Field(min_length=1)
    """The receiver: a host name or an IP address."""

    protocol: Literal["udp", "tcp", "tls"] = "tcp"
    """Transport. `tls` is TCP with TLS, as in RFC 5425."""

    port: int | None = Field(default=None, ge=1, le=65535)
    """The receiver's port. None: 514 for udp and tcp, 6514 for tls."""

    format: Literal["rfc5424", "rfc3164"] = "rfc5424"
    """Message format: RFC 5424, or the older BSD format of RFC 3164."""

    framing: Literal["octet_counting", "newline"] = "octet_counting"
    """TCP and TLS only: `LEN SP MSG`, or each message followed by a newline.
    Newline framing rejects a batch whose message contains a newline."""

    facility: str = "local0"
    """Syslog facility name, such as `local0` or `daemon` (see `FACILITY_CODES`)."""

    app_name: str = Field(default="runtools-tail", min_length=1, max_length=48)
    """APP-NAME, or the TAG of RFC 3164: printable ASCII, at most 48 characters (32 for
    RFC 3164)."""

    hostname: str | None = Field(default=None, min_length=1, max_length=255)
    """HOSTNAME: printable ASCII. None: this machine's fully qualified domain name, else its
    host name, skipping `localhost`; for RFC 3164, the host name without its domain."""

    msgid: str | None = Field(default=None, min_length=1, max_length=32)
    """MSGID for every message: printable ASCII. None: each event's `eventType`."""

    sd_id: str | None = Field(default=DEFAULT_SD_ID, max_length=32)
    """SD-ID of the structured data element, `name@<private enterprise number>`. The
    default uses 32473, the number reserved for documentation: set your own. None sends
    no structured data."""

    utf8_bom: bool = False
    """RFC 5424 only: send a UTF-8 byte order mark before each MSG."""

    max_message_bytes: int | None = Field(default=None, ge=480)
    """Size limit of one message, header included, framing excluded. None: 1452 for udp
    (1024 with RFC 3164), 8096 for tcp and tls."""

    oversize: Literal["truncate", "dead_letter"] = "truncate"
    """Handling of a message over `max_message_bytes`: `truncate` sends it cut, ending in
    `…[truncated]`, and `dead_letter` rejects its batch, so the runner dead-letters it."""

    timeout_secs: float = Field(default=30.0, gt=0)
    """Time limit for connecting, TLS handshake included, and for writing one batch."""

    rejection_wait_secs: float = Field(default=0.5, ge=0)
    """TCP and TLS only: how long a new connection is watched for the receiver closing
    it, before the first message goes out. 0 sends at once."""

    tls: SyslogTls | None = None
    """TLS settings, for `protocol: tls` only. None: system CAs, verification on."""

    @field_validator("facility")
    @classmethod
    def _known_facility(cls, value: str) -> str:
        if value not in FACILITY_CODES:
            raise ValueError(
                f"facility {value!r} is not a syslog facility. "
                f"Expected one of {', '.join(FACILITY_CODES)}."
            )
        return value

    @field_validator("app_name", "hostname", "msgid")
    @classmethod
    def _printable_ascii(cls, value: str | None) -> str | None:
        if value is not None and not _PRINTABLE_ASCII.fullmatch(value):
            raise ValueError(
                f"{value!r} is invalid, because RFC 5424 header fields must be "
                "printable ASCII without spaces"
            )
        return value

    @field_validator("sd_id")
    @classmethod
    def _private_sd_id(cls, value: str | None) -> str | None:
        if value is not None and not _PRIVATE_SD_ID.fullmatch(value):
            raise ValueError(
                f"sd_id {value!r} is invalid. Expected name@<private enterprise number>, "
                f"such as {DEFAULT_SD_ID!r}, without spaces, '=', ']' or '\"'."
            )
        return value

    @model_validator(mode="after")
    def _options_fit_protocol(self) -> SyslogSinkConfig:
        given = self.model_fields_set
        if self.protocol == "udp":
            for option in ("framing", "rejection_wait_secs"):
                if option in given:
                    raise ValueError(f"{option} applies to tcp and tls, not to udp")
            if self.message_limit > _MAX_UDP_MESSAGE:
                raise ValueError(
                    f"max_message_bytes {self.message_limit} does not fit in a UDP datagram, "
                    f"whose maximum payload is {_MAX_UDP_MESSAGE} bytes"
                )
        if self.protocol != "tls" and self.tls is not None:
            raise ValueError(f"tls applies to protocol tls, not to {self.protocol}")
        if self.format == "rfc3164":
            if self.utf8_bom:
                raise ValueError("utf8_bom applies to format rfc5424, not to rfc3164")
            if len(self.app_name) > 32 or ":" in self.app_name or "[" in self.app_name:
                raise ValueError(
                    f"app_name {self.app_name!r} is invalid as an RFC 3164 TAG, "
                    "which has at most 32 characters and no ':' or '['"
                )
        return self

    @property
    def target_port(self) -> int:
        """The port to connect to: `port`, else the protocol's default."""
        if self.port is not None:
            return self.port
        return 6514 if self.protocol == "tls" else 514

    @property
    def message_limit(self) -> int:
        """The size limit of one message: `max_message_bytes`, else the transport's default."""
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        if self.protocol != "udp":
            return _STREAM_MESSAGE_LIMIT
        return 1024 if self.format == "rfc3164" else 1452


# --- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    """One formatted message. `original_size` is set when the message was truncated."""

    event_id: str
    data: bytes
    original_size: int | None = None


def _text(value: Any) -> str | None:
    """Return a JSON value as text: strings as they are, others as compact JSON, null as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return dumps_json(value).decode()


def _header_field(value: str | None, max_length: int) -> str:
    """Make `value` a valid header field: printable ASCII only, at most `max_length` long."""
    if not value:
        return _NILVALUE
    return _NOT_PRINTABLE_ASCII.sub("_", value)[:max_length]


def _param_value(value: str) -> str:
    """Escape a PARAM-VALUE as RFC 5424 requires. Control characters become U+FFFD."""
    value = _CONTROL_CHARACTERS.sub("\ufffd", value)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _utc(time_ns: int) -> tuple[datetime.datetime, int]:
    """Return the UTC time to the second, and the microseconds after it."""
    seconds, nanoseconds = divmod(time_ns, 1_000_000_000)
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC), nanoseconds // 1000


def _rfc5424_timestamp(time_ns: int) -> str:
    stamp, microseconds = _utc(time_ns)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{microseconds:06d}Z"


def _rfc3164_timestamp(time_ns: int) -> str:
    stamp, _ = _utc(time_ns)
    return f"{_MONTHS[stamp.month - 1]} {stamp.day:2d} {stamp:%H:%M:%S}"


def _severity_code(severity: Any) -> int:
    if isinstance(severity, str):
        return SEVERITY_CODES.get(severity.lower(), _DEFAULT_SEVERITY)
    return _DEFAULT_SEVERITY


def _cut_utf8(data: bytes, size: int) -> bytes:
    """Return at most `size` bytes of `data`, without splitting a UTF-8 character."""
    if len(data) <= size:
        return data
    end = size
    while end > 0 and data[end] & 0xC0 == 0x80:  # back up over continuation bytes, 10xxxxxx
        end -= 1
    return data[:end]


class _Formatter:
    """Builder of the syslog messages of events, which truncates or rejects them by size."""

    def __init__(self, options: SyslogSinkConfig, hostname: str) -> None:
        self._options = options
        self._hostname = hostname
        self._facility = FACILITY_CODES[options.facility]
        self._limit = options.message_limit

    def header(self, event: Event) -> bytes:
        """Return the message up to MSG, ending in the space before it."""
        raw = event.raw
        pri = self._facility * 8 + _severity_code(raw.get("severity"))
        options = self._options

        if options.format == "rfc3164":
            timestamp = _rfc3164_timestamp(event.time_ns)
            return f"<{pri}>{timestamp} {self._hostname} {options.app_name}: ".encode()

        msgid = options.msgid or _header_field(_text(raw.get("eventType")), 32)
        timestamp = _rfc5424_timestamp(event.time_ns)
        structured_data = self._structured_data(event)
        return (
            f"<{pri}>1 {timestamp} {self._hostname} {options.app_name} - {msgid} {structured_data} "
        ).encode()

    def _structured_data(self, event: Event) -> str:
        if self._options.sd_id is None:
            return _NILVALUE
        raw = event.raw
        params = {"id": event.id, "type": _text(raw.get("eventType"))}
        resource_type = _text(raw.get("resourceType"))
        resource_id = _text(raw.get("resourceId"))
        if resource_type is not None or resource_id is not None:
            params["resource"] = f"{resource_type or _NILVALUE}/{resource_id or _NILVALUE}"
        params["org"] = _text(raw.get("orgId"))
        rendered = "".join(
            f' {name}="{_param_value(value)}"'
            for name, value in params.items()
            if value is not None
        )
        return f"[{self._options.sd_id}{rendered}]"

    def messages(self, batch: Batch) -> list[_Message]:
        """Format every event of the batch, or raise a final SinkError naming those that fail."""
        options = self._options
        limit = self._limit
        bom = _UTF8_BOM if options.utf8_bom else b""
        messages: list[_Message] = []
        oversize: list[str] = []
        unfit: list[str] = []
        for event, payload in zip(batch.events, batch.payloads, strict=True):
            header = self.header(event)
            body = bom + payload
            size = len(header) + len(body)
            if size <= limit:
                messages.append(_Message(event.id, header + body))
                continue
            if options.oversize == "dead_letter":
                oversize.append(f"{event.id} ({size} bytes)")
                continue
            room = limit - len(header) - len(TRUNCATION_MARKER)
            if room < 0:
                unfit.append(f"{event.id} (header {len(header)} bytes)")
                continue
            data = header + _cut_utf8(body, room) + TRUNCATION_MARKER
            messages.append(_Message(event.id, data, original_size=size))

        if oversize:
            raise SinkError(
                f"{_count(len(oversize), 'event')} exceeded max_message_bytes ({limit}), "
                f"and oversize is dead_letter: {', '.join(oversize)}. Raise max_message_bytes "
                "if the receiver accepts larger messages, or set oversize: truncate.",
                retriable=False,
            )
        if unfit:
            raise SinkError(
                f"{_count(len(unfit), 'event')} cannot be truncated to max_message_bytes "
                f"({limit}), because the header and the truncation marker alone are larger: "
                f"{', '.join(unfit)}. Raise max_message_bytes.",
                retriable=False,
            )
        if options.protocol != "udp" and options.framing == "newline":
            split = [message.event_id for message in messages if b"\n" in message.data]
            if split:
                raise SinkError(
                    f"{_count(len(split), 'event')} encoded as {batch.encoding} with a newline "
                    f"inside, which newline framing would split into two messages: "
                    f"{', '.join(split)}. Use framing: octet_counting.",
                    retriable=False,
                )
        return messages


def _os_reason(exc: OSError) -> str:
    """Return the standard text of the error's errno.

    asyncio's `sock_connect` raises with the message "Connect call failed", which hides the cause.
    """
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _local_hostname(short: bool) -> str:
    """Return this machine's name as a HOSTNAME, or the NILVALUE when no name is usable.

    `socket.getfqdn()` returns `localhost` on machines whose host name resolves
    only through the loopback entry, which would hide the sender, so `localhost`
    is skipped.
    """
    host_name = socket.gethostname()
    candidates = [host_name.split(".", 1)[0]] if short else [socket.getfqdn(host_name), host_name]
    for name in candidates:
        usable = _PRINTABLE_ASCII.fullmatch(name) and len(name) <= 255
        if usable and name.split(".", 1)[0] != "localhost":
            return name
    return _NILVALUE


# --- connections ----------------------------------------------------------------------


class _StreamConnection:
    """A TCP connection, with TLS optional, written with `loop.sock_sendall`.

    TLS runs over memory buffers (`ssl.SSLObject`), so every encrypted byte is
    handed to the kernel before `send` returns.
    """

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject | None) -> None:
        self._sock = sock
        self._tls = tls
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()

    @classmethod
    async def connect(
        cls, host: str, port: int, context: ssl.SSLContext | None, server_name: str
    ) -> _StreamConnection:
        sock = await _connect_socket(host, port, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        connection = cls(sock, None)
        if context is None:
            return connection
        try:
            connection._tls = context.wrap_bio(
                connection._incoming, connection._outgoing, server_hostname=server_name
            )
            await connection._handshake()
        except BaseException:
            connection.close()
            raise
        return connection

    @property
    def tls_version(self) -> str | None:
        return self._tls.version() if self._tls is not None else None

    async def _handshake(self) -> None:
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush_tls()
                data = await loop.sock_recv(self._sock, _RECEIVE_CHUNK)
                if not data:
                    raise ConnectionResetError(
                        "the receiver closed the connection during the TLS handshake"
                    ) from None
                self._incoming.write(data)
            else:
                await self._flush_tls()  # TLS 1.3: the client's Finished message
                return

    async def _flush_tls(self) -> None:
        data = self._outgoing.read()
        if data:
            await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def send(self, data: bytes) -> None:
        """Write `data`; return once the kernel accepted all of it."""
        if self._tls is not None:
            view = memoryview(data)
            while view:
                written = self._tls.write(view)
                view = view[written:]
            data = self._outgoing.read()
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def closed_reason(self) -> str | None:
        """Read what the receiver sent, without waiting, and return why the connection is closed.

        Return None while the connection is open. A syslog receiver sends no
        messages, so what arrives is TLS protocol data (session tickets, alerts),
        the end of the stream or a reset.
        """
        ended = False
        while True:
            try:
                data = self._sock.recv(_RECEIVE_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                return f"connection reset: {_os_reason(exc)}"
            if not data:
                ended = True
                break
            if self._tls is not None:
                self._incoming.write(data)

        if self._tls is not None:
            try:
                while self._tls.read(_RECEIVE_CHUNK):
                    pass  # application data from a receiver has no meaning here
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return "the receiver ended the TLS session"
            except ssl.SSLError as exc:
                return f"TLS error: {exc.reason or exc}"
        return "the receiver closed the connection" if ended else None

    def close(self) -> None:
        """Close at once. Pending bytes still reach the receiver, unless it reset the connection.

        Unread input is read first, because closing a socket with unread input
        makes the kernel reset the connection and drop what it has not sent yet.
        """
        self.closed_reason()
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # queues close_notify, without waiting for the receiver's
            with contextlib.suppress(OSError):
                self._sock.send(self._outgoing.read())
        self._sock.close()


class _DatagramConnection:
    """A connected UDP socket: one message per datagram."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, host: str, port: int) -> _DatagramConnection:
        return cls(await _connect_socket(host, port, socket.SOCK_DGRAM))

    async def send(self, datagram: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self._sock, datagram)

    def close(self) -> None:
        self._sock.close()


async def _connect_socket(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    """Connect a non-blocking socket to the first address of `host` that accepts."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=kind)
    errors: list[OSError] = []
    for family, socket_type, proto, _, address in addresses:
        sock = socket.socket(family, socket_type, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if errors:
        raise errors[-1]
    raise OSError(f"no address found for {host}")


# --- the sink -------------------------------------------------------------------------


class SyslogSink(Sink):
    """Sends events as syslog messages. See the module docstring for formats and guarantees.

    `truncated` counts the messages that were sent truncated since the sink was created.
    """

    config_model: ClassVar[type[SinkConfig]] = SyslogSinkConfig

    def __init__(self, name: str, config: SinkConfig, *, clock: Clock | None = None) -> None:
        if not isinstance(config, SyslogSinkConfig):
            raise TypeError(f"SyslogSink needs a SyslogSinkConfig, not {type(config).__name__}")
        super().__init__(name, config)
        self._options = config
        self._clock = clock or SystemClock()
        self._target = f"{config.host}:{config.target_port}/{config.protocol}"
        self._formatter: _Formatter | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._connection: _StreamConnection | _DatagramConnection | None = None
        self._truncation_log = RepeatLimiter(_TRUNCATION_LOG_INTERVAL_SECS, self._clock.monotonic)
        self.truncated = 0

    def __repr__(self) -> str:
        return f"SyslogSink(name={self.name!r}, target={self._target!r})"

    def credential_problems(self) -> list[str]:
        if self._options.protocol != "tls":
            return []
        return tls_problems(self._options.tls or SyslogTls())

    async def open(self, state: SinkState) -> None:
        """Load the TLS files and connect. A second call starts afresh.

        Raises ConfigError when a TLS file is missing or invalid. A failed
        connection is logged, not raised, and `send` tries again.
        """
        await self.close()
        options = self._options
        if options.protocol == "tls":
            self._ssl_context = build_ssl_context(options.tls or SyslogTls())
        hostname = options.hostname
        if hostname is None:
            hostname = await asyncio.to_thread(_local_hostname, options.format == "rfc3164")
        self._formatter = _Formatter(options, hostname)
        _log.debug("syslog.opened", sink=self.name, target=self._target, hostname=hostname)

        try:
            self._connection = await self._connect()
        except SinkError as exc:
            _log.warning(
                "syslog.connect_failed", sink=self.name, target=self._target, error=str(exc)
            )

    async def close(self) -> None:
        """Close the connection; closing twice, or before `open`, is harmless."""
        self._discard_connection()
        self._formatter = None

    async def send(self, batch: Batch) -> SinkState:
        """Send every event of the batch as one message, or raise SinkError.

        An empty batch sends nothing. See the module docstring for what a
        returned call guarantees.
        """
        if self._formatter is None:
            raise RuntimeError(f"syslog sink {self.name!r} is not open; call open() first")
        if not batch.payloads:
            return None
        messages = self._formatter.messages(batch)

        connection = await self._usable_connection()
        try:
            async with asyncio.timeout(self._options.timeout_secs):
                if isinstance(connection, _DatagramConnection):
                    for message in messages:
                        await connection.send(message.data)
                else:
                    await connection.send(b"".join(self._frame(m.data) for m in messages))
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._discard_connection()
            error = SinkError(self._send_failure(exc, len(messages)), retriable=True)
            _log.debug("syslog.failed", sink=self.name, batch=batch.key, error=str(error))
            raise error from None
        except BaseException:
            # Cancelled midway: the stream may end inside a message, so it cannot be reused.
            self._discard_connection()
            raise

        for message in messages:
            if message.original_size is not None:
                self._report_truncation(message)
        return None

    # -- connecting ------------------------------------------------------------

    async def _usable_connection(self) -> _StreamConnection | _DatagramConnection:
        """Return the open connection, after reconnecting if the receiver closed it."""
        connection = self._connection
        if isinstance(connection, _StreamConnection):
            reason = connection.closed_reason()
            if reason is not None:
                # A batch confirmed on this connection may have been lost with the receiver.
                _log.warning(
                    "syslog.disconnected", sink=self.name, target=self._target, reason=reason
                )
                self._discard_connection()
        if self._connection is None:
            self._connection = await self._connect()
        return self._connection

    async def _connect(self) -> _StreamConnection | _DatagramConnection:
        """Connect, or raise a retriable SinkError."""
        options = self._options
        port = options.target_port
        try:
            async with asyncio.timeout(options.timeout_secs):
                if options.protocol == "udp":
                    return await _DatagramConnection.connect(options.host, port)
                server_name = (options.tls and options.tls.server_name) or options.host
                connection = await _StreamConnection.connect(
                    options.host, port, self._ssl_context, server_name
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SinkError(self._connect_failure(exc), retriable=True) from None

        if options.rejection_wait_secs > 0:
            try:
                await self._clock.sleep(options.rejection_wait_secs)
            except BaseException:
                connection.close()
                raise
            reason = connection.closed_reason()
            if reason is not None:
                connection.close()
                raise SinkError(
                    f"syslog receiver {self._target} closed the connection right after it was "
                    f"opened ({reason}). It may reject this client: check its allowed senders "
                    "and, for TLS, tls.cert_file and tls.key_file.",
                    retriable=True,
                )
        _log.debug(
            "syslog.connected",
            sink=self.name,
            target=self._target,
            tls_version=connection.tls_version,
        )
        return connection

    def _discard_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect_failure(self, exc: BaseException) -> str:
        prefix = f"cannot connect to syslog receiver {self._target}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"{prefix}: its TLS certificate failed verification ({exc.verify_message}). "
                "Set tls.ca_file to the CA that issued it, or tls.server_name to the name "
                "it was issued for."
            )
        if isinstance(exc, TimeoutError):
            return f"{prefix}: timed out after {self._options.timeout_secs:g} s (timeout_secs)"
        if isinstance(exc, socket.gaierror):
            return f"{prefix}: the host name cannot be resolved ({exc.strerror})"
        if isinstance(exc, ssl.SSLError):
            return f"{prefix}: the TLS handshake failed ({exc.reason or exc})"
        return f"{prefix}: {_os_reason(exc)}" if isinstance(exc, OSError) else prefix

    def _send_failure(self, exc: BaseException, count: int) -> str:
        if isinstance(exc, TimeoutError):
            reason = f"timed out after {self._options.timeout_secs:g} s (timeout_secs)"
        elif isinstance(exc, ConnectionRefusedError) and self._options.protocol == "udp":
            reason = (
                "the port is closed (ICMP port unreachable), so datagrams sent before "
                "this batch may be lost"
            )
        elif isinstance(exc, OSError):
            reason = _os_reason(exc)
        else:
            reason = str(exc)
        return (
            f"sending {_count(count, 'message')} to syslog receiver {self._target} failed: "
            f"{reason}. Messages sent before the failure repeat when the batch is sent again."
        )

    # -- sending ---------------------------------------------------------------

    def _frame(self, data: bytes) -> bytes:
        if self._options.framing == "newline":
            return data + b"\n"
        return b"%d %b" % (len(data), data)

    def _report_truncation(self, message: _Message) -> None:
        self.truncated += 1
        suppressed = self._truncation_log.record("truncated")
        if suppressed is not None:
            _log.warning(
                "syslog.truncated",
                sink=self.name,
                event_id=message.event_id,
                bytes=message.original_size,
                max_message_bytes=self._options.message_limit,
                repeats=suppressed,
            )
