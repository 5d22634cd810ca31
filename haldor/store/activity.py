"""Booking activity: entries, check-ins and the reports made of them (no-show, usage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from haldor.access.checkin import BookingRecord, CheckinFacts, Span, TodayBooking, seen_spans
from haldor.access.model import Candidate
from haldor.protocol import Role

if TYPE_CHECKING:
    from .database import Store


class Activity:
    def __init__(self, store: Store) -> None:
        self._s = store

    def note_entry(self, booking: str, role: str | None, at: float, *, checkin: bool = False) -> None:
        """Count a granted entry or a check-in towards a booking's use."""
        with self._s.write():
            self._s.db.execute(
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
        with self._s.write():
            first = (
                self._s.db.execute(
                    "INSERT OR IGNORE INTO booking_checkins(booking, credential, role, at) VALUES (?, ?, ?, ?)",
                    [booking, credential, role, at],
                ).rowcount
                == 1
            )
            if first:
                self.note_entry(booking, role, at, checkin=True)
        return first

    def checkin_facts(self, now: float, *, card: str | None = None, pin: str | None = None) -> CheckinFacts:
        """The credentials of a card or PIN and their associations' approved bookings today."""
        column, digest = ("card_hash", self._s.card_hash(card)) if card is not None else ("pin_hash", self._s.pin_hash(pin or ""))
        candidates = tuple(
            Candidate(*row)
            for row in self._s.db.execute(
                f"SELECT id, association, role, valid_from, valid_until FROM credentials WHERE {column} = ? ORDER BY id", [digest]
            )
        )
        associations = sorted({c.association for c in candidates if c.association})
        start, end = self._s.local_day(now)
        bookings: tuple[TodayBooking, ...] = ()
        if associations:
            ids = [c.id for c in candidates]
            bookings = tuple(
                TodayBooking(r[0], r[1], r[2], r[3], bool(r[4]))
                for r in self._s.db.execute(
                    f"""SELECT b.id, b.association, b.start, b.end,
                           EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id
                                  AND c.credential IN ({",".join("?" * len(ids))}))
                    FROM bookings b WHERE b.status = 'approved' AND b.start < ? AND b.end > ?
                      AND b.association IN ({",".join("?" * len(associations))}) ORDER BY b.start, b.id""",
                    [*ids, end, start, *associations],
                )
            )
        return CheckinFacts(candidates, bookings, self._s.policy)

    def observe(self, since: float, until: float) -> None:
        """The agent has been watching from ``since`` (its run's span) to ``until``."""
        with self._s.write():
            self._s.db.execute(
                "INSERT INTO observed(start, end) VALUES (?, ?) ON CONFLICT(start) DO UPDATE SET end = MAX(end, excluded.end)",
                [since, until],
            )

    def forget_observed(self, before: float) -> None:
        with self._s.write():
            self._s.db.execute("DELETE FROM observed WHERE end < ?", [before])

    def booking_records(self, now: float, since: float, watching: Span | None = None) -> list[BookingRecord]:
        """Approved bookings that started since ``since`` and still owe a report, with the
        closures over them and the spans the agent watched (``watching``: the span of the
        run asking, up to now, whether or not it is stored yet)."""
        closures = self._s.db.execute(
            "SELECT room, start, end FROM closures WHERE end > ? AND start < ?", [since, now]
        ).fetchall()
        observed = [tuple(r) for r in self._s.db.execute("SELECT start, end FROM observed WHERE end > ?", [since])]
        if watching is not None:
            observed.append(watching)
        spans = tuple((float(a), float(b)) for a, b in observed)

        def closed(room: str | None, start: float, end: float) -> tuple[Span, ...]:
            return tuple((c[1], c[2]) for c in closures if (c[0] is None or c[0] == room) and c[1] < end and c[2] > start)

        return [
            BookingRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                bool(r[6]),
                bool(r[7]),
                bool(r[8]),
                r[9],
                r[10],
                closed(r[9], r[1], r[2]),
                seen_spans(spans, r[11]),
            )
            for r in self._s.db.execute(
                """SELECT b.id, b.start, b.end, COALESCE(a.entries, 0), COALESCE(a.checkins, 0), a.first_entry,
                      EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id AND c.role = 'leader'),
                      r.no_show_at IS NOT NULL, r.usage_at IS NOT NULL, b.room, b.association, COALESCE(k.since, 0)
               FROM bookings b
               LEFT JOIN booking_activity a ON a.booking = b.id
               LEFT JOIN booking_reports r ON r.booking = b.id
               LEFT JOIN booking_known k ON k.booking = b.id
               WHERE b.status = 'approved' AND b.start >= ? AND b.start <= ? AND r.usage_at IS NULL
               ORDER BY b.start, b.id""",
                [since, now],
            )
        ]

    def mark_reported(self, kind: str, booking: str, at: float) -> None:
        column = {"no_show": "no_show_at", "usage": "usage_at"}[kind]
        with self._s.write():
            self._s.db.execute(
                f"INSERT INTO booking_reports(booking, {column}) VALUES (?, ?) "
                f"ON CONFLICT(booking) DO UPDATE SET {column} = excluded.{column}",
                [booking, at],
            )
