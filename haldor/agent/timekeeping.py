"""What the agent knows of time: whether its clock can be trusted (an untrusted one opens
no booking), the clock's high-water mark, and since when this run has been watching the
bookings (running, with a schedule and a trusted clock: only then can it say that nobody
came, rather than that it did not see)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from haldor import clock as clocks
from haldor.store import Store

log = logging.getLogger(__name__)

#: how often the high-water mark and the watched span are written
LAST_SEEN_EVERY_S = 60.0
#: a signed time this far beyond anything the box knows is a sender's broken clock, not news
FLOOR_AHEAD_S = 30 * 86400.0
#: a trusted clock takes a signed time at most this far ahead (commands' MAX_AHEAD_S)
TRUSTED_AHEAD_S = 300.0


class Timekeeper:
    def __init__(self, clock: Any, store: Store) -> None:
        self.clock, self.store = clock, store
        self.trusted = True
        self.last_seen: float | None = None
        #: since when this run has watched the bookings (None: not watching)
        self.watching_since: float | None = None
        #: the newest signed time received while the clock was untrusted (stored as ``time_floor``)
        self.signed_at: float | None = None

    def start(self, now: float) -> bool:
        """Trusted at start? A clock behind the last time seen, and not synchronised, is not."""
        self.last_seen = self.store.meta("last_seen")
        self.trusted = clocks.trusted(now, self.last_seen, self.clock.synchronized())
        return self.trusted

    def regained(self, now: float) -> bool:
        """True once, when an untrusted clock becomes trustworthy (synchronised, or past the mark)."""
        if not self.trusted and clocks.trusted(now, self.last_seen, self.clock.synchronized()):
            self.trusted = True
            log.info("clock trusted again")
            return True
        return False

    def floor(self) -> float | None:
        """The newest time the box knows has passed: its last trusted reading, or a signed
        document's time (a command's ``issued_at``, the applied snapshot's ``generated_at``).
        While the clock is untrusted, commands expire by it (:func:`commands.refusal`)."""
        ceiling = self._ceiling()
        known = (self.last_seen, self.signed_at, self.store.meta("time_floor"), self.store.meta("generated_at"))
        return max((t for t in known if isinstance(t, (int, float)) and t <= ceiling), default=None)

    def _ceiling(self) -> float:
        """The latest signed time believed: a trusted clock's own reading (a little slack),
        else a month past the latest the box knows. A document from a sender whose clock is
        years ahead must not make every later command "expired"."""
        now = self.clock.now()
        if self.trusted:
            return now + TRUSTED_AHEAD_S
        return max(now, self.last_seen or now) + FLOOR_AHEAD_S

    def signed(self, at: float) -> bool:
        """A signed document says ``at`` has passed: True when that raises the floor (to be
        stored as ``time_floor``). Kept only while the clock is untrusted: a trusted clock's
        own readings say more, and a sender's clock a little ahead must not make this box's
        commands expire early."""
        if self.trusted or at <= (self.floor() or 0.0) or at > self._ceiling():
            return False
        self.signed_at = at
        return True

    def should_watch(self) -> bool:
        return self.watching_since is None and self.trusted and self.store.version is not None

    def mark(self, now: float) -> list[Callable[[Store], Any]]:
        """The writes that record ``now``: the mark, and the watched span up to now."""
        writes: list[Callable[[Store], Any]] = []
        if self.trusted:
            self.last_seen = now
            writes.append(lambda s: s.set_meta("last_seen", now))
        if self.trusted and self.store.version is not None:
            since = self.watching_since = self.watching_since if self.watching_since is not None else now
            writes.append(lambda s: s.activity.observe(since, now))
        else:
            self.watching_since = None
        return writes

    def watching(self, now: float) -> tuple[float, float] | None:
        """This run's span of watching, up to now (stored or not yet)."""
        return (self.watching_since, now) if self.watching_since is not None else None
