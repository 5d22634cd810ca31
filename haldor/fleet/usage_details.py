"""The usage table's per-booking columns, read for the dashboard: the weekday-by-hour
map of booked and used hours, and every booking of one association's season."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from haldor.sql import Database

from .report import Period
from .rows import where
from .week_map import WeekMap, spread

BOOKING_COLUMNS = (
    "site",
    "booking",
    "day",
    "week",
    "room",
    "room_name",
    "association_name",
    "start",
    "booked_min",
    "booked_hours",
    "used_hours",
    "entries",
    "checkins",
    "used",
    "no_show",
    "closed",
    "unobserved",
    "weekday",
)


def _days(period: Period) -> tuple[str | None, str | None]:
    after = None if period.last is None else (period.last + timedelta(days=1)).isoformat()
    return (None if period.first is None else period.first.isoformat()), after


class UsageDetails:
    """Reads of one database (the caller holds whatever lock it shares)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def week_map(self, period: Period, site: str | None = None, room: str | None = None) -> WeekMap:
        """The period's bookings (those of a site, or of one of its rooms) by weekday and hour."""
        first, after = _days(period)
        clause, params = where(site, first, after, "day")
        if room:
            clause += " AND room = ?"
            params.append(room)
        rows = self.db.rows(
            "SELECT weekday, start_min, booked_hours, SUM(booked_hours), SUM(used_hours) FROM usage "
            f"WHERE weekday IS NOT NULL{clause} GROUP BY weekday, start_min, booked_hours",
            params,
        )
        return spread((int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows)

    def rooms(self, site: str) -> list[tuple[str, str]]:
        """A site's rooms that have bookings: (id, name), by name."""
        rows = self.db.rows("SELECT room, MAX(room_name) FROM usage WHERE site = ? GROUP BY room", [site])
        return sorted(((r[0], r[1] or r[0]) for r in rows), key=lambda r: (r[1].casefold(), r[0]))

    def bookings(self, association: str, period: Period) -> list[dict[str, Any]]:
        """Every booking of an association in the period, by start."""
        first, after = _days(period)
        clause, params = where(None, first, after, "day")
        rows = self.db.rows(
            f"SELECT {', '.join(BOOKING_COLUMNS)} FROM usage WHERE association = ?{clause} ORDER BY day, start, site, room",
            [association, *params],
        )
        return [dict(zip(BOOKING_COLUMNS, r, strict=True)) for r in rows]
