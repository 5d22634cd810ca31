"""Each booking's figures in the usage table, once (the first usage of a booking wins),
with the dashboard's kept sums of those this insert stored (:mod:`.usage_sums`); and a
database from before either, brought up to date at start."""

from __future__ import annotations

import json
from typing import Any

from haldor.protocol import Event
from haldor.sql import Database

from .rows import _usage_row
from .usage_sums import add, rebuild

USAGE_COLUMNS = (
    "id",
    "site",
    "booking",
    "day",
    "week",
    "room",
    "association",
    "room_name",
    "association_name",
    "booked_hours",
    "used_hours",
    "no_show",
    "closed",
    "unobserved",
    "start",
    "booked_min",
    "entries",
    "checkins",
    "used",
    "weekday",
    "start_min",
)

#: usage rows in one INSERT (21 parameters each; SQLite takes 32,766)
USAGE_ROWS = 500


def fill(db: Database) -> None:
    """At start: usage worked out from events stored before it was (or again, for rows
    from before its details), and the kept sums of a database from before them."""
    _worked_out_again(db)
    _sums_made(db)


def _worked_out_again(db: Database) -> None:
    """A database from before the usage table: its usage events worked out once; rows
    stored before the usage had its start and entries: worked out again from their events."""
    if db.one("SELECT 1 FROM usage LIMIT 1"):
        rows = db.rows(
            "SELECT e.id, e.site, e.booking, e.usage FROM usage u JOIN events e ON e.id = u.id "
            "WHERE u.start IS NULL AND e.usage IS NOT NULL"
        )
    elif db.one("SELECT 1 FROM events WHERE type = ? LIMIT 1", [Event.BOOKING_USAGE]):
        rows = db.rows("SELECT id, site, booking, usage FROM events WHERE type = ? AND usage IS NOT NULL", [Event.BOOKING_USAGE])
    else:
        return
    if not rows:
        return
    with db.transaction():
        db.executemany("DELETE FROM usage WHERE id = ?", [[r[0]] for r in rows])
        insert(
            db,
            [{"id": r[0], "site": r[1], "booking": r[2], "type": Event.BOOKING_USAGE, "usage": json.loads(r[3])} for r in rows],
            keep_sums=False,
        )
        rebuild(db)


def _sums_made(db: Database) -> None:
    """A database from before the sums were kept: made once from every booking."""
    if db.one("SELECT 1 FROM usage LIMIT 1") and not db.one("SELECT 1 FROM usage_sums LIMIT 1"):
        with db.transaction():
            rebuild(db)


def insert(db: Database, events: list[dict[str, Any]], *, keep_sums: bool = True) -> None:
    """Each booking's figures once (the first usage of a booking wins), and the kept sums
    of those that were new, in the caller's transaction (a booking another consumer
    stored first is not counted twice: only what this insert stored is added)."""
    rows = [row for doc in events if (row := _usage_row(doc)) is not None]
    one = f"({', '.join('?' * len(USAGE_COLUMNS))})"
    new = []
    for i in range(0, len(rows), USAGE_ROWS):  # one statement a few hundred rows (SQLite takes 32,766 parameters)
        chunk = rows[i : i + USAGE_ROWS]
        new += [
            stored[0]
            for stored in db.rows(
                f"INSERT INTO usage({', '.join(USAGE_COLUMNS)}) VALUES {', '.join([one] * len(chunk))} "
                "ON CONFLICT DO NOTHING RETURNING id",
                [value for row in chunk for value in row],
            )
        ]
    if new and keep_sums:
        add(db, new)
