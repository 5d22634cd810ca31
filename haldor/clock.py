"""The wall clock and whether it can be trusted (DESIGN: safety rules).

A Pi has no battery-backed clock: after a power cut it boots at the last time it
saved, until NTP answers. Booking-based access is refused while the clock is
behind the last time the agent saw and no time sync has happened since boot.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

#: systemd-timesyncd creates this file once the clock was synchronised since boot.
TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"


class Clock(Protocol):
    def now(self) -> float: ...
    def monotonic(self) -> float: ...
    def synchronized(self) -> bool: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def synchronized(self) -> bool:
        return os.path.exists(TIMESYNC_FLAG)


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, now: float, *, synchronized: bool = True) -> None:
        self._now = now
        self._mono = 1000.0
        self.is_synchronized = synchronized

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def synchronized(self) -> bool:
        return self.is_synchronized

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def set(self, now: float) -> None:
        self._now = now


def trusted(now: float, last_seen: float | None, synchronized: bool) -> bool:
    """Pure: the clock is trusted once synchronised, or while it is not behind what we saw."""
    return synchronized or last_seen is None or now >= last_seen


def local_day(now: float, timezone: str) -> tuple[float, float]:
    """The local calendar day of ``now`` as instants [start, end): 23 or 25 hours on DST days.
    One definition for the store's decisions and the screen's day."""
    tz = ZoneInfo(timezone)
    day = datetime.fromtimestamp(now, tz).date()
    following = day + timedelta(days=1)
    return (
        datetime(day.year, day.month, day.day, tzinfo=tz).timestamp(),
        datetime(following.year, following.month, following.day, tzinfo=tz).timestamp(),
    )
