"""Check-in at the kiosk reader, and the bookings' no-show and usage reports. Pure.

A badge at a reader with no door checks the credential in to its association's
booking that is on now or starts within the grace window. Every other case gets
an answer a person understands: no booking today, the booking is later, it has
ended, the card is unknown or expired.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from haldor.protocol import Role
from haldor.records import record

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
RATE_LIMITED = "rate_limited"
WELCOME = (CHECKED_IN, ALREADY, CARETAKER)  # the answers with a green light


@record
class TodayBooking:
    """An approved booking of one of the candidates' associations on the local day."""

    id: str
    association: str
    start: float
    end: float
    checked_in: bool = False  # this credential already checked in to it


@record
class CheckinFacts:
    credentials: tuple[Candidate, ...]
    bookings: tuple[TodayBooking, ...]
    policy: Policy


@record
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


def decide_checkin(
    now: float, facts: CheckinFacts, *, pin: bool = False, clock_trusted: bool = True, rate_limited: bool = False
) -> CheckinAnswer:
    if rate_limited:  # guessing at the kiosk: it would tell a right PIN (a caretaker's) from a wrong one
        return CheckinAnswer(RATE_LIMITED)
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


Span = tuple[float, float]


@record
class BookingRecord:
    """An approved booking with what the agent saw of it: entries and check-ins, the
    closures of its room over it, and the spans of time the agent was watching (running,
    with a schedule and a clock it trusts)."""

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
    closures: tuple[Span, ...] = ()
    observed: tuple[Span, ...] = ()


def seen_spans(spans: Iterable[Span], known_since: float) -> tuple[Span, ...]:
    """What the agent saw of one booking: its spans of watching, from the moment the
    booking came into its schedule. A booking entered after it ended was never seen (no
    no-show, ``observed`` 0); one that came halfway was seen for the rest."""
    return tuple((max(a, known_since), b) for a, b in spans if b > known_since)


def covered(start: float, end: float, spans: Iterable[Span]) -> float:
    """Seconds of [start, end) inside the union of ``spans``."""
    total, reach = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            total += b - a
            reach = b
    return total


def open_parts(r: BookingRecord) -> list[Span]:
    """The parts of the booking its room was not closed."""
    parts, at = [], r.start
    for a, b in sorted(r.closures):
        if b <= at or a >= r.end:
            continue
        if a > at:
            parts.append((at, a))
        at = max(at, b)
    if at < r.end:
        parts.append((at, r.end))
    return parts


def wholly_closed(r: BookingRecord) -> bool:
    """Closed for the whole booking: the association could not use it, nobody is to blame."""
    return not open_parts(r)


def no_show_window(r: BookingRecord, no_show_after_min: int) -> Span | None:
    """From the first moment the room was open for the booking to the no-show deadline
    (within the booking); None when it was never open."""
    parts = open_parts(r)
    if not parts:
        return None
    first = parts[0][0]
    return first, min(r.end, first + no_show_after_min * 60)


def watched(r: BookingRecord, window: Span) -> bool:
    """The agent watched the whole window: only then can nobody-came be told from
    we-did-not-see (a second of slack for the edges of a span)."""
    return covered(window[0], window[1], r.observed) >= (window[1] - window[0]) - 1


def present(r: BookingRecord) -> bool:
    """Somebody came: a door entry of the booking or any check-in to it."""
    return r.entries > 0 or r.checkins > 0


def no_show(r: BookingRecord, no_show_after_min: int) -> bool:
    """Nobody came while the room was open, and the agent watched from its opening to
    the deadline."""
    window = no_show_window(r, no_show_after_min)
    return not present(r) and window is not None and watched(r, window)


def used(r: BookingRecord) -> bool:
    """PROTOCOL 2: a leader's check-in marks a booking as used; so does a granted door
    entry for it (a member of the association in the building)."""
    return r.leader_checked_in or r.entries > 0


def due_reports(now: float, records: list[BookingRecord], no_show_after_min: int) -> list[tuple[str, BookingRecord]]:
    """("no_show" | "usage", record) for every report that is due and not yet made. A
    booking closed throughout gets no no-show, nor one the agent did not watch from the
    room's opening to the deadline (it was off, or had no schedule or clock)."""
    due: list[tuple[str, BookingRecord]] = []
    for r in records:
        window = no_show_window(r, no_show_after_min)
        if not r.no_show_reported and window is not None and now >= window[1] and no_show(r, no_show_after_min):
            due.append(("no_show", r))  # also at the end, when nobody looked before
        if not r.usage_reported and now >= r.end:
            due.append(("usage", r))
    return due


def usage_of(r: BookingRecord, no_show_after_min: int = 20) -> dict[str, Any]:
    """The `usage` object of PROTOCOL 5 (``first_entry`` and ``start`` as instants; the
    caller formats them). Beyond the protocol's fields it names the booking's room,
    association and start, whether it was a no-show, whether its room was closed
    throughout (``closed``; ``closed_min`` of it were), and how much of it the agent
    observed (``observed``, 0 to 1): "nobody came" and "we did not see" are not the same."""
    length = r.end - r.start
    return {
        "booked_min": round(length / 60),
        "first_entry": r.first_entry,
        "entries": r.entries,
        "checkins": r.checkins,
        "used": used(r),
        "no_show": no_show(r, no_show_after_min),
        "room": r.room,
        "association": r.association,
        "start": r.start,
        "closed": wholly_closed(r),
        "closed_min": round(covered(r.start, r.end, r.closures) / 60),
        "observed": round(covered(r.start, r.end, r.observed) / length, 2) if length > 0 else 1.0,
    }
