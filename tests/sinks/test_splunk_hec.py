"""SplunkHecSink against a Splunk HEC stand-in on 127.0.0.1.

No Splunk server runs in the tests. `FakeHec` is an aiohttp server, started by
each test on 127.0.0.1 only, that implements the documented HEC request and
response format: `POST /services/collector/event` with concatenated event
objects, `Authorization: Splunk <token>`, `{"text": ..., "code": N}`
responses with Splunk's codes, and indexer acknowledgement through
`X-Splunk-Request-Channel`, `ackId` and `POST /services/collector/ack`.
A fake clock drives the acknowledgement polls, so they take no real time.
The only real waits are the 0.2 s request timeouts in two tests.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trustme
from aiohttp import web
from multidict import CIMultiDict
from pydantic import ValidationError
from structlog.typing import EventDict

import tailer.sinks.splunk_hec
from tailer import __version__
from tailer.errors import ConfigError
from tailer.event import Event
from tailer.sinks.base import Batch, SinkConfig, SinkError
from tailer.sinks.splunk_hec import SplunkHecSink, SplunkHecSinkConfig, format_hec_time

NOW = 1_700_000_000.0
TOKEN = "5f1c2d3e-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
PROXY_PASSWORD = "proxy-pw-93c1"
CHANNEL = "0f8e6c2a-3b4d-4e5f-9a6b-7c8d9e0f1a2b"

# One instant, 1994-11-06T08:49:37Z, and one 30 seconds later, as HTTP dates.
SERVER_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
RETRY_DATE = "Sun, 06 Nov 1994 08:50:07 GMT"

PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]

EVENTS: list[dict[str, Any]] = [
    {"id": "act_1", "createdAt": "2024-12-04T19:25:02.123456789Z", "eventType": "agent.run"},
    {"id": "act_2", "createdAt": "2024-12-04T19:25:03Z", "note": 'ünïcode, "quotes"\n'},
    {"id": "act_3", "createdAt": "2024-12-04T19:25:03.000001999Z", "nested": {"a": [1, None]}},
]
TIMES_NS = [1_733_340_302_123_456_789, 1_733_340_303_000_000_000, 1_733_340_303_000_001_999]
TIMES_TEXT = [b"1733340302.123456", b"1733340303.000000", b"1733340303.000001"]

ECS_DOCUMENTS: list[dict[str, Any]] = [
    {
        "@timestamp": "2024-12-04T19:25:02.123Z",
        "ecs": {"version": "8.11.0"},
        "event": {"id": "act_1", "action": "agent.run.completed", "kind": "event"},
    },
    {
        "@timestamp": "2024-12-04T19:25:03.000Z",
        "ecs": {"version": "8.11.0"},
        "event": {"id": "act_2", "action": "tool.called", "kind": "event"},
    },
]

CEF_LINES = [
    "CEF:0|RunTools|runtools-tail|1.0|agent.run.completed|Agent run completed|3|"
    "externalId=act_1 msg=done",
    'CEF:0|RunTools|runtools-tail|1.0|tool.called|Tool called|5|externalId=act_2 msg=a "quote" '
    "and a \\\\ backslash",
]


def make_config(**options: Any) -> SplunkHecSinkConfig:
    """Validate options as the daemon does with a sink's config section."""
    options.setdefault("token", TOKEN)
    return SplunkHecSinkConfig.model_validate(options)


def make_batch(
    raws: list[dict[str, Any]],
    *,
    payloads: list[bytes] | None = None,
    encoding: str = "json",
    times_ns: list[int] | None = None,
    first_seq: int = 1,
) -> Batch:
    times = times_ns if times_ns is not None else TIMES_NS[: len(raws)]
    events = [Event(raw["id"], time_ns, raw) for raw, time_ns in zip(raws, times, strict=True)]
    return Batch(
        sink="splunk",
        events=events,
        payloads=payloads if payloads is not None else [orjson.dumps(raw) for raw in raws],
        first_seq=first_seq,
        last_seq=first_seq + len(raws) - 1,
        encoding=encoding,
    )


def ecs_batch() -> Batch:
    raws = [{"id": document["event"]["id"]} for document in ECS_DOCUMENTS]
    payloads = [orjson.dumps(document) for document in ECS_DOCUMENTS]
    return make_batch(raws, payloads=payloads, encoding="ecs")


def cef_batch(lines: list[str] = CEF_LINES) -> Batch:
    raws = [{"id": f"act_{index + 1}"} for index in range(len(lines))]
    return make_batch(raws, payloads=[line.encode() for line in lines], encoding="cef")


class FakeClock:
    """A Clock that moves only when the code under test sleeps or a test changes it."""

    def __init__(self, wall: float = NOW) -> None:
        self.wall = wall
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += seconds
        self.elapsed += seconds


# --- the HEC stand-in -----------------------------------------------------------------


@dataclass
class Reply:
    """A scripted response. `hold` delays it until the receiver stops."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hold: bool = False


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    peer_certificate: dict[str, Any] | None

    def decoded_body(self) -> bytes:
        if self.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(self.body)
        return self.body


def hec_reply(status: int, code: int, text: str) -> Reply:
    """A scripted HEC response with Splunk's `{"text": ..., "code": N}` body."""
    return Reply(status=status, body=orjson.dumps({"text": text, "code": code}))


class FakeHec:
    """Splunk HEC on 127.0.0.1: the event and ack endpoints, with Splunk's codes.

    `ack` turns on indexer acknowledgement for the token. An ackId then stays
    pending for `pending_polls` queries and is true on the next one, or is
    never true with `never_acknowledge`. As in Splunk, a query that returned
    true deletes the id's status. Scripted `event_replies` and `ack_replies`
    answer the first requests of each kind instead of the HEC logic.
    """

    def __init__(
        self,
        *,
        ack: bool = False,
        pending_polls: int = 0,
        never_acknowledge: bool = False,
        event_replies: list[Reply] | None = None,
        ack_replies: list[Reply] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ack = ack
        self.pending_polls = pending_polls
        self.never_acknowledge = never_acknowledge
        self.event_replies = list(event_replies or [])
        self.ack_replies = list(ack_replies or [])
        self.event_requests: list[Received] = []
        self.ack_requests: list[Received] = []
        self.events: list[dict[str, Any]] = []
        self._ssl_context = ssl_context
        self._next_ack_id: dict[str, int] = {}
        self._pending: dict[tuple[str, int], int] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeHec:
        app = web.Application()
        app.router.add_post("/{prefix:.*}services/collector/event", self._handle_event)
        app.router.add_post("/{prefix:.*}services/collector/ack", self._handle_ack)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _record(self, request: web.Request, into: list[Received]) -> Received:
        transport = request.transport
        received = Received(
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            peer_certificate=transport.get_extra_info("peercert") if transport else None,
        )
        into.append(received)
        return received

    async def _scripted(self, replies: list[Reply]) -> web.Response | None:
        if not replies:
            return None
        reply = replies.pop(0)
        if reply.hold:
            await self._release.wait()
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def _handle_event(self, request: web.Request) -> web.Response:
        received = await self._record(request, self.event_requests)
        scripted = await self._scripted(self.event_replies)
        if scripted is not None:
            return scripted
        denied = self._check_token(received)
        if denied is not None:
            return denied
        channel = self._channel(received)
        if self.ack and channel is None:
            return _json_response(400, {"text": "Data channel is missing", "code": 10})

        # Splunk's batch format: JSON objects one after another, whitespace between them.
        text = received.decoded_body().decode()
        decoder = json.JSONDecoder()
        objects: list[dict[str, Any]] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                break
            try:
                value, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                return _json_response(
                    400,
                    {
                        "text": "Invalid data format",
                        "code": 6,
                        "invalid-event-number": len(objects),
                    },
                )
            objects.append(value)
        if not objects:
            return _json_response(400, {"text": "No data", "code": 5})
        for number, value in enumerate(objects):
            if "event" not in value:
                return _json_response(
                    400,
                    {"text": "Event field is required", "code": 12, "invalid-event-number": number},
                )
            if value["event"] in ("", {}):
                return _json_response(
                    400,
                    {
                        "text": "Event field cannot be blank",
                        "code": 13,
                        "invalid-event-number": number,
                    },
                )

        self.events.extend(objects)
        if not self.ack:
            return _json_response(200, {"text": "Success", "code": 0})
        assert channel is not None
        ack_id = self._next_ack_id.get(channel, 0)
        self._next_ack_id[channel] = ack_id + 1
        self._pending[(channel, ack_id)] = self.pending_polls
        return _json_response(200, {"text": "Success", "code": 0, "ackId": ack_id})

    async def _handle_ack(self, request: web.Request) -> web.Response:
        received = await self._record(request, self.ack_requests)
        scripted = await self._scripted(self.ack_replies)
        if scripted is not None:
            return scripted
        denied = self._check_token(received)
        if denied is not None:
            return denied
        if not self.ack:
            return _json_response(400, {"text": "ACK is disabled", "code": 14})
        channel = self._channel(received)
        if channel is None:
            return _json_response(400, {"text": "Data channel is missing", "code": 10})

        query = orjson.loads(received.body)
        statuses = {}
        for ack_id in query["acks"]:
            key = (channel, ack_id)
            remaining = self._pending.get(key)
            if remaining is None or self.never_acknowledge:
                statuses[str(ack_id)] = False
            elif remaining > 0:
                self._pending[key] = remaining - 1
                statuses[str(ack_id)] = False
            else:
                del self._pending[key]
                statuses[str(ack_id)] = True
        return _json_response(200, {"acks": statuses})

    def _check_token(self, received: Received) -> web.Response | None:
        authorization = received.headers.get("Authorization")
        if authorization is None:
            return _json_response(401, {"text": "Token is required", "code": 2})
        scheme, _, token = authorization.partition(" ")
        if scheme != "Splunk":
            return _json_response(401, {"text": "Invalid authorization", "code": 3})
        if token != TOKEN:
            return _json_response(403, {"text": "Invalid token", "code": 4})
        return None

    def _channel(self, received: Received) -> str | None:
        return received.query.get("channel") or received.headers.get("X-Splunk-Request-Channel")


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


@dataclass
class ProxiedRequest:
    method: str
    target: str
    headers: dict[str, str]


class ConnectProxy:
    """An HTTP proxy on 127.0.0.1 that tunnels CONNECT to 127.0.0.1 only, recording each request."""

    def __init__(self) -> None:
        self.requests: list[ProxiedRequest] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://tailer:{PROXY_PASSWORD}@127.0.0.1:{self.port}"

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return

        first_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = first_line.split(" ")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.requests.append(ProxiedRequest(method, target, headers))

        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(port))
        self._writers.append(upstream_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(
            _copy(reader, upstream_writer), _copy(upstream_reader, writer), return_exceptions=True
        )


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the machine's proxy settings and ~/.netrc away from every test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Capture the sink's structlog events, whatever logging an earlier test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            logger = structlog.get_logger("tailer.sinks.splunk_hec")
            monkeypatch.setattr(tailer.sinks.splunk_hec, "_log", logger)
            yield logs
    finally:
        structlog.configure(**saved)


@dataclass(frozen=True)
class Tls:
    ca: trustme.CA
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("hec-tls")
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("tail-forwarder.localhost")
    cert_file = directory / "client.pem"
    key_file = directory / "client-key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    return Tls(ca, ca_file, cert_file, key_file)


async def serve(stack: AsyncExitStack, **options: Any) -> FakeHec:
    return await stack.enter_async_context(FakeHec(**options))


async def open_sink(
    stack: AsyncExitStack,
    clock: FakeClock | None = None,
    state: dict[str, Any] | None = None,
    **options: Any,
) -> SplunkHecSink:
    sink = SplunkHecSink("splunk", make_config(**options), clock=clock or FakeClock())
    await sink.open(state)
    stack.push_async_callback(sink.close)
    return sink


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def hec_object(time_text: bytes, members: bytes, event: bytes) -> bytes:
    return b'{"time":' + time_text + b"," + members + b',"event":' + event + b"}"


# --- the request body -----------------------------------------------------------------


async def test_json_body_exact(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)
    batch = make_batch(EVENTS)

    state = await sink.send(batch)

    assert state is None
    [request] = hec.event_requests
    assert request.path == "/services/collector/event"
    members = b'"source":"runtools:activity","sourcetype":"_json"'
    expected = [
        hec_object(time_text, members, payload)
        for time_text, payload in zip(TIMES_TEXT, batch.payloads, strict=True)
    ]
    assert request.body == b"\n".join(expected)
    assert hec.events == [
        {
            "time": float(time_text),
            "source": "runtools:activity",
            "sourcetype": "_json",
            "event": raw,
        }
        for time_text, raw in zip(TIMES_TEXT, EVENTS, strict=True)
    ]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"runtools-tail/{__version__}"
    assert "Content-Encoding" not in request.headers
    assert "X-Splunk-Request-Channel" not in request.headers


async def test_ecs_body_exact(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)
    batch = ecs_batch()

    await sink.send(batch)

    [request] = hec.event_requests
    members = b'"source":"runtools:activity","sourcetype":"_json"'
    assert request.body == b"\n".join(
        hec_object(TIMES_TEXT[index], members, payload)
        for index, payload in enumerate(batch.payloads)
    )
    assert [stored["event"] for stored in hec.events] == ECS_DOCUMENTS


async def test_cef_body_event_is_string(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)

    await sink.send(cef_batch())

    [request] = hec.event_requests
    members = b'"source":"runtools:activity","sourcetype":"cef"'
    assert request.body == b"\n".join(
        hec_object(TIMES_TEXT[index], members, orjson.dumps(line))
        for index, line in enumerate(CEF_LINES)
    )
    assert [stored["event"] for stored in hec.events] == CEF_LINES
    assert {stored["sourcetype"] for stored in hec.events} == {"cef"}


@pytest.mark.parametrize("encoding", ["json", "cef"])
async def test_metadata_options_exact(stack: AsyncExitStack, encoding: str) -> None:
    hec = await serve(stack)
    sink = await open_sink(
        stack,
        url=hec.url,
        host="tail-01",
        source="runtools:prod",
        sourcetype="runtools:activity",
        index="audit",
        fields={"env": "prod", "teams": ["ops", "sec"]},
    )
    batch = make_batch(EVENTS[:1]) if encoding == "json" else cef_batch(CEF_LINES[:1])

    await sink.send(batch)

    [request] = hec.event_requests
    members = (
        b'"host":"tail-01","source":"runtools:prod","sourcetype":"runtools:activity",'
        b'"index":"audit","fields":{"env":"prod","teams":["ops","sec"]}'
    )
    event = batch.payloads[0] if encoding == "json" else orjson.dumps(CEF_LINES[0])
    assert request.body == hec_object(TIMES_TEXT[0], members, event)


async def test_source_null_left_out(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url, source=None)

    await sink.send(make_batch(EVENTS[:1]))

    assert hec.events[0].keys() == {"time", "sourcetype", "event"}


@pytest.mark.parametrize(
    ("time_ns", "expected"),
    [
        (1_733_340_302_123_456_789, "1733340302.123456"),
        (1_733_340_302_000_000_000, "1733340302.000000"),
        (1_733_340_302_000_000_999, "1733340302.000000"),
        (1_733_340_302_999_999_999, "1733340302.999999"),
        (1_000, "0.000001"),
        (0, "0.000000"),
        (-1_500_000_000, "-1.500000"),
    ],
)
def test_hec_time_has_six_decimals(time_ns: int, expected: str) -> None:
    assert format_hec_time(time_ns) == expected


async def test_url_path_prefix_kept(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url + "/splunk/")

    await sink.send(make_batch(EVENTS))

    assert hec.event_requests[0].path == "/splunk/services/collector/event"


async def test_gzip_body_decompresses_same(stack: AsyncExitStack) -> None:
    plain = await serve(stack)
    compressed = await serve(stack)
    plain_sink = await open_sink(stack, url=plain.url)
    gzip_sink = await open_sink(stack, url=compressed.url, gzip=True)
    batch = make_batch(EVENTS)

    await plain_sink.send(batch)
    await gzip_sink.send(batch)

    [sent_plain] = plain.event_requests
    [sent_gzip] = compressed.event_requests
    assert sent_gzip.headers["Content-Encoding"] == "gzip"
    assert sent_gzip.body.startswith(b"\x1f\x8b")
    assert gzip.decompress(sent_gzip.body) == sent_plain.body
    assert compressed.events == plain.events


async def test_gzip_large_body_decompresses_same(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url, gzip=True)
    raws = [{"id": f"act_{index}", "text": "x" * 1000} for index in range(400)]
    batch = make_batch(raws, times_ns=[TIMES_NS[0]] * len(raws))

    await sink.send(batch)

    assert [stored["event"] for stored in hec.events] == raws


async def test_empty_batch_sends_nothing(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)

    state = await sink.send(make_batch([]))

    assert state is None
    assert hec.event_requests == []


async def test_unsupported_encoding_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)
    batch = make_batch(EVENTS, encoding="msgpack")

    with pytest.raises(SinkError) as failure:
        await sink.send(batch)

    assert not failure.value.retriable
    assert "cannot send encoding 'msgpack'" in str(failure.value)
    assert "one of cef, ecs, json" in str(failure.value)
    assert hec.event_requests == []


async def test_cef_invalid_utf8_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)
    batch = make_batch(
        [{"id": "act_1"}, {"id": "act_2"}], payloads=[b"CEF:0|ok", b"CEF:0|\xff"], encoding="cef"
    )

    with pytest.raises(SinkError) as failure:
        await sink.send(batch)

    assert not failure.value.retriable
    assert "event 2 of the batch splunk:1-2 of 2 events (id 'act_2')" in str(failure.value)
    assert "not valid UTF-8" in str(failure.value)
    assert hec.event_requests == []


# --- the token ------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["inline", "env", "file"])
async def test_token_sources(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    options: dict[str, Any] = {"token": None}
    if source == "inline":
        options["token"] = TOKEN
    elif source == "env":
        monkeypatch.setenv("HEC_TOKEN", TOKEN)
        options["token_env"] = "HEC_TOKEN"
    else:
        token_file = tmp_path / "hec-token"
        token_file.write_text(f"{TOKEN}\n")
        options["token_file"] = str(token_file)
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url, **options)

    await sink.send(make_batch(EVENTS))

    assert hec.event_requests[0].headers["Authorization"] == f"Splunk {TOKEN}"
    assert len(hec.events) == 3


async def test_token_file_reread_on_open(stack: AsyncExitStack, tmp_path: Path) -> None:
    token_file = tmp_path / "hec-token"
    token_file.write_text("old-token")
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url, token=None, token_file=str(token_file))

    with pytest.raises(SinkError) as rejected:
        await sink.send(make_batch(EVENTS))
    token_file.write_text(TOKEN)
    await sink.open(None)
    await sink.send(make_batch(EVENTS))

    assert "HEC code 4 'Invalid token'" in str(rejected.value)
    assert [request.headers["Authorization"] for request in hec.event_requests] == [
        "Splunk old-token",
        f"Splunk {TOKEN}",
    ]


async def test_missing_token_env_fails_open() -> None:
    sink = SplunkHecSink(
        "splunk", make_config(url="https://127.0.0.1:8088", token=None, token_env="HEC_TOKEN")
    )

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert str(failure.value) == "token: environment variable HEC_TOKEN is not set or empty"


@pytest.mark.parametrize(("content", "expected"), [(None, "not found"), ("\n", "is empty")])
async def test_bad_token_file_fails_open(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    token_file = tmp_path / "hec-token"
    if content is not None:
        token_file.write_text(content)
    config = make_config(url="https://127.0.0.1:8088", token=None, token_file=str(token_file))

    with pytest.raises(ConfigError) as failure:
        await SplunkHecSink("splunk", config).open(None)

    assert str(failure.value) == f"token: file {str(token_file)!r} {expected}"


async def test_token_with_space_fails_open() -> None:
    config = make_config(url="https://127.0.0.1:8088", token=f"{TOKEN} extra")

    with pytest.raises(ConfigError) as failure:
        await SplunkHecSink("splunk", config).open(None)

    assert "token contains whitespace or a control character" in str(failure.value)
    assert TOKEN not in str(failure.value)


@pytest.mark.parametrize(
    "options",
    [
        {"token": None},
        {"token": TOKEN, "token_env": "HEC_TOKEN"},
        {"token": None, "token_env": "HEC_TOKEN", "token_file": "/run/secrets/hec"},
    ],
)
def test_config_needs_one_token_source(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1:8088", **options)

    assert "splunk_hec needs exactly one of token, token_env, token_file" in str(failure.value)
    assert TOKEN not in str(failure.value)


# --- statuses and HEC codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "text", "retriable", "hint"),
    [
        (403, 1, "Token disabled", False, "the token is disabled in Splunk"),
        (401, 2, "Token is required", False, "set token, token_env or token_file"),
        (401, 3, "Invalid authorization", False, "rejected the Authorization header"),
        (403, 4, "Invalid token", False, "check token, token_env or token_file"),
        (400, 5, "No data", False, None),
        (400, 6, "Invalid data format", False, None),
        (400, 7, "Incorrect index", False, "check the index option"),
        (500, 8, "Internal server error", True, None),
        (503, 9, "Server is busy", True, None),
        (400, 10, "Data channel is missing", False, "set ack.enabled: true"),
        (400, 11, "Invalid data channel", False, "set ack.channel to a UUID"),
        (400, 12, "Event field is required", False, None),
        (400, 13, "Event field cannot be blank", False, None),
        (400, 14, "ACK is disabled", False, "set ack.enabled: false"),
        (400, 15, "Error in handling indexed fields", False, "check the fields option"),
        (400, 16, "Query string authorization is not enabled", False, "Authorization header"),
    ],
)
async def test_hec_code_outcome(
    stack: AsyncExitStack,
    status: int,
    code: int,
    text: str,
    retriable: bool,
    hint: str | None,
) -> None:
    hec = await serve(stack, event_replies=[hec_reply(status, code, text)])
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    message = str(failure.value)
    assert failure.value.retriable is retriable
    assert message.startswith(
        f"POST {hec.url}/services/collector/event returned HTTP {status} "
        f"for the batch splunk:1-3 of 3 events: HEC code {code} {text!r}"
    )
    if hint is not None:
        assert hint in message
    assert failure.value.retry_after is None


@pytest.mark.parametrize(
    ("status", "retriable", "hint"),
    [
        (404, False, "url must be the HEC base address"),
        (413, False, "lower the sink's batch.max_bytes"),
        (405, False, None),
        (501, False, None),
        (408, True, None),
        (429, True, None),
        (502, True, None),
        (504, True, None),
    ],
)
async def test_http_status_outcome(
    stack: AsyncExitStack, status: int, retriable: bool, hint: str | None
) -> None:
    hec = await serve(stack, event_replies=[Reply(status=status, body=b"<html>gateway</html>")])
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable is retriable
    assert f"returned HTTP {status} for the batch splunk:1-3 of 3 events: <html>gateway</html>" in (
        str(failure.value)
    )
    if hint is not None:
        assert hint in str(failure.value)


async def test_success_after_busy(stack: AsyncExitStack) -> None:
    hec = await serve(stack, event_replies=[hec_reply(503, 9, "Server is busy")])
    sink = await open_sink(stack, url=hec.url)
    batch = make_batch(EVENTS)

    with pytest.raises(SinkError):
        await sink.send(batch)
    await sink.send(batch)

    assert len(hec.event_requests) == 2
    assert hec.event_requests[0].body == hec.event_requests[1].body
    assert len(hec.events) == 3


async def test_invalid_event_named(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)
    batch = cef_batch([CEF_LINES[0], "", CEF_LINES[1]])

    with pytest.raises(SinkError) as failure:
        await sink.send(batch)

    assert not failure.value.retriable
    assert "HEC code 13 'Event field cannot be blank' at event 2 of 3 (id 'act_2')" in str(
        failure.value
    )
    assert hec.events == []


async def test_wrong_token_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url, token="not-the-token")

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "HTTP 403" in str(failure.value)
    assert "HEC code 4 'Invalid token'" in str(failure.value)
    assert "not-the-token" not in str(failure.value)


async def test_success_with_error_code_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack, event_replies=[hec_reply(200, 6, "Invalid data format")])
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "returned HTTP 200 with HEC code 6 'Invalid data format'" in str(failure.value)


async def test_success_without_json_body_confirms(stack: AsyncExitStack) -> None:
    hec = await serve(stack, event_replies=[Reply(status=200, body=b"")])
    sink = await open_sink(stack, url=hec.url)

    assert await sink.send(make_batch(EVENTS)) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": RETRY_DATE, "Date": SERVER_DATE}, 30.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_carried(
    stack: AsyncExitStack, status: int, headers: dict[str, str], expected: float | None
) -> None:
    reply = Reply(
        status=status,
        headers=headers,
        body=orjson.dumps({"text": "Server is busy", "code": 9}),
    )
    hec = await serve(stack, event_replies=[reply])
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert failure.value.retry_after == expected


async def test_redirect_not_followed(stack: AsyncExitStack) -> None:
    redirect = Reply(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    hec = await serve(stack, event_replies=[redirect])
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "HTTP 307" in str(failure.value)
    assert "redirects are not followed; set url to the final address" in str(failure.value)
    assert len(hec.event_requests) == 1


async def test_connection_refused_retriable(stack: AsyncExitStack) -> None:
    port = closed_port()
    sink = await open_sink(stack, url=f"http://127.0.0.1:{port}")

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert failure.value.retry_after is None
    assert str(failure.value).startswith(
        f"POST http://127.0.0.1:{port}/services/collector/event failed: "
        f"cannot connect to 127.0.0.1:{port}"
    )


async def test_timeout_retriable(stack: AsyncExitStack) -> None:
    hec = await serve(stack, event_replies=[Reply(hold=True)])
    sink = await open_sink(stack, url=hec.url, timeout_secs=0.2)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert "timed out after 0.2 s (timeout_secs)" in str(failure.value)


# --- indexer acknowledgement ----------------------------------------------------------


async def test_ack_waits_until_acknowledged(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, pending_polls=3)
    clock = FakeClock()
    sink = await open_sink(stack, clock, url=hec.url, ack={"enabled": True})

    state = await sink.send(make_batch(EVENTS))

    assert state == {"channel": sink.channel}
    assert len(hec.ack_requests) == 4
    for query in hec.ack_requests:
        assert query.path == "/services/collector/ack"
        assert query.query == {"channel": sink.channel}
        assert query.headers["X-Splunk-Request-Channel"] == sink.channel
        assert query.headers["Authorization"] == f"Splunk {TOKEN}"
        assert orjson.loads(query.body) == {"acks": [0]}
    assert hec.event_requests[0].headers["X-Splunk-Request-Channel"] == sink.channel
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0]
    assert len(hec.events) == 3


async def test_ack_poll_interval_option(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, pending_polls=1)
    clock = FakeClock()
    sink = await open_sink(
        stack, clock, url=hec.url, ack={"enabled": True, "poll_interval_secs": 0.25}
    )

    await sink.send(make_batch(EVENTS))

    assert clock.sleeps == [0.25, 0.25]


async def test_ack_timeout_retriable(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, never_acknowledge=True)
    clock = FakeClock()
    sink = await open_sink(stack, clock, url=hec.url, ack={"enabled": True, "timeout_secs": 5})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    message = str(failure.value)
    assert failure.value.retriable
    assert message.startswith(
        f"Splunk did not acknowledge the batch splunk:1-3 of 3 events (ackId 0, channel "
        f"{sink.channel}) within 5 s (ack.timeout_secs) after 5 queries"
    )
    assert "duplicates its events in Splunk if the indexer stored them after all" in message
    assert len(hec.ack_requests) == 5
    assert clock.elapsed == 5.0


async def test_ack_timeout_resend_duplicates(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, never_acknowledge=True)
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True, "timeout_secs": 2})
    batch = make_batch(EVENTS)

    with pytest.raises(SinkError):
        await sink.send(batch)
    hec.never_acknowledge = False
    await sink.send(batch)

    assert [stored["event"]["id"] for stored in hec.events] == ["act_1", "act_2", "act_3"] * 2


async def test_ack_timeout_shorter_than_interval(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, never_acknowledge=True)
    clock = FakeClock()
    ack = {"enabled": True, "poll_interval_secs": 10, "timeout_secs": 3}
    sink = await open_sink(stack, clock, url=hec.url, ack=ack)

    with pytest.raises(SinkError):
        await sink.send(make_batch(EVENTS))

    assert clock.sleeps == [3.0]
    assert len(hec.ack_requests) == 1


async def test_ack_channel_stable_across_batches(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True)
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})

    await sink.send(make_batch(EVENTS, first_seq=1))
    await sink.send(make_batch(EVENTS, first_seq=4))

    channels = {
        request.headers["X-Splunk-Request-Channel"]
        for request in hec.event_requests + hec.ack_requests
    }
    assert channels == {sink.channel}
    assert str(uuid.UUID(sink.channel)) == sink.channel
    assert [orjson.loads(request.body) for request in hec.ack_requests] == [
        {"acks": [0]},
        {"acks": [1]},
    ]


async def test_ack_configured_channel_across_restarts(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True)
    ack = {"enabled": True, "channel": CHANNEL}

    for first_seq in (1, 4):
        sink = SplunkHecSink("splunk", make_config(url=hec.url, ack=ack), clock=FakeClock())
        await sink.open(None)
        try:
            state = await sink.send(make_batch(EVENTS, first_seq=first_seq))
        finally:
            await sink.close()
        assert state == {"channel": CHANNEL}

    channels = [request.headers["X-Splunk-Request-Channel"] for request in hec.event_requests]
    assert channels == [CHANNEL, CHANNEL]


async def test_ack_configured_channel_beats_state(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True)
    other = str(uuid.uuid4())
    sink = await open_sink(
        stack, state={"channel": other}, url=hec.url, ack={"enabled": True, "channel": CHANNEL}
    )

    await sink.send(make_batch(EVENTS))

    assert hec.event_requests[0].headers["X-Splunk-Request-Channel"] == CHANNEL


async def test_ack_generated_channel_kept_in_state(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True)
    first = await open_sink(stack, url=hec.url, ack={"enabled": True})
    state = await first.send(make_batch(EVENTS, first_seq=1))
    await first.close()

    restarted = await open_sink(stack, state=state, url=hec.url, ack={"enabled": True})
    await restarted.send(make_batch(EVENTS, first_seq=4))
    fresh = await open_sink(stack, url=hec.url, ack={"enabled": True})

    assert state == {"channel": first.channel}
    assert restarted.channel == first.channel
    assert fresh.channel != first.channel
    channels = [request.headers["X-Splunk-Request-Channel"] for request in hec.event_requests]
    assert channels == [first.channel, first.channel]


@pytest.mark.parametrize(
    "state", [{"channel": "not-a-uuid"}, {"channel": 7}, {"path": "/var/log/x"}, None]
)
async def test_ack_unusable_state_channel_replaced(
    stack: AsyncExitStack, state: dict[str, Any] | None
) -> None:
    hec = await serve(stack, ack=True)
    sink = await open_sink(stack, state=state, url=hec.url, ack={"enabled": True})

    await sink.send(make_batch(EVENTS))

    assert str(uuid.UUID(sink.channel)) == sink.channel
    assert hec.event_requests[0].headers["X-Splunk-Request-Channel"] == sink.channel


async def test_ack_query_busy_repeated(
    stack: AsyncExitStack, captured_logs: list[EventDict]
) -> None:
    busy = Reply(
        status=503,
        headers={"Retry-After": "3"},
        body=orjson.dumps({"text": "Server is busy", "code": 9}),
    )
    hec = await serve(stack, ack=True, ack_replies=[busy])
    clock = FakeClock()
    sink = await open_sink(stack, clock, url=hec.url, ack={"enabled": True})

    await sink.send(make_batch(EVENTS))

    assert clock.sleeps == [1.0, 3.0]
    assert len(hec.ack_requests) == 2
    [warning] = [entry for entry in captured_logs if entry["log_level"] == "warning"]
    assert warning["event"] == "splunk_hec.ack_query_failed"
    assert warning["ack_id"] == 0
    assert "returned HTTP 503" in warning["error"]


async def test_ack_query_failures_rate_limited(
    stack: AsyncExitStack, captured_logs: list[EventDict]
) -> None:
    busy = [hec_reply(503, 9, "Server is busy") for _ in range(5)]
    hec = await serve(stack, ack=True, ack_replies=busy)
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})

    await sink.send(make_batch(EVENTS))

    failures = [entry for entry in captured_logs if entry["event"] == "splunk_hec.ack_query_failed"]
    assert [entry["log_level"] for entry in failures] == ["warning"] + ["debug"] * 4


async def test_ack_query_network_failure_repeated(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, ack_replies=[Reply(hold=True)])
    clock = FakeClock()
    sink = await open_sink(stack, clock, url=hec.url, timeout_secs=0.2, ack={"enabled": True})

    await sink.send(make_batch(EVENTS))

    assert len(hec.ack_requests) == 2


async def test_ack_query_timeout_names_last_failure(stack: AsyncExitStack) -> None:
    busy = [hec_reply(503, 9, "Server is busy") for _ in range(3)]
    hec = await serve(stack, ack=True, ack_replies=busy)
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True, "timeout_secs": 3})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert "The last failed query: POST " in str(failure.value)
    assert "/services/collector/ack returned HTTP 503" in str(failure.value)


async def test_ack_query_rejected_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, ack_replies=[hec_reply(403, 1, "Token disabled")])
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    message = str(failure.value)
    assert not failure.value.retriable
    assert "/services/collector/ack returned HTTP 403" in message
    assert "HEC code 1 'Token disabled'" in message
    assert "Splunk accepted the batch (ackId 0) before this failure" in message


async def test_ack_response_unreadable_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True, ack_replies=[Reply(status=200, body=b"<html>ok</html>")])
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "without an acks object (<html>ok</html>)" in str(failure.value)


async def test_ack_id_missing_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=False)
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    message = str(failure.value)
    assert not failure.value.retriable
    assert "accepted the batch splunk:1-3 of 3 events but returned no ackId" in message
    assert "HEC code 0 'Success'" in message
    assert "set ack.enabled: false" in message
    assert hec.ack_requests == []


async def test_ack_required_by_token_final(stack: AsyncExitStack) -> None:
    hec = await serve(stack, ack=True)
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "HEC code 10 'Data channel is missing'" in str(failure.value)
    assert "set ack.enabled: true" in str(failure.value)


# --- TLS and proxy --------------------------------------------------------------------


async def test_tls_with_ca_file(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=hec.url, tls={"ca_file": str(tls.ca_file)})

    await sink.send(make_batch(EVENTS))

    assert len(hec.events) == 3


async def test_tls_without_ca_fails_verification(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=hec.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert "the TLS certificate of 127.0.0.1 failed verification" in str(failure.value)
    assert "set tls.ca_file to the CA that issued it" in str(failure.value)
    assert hec.event_requests == []


async def test_tls_verify_off_accepts_unknown_ca(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=hec.url, tls={"verify": False})

    await sink.send(make_batch(EVENTS))

    assert len(hec.events) == 3


async def test_tls_client_certificate_sent(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ssl_context=tls.server_context(require_client_cert=True))
    tls_options = {
        "ca_file": str(tls.ca_file),
        "cert_file": str(tls.client_cert_file),
        "key_file": str(tls.client_key_file),
    }
    sink = await open_sink(stack, url=hec.url, tls=tls_options)

    await sink.send(make_batch(EVENTS))

    certificate = hec.event_requests[0].peer_certificate
    assert certificate is not None
    assert ("DNS", "tail-forwarder.localhost") in certificate["subjectAltName"]


async def test_tls_acknowledgement_polls(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ack=True, pending_polls=1, ssl_context=tls.server_context())
    sink = await open_sink(
        stack, url=hec.url, tls={"ca_file": str(tls.ca_file)}, ack={"enabled": True}
    )

    await sink.send(make_batch(EVENTS))

    assert len(hec.ack_requests) == 2


async def test_proxy_tunnels_without_token(stack: AsyncExitStack, tls: Tls) -> None:
    hec = await serve(stack, ssl_context=tls.server_context())
    proxy = await stack.enter_async_context(ConnectProxy())
    sink = await open_sink(stack, url=hec.url, proxy=proxy.url, tls={"ca_file": str(tls.ca_file)})

    await sink.send(make_batch(EVENTS))

    [tunnel] = proxy.requests
    assert tunnel.method == "CONNECT"
    assert tunnel.target == f"127.0.0.1:{hec.port}"
    assert "authorization" not in tunnel.headers
    assert TOKEN not in repr(tunnel.headers)
    assert tunnel.headers["proxy-authorization"].startswith("Basic ")
    assert len(hec.events) == 3


async def test_proxy_password_masked_in_errors(stack: AsyncExitStack, tls: Tls) -> None:
    echo = Reply(status=400, body=f"proxy said {PROXY_PASSWORD}".encode())
    hec = await serve(stack, event_replies=[echo], ssl_context=tls.server_context())
    proxy = await stack.enter_async_context(ConnectProxy())
    sink = await open_sink(stack, url=hec.url, proxy=proxy.url, tls={"ca_file": str(tls.ca_file)})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert str(failure.value).endswith("events: proxy said ***")


# --- secrets --------------------------------------------------------------------------


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, PROXY_PASSWORD):
        assert secret not in text


def test_config_repr_hides_token() -> None:
    config = make_config(
        url="https://127.0.0.1:8088",
        proxy=f"http://tailer:{PROXY_PASSWORD}@127.0.0.1:3128",
    )

    assert_no_secret(repr(config))
    assert_no_secret(str(config))
    assert "token=SecretStr('**********')" in repr(config)
    assert "proxy='http://127.0.0.1:3128'" in repr(config)


def test_validation_error_hides_token() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1:8088", index="", extra=TOKEN)

    assert_no_secret(str(failure.value))


async def test_token_absent_from_errors_and_logs(
    stack: AsyncExitStack, captured_logs: list[EventDict]
) -> None:
    echo = hec_reply(401, 3, f"Invalid authorization: Splunk {TOKEN}")
    hec = await serve(stack, ack=True, event_replies=[Reply(status=500, body=TOKEN.encode()), echo])
    proxy = f"http://tailer:{PROXY_PASSWORD}@127.0.0.1:{closed_port()}"
    sink = await open_sink(stack, url=hec.url, ack={"enabled": True})
    unreachable = await open_sink(stack, url=f"http://127.0.0.1:{closed_port()}", proxy=proxy)

    errors = []
    for _ in range(2):
        with pytest.raises(SinkError) as rejected:
            await sink.send(make_batch(EVENTS))
        errors.append(rejected.value)
    await sink.send(make_batch(EVENTS))
    with pytest.raises(SinkError) as refused:
        await unreachable.send(make_batch(EVENTS))
    errors.append(refused.value)

    assert str(errors[0]).endswith("HTTP 500 for the batch splunk:1-3 of 3 events: ***")
    assert "HEC code 3 'Invalid authorization: Splunk ***'" in str(errors[1])
    for error in errors:
        assert_no_secret(str(error))
        assert_no_secret(repr(error))
    assert_no_secret(repr(sink))
    assert_no_secret(repr(unreachable))
    events = [entry["event"] for entry in captured_logs]
    assert events.count("splunk_hec.opened") == 2
    assert events.count("splunk_hec.failed") == 3
    assert events.count("splunk_hec.acknowledged") == 1
    assert events.count("splunk_hec.posted") == 1
    assert_no_secret(repr(captured_logs))


def test_sink_repr() -> None:
    sink = SplunkHecSink("splunk", make_config(url="https://127.0.0.1:8088"))

    assert repr(sink) == (
        "SplunkHecSink(name='splunk', url='https://127.0.0.1:8088/services/collector/event', "
        "ack=False)"
    )


# --- configuration --------------------------------------------------------------------


def test_config_defaults() -> None:
    config = make_config(url="https://127.0.0.1:8088")

    assert config.host is None
    assert config.source == "runtools:activity"
    assert config.sourcetype is None
    assert config.index is None
    assert config.fields == {}
    assert config.gzip is False
    assert config.tls.verify is True
    assert config.tls.ca_file is None
    assert config.proxy is None
    assert config.timeout_secs == 30.0
    assert config.ack.enabled is False
    assert config.ack.channel is None
    assert config.ack.poll_interval_secs == 1.0
    assert config.ack.timeout_secs == 300.0
    assert config.allow_insecure_http is False


def test_config_model_declared() -> None:
    assert SplunkHecSink.config_model is SplunkHecSinkConfig


def test_url_required() -> None:
    with pytest.raises(ValidationError) as failure:
        SplunkHecSinkConfig.model_validate({"token": TOKEN})

    assert "url" in str(failure.value)
    assert "Field required" in str(failure.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8088",
        "http://localhost:8088/",
        "http://[::1]:8088",
        "https://splunk.example.invalid:8088",
        "https://splunk.example.invalid/hec-prefix",
    ],
)
def test_url_accepted(url: str) -> None:
    assert make_config(url=url).url == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://127.0.0.1:8088", "url 'ftp://127.0.0.1:8088' is invalid"),
        ("https://", "url 'https://' is invalid"),
        ("http://splunk.example.invalid:8088", "uses plain http to a host that is not loopback"),
        (
            "https://127.0.0.1:8088/services/collector/event",
            "contains /services/collector; give the HEC base address",
        ),
        ("https://127.0.0.1:8088/services/collector", "contains /services/collector"),
        ("https://127.0.0.1:8088?token=x", "has a query or fragment"),
        ("https://user:pw@127.0.0.1:8088", "contains credentials"),
        ("splunk.example.invalid:8088", "url 'splunk.example.invalid:8088' is invalid"),
        ("user:pw@127.0.0.1:8088", "url '127.0.0.1:8088' is invalid"),
    ],
)
def test_invalid_url_rejected(url: str, expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url=url)

    assert expected in str(failure.value)


def test_url_without_scheme_hides_password() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="user:s3cr3t-pw@127.0.0.1:8088")

    assert "s3cr3t-pw" not in str(failure.value)


def test_plain_http_allowed_when_insecure_allowed() -> None:
    config = make_config(url="http://splunk.example.invalid:8088", allow_insecure_http=True)

    assert config.url == "http://splunk.example.invalid:8088"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ack": {"channel": "not-a-uuid"}}, "ack.channel"),
        ({"ack": {"poll_interval_secs": 0}}, "ack.poll_interval_secs"),
        ({"ack": {"timeout_secs": -1}}, "ack.timeout_secs"),
        ({"ack": {"enable": True}}, "ack.enable"),
        ({"timeout_secs": 0}, "timeout_secs"),
        ({"index": ""}, "index"),
        ({"fields": {" ": "x"}}, "fields: a field name is empty"),
        ({"fields": {"env": 3}}, "fields.env"),
        ({"tls": {"key_file": "/k.pem"}}, "tls.key_file is set without tls.cert_file"),
        ({"proxy": "not a url"}, "proxy 'not a url' is invalid"),
        ({"batch_size": 10}, "batch_size"),
    ],
)
def test_invalid_option_rejected(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1:8088", **options)

    assert expected in str(failure.value)


# --- lifecycle ------------------------------------------------------------------------


async def test_close_twice_harmless(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = SplunkHecSink("splunk", make_config(url=hec.url))

    await sink.close()
    await sink.open(None)
    await sink.close()
    await sink.close()


async def test_send_before_open_raises() -> None:
    sink = SplunkHecSink("splunk", make_config(url="https://127.0.0.1:8088"))

    with pytest.raises(RuntimeError) as failure:
        await sink.send(make_batch(EVENTS))

    assert str(failure.value) == "splunk_hec sink 'splunk' is not open; call open() first"


async def test_send_after_close_raises(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)

    await sink.close()

    with pytest.raises(RuntimeError):
        await sink.send(make_batch(EVENTS))


async def test_open_again_keeps_sending(stack: AsyncExitStack) -> None:
    hec = await serve(stack)
    sink = await open_sink(stack, url=hec.url)

    await sink.send(make_batch(EVENTS, first_seq=1))
    await sink.open(None)
    await sink.send(make_batch(EVENTS, first_seq=4))

    assert len(hec.event_requests) == 2
    assert len(hec.events) == 6


def test_wrong_config_type_rejected() -> None:
    with pytest.raises(TypeError):
        SplunkHecSink("splunk", SinkConfig())
