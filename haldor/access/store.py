"""The local SQLite store: the schedule cache, booking activity and the event outbox.

A thin repository over sqlite-utils. Applying a document is one transaction, so a
crash (even kill -9) leaves the previous schedule or the new one, never a mix.
Cards and PINs are kept only as HMAC-SHA256 under a per-device secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import sqlite_utils

from haldor.errors import DocumentError, StoreError
from haldor.protocol import DOOR_MOVEMENTS, Role, Schema

from .checkin import BookingRecord, CheckinFacts, TodayBooking
from .model import (
    BookingFact,
    Candidate,
    ClosureFact,
    Delta,
    Facts,
    Policy,
    Snapshot,
)
from . import reserve
from .schedule import check_references

log = logging.getLogger(__name__)

DB_NAME = "haldor.db"
SECRET_NAME = "device.secret"


# --- Migrations: append only, one function a schema version ---------------------


def _m1_schedule(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["rooms"].create({"id": str, "name": str}, pk="id")
    db["room_doors"].create({"room": str, "door": str}, pk=("room", "door"))
    db["room_doors"].create_index(["door"])
    db["associations"].create({"id": str, "name": str}, pk="id")
    db["credentials"].create(
        {"id": str, "card_hash": str, "pin_hash": str, "association": str, "role": str, "valid_from": float, "valid_until": float},
        pk="id",
    )
    db["credentials"].create_index(["card_hash"])
    db["credentials"].create_index(["pin_hash"])
    db["bookings"].create(
        {"id": str, "room": str, "association": str, "title": str, "start": float, "end": float,
         "status": str, "pin_hash": str, "unlocked_during": int},
        pk="id",
    )
    db["bookings"].create_index(["room", "start"])
    db["bookings"].create_index(["pin_hash"])
    db["closures"].create({"room": str, "start": float, "end": float, "reason": str})
    db["booking_activity"].create(
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
    db["events"].create_index(["delivered_at", "seq"])


def _m3_commands(db: sqlite_utils.Database) -> None:
    # command ids seen, kept past their expiry so that a replay is refused across restarts
    db["commands_seen"].create({"id": str, "expires_at": float}, pk="id")
    db["commands_seen"].create_index(["expires_at"])


def _m4_checkins_and_reports(db: sqlite_utils.Database) -> None:
    db["booking_checkins"].create({"booking": str, "credential": str, "role": str, "at": float}, pk=("booking", "credential"))
    # one row a booking once a report was made: no-show and usage go out exactly once
    db["booking_reports"].create({"booking": str, "no_show_at": float, "usage_at": float}, pk="booking")
    db["bookings"].create_index(["start"])


def _m5_command_results(db: sqlite_utils.Database) -> None:
    # a command delivered again (its result was lost with the link) is answered with the same result
    db["commands_seen"].add_column("result", str)


MIGRATIONS = (_m1_schedule, _m2_outbox, _m3_commands, _m4_checkins_and_reports, _m5_command_results)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    status: str  # "applied" | "stale" | "other_site"
    kind: str  # "snapshot" | "delta"
    version: int
    detail: str = ""


class GapError(DocumentError):
    """A delta's base is not the applied version: a snapshot is needed."""


class Store:
    """One device's database. Open it with :meth:`open`; close it with :meth:`close`."""

    def __init__(self, db: sqlite_utils.Database, secret: bytes, site: str, timezone: str, default_policy: Policy) -> None:
        self.db = db
        self._secret = secret
        self._card_mac = hmac.new(secret, b"card\x00", hashlib.sha256)
        self._pin_mac = hmac.new(secret, b"pin\x00", hashlib.sha256)
        self.site = site
        self._default_timezone = timezone
        self._default_policy = default_policy
        self.data_dir: Path | None = None

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike, site: str, timezone: str = "Europe/Copenhagen", default_policy: Policy = Policy(),
             *, existing: str | None = None) -> Store:
        """``existing``: the fingerprint of the device secret the agent started with. Then the
        store must be there as it was: no secret and no database is made (a process beside
        the agent making them would leave the agent and its own store at odds)."""
        path = Path(data_dir)
        db_path = path / DB_NAME
        try:
            if existing is None:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if reserve.free_bytes(path) < reserve.LOW_WATER:  # SQLite needs room even to read
                reserve.release(path)
            secret = _device_secret(path / SECRET_NAME, create=existing is None)
            if existing is None:
                db_path.touch(mode=0o600, exist_ok=True)  # hashes only, but nobody else's business
                conn = sqlite3.connect(db_path, timeout=10, check_same_thread=False)
            else:
                if fingerprint(secret) != existing:
                    raise StoreError(f"{path / SECRET_NAME}: the device secret changed since the agent started")
                conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=10, check_same_thread=False)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed event survives a power cut, not only a crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=OFF")
            _migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        store = cls(db, secret, site, timezone, default_policy)
        store.data_dir = path
        store._check_secret()
        return store

    def _check_secret(self) -> None:
        """A device secret that is not the one the hashes were made with (lost, restored from
        another box, replaced) makes every card unknown: note it, so that the agent says so,
        asks for a snapshot and takes the same version again to hash anew."""
        mine = self.secret_fingerprint
        stored = self.meta("secret_fingerprint")
        if stored == mine:
            return
        try:
            with self.write():
                if stored is not None and self.meta("schedule_version") is not None:
                    self._set_meta("rehash_needed", True)
                self._set_meta("secret_fingerprint", mine)
        except sqlite3.Error as exc:  # a full disk: said again at the next start
            log.error("device secret fingerprint not stored: %s", exc)

    @property
    def secret_fingerprint(self) -> str:
        return fingerprint(self._secret)

    def keep_secret(self) -> bool:
        """Write the device secret back if its file is gone (deleted while the agent ran):
        the hashes in the store were made with it. True when it was written."""
        if self.data_dir is None or (self.data_dir / SECRET_NAME).exists():
            return False
        return _write_secret(self.data_dir / SECRET_NAME, self._secret)

    def why_stale(self, kind: str, version: int) -> str | None:
        """Why a document of ``version`` is ignored (PROTOCOL 2, 3), or None. A snapshot of the
        applied version is taken again after the device secret changed (to hash anew), and
        any snapshot after a ``reset_version`` command."""
        current = self.version
        if current is None or version > current:
            return None
        if kind == "snapshot" and (self.meta("any_version") or (version == current and self.rehash_needed)):
            return None
        return f"version {version} <= applied {current}"

    def accept_any_version(self) -> None:
        """The ``reset_version`` command: the next snapshot is applied whatever its version
        (the way out of a version published too far ahead)."""
        self.set_meta("any_version", True)

    def room_doors(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT room, door FROM room_doors ORDER BY room, door")]

    @property
    def rehash_needed(self) -> bool:
        """The device secret changed since the schedule was hashed: the same version is taken again."""
        return bool(self.meta("rehash_needed"))

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction that takes the write lock at once (BEGIN IMMEDIATE).

        The outbox pump writes through its own connection. A deferred transaction that
        read first and then wants to write would fail at once with "database is
        locked" when the other connection committed in between; an immediate one
        waits for the lock instead. Nested blocks become savepoints.
        """
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.conn.rollback()
            raise
        else:
            self.db.conn.execute("COMMIT")

    # -- keyed hashes --------------------------------------------------------------

    def card_hash(self, card: str) -> str:
        return self._keyed(self._card_mac, card)

    def pin_hash(self, pin: str) -> str:
        return self._keyed(self._pin_mac, pin)

    @staticmethod
    def _keyed(prefix: hmac.HMAC, text: str) -> str:
        mac = prefix.copy()  # the keyed state is computed once, not per card of a snapshot
        mac.update(text.encode())
        return mac.hexdigest()

    # -- meta ----------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.write():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, json.dumps(value)])

    @property
    def version(self) -> int | None:
        return self.meta("schedule_version")

    @property
    def timezone(self) -> str:
        return self.meta("timezone") or self._default_timezone

    @property
    def policy(self) -> Policy:
        stored = self.meta("policy")
        return self._default_policy if stored is None else Policy(**stored)

    # -- applying documents --------------------------------------------------------

    def apply(self, doc: Snapshot | Delta, now: float,
              report: Callable[[ApplyResult, int | None], list[dict[str, Any]]] | None = None) -> ApplyResult:
        """Apply a validated document atomically; DocumentError rejects it whole.
        ``report(result, previous_version)`` gives the events that say it was applied: they
        are committed with it, so a schedule is never in force without its event."""
        kind = "delta" if isinstance(doc, Delta) else "snapshot"
        if doc.site != self.site:
            return ApplyResult("other_site", kind, doc.version, f"for site {doc.site!r}")
        stale = self.why_stale(kind, doc.version)
        if stale is not None:
            return ApplyResult("stale", kind, doc.version, stale)
        current = self.version
        try:
            with self.write():
                if isinstance(doc, Delta):
                    if current is None or doc.base_version != current:
                        raise GapError(f"delta {doc.version} is based on {doc.base_version}, applied is {current}")
                    self._apply_delta(doc)
                else:
                    self._apply_snapshot(doc)
                    self._set_meta("rehash_needed", None)
                    self._set_meta("any_version", None)
                self._set_meta("schedule_version", doc.version)
                self._set_meta("last_sync", now)
                if self.meta("reports_since") is None:  # bookings before the first schedule were not watched
                    self._set_meta("reports_since", now)
                self._set_meta("max_booking_s", self._max_booking_s())
                result = ApplyResult("applied", kind, doc.version)
                if report is not None:
                    self.append_events(report(result, current), now)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot apply {kind} {doc.version}: {exc}") from exc
        return result

    def _apply_snapshot(self, s: Snapshot) -> None:
        for table in ("rooms", "room_doors", "associations", "credentials", "bookings", "closures"):
            self.db.execute(f"DELETE FROM {table}")
        self._upsert(s.rooms, s.associations, s.credentials, s.bookings)
        self._replace_closures(s.closures)
        self._set_meta("timezone", s.timezone)
        self._set_meta("policy", None if s.policy is None else asdict(s.policy))
        self._set_meta("generated_at", s.generated_at)
        # activity of bookings that are gone is of no more use
        self.db.execute("DELETE FROM booking_activity WHERE booking NOT IN (SELECT id FROM bookings)")
        self.db.execute("DELETE FROM booking_checkins WHERE booking NOT IN (SELECT id FROM bookings)")

    def _apply_delta(self, d: Delta) -> None:
        self.db.conn.executemany("DELETE FROM bookings WHERE id = ?", [(i,) for i in d.delete_bookings])
        self.db.conn.executemany("DELETE FROM credentials WHERE id = ?", [(i,) for i in d.delete_credentials])
        self.db.conn.executemany("DELETE FROM room_doors WHERE room = ?", [(r.id,) for r in d.rooms])
        self._upsert(d.rooms, d.associations, d.credentials, d.bookings)
        if d.closures is not None:
            self.db.execute("DELETE FROM closures")
            self._replace_closures(d.closures)
        rooms = {r[0] for r in self.db.execute("SELECT id FROM rooms")}
        associations = {r[0] for r in self.db.execute("SELECT id FROM associations")}
        # only what the delta brings can break a reference: the store was whole before
        check_references(rooms, associations, d.credentials, d.bookings, d.closures)

    def _upsert(self, rooms, associations, credentials, bookings) -> None:
        c = self.db.conn
        c.executemany("INSERT OR REPLACE INTO rooms(id, name) VALUES (?, ?)", [(r.id, r.name) for r in rooms])
        c.executemany(
            "INSERT OR IGNORE INTO room_doors(room, door) VALUES (?, ?)",
            [(r.id, door) for r in rooms for door in r.doors],
        )
        c.executemany("INSERT OR REPLACE INTO associations(id, name) VALUES (?, ?)", [(a.id, a.name) for a in associations])
        c.executemany(
            "INSERT OR REPLACE INTO credentials(id, card_hash, pin_hash, association, role, valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (x.id, x.card and self.card_hash(x.card), x.pin and self.pin_hash(x.pin), x.association, x.role, x.valid_from, x.valid_until)
                for x in credentials
            ],
        )
        c.executemany(
            "INSERT OR REPLACE INTO bookings(id, room, association, title, start, end, status, pin_hash, unlocked_during) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (b.id, b.room, b.association, b.title, b.start, b.end, b.status, b.pin and self.pin_hash(b.pin), int(b.unlocked_during))
                for b in bookings
            ],
        )

    def _replace_closures(self, closures) -> None:
        self.db.conn.executemany(
            "INSERT INTO closures(room, start, end, reason) VALUES (?, ?, ?, ?)",
            [(c.room, c.start, c.end, c.reason) for c in closures],
        )

    def _max_booking_s(self) -> float:
        row = self.db.execute("SELECT MAX(end - start) FROM bookings").fetchone()
        return row[0] or 0.0

    # -- what a decision needs -----------------------------------------------------

    def rooms_of_door(self, door: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.db.execute("SELECT room FROM room_doors WHERE door = ?", [door]))

    def local_day(self, now: float) -> tuple[float, float]:
        """The local calendar day of ``now`` as instants (23 or 25 hours on DST days)."""
        tz = ZoneInfo(self.timezone)
        day = datetime.fromtimestamp(now, tz).date()
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=tz)
        return start.timestamp(), end.timestamp()

    def facts(self, door: str, now: float, *, card: str | None = None, pin: str | None = None) -> Facts:
        """Everything that bears on presenting ``card`` or ``pin`` at ``door`` at ``now``."""
        if (card is None) == (pin is None):
            raise ValueError("give a card or a pin")
        policy = self.policy
        day = self.local_day(now)
        rooms = self.rooms_of_door(door)
        column, digest = ("card_hash", self.card_hash(card)) if card is not None else ("pin_hash", self.pin_hash(pin))
        candidates = tuple(
            Candidate(*row)
            for row in self.db.execute(
                f"SELECT id, association, role, valid_from, valid_until FROM credentials WHERE {column} = ? ORDER BY id", [digest]
            )
        )
        low = min(day[0], now - policy.grace_after_min * 60)
        high = max(day[1], now + policy.grace_before_min * 60)
        bookings: dict[str, BookingFact] = {}
        associations = sorted({c.association for c in candidates if c.association})
        if rooms and associations:
            sql = f"""
                SELECT b.id, b.room, b.association, b.start, b.end, b.unlocked_during, COALESCE(a.leader_present, 0), 0
                FROM bookings b LEFT JOIN booking_activity a ON a.booking = b.id
                WHERE b.status = 'approved' AND b.room IN ({",".join("?" * len(rooms))})
                  AND b.start < ? AND b.start > ? AND b.end > ?
                  AND b.association IN ({",".join("?" * len(associations))})"""
            lowest_start = low - (self.meta("max_booking_s") or 0) - 1
            for row in self.db.execute(sql, [*sorted(rooms), high, lowest_start, low, *associations]):
                bookings[row[0]] = _booking_fact(row)
        if pin is not None:
            sql = """
                SELECT b.id, b.room, b.association, b.start, b.end, b.unlocked_during, COALESCE(a.leader_present, 0), 1
                FROM bookings b LEFT JOIN booking_activity a ON a.booking = b.id
                WHERE b.status = 'approved' AND b.pin_hash = ?"""
            for row in self.db.execute(sql, [digest]):
                bookings[row[0]] = _booking_fact(row)
        closures = tuple(
            ClosureFact(*row)
            for row in self.db.execute("SELECT room, start, end, reason FROM closures WHERE start <= ? AND end > ?", [now, now])
        )
        if any(b.unlocked_during for b in bookings.values()):
            for bid, b in bookings.items():
                if b.unlocked_during:
                    doors = tuple(r[0] for r in self.db.execute("SELECT door FROM room_doors WHERE room = ? ORDER BY door", [b.room]))
                    bookings[bid] = replace(b, doors=doors)
        return Facts(door=door, rooms=rooms, credentials=candidates, bookings=tuple(bookings.values()),
                     closures=closures, policy=policy, day=day)

    def booking(self, booking_id: str) -> dict | None:
        rows = list(self.db["bookings"].rows_where("id = ?", [booking_id]))
        return rows[0] if rows else None

    def note_entry(self, booking: str, role: str | None, at: float, *, checkin: bool = False) -> None:
        """Count a granted entry or a check-in towards a booking's use."""
        with self.write():
            self.db.execute(
                """INSERT INTO booking_activity(booking, first_entry, entries, checkins, leader_present)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(booking) DO UPDATE SET
                     first_entry = CASE WHEN excluded.first_entry IS NULL THEN first_entry
                                        WHEN first_entry IS NULL THEN excluded.first_entry
                                        ELSE MIN(first_entry, excluded.first_entry) END,
                     entries = entries + excluded.entries,
                     checkins = checkins + excluded.checkins,
                     leader_present = MAX(leader_present, excluded.leader_present)""",
                [booking, None if checkin else at, 0 if checkin else 1, 1 if checkin else 0, int(role == Role.LEADER)],
            )

    def note_checkin(self, booking: str, credential: str, role: str | None, at: float) -> bool:
        """A check-in; True the first time this credential checks in to this booking."""
        with self.write():
            first = self.db.execute(
                "INSERT OR IGNORE INTO booking_checkins(booking, credential, role, at) VALUES (?, ?, ?, ?)",
                [booking, credential, role, at]).rowcount == 1
            if first:
                self.note_entry(booking, role, at, checkin=True)
        return first

    def checkin_facts(self, now: float, *, card: str | None = None, pin: str | None = None) -> CheckinFacts:
        """The credentials of a card or PIN and their associations' approved bookings today."""
        column, digest = ("card_hash", self.card_hash(card)) if card is not None else ("pin_hash", self.pin_hash(pin or ""))
        candidates = tuple(Candidate(*row) for row in self.db.execute(
            f"SELECT id, association, role, valid_from, valid_until FROM credentials WHERE {column} = ? ORDER BY id", [digest]))
        associations = sorted({c.association for c in candidates if c.association})
        start, end = self.local_day(now)
        bookings: tuple[TodayBooking, ...] = ()
        if associations:
            ids = [c.id for c in candidates]
            bookings = tuple(TodayBooking(r[0], r[1], r[2], r[3], bool(r[4])) for r in self.db.execute(
                f"""SELECT b.id, b.association, b.start, b.end,
                           EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id
                                  AND c.credential IN ({",".join("?" * len(ids))}))
                    FROM bookings b WHERE b.status = 'approved' AND b.start < ? AND b.end > ?
                      AND b.association IN ({",".join("?" * len(associations))}) ORDER BY b.start, b.id""",
                [*ids, end, start, *associations]))
        return CheckinFacts(candidates, bookings, self.policy)

    def booking_records(self, now: float, since: float) -> list[BookingRecord]:
        """Approved bookings that started since ``since`` and still owe a report."""
        return [BookingRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), bool(r[8]), r[9], r[10])
                for r in self.db.execute(
            """SELECT b.id, b.start, b.end, COALESCE(a.entries, 0), COALESCE(a.checkins, 0), a.first_entry,
                      EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id AND c.role = 'leader'),
                      r.no_show_at IS NOT NULL, r.usage_at IS NOT NULL, b.room, b.association
               FROM bookings b
               LEFT JOIN booking_activity a ON a.booking = b.id
               LEFT JOIN booking_reports r ON r.booking = b.id
               WHERE b.status = 'approved' AND b.start >= ? AND b.start <= ? AND r.usage_at IS NULL
               ORDER BY b.start, b.id""", [since, now])]

    def mark_reported(self, kind: str, booking: str, at: float) -> None:
        column = {"no_show": "no_show_at", "usage": "usage_at"}[kind]
        with self.write():
            self.db.execute(f"INSERT INTO booking_reports(booking, {column}) VALUES (?, ?) "
                            f"ON CONFLICT(booking) DO UPDATE SET {column} = excluded.{column}", [booking, at])

    def iso(self, ts: float) -> str:
        """An instant as RFC 3339 in the site's local time (what people at the site read)."""
        return datetime.fromtimestamp(ts, ZoneInfo(self.timezone)).isoformat(timespec="milliseconds")

    # -- the outbox ----------------------------------------------------------------

    def append_events(self, events: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Store events durably (one transaction) and return them as published (PROTOCOL 5)."""
        tz = ZoneInfo(self.timezone)
        stored = []
        with self.write():
            for event in events:
                at_ts = event.get("at_ts", now)
                row = {
                    "id": str(uuid.uuid4()),
                    "at": datetime.fromtimestamp(at_ts, tz).isoformat(timespec="milliseconds"),
                    "at_ts": at_ts,
                    "type": event["type"],
                    "door": event.get("door"),
                    "reader": event.get("reader"),
                    "credential": event.get("credential"),
                    "booking": event.get("booking"),
                    "reason": event.get("reason"),
                    "extra": json.dumps(event["extra"]) if event.get("extra") else None,
                }
                cursor = self.db.execute(
                    "INSERT INTO events(id, at, at_ts, type, door, reader, credential, booking, reason, extra) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    list(row.values()),
                )
                row["seq"] = cursor.lastrowid
                stored.append(self._document(row))
        return stored

    def _document(self, row: dict[str, Any]) -> dict[str, Any]:
        doc = {
            "schema": Schema.EVENT,
            "id": row["id"],
            "site": self.site,
            "seq": row["seq"],
            "at": row["at"],
            "type": row["type"],
            "door": row["door"],
            "reader": row["reader"],
            "credential": row["credential"],
            "booking": row["booking"],
            "reason": row["reason"],
        }
        if row.get("extra"):
            doc.update(json.loads(row["extra"]))
        return doc

    def events(self, *, undelivered: bool = False, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        where = "seq > ?" + (" AND delivered_at IS NULL" if undelivered else "")
        rows = self.db.execute(
            f"SELECT seq, id, at, type, door, reader, credential, booking, reason, extra FROM events WHERE {where} ORDER BY seq LIMIT ?",
            [after_seq, limit],
        )
        names = ("seq", "id", "at", "type", "door", "reader", "credential", "booking", "reason", "extra")
        return [self._document(dict(zip(names, r))) for r in rows]

    def mark_delivered(self, seqs: Iterable[int], now: float) -> None:
        """The broker acknowledged these events: they leave the outbox (kept for the kiosk
        and for local reports until the retention period ends)."""
        seqs = list(seqs)
        with self.write():
            self.db.conn.executemany("UPDATE events SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                                     [(now, seq) for seq in seqs])

    def outbox_stats(self) -> dict[str, Any]:
        """``{"pending": n, "oldest": "<at of the oldest undelivered>"}`` for the status."""
        row = self.db.execute(
            "SELECT COUNT(*), (SELECT at FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT 1) "
            "FROM events WHERE delivered_at IS NULL"
        ).fetchone()
        return {"pending": row[0], "oldest": row[1], "dropped": self.meta("outbox_dropped") or 0}

    def enforce_capacity(self, capacity: int) -> int:
        """Beyond ``capacity`` undelivered events, the oldest door.opened / door.closed go;
        access and alarm events never do. Returns how many were dropped (also counted in
        the meta ``outbox_dropped`` for the status)."""
        pending = self.db.execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]
        if pending <= capacity:
            return 0
        with self.write():
            dropped = self.db.execute(
                """DELETE FROM events WHERE seq IN (
                     SELECT seq FROM events WHERE delivered_at IS NULL AND type IN (?, ?)
                     ORDER BY seq LIMIT ?)""", [*DOOR_MOVEMENTS, pending - capacity]).rowcount
            if dropped:
                self._set_meta("outbox_dropped", (self.meta("outbox_dropped") or 0) + dropped)
        return dropped

    def purge_delivered(self, older_than: float) -> int:
        with self.write():
            return self.db.execute("DELETE FROM events WHERE delivered_at IS NOT NULL AND at_ts < ?", [older_than]).rowcount

    # -- commands ------------------------------------------------------------------

    def command_seen(self, command_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM commands_seen WHERE id = ?", [command_id]).fetchone() is not None

    def command_result(self, command_id: str) -> dict | None:
        """What a command was answered with (the agent's ``remember_command(result=...)``), if known."""
        row = self.db.execute("SELECT result FROM commands_seen WHERE id = ?", [command_id]).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def remember_command(self, command_id: str, expires_at: float, now: float, result: dict | None = None) -> None:
        """Kept until a day after it expired: by then an expired replay is refused as expired."""
        with self.write():
            self.db.execute("INSERT OR IGNORE INTO commands_seen(id, expires_at, result) VALUES (?, ?, ?)",
                            [command_id, expires_at, None if result is None else json.dumps(result)])
            self.db.execute("DELETE FROM commands_seen WHERE expires_at < ?", [now - 86400])

    def iter_table(self, table: str) -> Iterator[dict]:
        return self.db[table].rows


def _booking_fact(row: tuple) -> BookingFact:
    bid, room, association, start, end, unlocked, leader, pin_match = row
    return BookingFact(bid, room, association, start, end, bool(unlocked), bool(leader), bool(pin_match))


def fingerprint(secret: bytes) -> str:
    """Names a device secret without giving it away."""
    return hmac.new(secret, b"fingerprint\x00", hashlib.sha256).hexdigest()[:16]


def _device_secret(path: Path, *, create: bool = True) -> bytes:
    """The per-device HMAC key, created on first start with mode 0600."""
    if path.exists() or not create:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{path}: the device secret is missing (deleted since the agent started?)") from None
        if len(data) < 32:
            raise StoreError(f"{path}: device secret is damaged (shorter than 32 bytes)") from None
        return data
    secret = secrets.token_bytes(32)
    if not _write_secret(path, secret):
        return _device_secret(path, create=False)  # another process made it first: theirs counts
    return secret


def _write_secret(path: Path, secret: bytes) -> bool:
    """Whole or not at all (a power cut never leaves a short secret), and never over one
    that is there. False when one was there."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def _migrate(db: sqlite_utils.Database) -> None:
    current = db.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        with db.atomic():
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
