"""The agent's word to the kiosk on this box: door states, mode and check-in answers,
pushed over loopback HTTP. Fire and forget: the door never waits for the screen,
and nothing of it touches the disk (an unknown card's number shown for enrolment
is never stored)."""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: how long a push may take (the kiosk is on this box: it answers at once or not at all)
TIMEOUT_S = 1.0


def feed_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/api/agent"


class FeedError(Exception):
    """The kiosk did not take a push."""


def post_json(url: str, doc: Any, timeout: float = TIMEOUT_S) -> None:
    """One JSON POST over loopback HTTP/1.1, answered with 2xx, or FeedError. A few lines of
    socket rather than an HTTP library: the agent's memory on a small Pi is worth more
    than a client's features for one request to a known server."""
    parts = urlsplit(url)
    body = json.dumps(doc).encode()
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n" not in answer:
                got = sock.recv(1024)
                if not got:
                    break
                answer += got
    except OSError as exc:
        raise FeedError(str(exc) or type(exc).__name__) from exc
    line = answer.split(b"\r\n", 1)[0]
    status = line.split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].startswith(b"2"):
        raise FeedError(f"answered {line.decode(errors='replace')!r}")


class KioskFeed:
    def __init__(self, url: str) -> None:
        self.url = url
        self._queue: queue.Queue = queue.Queue(maxsize=100)
        self._thread = threading.Thread(target=self._run, name="kiosk-feed", daemon=True)
        self._thread.start()
        self._failing = False

    def status(self, doc: dict[str, Any]) -> None:
        self._offer({"status": doc})

    def answer(self, doc: dict[str, Any]) -> None:
        self._offer({"answer": doc})

    def _offer(self, doc: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(doc)
        except queue.Full:  # the kiosk is gone and the feed fell behind: the newest word counts
            pass

    def _run(self) -> None:
        while True:
            doc = self._queue.get()
            if doc is None:
                return
            try:
                post_json(self.url, doc)
                if self._failing:
                    log.info("kiosk at %s is back", self.url)
                self._failing = False
            except FeedError as exc:
                if not self._failing:
                    log.info("kiosk at %s not reachable: %s", self.url, exc)
                self._failing = True
            except Exception:  # a document or URL it cannot send: said once, and the feed goes on
                if not self._failing:
                    log.exception("kiosk feed to %s failed", self.url)
                self._failing = True

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass
        self._thread.join(3)
