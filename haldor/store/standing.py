"""The standing facts of the schedule in force, kept in memory between decisions.

Five of a decision's reads (policy, time zone, the rooms of a door, the longest booking,
the closures) give the same answer until the next schedule or delta. Every apply writes a
fresh ``schedule_stamp`` into ``meta`` in its own transaction, so one indexed read tells a
connection whether what it holds is still the schedule in force, whichever process
applied it (the schedule worker's child, `haldor schedule load`, this connection).
A stamp, not the version: a ``reset_version`` snapshot may bring a lower version, and a
re-hash after a new device secret brings the same one.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass, field

from haldor import clock
from haldor.access.model import ClosureFact, Policy

STAMP_KEY = "schedule_stamp"
_STANDING_KEYS = ("policy", "timezone", "max_booking_s")


def new_stamp() -> str:
    """What an apply writes: never equal to any stamp before it (unlike a counter, which a
    database recovered from its good copy could repeat)."""
    return secrets.token_hex(8)


def read_stamp(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone()
    return None if row is None else str(row[0])


@dataclass(slots=True)
class Standing:
    """One schedule's standing facts; ``day`` is the local day last asked about (a
    decision's day changes at midnight, not at every read)."""

    stamp: str | None
    policy: Policy
    timezone: str
    max_booking_s: float
    rooms_of_door: dict[str, frozenset[str]]
    doors_of_room: dict[str, tuple[str, ...]]
    closures: tuple[ClosureFact, ...]
    day: tuple[float, float] = field(default=(0.0, 0.0))

    def local_day(self, now: float) -> tuple[float, float]:
        if not self.day[0] <= now < self.day[1]:
            self.day = clock.local_day(now, self.timezone)
        return self.day

    def closures_at(self, now: float) -> tuple[ClosureFact, ...]:
        return tuple(c for c in self.closures if c.start <= now < c.end)


def load(conn: sqlite3.Connection, stamp: str | None, default_policy: Policy, default_timezone: str) -> Standing:
    """Read the standing facts of the schedule whose stamp is ``stamp``."""
    meta = {
        key: json.loads(value)
        for key, value in conn.execute(
            f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(_STANDING_KEYS))})", _STANDING_KEYS
        )
    }
    rooms: dict[str, set[str]] = {}
    doors: dict[str, list[str]] = {}
    for room, door in conn.execute("SELECT room, door FROM room_doors ORDER BY room, door"):
        rooms.setdefault(door, set()).add(room)
        doors.setdefault(room, []).append(door)
    closures = tuple(ClosureFact(*row) for row in conn.execute("SELECT room, start, end, reason FROM closures ORDER BY rowid"))
    policy = meta.get("policy")
    return Standing(
        stamp=stamp,
        policy=default_policy if policy is None else Policy(**policy),
        timezone=meta.get("timezone") or default_timezone,
        max_booking_s=meta.get("max_booking_s") or 0.0,
        rooms_of_door={door: frozenset(r) for door, r in rooms.items()},
        doors_of_room={room: tuple(d) for room, d in doors.items()},
        closures=closures,
    )
