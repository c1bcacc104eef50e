"""The ceiling baseline: the least work a Python client can do to read the feed.

One aiohttp session pages through `GET /v1/activity?since=...` by
`nextCursor`, parses each page with orjson and discards the events, with no
ordering, deduplication, retries or output. It runs on uvloop when uvloop is
installed, as runtools-tail does, so the two differ only in the work the
product does per event. Run as a script, it prints one JSON object with the
numbers of events and pages to stdout.

Usage: python bench/ceiling.py URL SINCE MAX_PAGES TIMEOUT_SECONDS
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import orjson

PAGE_SIZE = "500"


async def read_feed(url: str, since: str, max_pages: int) -> tuple[int, int]:
    """Page through the feed from `since` and return the numbers of events and pages."""
    headers = {"Authorization": f"Bearer {os.environ['RUNTOOLS_API_KEY']}"}
    params = {"since": since, "limit": PAGE_SIZE}
    events = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        for pages in range(1, max_pages + 1):
            async with session.get(url + "/v1/activity", params=params) as response:
                response.raise_for_status()
                page = orjson.loads(await response.read())
            events += len(page["data"]["events"])
            if not page["hasMore"]:
                return events, pages
            params = {"since": since, "limit": PAGE_SIZE, "cursor": page["nextCursor"]}
    raise RuntimeError(f"the feed still had more events after {max_pages} pages")


def main() -> None:
    url, since, max_pages, timeout = sys.argv[1:5]

    async def bounded() -> tuple[int, int]:
        return await asyncio.wait_for(read_feed(url, since, int(max_pages)), float(timeout))

    try:
        import uvloop
    except ImportError:
        events, pages = asyncio.run(bounded())
    else:
        events, pages = uvloop.run(bounded())
    sys.stdout.buffer.write(orjson.dumps({"events": events, "pages": pages}) + b"\n")


if __name__ == "__main__":
    main()
