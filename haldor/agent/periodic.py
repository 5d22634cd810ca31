"""Jobs the loop does every so often, on its own clock: one small helper instead of a
hand-kept ``_next_*`` per job."""

from __future__ import annotations


class Every:
    """A job due every ``interval_s``: first at ``first_at`` (at once by default; None: not
    until ``next_at`` is set)."""

    def __init__(self, interval_s: float, *, first_at: float | None = 0.0) -> None:
        self.interval_s = interval_s
        self.next_at: float | None = first_at

    def due(self, now: float) -> bool:
        """True (and the next time set) when the job is due."""
        if self.next_at is not None and now >= self.next_at:
            self.next_at = now + self.interval_s
            return True
        return False

    def pending(self, now: float) -> bool:
        """Due, without taking the turn (for a job that several steps of one round share)."""
        return self.next_at is not None and now >= self.next_at


class Once:
    """A job due once, at a time set later (and set again to repeat)."""

    def __init__(self) -> None:
        self.next_at: float | None = None

    def at(self, when: float) -> None:
        self.next_at = when

    def due(self, now: float) -> bool:
        if self.next_at is not None and now >= self.next_at:
            self.next_at = None
            return True
        return False
