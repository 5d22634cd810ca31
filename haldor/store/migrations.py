"""The store's schema: one step a version, append only, in SQL (run by
:func:`haldor.migrations.migrate` as the schema ``store``). The first seven were written with
sqlite-utils' table verbs; their SQL here is what those verbs made, so a store made now and
a store made then are the same."""

from __future__ import annotations

#: the schema's name in ``haldor_schema``
NAME = "store"

_M1_SCHEDULE = """
CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
CREATE TABLE "rooms" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT
);
CREATE TABLE "room_doors" (
   "room" TEXT,
   "door" TEXT,
   PRIMARY KEY ("room", "door")
);
CREATE INDEX "idx_room_doors_door"
    ON "room_doors" ("door");
CREATE TABLE "associations" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT
);
CREATE TABLE "credentials" (
   "id" TEXT PRIMARY KEY,
   "card_hash" TEXT,
   "pin_hash" TEXT,
   "association" TEXT,
   "role" TEXT,
   "valid_from" REAL,
   "valid_until" REAL
);
CREATE INDEX "idx_credentials_card_hash"
    ON "credentials" ("card_hash");
CREATE INDEX "idx_credentials_pin_hash"
    ON "credentials" ("pin_hash");
CREATE TABLE "bookings" (
   "id" TEXT PRIMARY KEY,
   "room" TEXT,
   "association" TEXT,
   "title" TEXT,
   "start" REAL,
   "end" REAL,
   "status" TEXT,
   "pin_hash" TEXT,
   "unlocked_during" INTEGER
);
CREATE INDEX "idx_bookings_room_start"
    ON "bookings" ("room", "start");
CREATE INDEX "idx_bookings_pin_hash"
    ON "bookings" ("pin_hash");
CREATE TABLE "closures" (
   "room" TEXT,
   "start" REAL,
   "end" REAL,
   "reason" TEXT
);
CREATE TABLE "booking_activity" (
   "booking" TEXT PRIMARY KEY,
   "first_entry" REAL,
   "entries" INTEGER DEFAULT 0,
   "checkins" INTEGER DEFAULT 0,
   "leader_present" INTEGER DEFAULT 0
)
"""

# AUTOINCREMENT: seq never goes back, even after every event was purged
_M2_OUTBOX = """
CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            at TEXT NOT NULL,
            at_ts REAL NOT NULL,
            type TEXT NOT NULL,
            door TEXT, reader TEXT, credential TEXT, booking TEXT, reason TEXT,
            extra TEXT,
            delivered_at REAL
        );
CREATE INDEX "idx_events_delivered_at_seq"
    ON "events" ("delivered_at", "seq")
"""

# command ids seen, kept past their expiry so that a replay is refused across restarts
_M3_COMMANDS = """
CREATE TABLE "commands_seen" (
   "id" TEXT PRIMARY KEY,
   "expires_at" REAL
);
CREATE INDEX "idx_commands_seen_expires_at"
    ON "commands_seen" ("expires_at")
"""

# one row a booking once a report was made: no-show and usage go out exactly once
_M4_CHECKINS_AND_REPORTS = """
CREATE TABLE "booking_checkins" (
   "booking" TEXT,
   "credential" TEXT,
   "role" TEXT,
   "at" REAL,
   PRIMARY KEY ("booking", "credential")
);
CREATE TABLE "booking_reports" (
   "booking" TEXT PRIMARY KEY,
   "no_show_at" REAL,
   "usage_at" REAL
);
CREATE INDEX "idx_bookings_start"
    ON "bookings" ("start")
"""

# a command delivered again (its result was lost with the link) is answered with the same result
_M5_COMMAND_RESULTS = 'ALTER TABLE "commands_seen" ADD COLUMN "result" TEXT'

# when the agent was watching (running, with a schedule and a clock it trusts): one span a
# run, so that "nobody came" is told from "we did not see"
_M6_OBSERVED = """
CREATE TABLE "observed" (
   "start" REAL PRIMARY KEY,
   "end" REAL
)
"""

# a card's bookings found from its association (a few a day), not by walking every booking
# of the door's rooms near now; named, so that a read can say which index it means
_M7_BOOKINGS_BY_ASSOCIATION = "CREATE INDEX IF NOT EXISTS bookings_by_association ON bookings(association, start)"

# since when each booking is in the box's schedule as it is (its start, room and status):
# it is watched only from then (a booking entered after it ended was never watched, and
# is never a no-show); the bookings already here were known before anyone could tell when
_M8_BOOKING_KNOWN = """
CREATE TABLE booking_known (booking TEXT PRIMARY KEY, since REAL NOT NULL, start REAL, room TEXT, status TEXT);
INSERT INTO booking_known (booking, since, start, room, status) SELECT id, 0, start, room, status FROM bookings
"""

MIGRATIONS: tuple[str, ...] = (
    _M1_SCHEDULE,
    _M2_OUTBOX,
    _M3_COMMANDS,
    _M4_CHECKINS_AND_REPORTS,
    _M5_COMMAND_RESULTS,
    _M6_OBSERVED,
    _M7_BOOKINGS_BY_ASSOCIATION,
    _M8_BOOKING_KNOWN,
)
