"""The API client: one aiohttp session, authentication, TLS, proxies and retries.

This is the only module that talks to aiohttp as a client; its exceptions are
translated into the `tailer.errors` tree here.
"""

from __future__ import annotations

import random
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import SplitResult, urlsplit

import aiohttp
import orjson
import structlog

from tailer import __version__
from tailer.clock import Clock, SystemClock
from tailer.credentials import Token
from tailer.errors import (
    AccessDeniedError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    CursorRejectedError,
    RetriesExhaustedError,
)
from tailer.logs import RepeatedLog
from tailer.page import Page, parse_page
from tailer.retry import RetryPolicy, is_retriable_status, parse_http_date, parse_retry_after

__all__ = ["ActivityClient", "AuthHeader", "ClientOptions"]

AuthHeader = Literal["bearer", "x-api-key"]

ACTIVITY_PATH = "/v1/activity"
_MAX_ERROR_TEXT = 300
RETRY_LOG_INTERVAL_SECS = 60.0
_log = structlog.get_logger("tailer.client")


@dataclass(frozen=True)
class ClientOptions:
    """How to reach the API. Times are seconds.

    `proxy` applies to every request except hosts listed in `NO_PROXY`; without
    it, `HTTPS_PROXY`/`HTTP_PROXY` from the environment apply. `ca_file` adds a
    CA bundle to the system's trust store; `verify_tls=False` turns checking
    off and is the only way to do so.
    """

    base_url: str
    token: Token
    auth_header: AuthHeader = "bearer"
    timeout: float = 30.0
    connect_timeout: float = 10.0
    proxy: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def build_ssl_context(options: ClientOptions) -> ssl.SSLContext:
    """Build the TLS context: system CAs plus `ca_file`, verification on unless disabled."""
    context = ssl.create_default_context()
    if options.ca_file:
        try:
            context.load_verify_locations(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"CA file {options.ca_file!r} cannot be loaded ({exc}); "
                "pass a PEM file of CA certificates with --ca-file"
            ) from None
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _split_base_url(url: str) -> SplitResult | None:
    """Split an http(s)://host[:port][/path] URL, or return None for any other string.

    User info, a query or a fragment make the URL invalid: the token is the only
    credential, and the client appends its own path to the URL.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError unless the port is a number in 0-65535
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or "?" in url or "#" in url:
        return None
    return parts


def _api_message(body: bytes) -> str:
    """Extract the API's error message from a JSON body, or a short excerpt of any other body."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(document.get("message"), str):
            return str(document["message"])
    text = body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return " ".join(text.split()) or "(empty body)"


class ActivityClient:
    """Fetches pages of `GET /v1/activity`, retrying what can succeed later.

    A 429 with `Retry-After` holds back every request of this client until the
    wait has passed, so concurrent page walks slow down together. Use it as an
    async context manager; it owns its aiohttp session.
    """

    def __init__(
        self,
        options: ClientOptions,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_response: Callable[[int | None, float], None] | None = None,
    ) -> None:
        parts = _split_base_url(options.base_url)
        if parts is None or not parts.hostname:
            raise ConfigError(
                f"API URL {options.base_url!r} is invalid; expected http(s)://host[:port][/path]"
            )
        self._options = options
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._url = options.base_url.rstrip("/") + ACTIVITY_PATH
        self._proxy = self._select_proxy(parts.scheme, parts.hostname)
        # Loading the system's CA certificates costs tens of ms; plain HTTP needs none.
        # A given CA file is still checked, so a typo surfaces before the URL changes.
        needs_tls = parts.scheme == "https" or options.ca_file is not None
        self._ssl = build_ssl_context(options) if needs_tls else None
        self._session: aiohttp.ClientSession | None = None
        self._not_before = 0.0  # monotonic time before which no request is sent
        self.requests = 0
        self.retries = 0
        self.rate_limit_waits = 0
        # A flapping API retries every few seconds: log the first retry, then one a minute.
        self._retry_log = RepeatedLog(RETRY_LOG_INTERVAL_SECS, self._clock.monotonic)
        # Receives (HTTP status or None without a response, seconds) for every attempt.
        self._on_response = on_response

    def _select_proxy(self, scheme: str, host: str) -> str | None:
        """Return None when NO_PROXY lists the host, else the option, else the environment's."""
        if urllib.request.proxy_bypass(host):
            return None
        if self._options.proxy is not None:
            return self._options.proxy
        return urllib.request.getproxies().get(scheme)

    def _auth_headers(self, token: str) -> dict[str, str]:
        if self._options.auth_header == "x-api-key":
            return {"X-API-Key": token}
        return {"Authorization": f"Bearer {token}"}

    async def __aenter__(self) -> ActivityClient:
        timeout = aiohttp.ClientTimeout(
            total=self._options.timeout, sock_connect=self._options.connect_timeout
        )
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
        headers = {"Accept": "application/json", "User-Agent": f"runtools-tail/{__version__}"}
        # The proxy, from the option or the environment, is passed per request.
        # trust_env stays off because it also reads ~/.netrc, and aiohttp would send
        # those Basic credentials beside an X-API-Key or fail on a Bearer header.
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=connector, trust_env=False, headers=headers
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; closing twice is harmless."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch_page(
        self,
        params: Mapping[str, str],
        *,
        on_body: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> Page:
        """Fetch one page, retrying network errors, 408, 429 and 5xx per the retry policy.

        `on_body` is awaited with the body of every 200 response before it is
        decoded, so a caller can act on what the body ends with early.

        Raises AuthenticationError (401), AccessDeniedError (403), BadRequestError
        or CursorRejectedError (400), ApiError for other final statuses,
        PageFormatError for an unreadable 200, and RetriesExhaustedError when the
        retry budget runs out.
        """
        if self._session is None:
            raise RuntimeError("ActivityClient is not open; use it with 'async with'")
        policy = self._options.retry
        attempts = 0
        token_reloaded = False
        # Once a retry of this request was logged, its success is logged too, so the
        # log shows when an outage ended.
        first_failure_at: float | None = None
        retry_logged = False
        while True:
            await self._wait_for_rate_limit()
            attempts += 1
            self.requests += 1
            started = self._clock.monotonic()
            try:
                outcome = await self._attempt(self._session, params, on_body)
            except AuthenticationError as exc:
                self._observe(exc.status, started)
                # A rotated secret may reach the API before `Token.reveal` checks the
                # file again, so a 401 makes the token read its file at once. A changed
                # token is sent once more, outside the retry budget. An unchanged token,
                # or a second 401, raises the error.
                if token_reloaded or not self._options.token.reload():
                    raise
                token_reloaded = True
                attempts -= 1
                continue
            except ApiError as exc:
                self._observe(exc.status, started)
                raise
            self._observe(200 if isinstance(outcome, Page) else outcome[0].status, started)
            if isinstance(outcome, Page):
                if retry_logged and first_failure_at is not None:
                    _log.info(
                        "request.recovered",
                        path=ACTIVITY_PATH,
                        attempts=attempts,
                        failing_seconds=round(self._clock.monotonic() - first_failure_at, 3),
                    )
                return outcome

            failure, retry_after = outcome
            if first_failure_at is None:
                first_failure_at = started
            if retry_after is not None:
                wait = policy.clamp(retry_after)
            else:
                wait = policy.backoff(attempts, self._rng)
            if failure.status == 429:
                # Set before the budget check, so a caller that gets the error
                # below and calls again still waits.
                self._not_before = max(self._not_before, self._clock.monotonic() + wait)

            if policy.gives_up_after(attempts):
                status = getattr(failure, "status", None)
                # Without any response, the usual cause is the address or the network.
                hint = (
                    f"; check that {self._options.base_url} is the API's address "
                    "and reachable from here"
                    if status is None
                    else ""
                )
                raise RetriesExhaustedError(
                    f"GET {ACTIVITY_PATH} failed {attempts} time{'s' if attempts != 1 else ''}; "
                    f"last error: {failure}{hint}",
                    status=status,
                ) from failure

            if failure.status == 429:
                self.rate_limit_waits += 1
            self.retries += 1
            retry_logged |= self._retry_log.log(
                _log,
                ACTIVITY_PATH,
                "request.retrying",
                status=failure.status,
                error=str(failure),
                attempt=attempts,
                wait_seconds=round(wait, 3),
            )
            await self._clock.sleep(wait)

    def _observe(self, status: int | None, started: float) -> None:
        if self._on_response is not None:
            self._on_response(status, self._clock.monotonic() - started)

    async def _wait_for_rate_limit(self) -> None:
        remaining = self._not_before - self._clock.monotonic()
        if remaining > 0:
            await self._clock.sleep(remaining)

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        params: Mapping[str, str],
        on_body: Callable[[bytes], Awaitable[None]] | None,
    ) -> Page | tuple[ApiError, float | None]:
        """Send one request. Return the page, or the retriable failure and its Retry-After."""
        token = self._options.token.reveal()
        # The token goes with each request rather than in the session's default
        # headers, because aiohttp (3.14) also sends those on CONNECT to a proxy.
        # Redirects are not followed: on a redirect to another origin aiohttp
        # drops Authorization but would pass an X-API-Key on.
        try:
            async with session.get(
                self._url,
                params=dict(params),
                headers=self._auth_headers(token),
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status = response.status
                date_header = response.headers.get("Date")
                retry_after_header = response.headers.get("Retry-After")
        except aiohttp.ClientConnectorCertificateError as exc:
            # Retrying cannot help: the outcome depends only on the trusted CAs and the name.
            raise ApiError(
                f"the TLS certificate of {self._url} could not be verified "
                f"({exc.certificate_error}); pass the CA that signed it with --ca-file, "
                "or turn verification off with --no-verify-tls (unsafe)"
            ) from None
        except TimeoutError:
            return ApiError(f"request timed out after {self._options.timeout:g} s"), None
        except aiohttp.ClientConnectorError as exc:
            # Built from the parts, because aiohttp's own text contains "ssl:default" for http://.
            proxy = "the proxy " if isinstance(exc, aiohttp.ClientProxyConnectionError) else ""
            return ApiError(f"cannot connect to {proxy}{exc.host}:{exc.port}: {exc.os_error}"), None
        except aiohttp.ClientError as exc:
            reason = str(exc) or exc.__class__.__name__
            return ApiError(f"request failed: {exc.__class__.__name__}: {reason}"), None

        if status == 200:
            if on_body is not None:
                await on_body(body)
            server_time = parse_http_date(date_header)
            server_time_ns = int(server_time * 1e9) if server_time is not None else None
            try:
                return parse_page(body, server_time_ns=server_time_ns)
            except orjson.JSONDecodeError as exc:
                # A cut-off body is usually a transient fault between us and the API.
                return ApiError(f"response body is not valid JSON ({exc})", status=status), None

        message = _api_message(body)
        if token:
            # Some servers quote the rejected key back in the error body: the key this
            # request sent, which may differ from the token after a reload.
            message = message.replace(token, "***")
        if is_retriable_status(status):
            retry_after = parse_retry_after(
                retry_after_header, server_date=date_header, now=self._clock.time()
            )
            return ApiError(f"HTTP {status}: {message}", status=status), retry_after
        raise self._final_error(status, message, params)

    def _final_error(self, status: int, message: str, params: Mapping[str, str]) -> ApiError:
        token = self._options.token
        if status == 401:
            return AuthenticationError(
                f"the API rejected the API key from {token.source} (HTTP 401: {message}); "
                "put a valid key there",
                status=status,
            )
        if status == 403:
            return AccessDeniedError(
                f"the API key from {token.source} may not read these events (HTTP 403: "
                f"{message}); filtering on another user's activity needs an admin key",
                status=status,
            )
        if status == 400 and "cursor" in params:
            return CursorRejectedError(f"the API rejected the page cursor: {message}", status=400)
        if status == 400:
            return BadRequestError(
                f"the API rejected the request (HTTP 400: {message})", status=400
            )
        return ApiError(f"GET {ACTIVITY_PATH} returned HTTP {status}: {message}", status=status)
