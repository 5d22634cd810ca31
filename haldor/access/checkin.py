"""Check-in at the kiosk reader, and the bookings' no-show and usage reports. Pure.

A badge at a reader with no door checks the credential in to its association's
booking that is on now or starts within the grace window. Every other case gets
an answer a person understands: no booking today, the booking is later, it has
ended, the card is unknown or expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haldor.protocol import Role

from .model import Candidate, Policy

# outcomes, in the words of the kiosk's translation table (texts.py: "checkin.<outcome>")
CHECKED_IN = "checked_in"
ALREADY = "already"
LATER = "later"
ENDED = "ended"
NO_BOOKING_TODAY = "no_booking_today"
UNKNOWN_CARD = "unknown_card"
WRONG_PIN = "wrong_pin"
EXPIRED = "expired"
CARETAKER = "caretaker"
CLOCK_UNTRUSTED = "clock_untrusted"
WELCOME = (CHECKED_IN, ALREADY, CARETAKER)  # the answers with a green light


@dataclass(frozen=True, slots=True)
class TodayBooking:
    """An approved booking of one of the candidates' associations on the local day."""

    id: str
    association: str
    start: float
    end: float
    checked_in: bool = False  # this credential already checked in to it


@dataclass(frozen=True, slots=True)
class CheckinFacts:
    credentials: tuple[Candidate, ...]
    bookings: tuple[TodayBooking, ...]
    policy: Policy


@dataclass(frozen=True, slots=True)
class CheckinAnswer:
    outcome: str
    credential: str | None = None
    role: str | None = None
    association: str | None = None
    booking: str | None = None
    starts_at: float | None = None

    @property
    def welcome(self) -> bool:
        return self.outcome in WELCOME


def _valid(c: Candidate, now: float) -> bool:
    return (c.valid_from is None or now >= c.valid_from) and (c.valid_until is None or now <= c.valid_until)


def decide_checkin(now: float, facts: CheckinFacts, *, pin: bool = False, clock_trusted: bool = True) -> CheckinAnswer:
    if not facts.credentials:
        return CheckinAnswer(WRONG_PIN if pin else UNKNOWN_CARD)
    valid = [c for c in facts.credentials if _valid(c, now)]
    if not valid:
        c = facts.credentials[0]
        return CheckinAnswer(EXPIRED, credential=c.id, role=c.role, association=c.association)
    caretaker = next((c for c in valid if c.role == Role.CARETAKER), None)
    if caretaker is not None:
        return CheckinAnswer(CARETAKER, credential=caretaker.id, role=Role.CARETAKER)
    if not clock_trusted:
        return CheckinAnswer(CLOCK_UNTRUSTED, credential=valid[0].id, role=valid[0].role, association=valid[0].association)
    by_association = {c.association: c for c in valid}
    before = facts.policy.grace_before_min * 60
    mine = sorted((b for b in facts.bookings if b.association in by_association), key=lambda b: (b.start, b.id))
    open_now = [b for b in mine if b.start - before <= now < b.end]
    if open_now:
        b = open_now[0]
        c = by_association[b.association]
        return CheckinAnswer(
            ALREADY if b.checked_in else CHECKED_IN,
            credential=c.id,
            role=c.role,
            association=b.association,
            booking=b.id,
            starts_at=b.start,
        )
    later = [b for b in mine if b.start - before > now]
    c = valid[0]
    if later:
        b = later[0]
        return CheckinAnswer(
            LATER,
            credential=by_association[b.association].id,
            role=by_association[b.association].role,
            association=b.association,
            booking=b.id,
            starts_at=b.start,
        )
    if mine:
        return CheckinAnswer(ENDED, credential=c.id, role=c.role, association=mine[-1].association, booking=mine[-1].id)
    return CheckinAnswer(NO_BOOKING_TODAY, credential=c.id, role=c.role, association=c.association)


# --- no-show and usage ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookingRecord:
    """An approved booking with what the agent saw of it."""

    id: str
    start: float
    end: float
    entries: int
    checkins: int
    first_entry: float | None
    leader_checked_in: bool
    no_show_reported: bool
    usage_reported: bool
    room: str | None = None
    association: str | None = None


def present(r: BookingRecord) -> bool:
    """Somebody came: a door entry of the booking or any check-in to it."""
    return r.entries > 0 or r.checkins > 0


def used(r: BookingRecord) -> bool:
    """PROTOCOL 2: a leader's check-in marks a booking as used; so does a granted door
    entry for it (a member of the association in the building)."""
    return r.leader_checked_in or r.entries > 0


def due_reports(now: float, records: list[BookingRecord], no_show_after_min: int) -> list[tuple[str, BookingRecord]]:
    """("no_show" | "usage", record) for every report that is due and not yet made."""
    due: list[tuple[str, BookingRecord]] = []
    for r in records:
        if not r.no_show_reported and not present(r) and now >= r.start + no_show_after_min * 60 and now < r.end:
            due.append(("no_show", r))
        if not r.usage_reported and now >= r.end:
            if not r.no_show_reported and not present(r):
                due.append(("no_show", r))  # ended before anyone looked: it was a no-show all the same
            due.append(("usage", r))
    return due


def usage_of(r: BookingRecord) -> dict[str, Any]:
    """The `usage` object of PROTOCOL 5 (``first_entry`` and ``start`` as instants; the
    caller formats them). Beyond the protocol's fields it names the booking's room,
    association and start, and whether it was a no-show, so that a monitor can count
    usage per room and association without reading schedules (which hold credentials)."""
    return {
        "booked_min": round((r.end - r.start) / 60),
        "first_entry": r.first_entry,
        "entries": r.entries,
        "checkins": r.checkins,
        "used": used(r),
        "no_show": not present(r),
        "room": r.room,
        "association": r.association,
        "start": r.start,
    }
