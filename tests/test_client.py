"""ActivityClient against real HTTP, HTTPS and proxy servers on 127.0.0.1.

Every server here is started by the test that uses it. A fake clock replaces the
real one, so retry waits are asserted exactly and nothing sleeps for real. The only
real waits are the client timeouts in the two timeout tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import structlog
import trustme
import uvloop
from aiohttp import web
from multidict import CIMultiDict
from structlog.typing import EventDict

import tailer.client
from tailer import __version__
from tailer.client import ActivityClient, ClientOptions
from tailer.credentials import Token
from tailer.errors import (
    AccessDeniedError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    CursorRejectedError,
    PageFormatError,
    RetriesExhaustedError,
)
from tailer.retry import RetryPolicy

TOKEN = "rt_test_f00dcafe5ecret"
TOKEN_SOURCE = "$RUNTOOLS_API_KEY"

# One instant, 1994-11-06T08:49:37Z, in the three date formats HTTP allows.
SERVER_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
SERVER_DATE_NS = 784111777 * 10**9
RETRY_DATES = {
    "imf-fixdate": "Sun, 06 Nov 1994 08:50:07 GMT",
    "rfc-850": "Sunday, 06-Nov-94 08:50:07 GMT",
    "asctime": "Sun Nov  6 08:50:07 1994",
}

EVENT = {"id": "act_1", "eventType": "agent.run.completed", "createdAt": "2026-05-10T12:00:00Z"}
OTHER_EVENT = {"id": "act_2", "eventType": "tool.call.failed", "severity": "error"}

PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy"]


def reference_page(
    events: list[Any], *, has_more: bool = False, cursor: str | None = None
) -> bytes:
    return orjson.dumps({"data": {"events": events}, "hasMore": has_more, "nextCursor": cursor})


def guide_page(events: list[Any], *, has_more: bool = False, cursor: str | None = None) -> bytes:
    return orjson.dumps(
        {"data": {"events": events}, "meta": {"hasMore": has_more, "nextCursor": cursor}}
    )


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message}})


EMPTY_PAGE = reference_page([])


# --- fakes ----------------------------------------------------------------------------


class FakeClock:
    """A Clock whose `sleep` records the seconds, moves both clocks forward and returns.

    Each sleep is also put on `sleeping`, so a test can wait for it. When `hold` is
    an Event, each sleep waits until the event is set before moving the clocks, so
    a test can act while a request is parked.
    """

    def __init__(self, wall: float = 1_700_000_000.0, monotonic: float = 5_000.0) -> None:
        self.wall = wall
        self.mono = monotonic
        self.sleeps: list[float] = []
        self.sleeping: asyncio.Queue[float] = asyncio.Queue()
        self.hold: asyncio.Event | None = None

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.put_nowait(seconds)
        if self.hold is not None:
            await self.hold.wait()
        self.wall += seconds
        self.mono += seconds


class UpperBoundRandom(random.Random):
    """A Random whose `uniform` returns the upper bound, so a jittered wait equals its cap."""

    def __init__(self) -> None:
        super().__init__(0)

    def uniform(self, a: float, b: float) -> float:
        return b


# --- servers --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = EMPTY_PAGE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    peer: tuple[str, int]


class ApiServer:
    """An aiohttp server on 127.0.0.1 that sends scripted replies, in order.

    Every request is recorded in `requests`. A request after the script has run
    out gets a 500, and the test's request count catches it.
    """

    def __init__(
        self,
        replies: list[Reply],
        *,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self._replies = list(replies)
        self._ssl_context = ssl_context
        self._sock = sock
        self._runner: web.AppRunner | None = None
        self.requests: list[Received] = []
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ApiServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(self._runner, self._sock, ssl_context=self._ssl_context)
        else:
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.requests.append(
            Received(
                request.method,
                request.path_qs,
                CIMultiDict(request.headers),
                request.transport.get_extra_info("peername"),
            )
        )
        if not self._replies:
            return web.Response(status=500, text="the test script has no reply left")
        reply = self._replies.pop(0)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


HANG = b"hang"  # RawServer action: read the request and never reply


class RawServer:
    """A TCP server on 127.0.0.1 for replies aiohttp's server will not send.

    Each request gets the next action: bytes to write before closing the
    connection (a broken or partial response is fine), None to close at once,
    or HANG to keep the connection open without a reply.
    """

    def __init__(self, actions: list[bytes | None]) -> None:
        self._actions = list(actions)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.requests: list[str] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._stop.set()
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.requests.append(head.decode("latin-1"))
        action = self._actions.pop(0) if self._actions else None
        if action == HANG:
            await self._stop.wait()
        elif action is not None:
            writer.write(action)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        writer.close()


def raw_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """Build an HTTP/1.1 response without a Date header unless `headers` has one."""
    lines = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class ProxiedRequest:
    method: str
    target: str
    headers: dict[str, str]


class ForwardProxy:
    """An HTTP proxy on 127.0.0.1 that tunnels CONNECT and forwards absolute-form requests.

    Every request it receives is recorded. It only connects to 127.0.0.1 and
    returns 403 for any other host. A forwarded request gets `Connection: close`,
    so each request the client sends through it is a new proxy connection.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests: list[ProxiedRequest] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
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

        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            path_qs = ""
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port)
            path_qs = parts.path + (f"?{parts.query}" if parts.query else "")
        if host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return

        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(port))
        self._writers.append(upstream_writer)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            forwarded_headers = [
                line
                for line in header_lines
                if line.partition(":")[0].strip().lower()
                not in ("connection", "keep-alive", "proxy-connection")
            ]
            request_line = f"{method} {path_qs} HTTP/1.1"
            forwarded = [request_line, *forwarded_headers, "Connection: close", "", ""]
            upstream_writer.write("\r\n".join(forwarded).encode("latin-1"))
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
    """Keep the runner's proxy settings and ~/.netrc away from every test."""
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
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Capture structlog events from the client, whatever logging an earlier test set up.

    A logger cached by `configure_logging` keeps its level filter and processors,
    so the client's module logger is swapped for a fresh one under default settings.
    """
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            monkeypatch.setattr(tailer.client, "_log", structlog.get_logger("tailer.client"))
            yield logs
    finally:
        structlog.configure(**saved)


@dataclass(frozen=True)
class Tls:
    ca: trustme.CA
    ca_file: str

    def server_context(self, *identities: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*identities).configure_cert(context)
        return context


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(ca, str(ca_file))


def make_options(base_url: str, **overrides: Any) -> ClientOptions:
    overrides.setdefault("token", Token(TOKEN, source=TOKEN_SOURCE))
    return ClientOptions(base_url=base_url, **overrides)


async def open_client(
    stack: AsyncExitStack, options: ClientOptions, clock: FakeClock
) -> ActivityClient:
    client = ActivityClient(options, clock=clock, rng=UpperBoundRandom())
    return await stack.enter_async_context(client)


async def serve(stack: AsyncExitStack, *replies: Reply, **kwargs: Any) -> ApiServer:
    return await stack.enter_async_context(ApiServer(list(replies), **kwargs))


# --- session and authentication -------------------------------------------------------


async def test_bearer_header_sent_alone(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    headers = server.requests[0].headers
    assert headers.getall("Authorization") == [f"Bearer {TOKEN}"]
    assert "X-API-Key" not in headers


async def test_api_key_header_sent_alone(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    client = await open_client(stack, make_options(server.url, auth_header="x-api-key"), clock)

    await client.fetch_page({})

    headers = server.requests[0].headers
    assert headers.getall("X-API-Key") == [TOKEN]
    assert "Authorization" not in headers


@pytest.mark.parametrize(
    ("auth_header", "expected"),
    [("bearer", ("Authorization", f"Bearer {TOKEN}")), ("x-api-key", ("X-API-Key", TOKEN))],
)
async def test_netrc_adds_no_credentials(
    stack: AsyncExitStack,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    auth_header: str,
    expected: tuple[str, str],
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server = await serve(stack, Reply())
    client = await open_client(stack, make_options(server.url, auth_header=auth_header), clock)

    await client.fetch_page({})

    headers = server.requests[0].headers
    name, value = expected
    assert headers.getall(name) == [value]
    assert [key for key in headers if key.lower() in ("authorization", "x-api-key")] == [name]


async def test_standard_headers_and_query(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    client = await open_client(stack, make_options(server.url + "/"), clock)

    await client.fetch_page({"limit": "2", "since": "2026-05-10T12:00:00Z"})

    request = server.requests[0]
    assert request.method == "GET"
    assert request.path_qs == "/v1/activity?limit=2&since=2026-05-10T12:00:00Z"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"runtools-tail/{__version__}"


async def test_base_url_path_prefix_kept(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    client = await open_client(stack, make_options(server.url + "/api/"), clock)

    await client.fetch_page({})

    assert server.requests[0].path_qs == "/api/v1/activity"


async def test_requests_share_one_connection(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply(), Reply(), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    for _ in range(3):
        await client.fetch_page({})

    assert len(server.requests) == 3
    assert len({request.peer for request in server.requests}) == 1


async def test_fetch_before_open_raises(clock: FakeClock) -> None:
    client = ActivityClient(make_options("http://127.0.0.1:9"), clock=clock)

    with pytest.raises(RuntimeError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == "ActivityClient is not open; use it with 'async with'"


async def test_close_twice_is_harmless(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    client = ActivityClient(make_options(server.url), clock=clock)

    async with client:
        await client.fetch_page({})
    await client.close()

    with pytest.raises(RuntimeError):
        await client.fetch_page({})


async def test_redirect_not_followed(stack: AsyncExitStack, clock: FakeClock) -> None:
    # Another port is another origin: the API key must not travel there.
    elsewhere = await serve(stack, Reply())
    server = await serve(stack, Reply(307, b"", {"Location": f"{elsewhere.url}/v1/activity"}))
    client = await open_client(stack, make_options(server.url, auth_header="x-api-key"), clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == "GET /v1/activity returned HTTP 307: (empty body)"
    assert caught.value.status == 307
    assert elsewhere.requests == []


# --- pages ----------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", [reference_page, guide_page])
async def test_both_envelopes_parsed(
    stack: AsyncExitStack, clock: FakeClock, envelope: Callable[..., bytes]
) -> None:
    body = envelope([EVENT, OTHER_EVENT], has_more=True, cursor="c_2")
    server = await serve(stack, Reply(body=body, headers={"Date": SERVER_DATE}))
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert (page.events, page.has_more, page.next_cursor, page.server_time_ns) == (
        [EVENT, OTHER_EVENT],
        True,
        "c_2",
        SERVER_DATE_NS,
    )


async def test_last_page_drops_cursor(stack: AsyncExitStack, clock: FakeClock) -> None:
    body = guide_page([EVENT], has_more=False, cursor="c_stale")
    server = await serve(stack, Reply(body=body, headers={"Date": SERVER_DATE}))
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert (page.events, page.has_more, page.next_cursor, page.server_time_ns) == (
        [EVENT],
        False,
        None,
        SERVER_DATE_NS,
    )


async def test_server_time_none_without_date(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await stack.enter_async_context(RawServer([raw_response(200, EMPTY_PAGE)]))
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert (page.events, page.has_more, page.next_cursor, page.server_time_ns) == (
        [],
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"data": {"events": []}}',
            "page has no hasMore field, neither at the top level nor under meta, so the "
            "tailer cannot tell whether more pages follow (top-level keys: ['data'])",
        ),
        (
            b'{"events": [], "hasMore": false}',
            "page has no data.events list; the API response format may have changed "
            "(top-level keys: ['events', 'hasMore'])",
        ),
        (b"[]", "page is a JSON list, expected an object"),
        (
            b'{"data": {"events": []}, "hasMore": true}',
            "page says hasMore is true but gives no nextCursor",
        ),
    ],
)
async def test_unreadable_page_not_retried(
    stack: AsyncExitStack, clock: FakeClock, body: bytes, message: str
) -> None:
    server = await serve(stack, Reply(body=body), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    with pytest.raises(PageFormatError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == message
    assert len(server.requests) == 1
    assert clock.sleeps == []


async def test_truncated_json_retried(
    stack: AsyncExitStack, clock: FakeClock, captured_logs: list[EventDict]
) -> None:
    server = await serve(stack, Reply(body=b'{"data": {"events": [{"id": "a'), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert page.events == []
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]
    assert [entry["event"] for entry in captured_logs] == ["request.retrying", "request.recovered"]
    assert captured_logs[0]["status"] == 200
    assert captured_logs[0]["error"].startswith("response body is not valid JSON (")


# --- the retry rule -------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
async def test_retriable_status_retried(
    stack: AsyncExitStack, clock: FakeClock, status: int
) -> None:
    replies = [Reply(status, error_body("try later")), Reply(headers={"Date": SERVER_DATE})]
    server = await serve(stack, *replies)
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert (page.events, page.has_more, page.next_cursor, page.server_time_ns) == (
        [],
        False,
        None,
        SERVER_DATE_NS,
    )
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]
    assert (client.requests, client.retries) == (2, 1)


@pytest.mark.parametrize(
    ("status", "params", "error_type", "message"),
    [
        (
            401,
            {},
            AuthenticationError,
            f"the API rejected the API key from {TOKEN_SOURCE} (HTTP 401: no entry); "
            "put a valid key there",
        ),
        (
            403,
            {},
            AccessDeniedError,
            f"the API key from {TOKEN_SOURCE} may not read these events (HTTP 403: no entry); "
            "filtering on another user's activity needs an admin key",
        ),
        (400, {}, BadRequestError, "the API rejected the request (HTTP 400: no entry)"),
        (
            400,
            {"cursor": "c_old"},
            CursorRejectedError,
            "the API rejected the page cursor: no entry",
        ),
        (404, {}, ApiError, "GET /v1/activity returned HTTP 404: no entry"),
        (409, {}, ApiError, "GET /v1/activity returned HTTP 409: no entry"),
        (422, {}, ApiError, "GET /v1/activity returned HTTP 422: no entry"),
        (501, {}, ApiError, "GET /v1/activity returned HTTP 501: no entry"),
        (204, {}, ApiError, "GET /v1/activity returned HTTP 204: (empty body)"),
    ],
)
async def test_final_status_not_retried(
    stack: AsyncExitStack,
    clock: FakeClock,
    status: int,
    params: dict[str, str],
    error_type: type[ApiError],
    message: str,
) -> None:
    server = await serve(stack, Reply(status, error_body("no entry")), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page(params)

    assert type(caught.value) is error_type
    assert str(caught.value) == message
    assert caught.value.status == status
    assert len(server.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (b'{"error": "quota spent"}', "application/json", "quota spent"),
        (b'{"message": "quota spent"}', "application/json", "quota spent"),
        (b'{"error": {"code": 7}}', "application/json", '{"error": {"code": 7}}'),
        (
            b"<html>\n  <h1>Bad\tGateway</h1>\n</html>",
            "text/html",
            "<html> <h1>Bad Gateway</h1> </html>",
        ),
        (b"", "text/plain", "(empty body)"),
        (b"x" * 400, "text/plain", "x" * 300),
    ],
)
async def test_error_message_from_body(
    stack: AsyncExitStack, clock: FakeClock, body: bytes, content_type: str, shown: str
) -> None:
    server = await serve(stack, Reply(404, body, {"Content-Type": content_type}))
    client = await open_client(stack, make_options(server.url), clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == f"GET /v1/activity returned HTTP 404: {shown}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 503])
async def test_token_echoed_by_server_hidden(
    stack: AsyncExitStack, clock: FakeClock, captured_logs: list[EventDict], status: int
) -> None:
    echo = error_body(f"key {TOKEN} is not valid here")
    server = await serve(stack, Reply(status, echo), Reply(status, echo))
    options = make_options(server.url, retry=RetryPolicy(max_attempts=2))
    client = await open_client(stack, options, clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page({"cursor": "c_1"})

    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert TOKEN not in "".join(traceback.format_exception(caught.value))
    assert TOKEN not in repr(options)
    assert TOKEN not in repr(captured_logs)
    assert "key *** is not valid here" in str(caught.value)


async def test_retry_logged(
    stack: AsyncExitStack, clock: FakeClock, captured_logs: list[EventDict]
) -> None:
    server = await serve(stack, Reply(503, error_body("busy")), Reply(503, b""), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    # The second retry comes within a minute of the first, so it is only counted.
    assert captured_logs == [
        {
            "event": "request.retrying",
            "log_level": "warning",
            "repeats": 0,
            "status": 503,
            "error": "HTTP 503: busy",
            "attempt": 1,
            "wait_seconds": 0.5,
        },
        {
            "event": "request.recovered",
            "log_level": "info",
            "path": "/v1/activity",
            "attempts": 3,
            "failing_seconds": 1.5,
        },
    ]


async def test_retry_log_rate_limited(
    stack: AsyncExitStack, clock: FakeClock, captured_logs: list[EventDict]
) -> None:
    busy = Reply(503, error_body("busy"))
    server = await serve(stack, busy, busy, busy, Reply(), busy, Reply())
    client = await open_client(stack, make_options(server.url), clock)
    await client.fetch_page({})
    clock.mono += 61.0

    await client.fetch_page({})

    retries = [entry for entry in captured_logs if entry["event"] == "request.retrying"]
    assert [entry["repeats"] for entry in retries] == [0, 2]
    assert len(server.requests) == 6


# --- budget ---------------------------------------------------------------------------


async def test_budget_exhausted_names_last_error(stack: AsyncExitStack, clock: FakeClock) -> None:
    replies = [
        Reply(502, error_body("gateway")),
        Reply(500, b"oops"),
        Reply(503, error_body("busy")),
    ]
    server = await serve(stack, *replies)
    client = await open_client(
        stack, make_options(server.url, retry=RetryPolicy(max_attempts=3)), clock
    )

    with pytest.raises(RetriesExhaustedError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == "GET /v1/activity failed 3 times; last error: HTTP 503: busy"
    assert caught.value.status == 503
    assert type(caught.value.__cause__) is ApiError
    assert len(server.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


async def test_no_budget_retries_until_success(stack: AsyncExitStack, clock: FakeClock) -> None:
    replies = [Reply(503, b"busy")] * 9 + [Reply(body=reference_page([EVENT]))]
    server = await serve(stack, *replies)
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0, max_attempts=None)
    client = await open_client(stack, make_options(server.url, retry=policy), clock)

    page = await client.fetch_page({})

    assert page.events == [EVENT]
    assert len(server.requests) == 10
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert (client.requests, client.retries, client.rate_limit_waits) == (10, 9, 0)


# --- network errors -------------------------------------------------------------------


async def test_connection_refused_then_listening(stack: AsyncExitStack, clock: FakeClock) -> None:
    # A bound socket that does not listen refuses connections until listen() is called.
    sock = socket.socket()
    stack.callback(sock.close)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    clock.hold = asyncio.Event()
    client = await open_client(stack, make_options(f"http://127.0.0.1:{port}"), clock)
    fetch = asyncio.create_task(client.fetch_page({}))

    assert await clock.sleeping.get() == 0.5
    server = await serve(stack, Reply(body=reference_page([EVENT])), sock=sock)
    clock.hold.set()
    page = await fetch

    assert page.events == [EVENT]
    assert len(server.requests) == 1
    assert clock.sleeps == [0.5]


async def test_connection_refused_exhausts_budget(stack: AsyncExitStack, clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        options = make_options(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=2))
        client = await open_client(stack, options, clock)

        with pytest.raises(RetriesExhaustedError) as caught:
            await client.fetch_page({})

    assert str(caught.value).startswith(
        "GET /v1/activity failed 2 times; last error: cannot connect to "
        f"127.0.0.1:{port}: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )
    assert "ssl:" not in str(caught.value)
    assert str(caught.value).endswith(
        f"; check that http://127.0.0.1:{port} is the API's address and reachable from here"
    )
    assert caught.value.status is None
    assert clock.sleeps == [0.5]


@pytest.mark.parametrize(
    ("broken", "copies", "error"),
    [
        (None, 2, "request failed: ServerDisconnectedError: Server disconnected"),
        (b"HTTP/1.1 200 OK\r\nContent-Len", 2, "request failed: ServerDisconnectedError: "),
        (
            raw_response(200, EMPTY_PAGE)[:-5],
            1,
            "request failed: ClientPayloadError: Response payload is not completed",
        ),
    ],
    ids=["dropped", "truncated-head", "truncated-body"],
)
async def test_broken_response_retried(
    stack: AsyncExitStack,
    clock: FakeClock,
    captured_logs: list[EventDict],
    broken: bytes | None,
    copies: int,
    error: str,
) -> None:
    # aiohttp resends a GET once by itself when the server closes the connection
    # before answering, so the client sees that error only after a second one.
    actions = [broken] * copies + [raw_response(200, reference_page([EVENT]))]
    server = await stack.enter_async_context(RawServer(actions))
    client = await open_client(stack, make_options(server.url), clock)

    page = await client.fetch_page({})

    assert page.events == [EVENT]
    assert len(server.requests) == copies + 1
    assert clock.sleeps == [0.5]
    assert client.requests == 2
    assert captured_logs[0]["status"] is None
    assert captured_logs[0]["error"].startswith(error)


async def test_body_hook_sees_each_200_body_first(stack: AsyncExitStack, clock: FakeClock) -> None:
    good = reference_page([EVENT])
    actions: list[bytes | None] = [
        raw_response(503, b"{}"),
        raw_response(200, b"{not json"),
        raw_response(200, good),
    ]
    server = await stack.enter_async_context(RawServer(actions))
    client = await open_client(stack, make_options(server.url), clock)
    bodies: list[bytes] = []

    async def on_body(body: bytes) -> None:
        bodies.append(body)

    page = await client.fetch_page({}, on_body=on_body)

    assert page.events == [EVENT]
    # The 503 is not a page; the cut-off 200 reaches the hook before decoding fails.
    assert bodies == [b"{not json", good]
    assert len(server.requests) == 3


async def test_timeout_retried(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await stack.enter_async_context(
        RawServer([HANG, raw_response(200, reference_page([EVENT]))])
    )
    client = await open_client(stack, make_options(server.url, timeout=0.2), clock)

    page = await client.fetch_page({})

    assert page.events == [EVENT]
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]


async def test_timeout_exhausts_budget(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await stack.enter_async_context(RawServer([HANG, HANG]))
    options = make_options(server.url, timeout=0.1, retry=RetryPolicy(max_attempts=2))
    client = await open_client(stack, options, clock)

    with pytest.raises(RetriesExhaustedError) as caught:
        await client.fetch_page({})

    assert str(caught.value) == (
        "GET /v1/activity failed 2 times; last error: request timed out after 0.1 s; "
        f"check that {server.url} is the API's address and reachable from here"
    )
    assert caught.value.status is None


# --- Retry-After and the rate-limit gate ----------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds(stack: AsyncExitStack, clock: FakeClock, status: int) -> None:
    server = await serve(stack, Reply(status, b"slow down", {"Retry-After": "7"}), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    assert clock.sleeps == [7.0]


@pytest.mark.parametrize("form", sorted(RETRY_DATES))
async def test_retry_after_date_uses_server_date(
    stack: AsyncExitStack, clock: FakeClock, form: str
) -> None:
    # The local clock is an hour ahead of the server; the wait follows the server.
    clock.wall = 784111777.0 + 3600.0
    headers = {"Retry-After": RETRY_DATES[form], "Date": SERVER_DATE}
    server = await serve(stack, Reply(429, b"slow down", headers), Reply())
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    assert clock.sleeps == [30.0]


async def test_retry_after_date_without_date_header(
    stack: AsyncExitStack, clock: FakeClock
) -> None:
    clock.wall = 784111777.0 + 18.0
    rate_limited = raw_response(429, b"", {"Retry-After": RETRY_DATES["imf-fixdate"]})
    server = await stack.enter_async_context(
        RawServer([rate_limited, raw_response(200, EMPTY_PAGE)])
    )
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    assert clock.sleeps == [12.0]


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("soon", 0.5),
        ("-5", 0.5),
        ("1.5", 0.5),
        ("", 0.5),
        ("Sun, 32 Foo 1994 08:49:37 GMT", 0.5),
        ("\u00b2", 0.5),
        ("0", 0.0),
        ("3600", 60.0),
        ("9" * 5000, 60.0),
        ("Sun, 06 Nov 1994 08:00:00 GMT", 0.0),
        ("Sun, 06 Nov 2094 08:49:37 GMT", 60.0),
    ],
    ids=[
        "word",
        "negative",
        "fraction",
        "empty",
        "bad-date",
        "superscript",
        "zero",
        "above-max",
        "huge",
        "past-date",
        "far-date",
    ],
)
async def test_retry_after_bounded_or_ignored(
    stack: AsyncExitStack, clock: FakeClock, retry_after: str, wait: float
) -> None:
    headers = {"Retry-After": retry_after, "Date": SERVER_DATE}
    rate_limited = raw_response(429, b"", headers)
    server = await stack.enter_async_context(
        RawServer([rate_limited, raw_response(200, EMPTY_PAGE)])
    )
    client = await open_client(stack, make_options(server.url), clock)

    await client.fetch_page({})

    assert clock.sleeps == [wait]
    assert len(server.requests) == 2


async def test_retry_after_capped_by_max_delay(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply(429, b"", {"Retry-After": "30"}), Reply())
    options = make_options(server.url, retry=RetryPolicy(max_delay=5.0))
    client = await open_client(stack, options, clock)

    await client.fetch_page({})

    assert clock.sleeps == [5.0]


async def test_rate_limit_delays_concurrent_call(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply(429, b"", {"Retry-After": "7"}), Reply(), Reply())
    client = await open_client(stack, make_options(server.url), clock)
    clock.hold = asyncio.Event()

    first = asyncio.create_task(client.fetch_page({"limit": "1"}))
    assert await clock.sleeping.get() == 7.0
    clock.mono += 2.0
    second = asyncio.create_task(client.fetch_page({"limit": "2"}))
    assert await clock.sleeping.get() == 5.0
    assert len(server.requests) == 1

    clock.hold.set()
    await asyncio.gather(first, second)

    assert clock.sleeps == [7.0, 5.0]
    assert len(server.requests) == 3
    assert client.rate_limit_waits == 1


async def test_rate_limit_delays_next_call(stack: AsyncExitStack, clock: FakeClock) -> None:
    # The first call gives up on the 429, but the server's wait still delays the next call.
    server = await serve(stack, Reply(429, b"", {"Retry-After": "30"}), Reply())
    options = make_options(server.url, retry=RetryPolicy(max_attempts=1))
    client = await open_client(stack, options, clock)

    with pytest.raises(RetriesExhaustedError):
        await client.fetch_page({})
    clock.mono += 10.0
    await client.fetch_page({})

    assert clock.sleeps == [20.0]
    assert len(server.requests) == 2


async def test_server_error_sets_no_gate(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply(503, b"", {"Retry-After": "30"}), Reply())
    options = make_options(server.url, retry=RetryPolicy(max_attempts=1))
    client = await open_client(stack, options, clock)

    with pytest.raises(RetriesExhaustedError):
        await client.fetch_page({})
    await client.fetch_page({})

    assert clock.sleeps == []
    assert client.rate_limit_waits == 0


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "http://",
        "http://[::1",
        "http://127.0.0.1:port",
        "http://127.0.0.1:99999",
        "http://user:secret@127.0.0.1:8080",
        "http://127.0.0.1:8080/?tenant=a",
        "http://127.0.0.1:8080/#top",
    ],
)
def test_invalid_base_url_rejected(base_url: str, clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as caught:
        ActivityClient(make_options(base_url), clock=clock)

    assert str(caught.value) == (
        f"API URL {base_url!r} is invalid; expected http(s)://host[:port][/path]"
    )


def test_missing_ca_file_rejected(tmp_path: Path, clock: FakeClock) -> None:
    ca_file = str(tmp_path / "missing.pem")

    with pytest.raises(ConfigError) as caught:
        ActivityClient(make_options("https://127.0.0.1:9", ca_file=ca_file), clock=clock)

    assert str(caught.value) == (
        f"CA file {ca_file!r} cannot be loaded ([Errno 2] No such file or directory); "
        "pass a PEM file of CA certificates with --ca-file"
    )


@pytest.mark.parametrize(
    "content", [None, b"", b"not a certificate\n"], ids=["directory", "empty", "text"]
)
def test_unusable_ca_file_rejected(tmp_path: Path, clock: FakeClock, content: bytes | None) -> None:
    path = tmp_path / "ca.pem"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        ActivityClient(make_options("https://127.0.0.1:9", ca_file=str(path)), clock=clock)

    assert str(caught.value).startswith(f"CA file {str(path)!r} cannot be loaded (")
    assert str(caught.value).endswith("); pass a PEM file of CA certificates with --ca-file")


# --- TLS ------------------------------------------------------------------------------


async def test_tls_with_ca_file(stack: AsyncExitStack, clock: FakeClock, tls: Tls) -> None:
    server = await serve(
        stack, Reply(body=reference_page([EVENT])), ssl_context=tls.server_context("127.0.0.1")
    )
    client = await open_client(stack, make_options(server.url, ca_file=tls.ca_file), clock)

    page = await client.fetch_page({})

    assert page.events == [EVENT]
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_tls_unknown_ca_fails_without_retry(
    stack: AsyncExitStack, clock: FakeClock, tls: Tls
) -> None:
    server = await serve(stack, Reply(), ssl_context=tls.server_context("127.0.0.1"))
    options = make_options(server.url, retry=RetryPolicy(max_attempts=5))
    client = await open_client(stack, options, clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page({})

    message = str(caught.value)
    assert type(caught.value) is ApiError
    assert message.startswith(f"the TLS certificate of {server.url}/v1/activity could not be")
    assert "certificate verify failed: unable to get local issuer certificate" in message
    assert message.endswith("--ca-file, or turn verification off with --no-verify-tls (unsafe)")
    assert clock.sleeps == []
    assert server.requests == []


async def test_tls_verify_off(stack: AsyncExitStack, clock: FakeClock, tls: Tls) -> None:
    server = await serve(
        stack, Reply(), Reply(), ssl_context=tls.server_context("api.runtools.test")
    )
    client = await open_client(stack, make_options(server.url, verify_tls=False), clock)

    await client.fetch_page({})

    assert len(server.requests) == 1


async def test_tls_hostname_mismatch_fails(
    stack: AsyncExitStack, clock: FakeClock, tls: Tls
) -> None:
    server = await serve(stack, Reply(), ssl_context=tls.server_context("api.runtools.test"))
    options = make_options(server.url, ca_file=tls.ca_file, retry=RetryPolicy(max_attempts=3))
    client = await open_client(stack, options, clock)

    with pytest.raises(ApiError) as caught:
        await client.fetch_page({})

    assert (
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'"
    ) in str(caught.value)
    assert clock.sleeps == []
    assert server.requests == []


# --- proxies, under asyncio and uvloop ------------------------------------------------

LOOP_FACTORIES = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(uvloop.new_event_loop, id="uvloop"),
]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def run_in_loop(loop_factory: LoopFactory, scenario: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        if loop_factory is uvloop.new_event_loop:
            assert isinstance(runner.get_loop(), uvloop.Loop)
        runner.run(scenario)


def assert_no_token(request: ProxiedRequest) -> None:
    assert [value for value in request.headers.values() if TOKEN in value] == []
    assert "authorization" not in request.headers
    assert "proxy-authorization" not in request.headers


@pytest.mark.parametrize("loop_factory", LOOP_FACTORIES)
@pytest.mark.parametrize("auth_header", ["bearer", "x-api-key"])
def test_proxy_option_tunnels_tls(loop_factory: LoopFactory, auth_header: str, tls: Tls) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            server = await serve(
                stack,
                Reply(body=reference_page([EVENT])),
                ssl_context=tls.server_context("127.0.0.1"),
            )
            proxy = await stack.enter_async_context(ForwardProxy())
            options = make_options(
                server.url, proxy=proxy.url, ca_file=tls.ca_file, auth_header=auth_header
            )
            client = await open_client(stack, options, FakeClock())

            page = await client.fetch_page({"limit": "1"})

            assert page.events == [EVENT]
            assert [(r.method, r.target) for r in proxy.requests] == [
                ("CONNECT", f"127.0.0.1:{server.port}")
            ]
            assert_no_token(proxy.requests[0])
            assert "x-api-key" not in proxy.requests[0].headers
            assert server.requests[0].path_qs == "/v1/activity?limit=1"

    run_in_loop(loop_factory, scenario())


@pytest.mark.parametrize("loop_factory", LOOP_FACTORIES)
def test_proxy_option_forwards_http(loop_factory: LoopFactory) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            server = await serve(stack, Reply(body=reference_page([EVENT])))
            proxy = await stack.enter_async_context(ForwardProxy())
            client = await open_client(
                stack, make_options(server.url, proxy=proxy.url), FakeClock()
            )

            page = await client.fetch_page({"limit": "1"})

            assert page.events == [EVENT]
            assert [(r.method, r.target) for r in proxy.requests] == [
                ("GET", f"{server.url}/v1/activity?limit=1")
            ]
            # Over plain HTTP the proxy sees the whole request, token included, but
            # the token must not be sent as proxy credentials.
            assert proxy.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
            assert "proxy-authorization" not in proxy.requests[0].headers
            assert server.requests[0].headers.getall("Authorization") == [f"Bearer {TOKEN}"]

    run_in_loop(loop_factory, scenario())


@pytest.mark.parametrize("loop_factory", LOOP_FACTORIES)
@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_env_used(
    loop_factory: LoopFactory, variable: str, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            server = await serve(stack, Reply(), ssl_context=tls.server_context("127.0.0.1"))
            proxy = await stack.enter_async_context(ForwardProxy())
            monkeypatch.setenv(variable, proxy.url)
            options = make_options(server.url, ca_file=tls.ca_file)
            client = await open_client(stack, options, FakeClock())

            await client.fetch_page({})

            assert [(r.method, r.target) for r in proxy.requests] == [
                ("CONNECT", f"127.0.0.1:{server.port}")
            ]
            assert_no_token(proxy.requests[0])
            assert len(server.requests) == 1

    run_in_loop(loop_factory, scenario())


@pytest.mark.parametrize("loop_factory", LOOP_FACTORIES)
def test_http_proxy_env_used(loop_factory: LoopFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            server = await serve(stack, Reply())
            proxy = await stack.enter_async_context(ForwardProxy())
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            client = await open_client(stack, make_options(server.url), FakeClock())

            await client.fetch_page({})

            assert [(r.method, r.target) for r in proxy.requests] == [
                ("GET", f"{server.url}/v1/activity")
            ]
            assert len(server.requests) == 1

    run_in_loop(loop_factory, scenario())


@pytest.mark.parametrize("loop_factory", LOOP_FACTORIES)
@pytest.mark.parametrize("source", ["option", "environment"])
def test_no_proxy_bypasses_proxy(
    loop_factory: LoopFactory, source: str, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            server = await serve(stack, Reply(), ssl_context=tls.server_context("127.0.0.1"))
            proxy = await stack.enter_async_context(ForwardProxy())
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            explicit = proxy.url if source == "option" else None
            options = make_options(server.url, ca_file=tls.ca_file, proxy=explicit)
            client = await open_client(stack, options, FakeClock())

            await client.fetch_page({})

            assert proxy.requests == []
            assert len(server.requests) == 1

    run_in_loop(loop_factory, scenario())


async def test_proxy_option_beats_environment(
    stack: AsyncExitStack, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve(stack, Reply())
    unused = await stack.enter_async_context(ForwardProxy())
    proxy = await stack.enter_async_context(ForwardProxy())
    monkeypatch.setenv("HTTP_PROXY", unused.url)
    client = await open_client(stack, make_options(server.url, proxy=proxy.url), clock)

    await client.fetch_page({})

    assert unused.requests == []
    assert [r.method for r in proxy.requests] == ["GET"]


async def test_proxy_down_retried(stack: AsyncExitStack, clock: FakeClock) -> None:
    server = await serve(stack, Reply())
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        proxy_port = closed.getsockname()[1]
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        options = make_options(server.url, proxy=proxy_url, retry=RetryPolicy(max_attempts=2))
        client = await open_client(stack, options, clock)

        with pytest.raises(RetriesExhaustedError) as caught:
            await client.fetch_page({})

    assert f"last error: cannot connect to the proxy 127.0.0.1:{proxy_port}: [Errno 111] " in str(
        caught.value
    )
    assert server.requests == []
    assert clock.sleeps == [0.5]


# --- a rotated token file -------------------------------------------------------------

OLD_KEY = "rt_test_rotation_old_1"
NEW_KEY = "rt_test_rotation_new_2"


class KeyCheckingServer:
    """An aiohttp server on 127.0.0.1 that accepts one bearer key and answers 401 to others.

    `keys` records the key of every request, in order.
    """

    def __init__(self, accepted: str) -> None:
        self.accepted = accepted
        self.keys: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> KeyCheckingServer:
        app = web.Application()
        app.router.add_get("/v1/activity", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.keys.append(key)
        if key != self.accepted:
            return web.Response(status=401, body=error_body("invalid API key"))
        return web.Response(body=reference_page([EVENT]))


class SecretVolume:
    """A directory laid out as the kubelet lays out a mounted Kubernetes Secret.

    `key` links to `..data/key`, and `..data` links to a timestamped directory.
    A rotation writes a new directory, swaps `..data` with a rename and removes
    the old directory.
    """

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.generation = 0
        self._write(key)
        self.path.symlink_to("..data/key")

    @property
    def path(self) -> Path:
        return self.root / "key"

    def _write(self, key: str) -> None:
        self.generation += 1
        directory = self.root / f"..2026_05_10_00_00_0{self.generation}"
        directory.mkdir()
        (directory / "key").write_text(key + "\n")
        (directory / "key").chmod(0o600)
        link = self.root / "..data_tmp"
        link.symlink_to(directory.name)
        link.replace(self.root / "..data")

    def rotate(self, key: str) -> None:
        old = self.root / (self.root / "..data").readlink()
        self._write(key)
        (old / "key").unlink()
        old.rmdir()


async def open_rotating_client(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path, accepted: str
) -> tuple[ActivityClient, KeyCheckingServer, SecretVolume]:
    server = await stack.enter_async_context(KeyCheckingServer(accepted))
    (tmp_path / "secret").mkdir()
    volume = SecretVolume(tmp_path / "secret", OLD_KEY)
    token = Token.from_file(volume.path, clock=clock.monotonic)
    options = make_options(server.url, token=token, retry=RetryPolicy(max_attempts=1))
    return await open_client(stack, options, clock), server, volume


async def test_rotated_key_sent_after_401(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path
) -> None:
    client, server, volume = await open_rotating_client(stack, clock, tmp_path, NEW_KEY)
    volume.rotate(NEW_KEY)

    page = await client.fetch_page({})

    assert page.events == [EVENT]
    assert server.keys == [OLD_KEY, NEW_KEY]
    assert client.requests == 2
    assert client.retries == 0
    assert clock.sleeps == []


async def test_rotated_key_sent_after_file_check(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path
) -> None:
    client, server, volume = await open_rotating_client(stack, clock, tmp_path, OLD_KEY)
    await client.fetch_page({})
    server.accepted = NEW_KEY
    volume.rotate(NEW_KEY)
    clock.mono += 1

    await client.fetch_page({})

    assert server.keys == [OLD_KEY, NEW_KEY]


async def test_401_with_unchanged_file_raises(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path
) -> None:
    client, server, _ = await open_rotating_client(stack, clock, tmp_path, NEW_KEY)

    with pytest.raises(AuthenticationError) as caught:
        await client.fetch_page({})

    assert server.keys == [OLD_KEY]
    assert "HTTP 401: invalid API key" in str(caught.value)


async def test_401_after_rotation_raises(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path
) -> None:
    client, server, volume = await open_rotating_client(stack, clock, tmp_path, "rt_test_other")
    volume.rotate(NEW_KEY)

    with pytest.raises(AuthenticationError):
        await client.fetch_page({})

    assert server.keys == [OLD_KEY, NEW_KEY]


async def test_each_401_reloads_once(
    stack: AsyncExitStack, clock: FakeClock, tmp_path: Path
) -> None:
    client, server, volume = await open_rotating_client(stack, clock, tmp_path, NEW_KEY)
    volume.rotate(NEW_KEY)
    await client.fetch_page({})
    server.accepted = OLD_KEY
    volume.rotate(OLD_KEY)

    await client.fetch_page({})

    assert server.keys == [OLD_KEY, NEW_KEY, NEW_KEY, OLD_KEY]
