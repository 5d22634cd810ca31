"""The schedule in force: a snapshot or delta applied whole (one transaction), and the
facts a decision needs read from it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, cast

from haldor.access.model import (
    Association,
    Booking,
    BookingFact,
    Candidate,
    Closure,
    Credential,
    Delta,
    Facts,
    Policy,
    Room,
    Snapshot,
)
from haldor.access.schedule import check_references
from haldor.access.schedule_stream import Item, SnapshotReader, duplicate
from haldor.errors import DocumentError, StoreError
from haldor.records import record

from . import standing
from .standing import Standing

if TYPE_CHECKING:
    from .database import Store


@record
class ApplyResult:
    status: str  # "applied" | "stale" | "other_site"
    kind: str  # "snapshot" | "delta"
    version: int
    detail: str = ""


#: items inserted with one executemany while a snapshot is read
_BATCH = 1000
#: the tables a snapshot fills by the hundred thousand: their indexes are built after the insert
_BULK_TABLES = ("credentials", "bookings")


class GapError(DocumentError):
    """A delta's base is not the applied version: a snapshot is needed."""


class ScheduleTables:
    def __init__(self, store: Store) -> None:
        self._s = store
        self._standing: Standing | None = None

    def apply(
        self, doc: Snapshot | Delta, now: float, report: Callable[[ApplyResult, int | None], list[dict[str, Any]]] | None = None
    ) -> ApplyResult:
        """Apply a validated document atomically; DocumentError rejects it whole.
        ``report(result, previous_version)`` gives the events that say it was applied: they
        are committed with it, so a schedule is never in force without its event."""
        kind = "delta" if isinstance(doc, Delta) else "snapshot"
        if doc.site != self._s.site:
            return ApplyResult("other_site", kind, doc.version, f"for site {doc.site!r}")
        stale = self.why_stale(kind, doc.version)
        if stale is not None:
            return ApplyResult("stale", kind, doc.version, stale)
        current = self._s.version
        try:
            with self._s.write():
                if isinstance(doc, Delta):
                    if current is None or doc.base_version != current:
                        raise GapError(f"delta {doc.version} is based on {doc.base_version}, applied is {current}")
                    self._apply_delta(doc)
                else:
                    self._apply_snapshot(doc)
                known = list(doc.bookings) if isinstance(doc, Delta) else None
                result = self._applied(kind, doc.version, now, current, report, known)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot apply {kind} {doc.version}: {exc}") from exc
        return result

    def apply_stream(
        self,
        reader: SnapshotReader,
        site: str,
        version: int,
        now: float,
        report: Callable[[ApplyResult, int | None], list[dict[str, Any]]] | None = None,
    ) -> ApplyResult:
        """Apply a snapshot as it is read: each item validated and inserted in one
        transaction, the references and the header checked before the commit, everything
        rolled back on the first fault (DocumentError). ``site`` and ``version``: its header,
        read before its arrays (for the shortcut of a snapshot already applied)."""
        if site != self._s.site:
            return ApplyResult("other_site", "snapshot", version, f"for site {site!r}")
        stale = self.why_stale("snapshot", version)
        if stale is not None:
            return ApplyResult("stale", "snapshot", version, stale)
        current = self._s.version
        try:
            with self._s.write():
                with self._indexes_built_after(_BULK_TABLES):
                    self._clear()
                    self._insert_all(reader)
                head = reader.finish()
                self._snapshot_meta(head.timezone, head.policy, head.generated_at)
                result = self._applied("snapshot", version, now, current, report)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot apply snapshot {version}: {exc}") from exc
        return result

    def _applied(
        self,
        kind: str,
        version: int,
        now: float,
        current: int | None,
        report: Callable[[ApplyResult, int | None], list[dict[str, Any]]] | None,
        bookings: list[Booking] | None = None,
    ) -> ApplyResult:
        """Inside the apply's transaction: what every apply writes besides its items.
        ``bookings``: what a delta brought (None: a snapshot, all of them)."""
        self._note_known(now, bookings)
        if kind == "snapshot":
            self._s.put_meta("rehash_needed", None)
            self._s.put_meta("any_version", None)
        self._s.put_meta("schedule_version", version)
        self._s.put_meta("last_sync", now)
        if self._s.meta("reports_since") is None:  # bookings before the first schedule were not watched
            self._s.put_meta("reports_since", now)
        self._s.put_meta("max_booking_s", self._max_booking_s())
        self._s.put_meta(standing.STAMP_KEY, standing.new_stamp())
        result = ApplyResult("applied", kind, version)
        if report is not None:
            self._s.outbox.append(report(result, current), now)
        return result

    def _note_known(self, now: float, bookings: list[Booking] | None) -> None:
        """Since when each booking is in the schedule as it is: kept across snapshots by id,
        and begun again when its start, room or status changes (a booking moved to a time
        already past was not watched then). A clock set back cannot date it before what the
        box last saw."""
        since = max(now, self._s.meta("last_seen") or 0.0)
        columns = "INSERT INTO booking_known (booking, since, start, room, status)"
        upsert = (
            " ON CONFLICT (booking) DO UPDATE SET since = excluded.since, start = excluded.start, room = excluded.room, "
            "status = excluded.status WHERE booking_known.start IS NOT excluded.start OR booking_known.room IS NOT "
            "excluded.room OR booking_known.status IS NOT excluded.status"
        )
        if bookings is None:
            self._s.db.execute(f"{columns} SELECT id, ?, start, room, status FROM bookings WHERE true{upsert}", [since])
            self._s.db.execute("DELETE FROM booking_known WHERE booking NOT IN (SELECT id FROM bookings)")
        else:
            self._s.db.conn.executemany(
                f"{columns} VALUES (?, ?, ?, ?, ?){upsert}", [(b.id, since, b.start, b.room, b.status) for b in bookings]
            )

    @contextlib.contextmanager
    def _indexes_built_after(self, tables: tuple[str, ...]) -> Iterator[None]:
        """The secondary indexes of ``tables`` dropped for a bulk insert and built again after
        it, in the same transaction (a rollback brings them back as they were): built once
        from sorted keys instead of updated row by row at random places."""
        marks = ",".join("?" * len(tables))
        indexes = self._s.db.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})", tables
        ).fetchall()
        for name, _ in indexes:
            self._s.db.execute(f'DROP INDEX "{name}"')
        yield
        for _, sql in indexes:
            self._s.db.execute(sql)

    def _clear(self) -> None:
        for table in ("rooms", "room_doors", "associations", "credentials", "bookings", "closures"):
            self._s.db.execute(f"DELETE FROM {table}")

    def _insert_all(self, items: Iterable[tuple[int, Item]]) -> None:
        """Items in batches of one kind (a batch at a time in memory, whatever the document's size)."""
        batch: list[tuple[int, Item]] = []
        for entry in items:
            if batch and (len(batch) >= _BATCH or type(entry[1]) is not type(batch[0][1])):
                self._insert_batch(batch)
                batch = []
            batch.append(entry)
        if batch:
            self._insert_batch(batch)

    def _insert_batch(self, batch: list[tuple[int, Item]]) -> None:
        """Plain inserts into the emptied tables: a primary key met twice is a duplicate id,
        named by its index (the rows before it in the batch went in: ``total_changes``)."""
        items = [item for _, item in batch]
        first = items[0]
        before = self._s.db.conn.total_changes
        try:
            if isinstance(first, Room):
                self._upsert(cast(list[Room], items), (), (), (), verb="INSERT")
            elif isinstance(first, Association):
                self._upsert((), cast(list[Association], items), (), (), verb="INSERT")
            elif isinstance(first, Credential):
                self._upsert((), (), cast(list[Credential], items), (), verb="INSERT")
            elif isinstance(first, Booking):
                self._upsert((), (), (), cast(list[Booking], items), verb="INSERT")
            else:
                self._replace_closures(cast(list[Closure], items))
        except sqlite3.IntegrityError:
            if isinstance(first, (Room, Association)):  # rooms write their doors too: not counted
                raise
            index, item = batch[self._s.db.conn.total_changes - before]
            raise duplicate("credentials" if isinstance(item, Credential) else "bookings", index, item.id) from None  # type: ignore[union-attr]

    def _snapshot_meta(self, timezone: str | None, policy: Policy | None, generated_at: float | None) -> None:
        self._s.put_meta("timezone", timezone)
        self._s.put_meta("policy", None if policy is None else asdict(policy))
        self._s.put_meta("generated_at", generated_at)
        # activity of bookings that are gone is of no more use
        self._s.db.execute("DELETE FROM booking_activity WHERE booking NOT IN (SELECT id FROM bookings)")
        self._s.db.execute("DELETE FROM booking_checkins WHERE booking NOT IN (SELECT id FROM bookings)")

    def _apply_snapshot(self, s: Snapshot) -> None:
        self._clear()
        self._upsert(s.rooms, s.associations, s.credentials, s.bookings)
        self._replace_closures(s.closures)
        self._snapshot_meta(s.timezone, s.policy, s.generated_at)

    def _apply_delta(self, d: Delta) -> None:
        self._s.db.conn.executemany("DELETE FROM bookings WHERE id = ?", [(i,) for i in d.delete_bookings])
        self._s.db.conn.executemany("DELETE FROM booking_known WHERE booking = ?", [(i,) for i in d.delete_bookings])
        self._s.db.conn.executemany("DELETE FROM credentials WHERE id = ?", [(i,) for i in d.delete_credentials])
        self._s.db.conn.executemany("DELETE FROM room_doors WHERE room = ?", [(r.id,) for r in d.rooms])
        self._upsert(d.rooms, d.associations, d.credentials, d.bookings)
        if d.closures is not None:
            self._s.db.execute("DELETE FROM closures")
            self._replace_closures(d.closures)
        rooms = {r[0] for r in self._s.db.execute("SELECT id FROM rooms")}
        associations = {r[0] for r in self._s.db.execute("SELECT id FROM associations")}
        # only what the delta brings can break a reference: the store was whole before
        check_references(rooms, associations, d.credentials, d.bookings, d.closures)

    def _upsert(
        self,
        rooms: Iterable[Room],
        associations: Iterable[Association],
        credentials: Iterable[Credential],
        bookings: Iterable[Booking],
        *,
        verb: str = "INSERT OR REPLACE",
    ) -> None:
        c = self._s.db.conn
        c.executemany(f"{verb} INTO rooms(id, name) VALUES (?, ?)", [(r.id, r.name) for r in rooms])
        c.executemany(
            "INSERT OR IGNORE INTO room_doors(room, door) VALUES (?, ?)",
            [(r.id, door) for r in rooms for door in r.doors],
        )
        c.executemany(f"{verb} INTO associations(id, name) VALUES (?, ?)", [(a.id, a.name) for a in associations])
        c.executemany(
            f"{verb} INTO credentials(id, card_hash, pin_hash, association, role, valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    x.id,
                    x.card and self._s.card_hash(x.card),
                    x.pin and self._s.pin_hash(x.pin),
                    x.association,
                    x.role,
                    x.valid_from,
                    x.valid_until,
                )
                for x in credentials
            ],
        )
        c.executemany(
            f"{verb} INTO bookings(id, room, association, title, start, end, status, pin_hash, unlocked_during) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    b.id,
                    b.room,
                    b.association,
                    b.title,
                    b.start,
                    b.end,
                    b.status,
                    b.pin and self._s.pin_hash(b.pin),
                    int(b.unlocked_during),
                )
                for b in bookings
            ],
        )

    def _replace_closures(self, closures: Iterable[Closure]) -> None:
        self._s.db.conn.executemany(
            "INSERT INTO closures(room, start, end, reason) VALUES (?, ?, ?, ?)",
            [(c.room, c.start, c.end, c.reason) for c in closures],
        )

    def _max_booking_s(self) -> float:
        row = self._s.db.execute("SELECT MAX(end - start) FROM bookings").fetchone()
        return row[0] or 0.0

    def why_stale(self, kind: str, version: int) -> str | None:
        """Why a document of ``version`` is ignored (PROTOCOL 2, 3), or None. A snapshot of the
        applied version is taken again after the device secret changed (to hash anew), and
        any snapshot after a ``reset_version`` command."""
        current = self._s.version
        if current is None or version > current:
            return None
        if kind == "snapshot" and (self._s.meta("any_version") or (version == current and self._s.rehash_needed)):
            return None
        return f"version {version} <= applied {current}"

    def accept_any_version(self) -> None:
        """The ``reset_version`` command: the next snapshot is applied whatever its version
        (the way out of a version published too far ahead)."""
        self._s.set_meta("any_version", True)

    def room_doors(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._s.db.execute("SELECT room, door FROM room_doors ORDER BY room, door")]

    def rooms_of_door(self, door: str) -> frozenset[str]:
        return self.standing().rooms_of_door.get(door, frozenset())

    def standing(self) -> Standing:
        """The standing facts of the schedule in force: read again only when an apply (in
        any process) has changed the stamp since they were read."""
        stamp = standing.read_stamp(self._s.db.conn)
        held = self._standing
        if held is None or held.stamp != stamp:
            held = self._standing = standing.load(self._s.db.conn, stamp, self._s.default_policy, self._s.default_timezone)
        return held

    def facts(self, door: str, now: float, *, card: str | None = None, pin: str | None = None) -> Facts:
        """Everything that bears on presenting ``card`` or ``pin`` at ``door`` at ``now``:
        the standing facts from memory, then the credentials of the hash and their
        associations' bookings near now through the index that leads to them."""
        if (card is None) == (pin is None):
            raise ValueError("give a card or a pin")
        view = self.standing()
        policy = view.policy
        day = view.local_day(now)
        rooms = view.rooms_of_door.get(door, frozenset())
        conn = self._s.db.conn
        column, digest = ("card_hash", self._s.card_hash(card)) if card is not None else ("pin_hash", self._s.pin_hash(pin or ""))
        candidates = tuple(
            Candidate(*row)
            for row in conn.execute(
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
                FROM bookings b INDEXED BY bookings_by_association LEFT JOIN booking_activity a ON a.booking = b.id
                WHERE b.association IN ({",".join("?" * len(associations))})
                  AND b.start < ? AND b.start > ? AND b.end > ? AND b.status = 'approved'
                ORDER BY b.start, b.id"""
            lowest_start = low - view.max_booking_s - 1
            for row in conn.execute(sql, [*associations, high, lowest_start, low]):
                if row[1] in rooms:
                    bookings[row[0]] = _booking_fact(row)
        if pin is not None:
            sql = """
                SELECT b.id, b.room, b.association, b.start, b.end, b.unlocked_during, COALESCE(a.leader_present, 0), 1
                FROM bookings b LEFT JOIN booking_activity a ON a.booking = b.id
                WHERE b.status = 'approved' AND b.pin_hash = ?"""
            for row in conn.execute(sql, [digest]):
                bookings[row[0]] = _booking_fact(row)
        for bid, b in bookings.items():
            if b.unlocked_during:
                bookings[bid] = replace(b, doors=view.doors_of_room.get(b.room, ()))
        return Facts(
            door=door,
            rooms=rooms,
            credentials=candidates,
            bookings=tuple(bookings.values()),
            closures=view.closures_at(now),
            policy=policy,
            day=day,
        )

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        rows = list(self._s.db.rows("bookings", "id = ?", [booking_id]))
        return rows[0] if rows else None


def _booking_fact(row: tuple[Any, ...]) -> BookingFact:
    bid, room, association, start, end, unlocked, leader, pin_match = row
    return BookingFact(bid, room, association, start, end, bool(unlocked), bool(leader), bool(pin_match))
