"""The schedule over HTTP when the broker cannot be reached (`[sync] http_url`).

Some school networks block MQTT for days. After `http_after_s` without the broker,
the agent polls `GET <http_url>/sites/<site>/schedule` (an envelope, as PROTOCOL 2)
with If-None-Match, and the answer goes through the same path as a snapshot from
the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .messages import HttpSchedule

log = logging.getLogger(__name__)

__all__ = ["HttpFallback", "HttpSchedule"]


class HttpFallback:
    def __init__(
        self,
        base_url: str,
        site: str,
        after_s: float,
        post: Callable[[Any], None],
        broker_up: Callable[[], bool],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/sites/{site}/schedule"
        self.after_s = after_s
        self._post = post
        self._broker_up = broker_up
        self._etag: str | None = None
        self._stop = threading.Event()
        self._client = httpx.Client(
            timeout=10.0, follow_redirects=True, transport=transport, headers={"Accept": "application/json"}
        )
        self._thread = threading.Thread(target=self._run, name="http-fallback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)
        self._client.close()

    def _run(self) -> None:
        down_since: float | None = None
        next_poll = 0.0
        while not self._stop.wait(min(1.0, self.after_s)):
            now = time.monotonic()
            if self._broker_up():
                down_since = None
                continue
            down_since = down_since if down_since is not None else now
            if now - down_since >= self.after_s and now >= next_poll:
                self.poll()
                next_poll = now + self.after_s

    def poll(self) -> bool:
        """One request; True when a new document was handed to the agent."""
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("schedule over HTTP: %s: %s", self.url, exc)
            return False
        if response.status_code == 304:
            log.debug("schedule over HTTP: not modified")
            return False
        if response.status_code != 200:
            log.warning("schedule over HTTP: %s answered %d", self.url, response.status_code)
            return False
        self._etag = response.headers.get("ETag")
        log.info("schedule over HTTP: %d bytes from %s", len(response.content), self.url)
        self._post(HttpSchedule(response.content, self.url))
        return True
