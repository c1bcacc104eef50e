"""WebhookSink against real HTTP, HTTPS and proxy servers on 127.0.0.1.

Every server is started by the test that uses it and listens on 127.0.0.1 only.
A fake clock gives the signing timestamp. The only real wait is the request
timeout in the timeout test.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import socket
import ssl
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
from cryptography.hazmat.primitives import serialization
from multidict import CIMultiDict
from pydantic import ValidationError
from structlog.typing import EventDict

import tailer.sinks.webhook
from tailer import __version__
from tailer.errors import ConfigError
from tailer.event import Event
from tailer.sinks.base import Batch, SinkError
from tailer.sinks.webhook import (
    WebhookSink,
    WebhookSinkConfig,
    decode_signing_secret,
    sign_payload,
)

NOW = 1_700_000_000.0

# The example published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

TOKEN = "tok_4b1d3a7e9c0f5e2d"
PASSWORD = "pw-7f3e9a1c5b"
SIGNING_SECRET = "whsec_" + base64.b64encode(b"k" * 24 + b"sink-test-key").decode()

# One instant, 1994-11-06T08:49:37Z, and one 30 seconds later, as HTTP dates.
SERVER_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
RETRY_DATE = "Sun, 06 Nov 1994 08:50:07 GMT"

PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]

EVENTS: list[dict[str, Any]] = [
    {"id": "act_1", "createdAt": "2026-05-10T12:00:00Z", "eventType": "agent.run.completed"},
    {"id": "act_2", "createdAt": "2026-05-10T12:00:01Z", "note": 'ünïcode, "quotes"\n'},
    {"id": "act_3", "createdAt": "2026-05-10T12:00:02Z", "nested": {"a": [1, 2.5, None]}},
]


def make_config(**options: Any) -> WebhookSinkConfig:
    """Validate options as the daemon does with a sink's config section."""
    return WebhookSinkConfig.model_validate(options)


def make_batch(raws: list[dict[str, Any]], *, first_seq: int = 1, sink: str = "hook") -> Batch:
    events = [Event(raw["id"], index, raw) for index, raw in enumerate(raws)]
    return Batch(
        sink=sink,
        events=events,
        payloads=[orjson.dumps(raw) for raw in raws],
        first_seq=first_seq,
        last_seq=first_seq + len(raws) - 1,
    )


class FakeClock:
    """A Clock at a fixed wall time that moves only when a test changes `wall`."""

    def __init__(self, wall: float = NOW) -> None:
        self.wall = wall

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.wall += seconds


# --- servers --------------------------------------------------------------------------


@dataclass
class Reply:
    """The receiver's response to one request. `hold` delays it until the receiver stops."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hold: bool = False


@dataclass
class Received:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes
    peer_certificate: dict[str, Any] | None


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every request and sends scripted replies.

    Bodies are recorded as they arrived on the wire, so gzip is not decoded.
    After the scripted replies run out, every request gets 200.
    """

    def __init__(self, *replies: Reply, ssl_context: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.requests: list[Received] = []
        self._ssl_context = ssl_context
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks/tail"

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
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

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Received(
                method=request.method,
                path_qs=request.path_qs,
                headers=CIMultiDict(request.headers),
                body=await request.read(),
                peer_certificate=request.transport.get_extra_info("peercert")
                if request.transport
                else None,
            )
        )
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.hold:
            await self._release.wait()
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


@dataclass
class ProxiedRequest:
    method: str
    target: str
    headers: dict[str, str]


class ConnectProxy:
    """An HTTP proxy on 127.0.0.1 that tunnels CONNECT to 127.0.0.1 and records each request.

    Any other method, or a target other than 127.0.0.1, gets 403.
    """

    def __init__(self) -> None:
        self.requests: list[ProxiedRequest] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return

        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _version = request_line.split(" ")
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
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
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
            logger = structlog.get_logger("tailer.sinks.webhook")
            monkeypatch.setattr(tailer.sinks.webhook, "_log", logger)
            yield logs
    finally:
        structlog.configure(**saved)


@dataclass(frozen=True)
class Tls:
    ca: trustme.CA
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    client_combined_file: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    client = ca.issue_cert("tail-client.localhost")
    cert_file = directory / "client.pem"
    key_file = directory / "client-key.pem"
    combined_file = directory / "client-combined.pem"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    client.private_key_and_cert_chain_pem.write_to_path(str(combined_file))
    return Tls(ca, ca_file, cert_file, key_file, combined_file)


async def serve(stack: AsyncExitStack, *replies: Reply, **kwargs: Any) -> Receiver:
    return await stack.enter_async_context(Receiver(*replies, **kwargs))


async def open_sink(
    stack: AsyncExitStack, clock: FakeClock | None = None, **options: Any
) -> WebhookSink:
    sink = WebhookSink("hook", make_config(**options), clock=clock or FakeClock())
    await sink.open(None)
    stack.push_async_callback(sink.close)
    return sink


def verify_signature(secret: str, received: Received) -> bool:
    """Check a request's signature as a Standard Webhooks receiver does."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    body = received.body
    if received.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        value.removeprefix("v1,") for value in received.headers["webhook-signature"].split(" ")
    ]
    return any(hmac.compare_digest(expected, value) for value in offered)


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- body per mode --------------------------------------------------------------------


async def test_json_array_body_exact(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)
    batch = make_batch(EVENTS)

    state = await sink.send(batch)

    assert state is None
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path_qs == "/hooks/tail"
    assert request.body == b"[" + b",".join(batch.payloads) + b"]"
    assert orjson.loads(request.body) == EVENTS
    assert request.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in request.headers


async def test_ndjson_body_exact(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, mode="ndjson")
    batch = make_batch(EVENTS)

    await sink.send(batch)

    [request] = receiver.requests
    assert request.body == b"".join(payload + b"\n" for payload in batch.payloads)
    assert request.body.endswith(b"}\n")
    assert [orjson.loads(line) for line in request.body.splitlines()] == EVENTS
    assert request.headers["Content-Type"] == "application/x-ndjson"


async def test_single_posts_each_event(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, mode="single")
    batch = make_batch(EVENTS, first_seq=10)

    await sink.send(batch)

    assert [request.body for request in receiver.requests] == batch.payloads
    keys = [request.headers["Idempotency-Key"] for request in receiver.requests]
    assert keys == ["hook:10-12:0", "hook:10-12:1", "hook:10-12:2"]
    assert [request.headers["webhook-id"] for request in receiver.requests] == keys
    assert {request.headers["Content-Type"] for request in receiver.requests} == {
        "application/json"
    }


async def test_single_failure_midway_repeats_earlier(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(), Reply(status=503, body=b"busy"))
    sink = await open_sink(stack, url=receiver.url, mode="single")
    batch = make_batch(EVENTS, first_seq=10)

    with pytest.raises(SinkError) as failure:
        await sink.send(batch)
    await sink.send(batch)

    assert failure.value.retriable
    message = str(failure.value)
    assert "HTTP 503 for the event 2 of 3: busy" in message
    assert "the event before it was delivered and repeats" in message
    keys = [request.headers["Idempotency-Key"] for request in receiver.requests]
    assert keys == ["hook:10-12:0", "hook:10-12:1", "hook:10-12:0", "hook:10-12:1", "hook:10-12:2"]


async def test_empty_batch_sends_nothing(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    state = await sink.send(make_batch([], first_seq=5))

    assert state is None
    assert receiver.requests == []


@pytest.mark.parametrize("mode", ["json_array", "ndjson", "single"])
async def test_gzip_body_decompresses_same(stack: AsyncExitStack, mode: str) -> None:
    plain = await serve(stack)
    compressed = await serve(stack)
    plain_sink = await open_sink(stack, url=plain.url, mode=mode)
    gzip_sink = await open_sink(stack, url=compressed.url, mode=mode, gzip=True)
    batch = make_batch(EVENTS)

    await plain_sink.send(batch)
    await gzip_sink.send(batch)

    assert len(compressed.requests) == len(plain.requests)
    for sent_plain, sent_gzip in zip(plain.requests, compressed.requests, strict=True):
        assert sent_gzip.headers["Content-Encoding"] == "gzip"
        assert sent_gzip.body.startswith(b"\x1f\x8b")
        assert gzip.decompress(sent_gzip.body) == sent_plain.body
        assert sent_gzip.headers["Content-Type"] == sent_plain.headers["Content-Type"]


async def test_gzip_large_body_decompresses_same(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, gzip=True)
    raws = [{"id": f"act_{index}", "text": "x" * 1000} for index in range(400)]
    batch = make_batch(raws)

    await sink.send(batch)

    [request] = receiver.requests
    assert gzip.decompress(request.body) == b"[" + b",".join(batch.payloads) + b"]"


# --- headers --------------------------------------------------------------------------


async def test_custom_headers_sent(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    headers = {"X-Team": "ops", "X-API-Key": "key-in-header", "User-Agent": "custom/1"}
    sink = await open_sink(stack, url=receiver.url, headers=headers)

    await sink.send(make_batch(EVENTS))

    [request] = receiver.requests
    assert request.headers["X-Team"] == "ops"
    assert request.headers["X-API-Key"] == "key-in-header"
    assert request.headers.getall("User-Agent") == ["custom/1"]


async def test_default_user_agent(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    await sink.send(make_batch(EVENTS))

    assert receiver.requests[0].headers["User-Agent"] == f"runtools-tail/{__version__}"


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "content-length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "Idempotency-Key",
        "webhook-id",
        "Webhook-Signature",
        "webhook-timestamp",
        "Proxy-Authorization",
    ],
)
def test_reserved_header_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", headers={name: "value"})

    assert f"headers: {name} is set by the webhook sink" in str(failure.value)


def test_authorization_header_points_to_auth() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", headers={"Authorization": f"Bearer {TOKEN}"})

    assert "Authorization is set by auth" in str(failure.value)
    assert TOKEN not in str(failure.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X Team": "ops"}, "'X Team' is not a valid HTTP header name"),
        ({"": "ops"}, "'' is not a valid HTTP header name"),
        ({"X-Team": "ops\r\nX-Injected: 1"}, "the value of X-Team contains a control character"),
    ],
)
def test_invalid_header_rejected(headers: dict[str, str], expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", headers=headers)

    assert expected in str(failure.value)


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["inline", "env", "file"])
async def test_bearer_token_sources(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    auth: dict[str, Any] = {"type": "bearer"}
    if source == "inline":
        auth["token"] = TOKEN
    elif source == "env":
        monkeypatch.setenv("HOOK_TOKEN", TOKEN)
        auth["token_env"] = "HOOK_TOKEN"
    else:
        token_file = tmp_path / "token"
        token_file.write_text(f"{TOKEN}\n")
        auth["token_file"] = str(token_file)
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, auth=auth)

    await sink.send(make_batch(EVENTS))

    assert receiver.requests[0].headers.getall("Authorization") == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("source", ["inline", "env", "file"])
async def test_basic_password_sources(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    auth: dict[str, Any] = {"type": "basic", "username": "tailer"}
    if source == "inline":
        auth["password"] = PASSWORD
    elif source == "env":
        monkeypatch.setenv("HOOK_PASSWORD", PASSWORD)
        auth["password_env"] = "HOOK_PASSWORD"
    else:
        password_file = tmp_path / "password"
        password_file.write_text(f"  {PASSWORD}\n")
        auth["password_file"] = str(password_file)
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, auth=auth)

    await sink.send(make_batch(EVENTS))

    expected = base64.b64encode(f"tailer:{PASSWORD}".encode()).decode()
    assert receiver.requests[0].headers.getall("Authorization") == [f"Basic {expected}"]


async def test_token_file_reread_on_open(stack: AsyncExitStack, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token")
    receiver = await serve(stack)
    sink = await open_sink(
        stack, url=receiver.url, auth={"type": "bearer", "token_file": str(token_file)}
    )
    await sink.send(make_batch(EVENTS))

    token_file.write_text("second-token")
    await sink.open(None)
    await sink.send(make_batch(EVENTS))

    authorizations = [request.headers["Authorization"] for request in receiver.requests]
    assert authorizations == ["Bearer first-token", "Bearer second-token"]


async def test_no_auth_sends_no_authorization(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    await sink.send(make_batch(EVENTS))

    assert "Authorization" not in receiver.requests[0].headers


async def test_missing_token_env_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    config = make_config(
        url="https://127.0.0.1/hook", auth={"type": "bearer", "token_env": "HOOK_TOKEN"}
    )
    sink = WebhookSink("hook", config)

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert str(failure.value) == "auth.token: environment variable HOOK_TOKEN is not set or empty"
    await sink.close()


@pytest.mark.parametrize(("content", "expected"), [(None, "not found"), ("\n", "is empty")])
async def test_bad_password_file_fails_open(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    password_file = tmp_path / "password"
    if content is not None:
        password_file.write_text(content)
    config = make_config(
        url="https://127.0.0.1/hook",
        auth={"type": "basic", "username": "tailer", "password_file": str(password_file)},
    )
    sink = WebhookSink("hook", config)

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert str(failure.value) == f"auth.password: file {str(password_file)!r} {expected}"


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer"},
        {"type": "bearer", "token": TOKEN, "token_env": "HOOK_TOKEN"},
        {"type": "basic", "username": "tailer"},
        {"type": "basic", "username": "tailer", "password": PASSWORD, "password_file": "p"},
    ],
)
def test_auth_needs_one_secret_source(auth: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", auth=auth)

    assert "needs exactly one of" in str(failure.value)
    assert TOKEN not in str(failure.value)
    assert PASSWORD not in str(failure.value)


def test_unknown_auth_type_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", auth={"type": "digest", "token": TOKEN})

    assert "'bearer', 'basic'" in str(failure.value)


def test_basic_username_with_colon_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(
            url="https://127.0.0.1/hook",
            auth={"type": "basic", "username": "a:b", "password": PASSWORD},
        )

    assert "auth.username 'a:b' is invalid: it must not contain ':'" in str(failure.value)


# --- signing --------------------------------------------------------------------------


def test_signature_matches_spec_example() -> None:
    key = decode_signing_secret(SPEC_SECRET, source="signing_secret")

    signature = sign_payload(key, SPEC_MESSAGE_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)

    assert signature == SPEC_SIGNATURE


@pytest.mark.parametrize("mode", ["json_array", "ndjson", "single"])
@pytest.mark.parametrize("compress", [False, True])
async def test_signature_verifies_at_receiver(
    stack: AsyncExitStack, mode: str, compress: bool
) -> None:
    receiver = await serve(stack)
    clock = FakeClock(wall=1_700_000_123.75)
    sink = await open_sink(
        stack, clock, url=receiver.url, mode=mode, gzip=compress, signing_secret=SPEC_SECRET
    )

    await sink.send(make_batch(EVENTS))

    assert receiver.requests
    for request in receiver.requests:
        assert request.headers["webhook-timestamp"] == "1700000123"
        assert request.headers["webhook-signature"].startswith("v1,")
        assert verify_signature(SPEC_SECRET, request)


async def test_signature_fails_for_other_secret(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, signing_secret=SPEC_SECRET)

    await sink.send(make_batch(EVENTS))

    assert not verify_signature(SIGNING_SECRET, receiver.requests[0])


@pytest.mark.parametrize("source", ["env", "file"])
async def test_signing_secret_sources(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    options: dict[str, Any] = {}
    if source == "env":
        monkeypatch.setenv("HOOK_SIGNING_SECRET", SIGNING_SECRET)
        options["signing_secret_env"] = "HOOK_SIGNING_SECRET"
    else:
        secret_file = tmp_path / "signing-secret"
        secret_file.write_text(SIGNING_SECRET + "\n")
        options["signing_secret_file"] = str(secret_file)
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url, **options)

    await sink.send(make_batch(EVENTS))

    assert verify_signature(SIGNING_SECRET, receiver.requests[0])


async def test_unsigned_request_has_id_and_timestamp(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    await sink.send(make_batch(EVENTS, first_seq=7))

    headers = receiver.requests[0].headers
    assert headers["webhook-id"] == "hook:7-9"
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert "webhook-signature" not in headers


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "it must start with 'whsec_'"),
        ("whsec_not base64!", "is not base64"),
    ],
)
def test_invalid_signing_secret_rejected(secret: str, expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", signing_secret=secret)

    assert expected in str(failure.value)
    assert secret not in str(failure.value)


def test_empty_signing_key_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", signing_secret="whsec_")

    assert "signing_secret is invalid: the key after 'whsec_' is empty" in str(failure.value)


async def test_invalid_signing_secret_env_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SIGNING_SECRET", "not-a-whsec-secret")
    config = make_config(url="https://127.0.0.1/hook", signing_secret_env="HOOK_SIGNING_SECRET")
    sink = WebhookSink("hook", config)

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert "signing_secret_env HOOK_SIGNING_SECRET is invalid" in str(failure.value)
    assert "not-a-whsec-secret" not in str(failure.value)


def test_two_signing_secret_sources_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(
            url="https://127.0.0.1/hook",
            signing_secret=SIGNING_SECRET,
            signing_secret_env="HOOK_SIGNING_SECRET",
        )

    assert "set at most one of signing_secret" in str(failure.value)


# --- idempotency ----------------------------------------------------------------------


async def test_idempotency_key_stable_across_retries(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(status=503))
    clock = FakeClock()
    sink = await open_sink(stack, clock, url=receiver.url, signing_secret=SIGNING_SECRET)
    batch = make_batch(EVENTS, first_seq=41)

    with pytest.raises(SinkError):
        await sink.send(batch)
    clock.wall += 7
    await sink.send(batch)

    first, second = receiver.requests
    assert first.headers["Idempotency-Key"] == "hook:41-43"
    assert second.headers["Idempotency-Key"] == "hook:41-43"
    assert second.headers["webhook-id"] == "hook:41-43"
    assert int(second.headers["webhook-timestamp"]) == int(first.headers["webhook-timestamp"]) + 7
    assert verify_signature(SIGNING_SECRET, second)


async def test_idempotency_key_stable_across_restarts(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    batch = make_batch(EVENTS, first_seq=41)
    before_restart = await open_sink(stack, url=receiver.url)
    await before_restart.send(batch)
    await before_restart.close()

    after_restart = await open_sink(stack, url=receiver.url)
    await after_restart.send(batch)

    keys = [request.headers["Idempotency-Key"] for request in receiver.requests]
    assert keys == ["hook:41-43", "hook:41-43"]


async def test_idempotency_key_differs_between_batches(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    await sink.send(make_batch(EVENTS[:2], first_seq=1))
    await sink.send(make_batch(EVENTS[2:], first_seq=3))

    keys = [request.headers["Idempotency-Key"] for request in receiver.requests]
    assert keys == ["hook:1-2", "hook:3-3"]


# --- statuses -------------------------------------------------------------------------

STATUS_CASES = [
    # status, response headers, retriable (None: delivered), retry_after
    (200, {}, None, None),
    (201, {}, None, None),
    (204, {}, None, None),
    (400, {}, False, None),
    (401, {}, False, None),
    (404, {}, False, None),
    (408, {}, True, None),
    (413, {}, False, None),
    (422, {}, False, None),
    (429, {}, True, None),
    (429, {"Retry-After": "120"}, True, 120.0),
    (429, {"Retry-After": RETRY_DATE, "Date": SERVER_DATE}, True, 30.0),
    (500, {}, True, None),
    (501, {}, False, None),
    (502, {}, True, None),
    (503, {}, True, None),
    (503, {"Retry-After": "5"}, True, 5.0),
]


@pytest.mark.parametrize(
    ("status", "headers", "retriable", "retry_after"),
    STATUS_CASES,
    ids=[f"{case[0]}-{'-'.join(case[1]) or 'plain'}" for case in STATUS_CASES],
)
async def test_status_outcome(
    stack: AsyncExitStack,
    status: int,
    headers: dict[str, str],
    retriable: bool | None,
    retry_after: float | None,
) -> None:
    body = b"" if status == 204 else b'{"error": "receiver says no"}'
    receiver = await serve(stack, Reply(status=status, headers=headers, body=body))
    sink = await open_sink(stack, url=receiver.url)

    if retriable is None:
        assert await sink.send(make_batch(EVENTS)) is None
        return

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable is retriable
    assert failure.value.retry_after == retry_after
    assert str(failure.value) == (
        f"POST {receiver.url} returned HTTP {status} for the batch of 3 events: "
        '{"error": "receiver says no"}'
    )


async def test_redirect_not_followed(stack: AsyncExitStack) -> None:
    target = await serve(stack)
    receiver = await serve(stack, Reply(status=307, headers={"Location": target.url}))
    sink = await open_sink(stack, url=receiver.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert not failure.value.retriable
    assert "HTTP 307" in str(failure.value)
    assert "redirects are not followed; set url to the final address" in str(failure.value)
    assert target.requests == []


async def test_error_excerpt_shortened(stack: AsyncExitStack) -> None:
    body = b"line one\n\n   line two " + b"z" * 5000
    receiver = await serve(stack, Reply(status=400, body=body))
    sink = await open_sink(stack, url=receiver.url, mode="single")

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS[:1]))

    message = str(failure.value)
    assert message.startswith(f"POST {receiver.url} returned HTTP 400 for the event 1 of 1: ")
    assert message.endswith("line one line two " + "z" * 182 + "…")


async def test_error_empty_body(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(status=500))
    sink = await open_sink(stack, url=receiver.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS[:1]))

    assert str(failure.value).endswith("for the batch of 1 event: (empty body)")


async def test_error_hides_url_query(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(status=404))
    sink = await open_sink(stack, url=receiver.url + "?key=query-secret")

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert receiver.requests[0].path_qs == "/hooks/tail?key=query-secret"
    assert str(failure.value).startswith(f"POST {receiver.url}?*** returned HTTP 404")
    assert "query-secret" not in str(failure.value)
    assert "query-secret" not in repr(sink)


# --- network failures -----------------------------------------------------------------


async def test_connection_refused_retriable(stack: AsyncExitStack) -> None:
    port = closed_port()
    sink = await open_sink(stack, url=f"http://127.0.0.1:{port}/hook")

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert failure.value.retry_after is None
    message = str(failure.value)
    assert message.startswith(
        f"POST http://127.0.0.1:{port}/hook failed for the batch of 3 events: "
        f"cannot connect to 127.0.0.1:{port}: "
    )


async def test_timeout_retriable(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(hold=True))
    sink = await open_sink(stack, url=receiver.url, timeout_secs=0.2)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert str(failure.value) == (
        f"POST {receiver.url} failed for the batch of 3 events: "
        "timed out after 0.2 s (timeout_secs)"
    )


async def test_single_network_failure_midway(stack: AsyncExitStack) -> None:
    receiver = await serve(stack, Reply(), Reply(), Reply(hold=True))
    sink = await open_sink(stack, url=receiver.url, mode="single", timeout_secs=0.2)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert "failed for the event 3 of 3: timed out" in str(failure.value)
    assert "the 2 events before it were delivered and repeat" in str(failure.value)


# --- TLS ------------------------------------------------------------------------------


async def test_tls_with_ca_file(stack: AsyncExitStack, tls: Tls) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=receiver.url, tls={"ca_file": str(tls.ca_file)})

    await sink.send(make_batch(EVENTS))

    assert len(receiver.requests) == 1
    assert receiver.requests[0].peer_certificate is None


async def test_tls_without_ca_fails_verification(stack: AsyncExitStack, tls: Tls) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=receiver.url)

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    message = str(failure.value)
    assert "the TLS certificate of 127.0.0.1 failed verification" in message
    assert "set tls.ca_file to the CA that issued it" in message
    assert receiver.requests == []


async def test_tls_verify_off_accepts_unknown_ca(stack: AsyncExitStack, tls: Tls) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    sink = await open_sink(stack, url=receiver.url, tls={"verify": False})

    await sink.send(make_batch(EVENTS))

    assert len(receiver.requests) == 1


@pytest.mark.parametrize("key_in_cert_file", [False, True])
async def test_tls_client_certificate_sent(
    stack: AsyncExitStack, tls: Tls, key_in_cert_file: bool
) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context(require_client_cert=True))
    tls_options = {"ca_file": str(tls.ca_file), "cert_file": str(tls.client_cert_file)}
    if key_in_cert_file:
        tls_options["cert_file"] = str(tls.client_combined_file)
    else:
        tls_options["key_file"] = str(tls.client_key_file)
    sink = await open_sink(stack, url=receiver.url, tls=tls_options)

    await sink.send(make_batch(EVENTS))

    [request] = receiver.requests
    assert request.peer_certificate is not None
    assert ("DNS", "tail-client.localhost") in request.peer_certificate["subjectAltName"]


async def test_tls_client_certificate_missing(stack: AsyncExitStack, tls: Tls) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context(require_client_cert=True))
    sink = await open_sink(stack, url=receiver.url, tls={"ca_file": str(tls.ca_file)})

    with pytest.raises(SinkError) as failure:
        await sink.send(make_batch(EVENTS))

    assert failure.value.retriable
    assert str(failure.value).startswith(f"POST {receiver.url} failed for the batch of 3 events")
    assert receiver.requests == []


async def test_tls_missing_ca_file_fails_open(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    config = make_config(url="https://127.0.0.1/hook", tls={"ca_file": str(missing)})
    sink = WebhookSink("hook", config)

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert str(failure.value).startswith(f"tls.ca_file {str(missing)!r} cannot be loaded")


async def test_tls_encrypted_key_fails_open(tmp_path: Path, tls: Tls) -> None:
    key = serialization.load_pem_private_key(tls.client_key_file.read_bytes(), password=None)
    encrypted_key_file = tmp_path / "encrypted-key.pem"
    encrypted_key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password"),
        )
    )
    config = make_config(
        url="https://127.0.0.1/hook",
        tls={"cert_file": str(tls.client_cert_file), "key_file": str(encrypted_key_file)},
    )
    sink = WebhookSink("hook", config)

    with pytest.raises(ConfigError) as failure:
        await sink.open(None)

    assert str(failure.value) == (
        f"the private key in {str(encrypted_key_file)!r} is encrypted; "
        "this sink needs an unencrypted key"
    )


def test_tls_key_without_certificate_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", tls={"key_file": "client-key.pem"})

    assert "tls.key_file is set without tls.cert_file" in str(failure.value)


# --- proxies --------------------------------------------------------------------------


async def test_proxy_option_with_custom_ca(stack: AsyncExitStack, tls: Tls) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    proxy = await stack.enter_async_context(ConnectProxy())
    sink = await open_sink(
        stack,
        url=receiver.url,
        proxy=proxy.url,
        tls={"ca_file": str(tls.ca_file)},
        auth={"type": "bearer", "token": TOKEN},
    )
    batch = make_batch(EVENTS)

    await sink.send(batch)

    [connect] = proxy.requests
    assert (connect.method, connect.target) == ("CONNECT", f"127.0.0.1:{receiver.port}")
    assert "authorization" not in connect.headers
    assert "idempotency-key" not in connect.headers
    [request] = receiver.requests
    assert request.body == b"[" + b",".join(batch.payloads) + b"]"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
async def test_https_proxy_env_used(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tls: Tls, variable: str
) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    proxy = await stack.enter_async_context(ConnectProxy())
    monkeypatch.setenv(variable, proxy.url)
    sink = await open_sink(stack, url=receiver.url, tls={"ca_file": str(tls.ca_file)})

    await sink.send(make_batch(EVENTS))

    assert [(r.method, r.target) for r in proxy.requests] == [
        ("CONNECT", f"127.0.0.1:{receiver.port}")
    ]
    assert len(receiver.requests) == 1


async def test_no_proxy_bypasses_proxy_option(
    stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch, tls: Tls
) -> None:
    receiver = await serve(stack, ssl_context=tls.server_context())
    proxy = await stack.enter_async_context(ConnectProxy())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    sink = await open_sink(
        stack, url=receiver.url, proxy=proxy.url, tls={"ca_file": str(tls.ca_file)}
    )

    await sink.send(make_batch(EVENTS))

    assert proxy.requests == []
    assert len(receiver.requests) == 1


# --- secrets --------------------------------------------------------------------------

SECRETS = [
    TOKEN,
    PASSWORD,
    SIGNING_SECRET,
    SIGNING_SECRET.removeprefix("whsec_"),
    base64.b64encode(f"tailer:{PASSWORD}".encode()).decode(),
    "header-secret",
    "proxy-secret",
    "query-secret",
]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_config_repr_hides_secrets() -> None:
    bearer = make_config(
        url="https://127.0.0.1/hook?key=query-secret",
        auth={"type": "bearer", "token": TOKEN},
        signing_secret=SIGNING_SECRET,
        headers={"X-API-Key": "header-secret"},
        proxy="http://user:proxy-secret@127.0.0.1:3128",
    )
    basic = make_config(
        url="https://127.0.0.1/hook", auth={"type": "basic", "username": "u", "password": PASSWORD}
    )

    for config in (bearer, basic):
        assert_no_secret(repr(config))
        assert_no_secret(str(config))
    assert "url='https://127.0.0.1/hook?***'" in repr(bearer)
    assert "headers={'X-API-Key': '***'}" in repr(bearer)
    assert "proxy='http://127.0.0.1:3128'" in repr(bearer)


async def test_secrets_absent_from_errors_and_logs(
    stack: AsyncExitStack, captured_logs: list[EventDict]
) -> None:
    echo = f"rejected Authorization: Bearer {TOKEN} with secret {SIGNING_SECRET}".encode()
    receiver = await serve(stack, Reply(), Reply(status=401, body=echo))
    sink = await open_sink(
        stack,
        url=receiver.url + "?key=query-secret",
        auth={"type": "bearer", "token": TOKEN},
        signing_secret=SIGNING_SECRET,
        headers={"X-API-Key": "header-secret"},
    )
    unreachable = await open_sink(
        stack,
        url=f"http://127.0.0.1:{closed_port()}/hook?key=query-secret",
        auth={"type": "basic", "username": "tailer", "password": PASSWORD},
    )

    await sink.send(make_batch(EVENTS))
    with pytest.raises(SinkError) as rejected:
        await sink.send(make_batch(EVENTS))
    with pytest.raises(SinkError) as refused:
        await unreachable.send(make_batch(EVENTS))

    assert "rejected Authorization: Bearer *** with secret ***" in str(rejected.value)
    for error in (rejected.value, refused.value):
        assert_no_secret(str(error))
        assert_no_secret(repr(error))
    assert_no_secret(repr(sink))
    assert_no_secret(repr(unreachable))
    events = [entry["event"] for entry in captured_logs]
    assert events.count("webhook.opened") == 2
    assert events.count("webhook.posted") == 1
    assert events.count("webhook.failed") == 2
    assert_no_secret(repr(captured_logs))


def test_validation_error_hides_input() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(
            url="https://127.0.0.1/hook",
            auth={"type": "bearer", "token": TOKEN, "extra": PASSWORD},
        )

    assert_no_secret(str(failure.value))


# --- configuration --------------------------------------------------------------------


def test_config_defaults() -> None:
    config = make_config(url="https://127.0.0.1/hook")

    assert config.mode == "json_array"
    assert config.gzip is False
    assert config.headers == {}
    assert config.auth is None
    assert config.signing_secret is None
    assert config.tls.verify is True
    assert config.tls.ca_file is None
    assert config.proxy is None
    assert config.timeout_secs == 30.0
    assert config.allow_insecure_http is False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.0.0.2/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
        "https://hooks.invalid/hook",
    ],
)
def test_url_accepted(url: str) -> None:
    assert make_config(url=url).url == url


def test_plain_http_to_remote_host_rejected() -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="http://hooks.invalid/hook")

    assert "url 'http://hooks.invalid/hook' uses plain http" in str(failure.value)
    assert "set allow_insecure_http: true" in str(failure.value)


def test_plain_http_allowed_when_insecure_allowed() -> None:
    config = make_config(url="http://hooks.invalid/hook", allow_insecure_http=True)

    assert config.url == "http://hooks.invalid/hook"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://127.0.0.1/hook", "url 'ftp://127.0.0.1/hook' is invalid"),
        ("https:///hook", "url 'https:///hook' is invalid"),
        ("https://127.0.0.1:99999/hook", "url 'https://127.0.0.1:99999/hook' is invalid"),
        ("127.0.0.1/hook", "url '127.0.0.1/hook' is invalid"),
        ("https://[::1/hook", "url '(unparsable URL)' is invalid"),
        ("https://user:pw@127.0.0.1/hook", "put them under auth (type: basic) instead"),
    ],
)
def test_invalid_url_rejected(url: str, expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url=url)

    assert expected in str(failure.value)
    assert ":pw@" not in str(failure.value)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"timeout_secs": 0}, "greater than 0"),
        ({"mode": "xml"}, "'json_array', 'ndjson' or 'single'"),
        ({"retries": 3}, "Extra inputs are not permitted"),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy 'socks5://127.0.0.1:1080' is invalid"),
    ],
)
def test_invalid_option_rejected(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as failure:
        make_config(url="https://127.0.0.1/hook", **options)

    assert expected in str(failure.value)


def test_config_model_declared() -> None:
    assert WebhookSink.config_model is WebhookSinkConfig


# --- lifecycle ------------------------------------------------------------------------


async def test_close_twice_harmless(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    unopened = WebhookSink("hook", make_config(url=receiver.url))
    sink = await open_sink(stack, url=receiver.url)

    await unopened.close()
    await sink.close()
    await sink.close()


async def test_send_before_open_raises() -> None:
    sink = WebhookSink("hook", make_config(url="https://127.0.0.1/hook"))

    with pytest.raises(RuntimeError, match="webhook sink 'hook' is not open"):
        await sink.send(make_batch(EVENTS))


async def test_reopen_keeps_sending(stack: AsyncExitStack) -> None:
    receiver = await serve(stack)
    sink = await open_sink(stack, url=receiver.url)

    await sink.reopen()
    await sink.send(make_batch(EVENTS))

    assert len(receiver.requests) == 1
