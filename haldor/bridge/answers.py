"""What the boxes say back: their retained statuses (key and time zone, to check before
sealing) and their ``sync.applied`` / ``sync.rejected`` for what the bridge published.

A box that could not open or use a schedule said so only on its own events topic, which
nobody at the municipality read (issue 24). One subscription to ``P/+/status`` and one to
``P/+/events`` on the bridge's own connection hears every site, however many there are:
not a connection, nor a subscription, per site. QoS 0, so a broker never keeps old
answers for the bridge between runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from haldor.protocol import Event, Leaf, Schema

#: how long the broker may take to start handing over the retained statuses
SUBSCRIBE_TIMEOUT_S = 10.0
#: the retained statuses come in one burst after the subscription: this long with none
#: new (or every site heard) ends it, and RETAINED_MAX_S in any case
QUIET_S = 0.3
RETAINED_MAX_S = 3.0


@dataclass
class Expected:
    """A published document whose answer is awaited."""

    version: int
    kind: str  # "snapshot" or "delta", as the box's sync.applied reason says it
    answer: str | None = None
    applied: bool = False


class BoxWatch:
    """The statuses and answers of the configured sites, filled by the client's thread."""

    def __init__(self, prefix: str, sites: Iterable[str]) -> None:
        self.prefix = prefix
        self.sites = set(sites)
        self._cond = threading.Condition()
        self._statuses: dict[str, dict[str, Any]] = {}
        self._expected: dict[str, Expected] = {}
        self._granted = threading.Event()
        self._last = time.monotonic()

    def topics(self) -> list[tuple[str, int]]:
        return [(f"{self.prefix}/+/{Leaf.STATUS}", 0), (f"{self.prefix}/+/{Leaf.EVENTS}", 0)]

    def subscribe(self, client: Any, extra: list[tuple[str, int]] | None = None) -> None:
        """Subscribe, with the caller's ``extra`` topics in the same request (one SUBACK);
        from ``on_connect``, so a reconnect subscribes again."""
        self._granted.clear()
        client.subscribe(self.topics() + (extra or []))

    def granted(self) -> None:
        """The broker's SUBACK: the retained statuses follow it."""
        with self._cond:
            self._last = time.monotonic()
        self._granted.set()

    def on_message(self, topic: str, payload: bytes | bytearray) -> bool:
        """True when the message was a status or an event of a configured site."""
        site, _, leaf = topic.removeprefix(f"{self.prefix}/").partition("/")
        if site not in self.sites or leaf not in (Leaf.STATUS, Leaf.EVENTS):
            return False
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            return True
        if not isinstance(doc, dict):
            return True
        with self._cond:
            if leaf == Leaf.STATUS:
                self._statuses[site] = doc
                self._last = time.monotonic()
            else:
                self._heard(site, doc)
            self._cond.notify_all()
        return True

    def _heard(self, site: str, doc: dict[str, Any]) -> None:
        expected = self._expected.get(site)
        if expected is None or expected.answer is not None:
            return
        reason = doc.get("reason") if isinstance(doc.get("reason"), str) else ""
        if doc.get("type") == Event.SYNC_APPLIED and reason == f"{expected.kind} {expected.version}":
            expected.applied = True
            warnings = doc.get("warnings")
            extra = f" (warnings: {'; '.join(map(str, warnings))})" if isinstance(warnings, list) and warnings else ""
            expected.answer = f"applied {reason}{extra}"
        elif doc.get("type") == Event.SYNC_REJECTED:
            expected.answer = f"refused by the box: {reason or 'no reason given'}"

    def collect(self) -> None:
        """Wait, briefly, for the retained statuses: every site heard, or a quiet moment."""
        if not self._granted.wait(SUBSCRIBE_TIMEOUT_S):
            return  # the statuses are not checked this time; the run says so per site
        end = time.monotonic() + RETAINED_MAX_S
        with self._cond:
            while not self.sites <= set(self._statuses):
                now = time.monotonic()
                left = min(end, self._last + QUIET_S) - now
                if left <= 0:
                    return
                self._cond.wait(left)

    def status(self, site: str) -> dict[str, Any] | None:
        with self._cond:
            return self._statuses.get(site)

    def expect(self, site: str, doc: dict[str, Any]) -> None:
        """Before the document is published, so that a fast answer is not missed."""
        kind = "delta" if doc["schema"] == Schema.DELTA else "snapshot"
        with self._cond:
            self._expected[site] = Expected(int(doc["version"]), kind)

    def wait(self, timeout: float) -> None:
        """Until every awaited site answered, or ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while any(e.answer is None for e in self._expected.values()):
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def answers(self) -> dict[str, Expected]:
        """What each awaited site answered so far (``answer`` None: nothing yet); forgotten here."""
        with self._cond:
            got, self._expected = self._expected, {}
        return got
