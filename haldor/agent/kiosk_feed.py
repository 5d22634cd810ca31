"""The agent's word to the kiosk on this box: door states, mode and check-in answers,
pushed over loopback HTTP. Fire and forget: the door never waits for the screen,
and nothing of it touches the disk (an unknown card's number shown for enrolment
is never stored)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import httpx

log = logging.getLogger(__name__)


def feed_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/api/agent"


class KioskFeed:
    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self._queue: queue.Queue = queue.Queue(maxsize=100)
        self._client = httpx.Client(timeout=1.0, transport=transport)
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
                self._client.post(self.url, json=doc)
                if self._failing:
                    log.info("kiosk at %s is back", self.url)
                self._failing = False
            except httpx.HTTPError as exc:
                if not self._failing:
                    log.info("kiosk at %s not reachable: %s", self.url, exc)
                self._failing = True

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass
        self._thread.join(3)
        self._client.close()
