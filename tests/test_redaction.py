"""The redaction processor: registered secrets, patterns and secret-named fields.

The last test sends known secrets through every error path the tailer has and
reads stderr as a user sees it. Its servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import ClientSession, web

import tailer.client
import tailer.credentials
import tailer.sinks.webhook
from tailer.client import ActivityClient
from tailer.config import load_config
from tailer.credentials import Token
from tailer.errors import ApiError, AuthenticationError
from tailer.event import Event
from tailer.logs import configure_logging
from tailer.redaction import (
    is_secret_name,
    redact_secrets,
    redact_text,
    redact_value,
    register_secret,
)
from tailer.retry import RetryPolicy
from tailer.sinks.base import Batch, SinkError
from tailer.sinks.webhook import WebhookSink, WebhookSinkConfig
from tailer.sources import build_source

# --- registered values ----------------------------------------------------------------


def test_registered_value_masked_anywhere() -> None:
    register_secret("reg-4f0e8a1b")

    assert redact_text("key=xreg-4f0e8a1bx; again reg-4f0e8a1b") == "key=x***x; again ***"


def test_registered_value_masked_percent_encoded() -> None:
    register_secret("p@ss/w0rd+4c1d")

    assert redact_text("GET /login?next=p%40ss%2Fw0rd%2B4c1d") == "GET /login?next=***"


def test_registered_value_stripped() -> None:
    register_secret("  padded-7e2c9d  \n")

    assert redact_text("got padded-7e2c9d") == "got ***"


def test_longer_secret_masked_whole() -> None:
    register_secret("nest-3a9f")
    register_secret("nest-3a9f-outer-77")

    assert redact_text("value nest-3a9f-outer-77") == "value ***"


def test_short_value_not_registered() -> None:
    register_secret("ab1")

    assert redact_text("tab1 lab1") == "tab1 lab1"


# --- patterns -------------------------------------------------------------------------

MASKED_TEXT = [
    ("Authorization: Bearer abc.def-ghi", "Authorization: ***"),
    ("authorization: basic dXNlcjpwYXNz", "authorization: ***"),
    ("Proxy-Authorization: Basic dTpw", "Proxy-Authorization: ***"),
    ("X-API-Key: plainletters", "X-API-Key: ***"),
    ("x-api-key=abc", "x-api-key=***"),
    (
        "{'Authorization': 'Bearer abcdefgh', 'X-API-Key': 'zzz'}",
        "{'Authorization': '***', 'X-API-Key': '***'}",
    ),
    (
        "<CIMultiDict('Host': '127.0.0.1', 'X-Api-Key': 'k')>",
        "<CIMultiDict('Host': '127.0.0.1', 'X-Api-Key': '***')>",
    ),
    (
        "GET /\r\nAuthorization: Bearer abcdefghij\r\nHost: h\r\n",
        "GET /\r\nAuthorization: ***\r\nHost: h\r\n",
    ),
    ("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "sent Bearer ***"),
    ("sent Basic dXNlcjpwYXNz", "sent Basic ***"),
    ("Splunk 1b2c3d4e-aaaa-bbbb-cccc-1234567890ab was refused", "Splunk *** was refused"),
    ("key rt_live_abcDEF123 and rt_test_x9", "key rt_live_*** and rt_test_***"),
    # A value no other test registers, so only the pattern can mask it.
    ("secret whsec_cGF0dGVybi1vbmx5LXNlY3JldA==", "secret whsec_***"),
    ("proxy http://user:pa55@127.0.0.1:3128 failed", "proxy http://user:***@127.0.0.1:3128 failed"),
    ("https://:only-password@host/", "https://:***@host/"),
    ("/v1/x?token=abc&cursor=c1&api_key=q", "/v1/x?token=***&cursor=c1&api_key=***"),
    ("/hook?key=abc&sig=def&limit=5", "/hook?key=***&sig=***&limit=5"),
    ("/reset?password=hunter2#top", "/reset?password=***#top"),
    ('{"message": "bad", "token": "a\\"b"}', '{"message": "bad", "token": "***"}'),
    ('{"password": 12345, "user": "bob"}', '{"password": ***, "user": "bob"}'),
    (
        "Section(token='s3cr3t', token_file=PosixPath('/x'))",
        "Section(token='***', token_file=PosixPath('/x'))",
    ),
    ("proxy_authorization=Bearer abc x_api_key=foo", "proxy_authorization=*** x_api_key=***"),
    ("signing_secret = 'two words'", "signing_secret = '***'"),
    ("İstanbul Authorization: Bearer xyz12345 İ", "İstanbul Authorization: *** İ"),
]


@pytest.mark.parametrize(("text", "expected"), MASKED_TEXT)
def test_pattern_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


KEPT_TEXT = [
    "Splunk rejected the Authorization header; check token, token_env or token_file",
    "auth.token: environment variable HOOK_TOKEN is not set or empty",
    "Basic authentication failed for user bob",
    "the API rejected the API key from file /run/secrets/key (HTTP 401: invalid key)",
    "token file '/run/secrets/key' not found; check --token-file",
    "GET /v1/activity?cursor=c_1&limit=500",
    "batch hook:1-500 sent to https://127.0.0.1:8088/services/collector",
    "monkey=1 keys=2",
    "Bearer short",
    "poll.completed",
    "ClientOptions(token=Token(source='$RUNTOOLS_API_KEY', value='***'))",
    "token=SecretStr('**********')",
]


@pytest.mark.parametrize("text", KEPT_TEXT)
def test_ordinary_text_kept(text: str) -> None:
    assert redact_text(text) == text


# --- names and values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("Token", True),
        ("access_token", True),
        ("secret", True),
        ("signing_secret", True),
        ("password", True),
        ("proxy_password", True),
        ("passwd", True),
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("api_key", True),
        ("X-API-Key", True),
        ("apikey", True),
        ("Set-Cookie", True),
        ("token_file", False),
        ("token_env", False),
        ("auth_header", False),
        ("tokens", False),
        ("sink", False),
        ("error", False),
    ],
)
def test_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


class Opaque:
    def __str__(self) -> str:
        return "Opaque(Authorization: Bearer abcdefgh)"


def test_value_walked_and_masked() -> None:
    moment = datetime.datetime(2026, 5, 10, tzinfo=datetime.UTC)
    value = {
        "headers": {"Authorization": "Bearer x", "Accept": "application/json"},
        "attempts": [1, 2.5, True, None, moment],
        "nested": ({"password": "hunter2"}, ["rt_live_abc"]),
        "token": None,
        "object": Opaque(),
    }

    assert redact_value(value) == {
        "headers": {"Authorization": "***", "Accept": "application/json"},
        "attempts": [1, 2.5, True, None, moment],
        "nested": [{"password": "***"}, ["rt_live_***"]],
        "token": None,
        "object": "Opaque(Authorization: ***)",
    }


def test_deep_value_masked_as_text() -> None:
    value: Any = {"token": "abc"}
    for _ in range(20):
        value = [value]

    cleaned = redact_value(value)

    for _ in range(8):
        assert isinstance(cleaned, list)
        cleaned = cleaned[0]
    assert cleaned == "[[[[[[[[[[[[{'token': '***'}]]]]]]]]]]]]"


def test_processor_masks_error_and_exception() -> None:
    register_secret("proc-5b8d2e")
    event = {
        "event": "sink.failed",
        "sink": "hook",
        "error": "HTTP 401: key proc-5b8d2e rejected",
        "exception": "Traceback (most recent call last):\nValueError: proc-5b8d2e",
        "x-api-key": "proc-5b8d2e",
    }

    assert redact_secrets(None, "error", event) == {
        "event": "sink.failed",
        "sink": "hook",
        "error": "HTTP 401: key *** rejected",
        "exception": "Traceback (most recent call last):\nValueError: ***",
        "x-api-key": "***",
    }


# --- every error path, read from stderr -----------------------------------------------

API_KEY = "Qx7vT2mL9pR4sW8kZ3nB"  # registered by Token, with no pattern to catch it
UNREGISTERED_KEY = "rt_live_Zz9Yy8Xx7Ww6Vv5U"
WEBHOOK_TOKEN = "wh-bearer-5e6f7a8b9c0d"
HEC_TOKEN = "1b2c3d4e-aaaa-bbbb-cccc-1234567890ab"
PROXY_PASSWORD = "pr0xy-pa55word"
SIGNING_SECRET = "whsec_" + base64.b64encode(b"redaction-test-signing-key").decode()
SECRETS = [API_KEY, UNREGISTERED_KEY, WEBHOOK_TOKEN, HEC_TOKEN, PROXY_PASSWORD, SIGNING_SECRET]


class InstantClock:
    """A Clock whose sleeps return at once."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def request_headers(request: web.Request) -> str:
    return "\n".join(f"{name}: {value}" for name, value in request.headers.items())


class LeakyServer:
    """A server on 127.0.0.1 that quotes credentials back, as careless servers do.

    `/unauthorized/v1/activity` returns 401 quoting the Authorization header,
    `/echo/v1/activity` returns 503 with every request header, `/hooks` returns
    400 with every header, and `/crash` raises an exception naming the header,
    which aiohttp's server logs through the standard library.
    """

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> LeakyServer:
        app = web.Application()
        app.router.add_get("/unauthorized/v1/activity", self._unauthorized)
        app.router.add_get("/echo/v1/activity", self._echo)
        app.router.add_post("/hooks", self._hooks)
        app.router.add_get("/crash", self._crash)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _unauthorized(self, request: web.Request) -> web.Response:
        message = f"{request.headers['Authorization']} is not a valid key"
        return web.Response(status=401, body=orjson.dumps({"error": {"message": message}}))

    async def _echo(self, request: web.Request) -> web.Response:
        return web.Response(status=503, text=request_headers(request))

    async def _hooks(self, request: web.Request) -> web.Response:
        return web.Response(status=400, text=request_headers(request))

    async def _crash(self, request: web.Request) -> web.Response:
        raise RuntimeError(f"cannot parse {request.headers['Authorization']}")


@pytest.fixture
def logging_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore structlog and the root logger, and give the modules fresh loggers.

    A module logger cached on first use keeps the stream it was configured with,
    so the modules under test get new ones that bind to this test's stderr.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for module in (tailer.client, tailer.credentials, tailer.sinks.webhook):
        monkeypatch.setattr(module, "_log", structlog.get_logger(module.__name__))
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


async def api_errors(server: LeakyServer, token: Token, log: Any) -> None:
    clock = InstantClock()
    policy = RetryPolicy(max_attempts=2)

    unauthorized = tailer.client.ClientOptions(
        base_url=f"{server.url}/unauthorized", token=token, retry=policy
    )
    async with ActivityClient(unauthorized, clock=clock) as client:
        try:
            await client.fetch_page({})
        except AuthenticationError as exc:
            log.error(
                "source.failed", source="main", error=str(exc), error_type="AuthenticationError"
            )

    echo = tailer.client.ClientOptions(
        base_url=f"{server.url}/echo", token=token, auth_header="x-api-key", retry=policy
    )
    async with ActivityClient(echo, clock=clock) as client:
        try:
            await client.fetch_page({})
        except ApiError as exc:
            log.error("source.failed", source="main", error=exc, error_type=type(exc).__name__)


async def echoed_headers(server: LeakyServer, log: Any) -> None:
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "X-API-Key": UNREGISTERED_KEY,
        "Proxy-Authorization": f"Basic {PROXY_PASSWORD}",
    }
    async with ClientSession() as session:
        async with session.get(f"{server.url}/echo/v1/activity", headers=headers) as response:
            body = await response.text()
            sent = dict(response.request_info.headers)
        async with session.get(f"{server.url}/crash", headers=headers) as response:
            await response.read()
    log.warning("echo.received", body=body, sent=sent, sent_text=str(sent))
    logging.getLogger("aiohttp.client").warning("sent %r to %s", headers, server.url)


async def sink_errors(server: LeakyServer, log: Any) -> None:
    config = WebhookSinkConfig.model_validate(
        {
            "url": f"{server.url}/hooks",
            "auth": {"type": "bearer", "token": WEBHOOK_TOKEN},
            "signing_secret": SIGNING_SECRET,
        }
    )
    sink = WebhookSink("hook", config)
    await sink.open(None)
    raw = {"id": "act_1", "createdAt": "2026-05-10T12:00:00Z"}
    batch = Batch("hook", [Event("act_1", 0, raw)], [orjson.dumps(raw)], 1, 1)
    try:
        await sink.send(batch)
    except SinkError as exc:
        log.error("sink.failed", sink="hook", error=str(exc), error_type="SinkError")
    finally:
        await sink.close()

    hec_error = SinkError(
        "POST http://127.0.0.1:8088/services/collector/event returned HTTP 403 "
        f"(HEC code 4 'Invalid token') for Authorization: Splunk {HEC_TOKEN}"
    )
    log.error("sink.failed", sink="hec", error=str(hec_error), error_type="SinkError")
    log.error("sink.failed", sink="hec", error=f"sent Splunk {HEC_TOKEN}")


def exception_with_secret(log: Any) -> None:
    def authenticate(key: str) -> None:
        raise PermissionError("key rejected", {"Authorization": f"Bearer {key}"}, key)

    try:
        try:
            authenticate(API_KEY)
        except PermissionError as exc:
            raise RuntimeError(f"login with {API_KEY} failed") from exc
    except RuntimeError:
        log.exception("source.failed", source="main", error_type="RuntimeError")


def config_reprs(tmp_path: Path, token_file: Path, log: Any) -> None:
    config_file = tmp_path / "tail.yaml"
    config_file.write_text(
        "sources:\n"
        "  main:\n"
        "    api_url: http://127.0.0.1:9\n"
        f"    token_file: {token_file}\n"
        f"    proxy: http://tail:{PROXY_PASSWORD}@127.0.0.1:3128\n"
        "sinks:\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: http://127.0.0.1:9/hooks\n"
        f"    auth: {{type: bearer, token: {WEBHOOK_TOKEN}}}\n"
        f"    signing_secret: {SIGNING_SECRET}\n"
    )
    config = load_config(config_file)
    options, _ = build_source("main", config.sources["main"])
    log.info("config.loaded", config=config, text=repr(config), options=options)
    log.debug("source.built", source="main", options=repr(options), token=options.token.reveal())


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_secret_reaches_stderr(
    log_format: Any,
    stack: AsyncExitStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logging_restored: None,
) -> None:
    token_file = tmp_path / "api-key"
    token_file.write_text(API_KEY + "\n")
    token_file.chmod(0o600)
    configure_logging("debug", log_format)
    assert not sys.stderr.isatty()
    log = structlog.get_logger(f"test-{uuid.uuid4()}")
    token = Token.from_file(token_file)
    server = await stack.enter_async_context(LeakyServer())

    await api_errors(server, token, log)
    await echoed_headers(server, log)
    await sink_errors(server, log)
    exception_with_secret(log)
    config_reprs(tmp_path, token_file, log)

    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in err
    for event in [
        "source.failed",
        "request.retrying",
        "echo.received",
        "Error handling request",
        "sent {",
        "webhook.failed",
        "sink.failed",
        "config.loaded",
        "source.built",
        "Traceback (most recent call last)",
    ]:
        assert event in err
    assert "***" in err
