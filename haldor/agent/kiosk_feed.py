"""The agent's word to the kiosk on this box: door states, mode and check-in answers,
pushed over loopback HTTP. Fire and forget: the door never waits for the screen,
and nothing of it touches the disk (an unknown card's number shown for enrolment
is never stored)."""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

from haldor.listen import local_url

log = logging.getLogger(__name__)

#: how long a push may take (the kiosk is on this box: it answers at once or not at all)
TIMEOUT_S = 1.0


def feed_url(listen: str) -> str:
    return local_url(listen, "/api/agent")


class FeedError(Exception):
    """The kiosk did not take a push."""


def post_json(url: str, doc: Any, timeout: float = TIMEOUT_S) -> None:
    """One JSON POST to the kiosk, answered with 2xx, or FeedError (the standard
    library's client: one request to a known server on this box needs no more)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("POST", parts.path or "/", body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
        reply = connection.getresponse()
        reply.read()
    except (OSError, http.client.HTTPException) as exc:
        raise FeedError(str(exc) or type(exc).__name__) from exc
    finally:
        connection.close()
    if not 200 <= reply.status < 300:
        raise FeedError(f"answered {reply.status} {reply.reason}")


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
