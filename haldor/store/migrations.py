"""The store's schema: one migration a version, append only (run by :func:`haldor.db.migrate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from haldor.db import Migration

if TYPE_CHECKING:
    import sqlite_utils


def _m1_schedule(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("rooms").create({"id": str, "name": str}, pk="id")
    db.table("room_doors").create({"room": str, "door": str}, pk=("room", "door"))
    db.table("room_doors").create_index(["door"])
    db.table("associations").create({"id": str, "name": str}, pk="id")
    db.table("credentials").create(
        {
            "id": str,
            "card_hash": str,
            "pin_hash": str,
            "association": str,
            "role": str,
            "valid_from": float,
            "valid_until": float,
        },
        pk="id",
    )
    db.table("credentials").create_index(["card_hash"])
    db.table("credentials").create_index(["pin_hash"])
    db.table("bookings").create(
        {
            "id": str,
            "room": str,
            "association": str,
            "title": str,
            "start": float,
            "end": float,
            "status": str,
            "pin_hash": str,
            "unlocked_during": int,
        },
        pk="id",
    )
    db.table("bookings").create_index(["room", "start"])
    db.table("bookings").create_index(["pin_hash"])
    db.table("closures").create({"room": str, "start": float, "end": float, "reason": str})
    db.table("booking_activity").create(
        {"booking": str, "first_entry": float, "entries": int, "checkins": int, "leader_present": int},
        pk="booking",
        defaults={"entries": 0, "checkins": 0, "leader_present": 0},
    )


def _m2_outbox(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: seq never goes back, even after every event was purged.
    db.execute(
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            at TEXT NOT NULL,
            at_ts REAL NOT NULL,
            type TEXT NOT NULL,
            door TEXT, reader TEXT, credential TEXT, booking TEXT, reason TEXT,
            extra TEXT,
            delivered_at REAL
        )"""
    )
    db.table("events").create_index(["delivered_at", "seq"])


def _m3_commands(db: sqlite_utils.Database) -> None:
    # command ids seen, kept past their expiry so that a replay is refused across restarts
    db.table("commands_seen").create({"id": str, "expires_at": float}, pk="id")
    db.table("commands_seen").create_index(["expires_at"])


def _m4_checkins_and_reports(db: sqlite_utils.Database) -> None:
    db.table("booking_checkins").create(
        {"booking": str, "credential": str, "role": str, "at": float}, pk=("booking", "credential")
    )
    # one row a booking once a report was made: no-show and usage go out exactly once
    db.table("booking_reports").create({"booking": str, "no_show_at": float, "usage_at": float}, pk="booking")
    db.table("bookings").create_index(["start"])


def _m5_command_results(db: sqlite_utils.Database) -> None:
    # a command delivered again (its result was lost with the link) is answered with the same result
    db.table("commands_seen").add_column("result", str)


def _m6_observed(db: sqlite_utils.Database) -> None:
    # when the agent was watching (running, with a schedule and a clock it trusts): one span a
    # run, so that "nobody came" is told from "we did not see"
    db.table("observed").create({"start": float, "end": float}, pk="start")


def _m7_bookings_by_association(db: sqlite_utils.Database) -> None:
    # a card's bookings found from its association (a few a day), not by walking every booking
    # of the door's rooms near now; named, so that a read can say which index it means
    db.execute("CREATE INDEX IF NOT EXISTS bookings_by_association ON bookings(association, start)")


def _m8_booking_known(db: sqlite_utils.Database) -> None:
    # since when each booking is in the box's schedule as it is (its start, room and status):
    # it is watched only from then (a booking entered after it ended was never watched, and
    # is never a no-show); the bookings already here were known before anyone could tell when
    db.execute("CREATE TABLE booking_known (booking TEXT PRIMARY KEY, since REAL NOT NULL, start REAL, room TEXT, status TEXT)")
    db.execute("INSERT INTO booking_known (booking, since, start, room, status) SELECT id, 0, start, room, status FROM bookings")


MIGRATIONS: tuple[Migration, ...] = (
    _m1_schedule,
    _m2_outbox,
    _m3_commands,
    _m4_checkins_and_reports,
    _m5_command_results,
    _m6_observed,
    _m7_bookings_by_association,
    _m8_booking_known,
)
