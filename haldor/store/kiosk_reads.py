"""Every query the kiosk makes of the agent's database, read-only, in one place: the
agent's tables are the agent's, and this is the one module that knows them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from haldor.clock import local_day
from haldor.records import record


@record
class DayBooking:
    id: str
    room: str
    association: str
    title: str
    start: float
    end: float
    status: str
    checked_in: bool
    no_show: bool


@record
class DayClosure:
    room: str | None
    start: float
    end: float
    reason: str


@dataclass
class Day:
    """The day's schedule as the database holds it (with tomorrow's bookings, for the
    cards that have room for them)."""

    timezone: str = "Europe/Copenhagen"
    rooms: list[tuple[str, str]] = field(default_factory=list)
    bookings: list[DayBooking] = field(default_factory=list)
    closures: list[DayClosure] = field(default_factory=list)
    associations: dict[str, str] = field(default_factory=dict)
    booking_titles: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id -> (title, room name, start)
    last_sync: float | None = None
    version: int | None = None
    tomorrow: list[DayBooking] = field(default_factory=list)  # tomorrow's bookings, by start
    day_end: float | None = None  # when tomorrow begins: closures from then on are tomorrow's


def _meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else json.loads(row[0])


def read_day(conn: sqlite3.Connection, now: float, default_tz: str) -> Day:
    """Today's rooms, bookings (with check-ins and no-shows), closures and associations,
    and tomorrow's bookings and closures (associations and titles: never a person)."""
    tz_name = _meta(conn, "timezone") or default_tz
    day_start, day_end = local_day(now, tz_name)
    tomorrow_end = local_day(day_end, tz_name)[1]
    longest = _meta(conn, "max_booking_s") or 0
    day = Day(timezone=tz_name, last_sync=_meta(conn, "last_sync"), version=_meta(conn, "schedule_version"), day_end=day_end)
    day.rooms = [(r[0], r[1] or r[0]) for r in conn.execute("SELECT id, name FROM rooms ORDER BY name, id")]
    day.associations = {r[0]: r[1] or r[0] for r in conn.execute("SELECT id, name FROM associations")}
    rows = conn.execute(
        """SELECT b.id, b.room, b.association, b.title, b.start, b.end, b.status,
                  EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id),
                  EXISTS(SELECT 1 FROM booking_reports r WHERE r.booking = b.id AND r.no_show_at IS NOT NULL)
           FROM bookings b WHERE b.start >= ? AND b.start < ? AND b.end > ? ORDER BY b.start, b.id""",
        [day_start - longest - 1, day_end, day_start],
    )
    day.bookings = [
        DayBooking(r[0], r[1], day.associations.get(r[2], r[2]), r[3] or "", r[4], r[5], r[6], bool(r[7]), bool(r[8]))
        for r in rows
    ]
    day.tomorrow = [
        DayBooking(r[0], r[1], day.associations.get(r[2], r[2]), r[3] or "", r[4], r[5], r[6], False, False)
        for r in conn.execute(
            """SELECT id, room, association, title, start, end, status FROM bookings
               WHERE start >= ? AND start < ? ORDER BY start, id""",
            [day_end, tomorrow_end],
        )
    ]
    rooms = dict(day.rooms)
    day.booking_titles = {b.id: (b.title, rooms.get(b.room, b.room), b.start) for b in day.bookings}
    day.closures = [
        DayClosure(*r)
        for r in conn.execute(
            "SELECT room, start, end, reason FROM closures WHERE start < ? AND end > ? ORDER BY start", [tomorrow_end, day_start]
        )
    ]
    return day
