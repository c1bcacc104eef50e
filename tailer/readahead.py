"""Read-ahead for one page walk: the next page is requested before this one is processed.

A page walk cannot run requests in parallel, because each page names the
cursor of the next. What it can do is send the next request as soon as that
cursor is known, so the API works on it while the tailer decodes and sorts
the current page. The cursor is known for certain only once the body is
decoded, which takes about 0.6 ms for a page of 500 events on the benchmark
machine (see bench/README.md), time in which the API could already be
working. So the walk also reads the cursor from the end of the undecoded
body, where both documented envelopes put it, and requests that page at
once. The decoded page has the last word: a request for any other cursor is
cancelled and the right one sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from tailer.client import ActivityClient
from tailer.page import Page, peek_next_cursor

__all__ = ["PageReadahead", "abandon"]


async def abandon(request: asyncio.Future[Page]) -> None:
    """Cancel a request whose page is no longer wanted and wait until it has stopped.

    The caller has already failed or been cancelled, or is done; what the
    request ends with must not hide that, so its outcome is dropped.
    """
    if not request.done():
        request.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await request


class PageReadahead:
    """The requests of one page walk: the page it waits for, and at most one requested early.

    Construction sends the first request. `page` returns the page the walk is
    at, and `advance` moves the walk to the page at a cursor. Call `close` when
    the walk ends, however it ends, to cancel what is still in flight.
    """

    def __init__(self, client: ActivityClient, query: Mapping[str, str]) -> None:
        self._client = client
        self._query = dict(query)
        self._early: tuple[str, asyncio.Task[Page]] | None = None
        self._pending = self._request(None)

    async def page(self) -> Page:
        """Wait for the page the walk is at and return it."""
        return await self._pending

    async def advance(self, cursor: str) -> None:
        """Move the walk to the page at `cursor`, requesting it unless it was requested early.

        Yields once, so the request is on the wire before the caller goes on
        to process the page it has.
        """
        early, self._early = self._early, None
        if early is not None and early[0] == cursor:
            self._pending = early[1]
            return
        if early is not None:
            await abandon(early[1])
        self._pending = self._request(cursor)
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Cancel the requests still in flight."""
        await abandon(self._pending)
        if self._early is not None:
            await abandon(self._early[1])
            self._early = None

    def _request(self, cursor: str | None) -> asyncio.Task[Page]:
        query = self._query if cursor is None else {**self._query, "cursor": cursor}
        return asyncio.ensure_future(self._client.fetch_page(query, on_body=self._request_early))

    async def _request_early(self, body: bytes) -> None:
        """Request the page whose cursor ends `body`, before `body` is decoded.

        Runs inside the request task. Only the request the walk waits for may
        start an early request, so a wrong guess never starts a chain of its
        own. It starts one at most, because a retried body finds the slot taken.
        """
        if self._early is not None or asyncio.current_task() is not self._pending:
            return
        cursor = peek_next_cursor(body)
        if cursor is None:
            return
        self._early = (cursor, self._request(cursor))
        await asyncio.sleep(0)  # the request goes out before this task decodes the body
