"""Reading the booking system's calendar feeds: a file, or a URL asked with its last
``ETag`` and ``Last-Modified`` (a feed that did not change costs the server nothing),
within a deadline and a size, a few tries; and the check that a feed did not suddenly
lose most of its bookings (an empty export must not empty a hall)."""

from __future__ import annotations

import logging
import time

from haldor.errors import DocumentError

from .settings import FeedSource
from .state import BridgeState

#: a whole feed, however slowly it trickles in, within this; one try
DEADLINE_S = 60.0
READ_TIMEOUT_S = 20.0
ATTEMPTS = 3
#: a season of one room is a few hundred kilobytes; this is a feed gone wrong (limits.feed_mb)
MAX_BYTES = 8 * 1024 * 1024

# httpx logs every URL it asks, and feed URLs often carry a secret token
logging.getLogger("httpx").setLevel(logging.WARNING)


def fetch(feed: FeedSource, state: BridgeState, max_bytes: int = MAX_BYTES) -> bytes:
    """A feed's bytes; one larger than ``max_bytes`` is refused before it is parsed (the
    parser takes a minute and gigabytes for 30 MB)."""
    if "://" not in feed.source:
        try:
            with open(feed.source, "rb") as f:
                data = f.read(max_bytes + 1)  # never the whole of a file that keeps growing
        except OSError as exc:
            raise DocumentError(f"{feed.source}: cannot read: {exc.strerror}") from None
        if len(data) > max_bytes:
            raise DocumentError(f"{feed.source}: {_too_large(max_bytes)}")
        return data
    return _fetch_url(feed, state, max_bytes)


def _too_large(max_bytes: int) -> str:
    return f"more than {max_bytes / 2**20:g} MB (limits.feed_mb)"


def where(url: str) -> str:
    """A feed's URL for a message: without its query (where tokens live)."""
    return url.split("?", 1)[0] + ("?..." if "?" in url else "")


def _fetch_url(feed: FeedSource, state: BridgeState, max_bytes: int) -> bytes:
    import httpx  # the municipality's side only

    cached = state.cached_feed(feed.source)
    headers = {}
    if cached is not None:
        if cached[0]:
            headers["If-None-Match"] = cached[0]
        if cached[1]:
            headers["If-Modified-Since"] = cached[1]
    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            status, body, etag, modified = _get(httpx, feed.source, headers, max_bytes)
        except DocumentError as exc:  # too large or too slow: asking again costs as much
            raise DocumentError(f"{where(feed.source)}: {exc}") from None
        except httpx.HTTPError as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if status == 304 and cached is not None:
                return cached[2]
            if status == 200:
                state.cache_feed(feed.source, etag, modified, body)
                return body
            problem = f"HTTP {status}"
            if status < 500:
                break  # asking again will not help
        if attempt + 1 < ATTEMPTS:
            time.sleep(2**attempt)
    raise DocumentError(f"{where(feed.source)}: {problem}")


def _get(httpx, url: str, headers: dict[str, str], max_bytes: int) -> tuple[int, bytes, str | None, str | None]:
    """One request, read within the deadline and the size limit."""
    deadline = time.monotonic() + DEADLINE_S
    with httpx.stream("GET", url, headers=headers, timeout=READ_TIMEOUT_S, follow_redirects=True) as response:
        length = response.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and (len(length) > 12 or int(length) > max_bytes):
            raise DocumentError(_too_large(max_bytes))  # said at once: not read at all
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise DocumentError(_too_large(max_bytes))
            if time.monotonic() > deadline:
                raise DocumentError(f"not read within {DEADLINE_S:.0f} s")
            chunks.append(chunk)
        return response.status_code, b"".join(chunks), response.headers.get("etag"), response.headers.get("last-modified")


def shrunk(before: int | None, now: int, max_loss: float) -> bool:
    """Lost more than ``max_loss`` of what it had at the last run."""
    return before is not None and before > 0 and now < before * (1 - max_loss)
