"""The access decision: a pure function of now, the facts about one presentation, and
the agent's conditions. No IO, no clock: every input is an argument, so a table of
cases tests it completely.

One card may belong to several credentials (a person in two associations) and one
PIN may match several credentials or bookings; each candidate is judged alone, the
first that is granted wins, and otherwise the most telling denial is reported.
"""

from __future__ import annotations

from collections.abc import Mapping

from haldor.protocol import DENIAL_PRECEDENCE, Reason, Role

from .model import BookingFact, Candidate, ClosureFact, Conditions, Decision, Facts


def decide(now: float, facts: Facts, conditions: Conditions, *, pin: bool = False) -> Decision:
    """Grant or deny one card (``pin=False``) or typed PIN (``pin=True``) at ``facts.door``.

    A caretaker passes lockdown, closures, an untrusted clock and the booking checks, but
    never ``rate_limited`` nor ``expired``: validity applies to every credential, judged by
    the clock as it is. An expired caretaker is one more denied candidate; the lockdown
    exemption is the caretaker's role, so during a lockdown the reason reported for them
    is ``expired`` (what would have let them in), not ``lockdown``.
    """
    caretakers = [c for c in facts.credentials if c.role == Role.CARETAKER]
    if caretakers and conditions.rate_limited:
        return Decision(False, Reason.RATE_LIMITED, credential=caretakers[0].id, role=Role.CARETAKER)
    valid_caretaker = next((c for c in caretakers if _valid(now, c)), None)
    if valid_caretaker is not None:
        return Decision(True, None, credential=valid_caretaker.id, role=Role.CARETAKER)
    expired_caretaker = _expired(caretakers[0]) if caretakers else None
    first = facts.credentials[0] if facts.credentials else None
    known = {"credential": first.id, "role": first.role} if first else {}
    if conditions.lockdown:
        return expired_caretaker or Decision(False, Reason.LOCKDOWN, **known)
    if conditions.rate_limited:
        return Decision(False, Reason.RATE_LIMITED, **known)
    pin_bookings = [b for b in facts.bookings if b.pin_match] if pin else []
    if not facts.credentials and not pin_bookings:
        return Decision(False, Reason.WRONG_PIN if pin else Reason.UNKNOWN_CARD)

    verdicts = [
        _expired(c) if c.role == Role.CARETAKER else _judge_credential(now, c, facts, conditions) for c in facts.credentials
    ]
    verdicts += [_judge_booking_pin(now, b, facts, conditions) for b in pin_bookings]
    for verdict in verdicts:
        if verdict.granted:
            return verdict
    return min(verdicts, key=lambda v: DENIAL_PRECEDENCE.index(v.reason))


def window(booking: BookingFact, facts: Facts) -> tuple[float, float]:
    """The booking's access window [opens, closes) as instants."""
    p = facts.policy
    return booking.start - p.grace_before_min * 60, booking.end + p.grace_after_min * 60


def closed_by(now: float, room: str, closures: tuple[ClosureFact, ...]) -> ClosureFact | None:
    """The closure that covers ``room`` at ``now`` (``room: null`` covers the site)."""
    for c in closures:
        if c.start <= now < c.end and (c.room is None or c.room == room):
            return c
    return None


def _valid(now: float, c: Candidate) -> bool:
    """Inside ``valid_from``/``valid_until`` (both inclusive), by the clock as it is."""
    return (c.valid_from is None or now >= c.valid_from) and (c.valid_until is None or now <= c.valid_until)


def _expired(c: Candidate) -> Decision:
    return Decision(False, Reason.EXPIRED, credential=c.id, role=c.role)


def _judge_credential(now: float, c: Candidate, facts: Facts, conditions: Conditions) -> Decision:
    ident = {"credential": c.id, "role": c.role}
    if not _valid(now, c):
        return _expired(c)
    if not conditions.clock_trusted:
        return Decision(False, Reason.CLOCK_UNTRUSTED, **ident)
    own = [b for b in facts.bookings if b.association == c.association and b.room in facts.rooms]
    return _judge_bookings(now, own, facts, ident, needs_leader=facts.policy.leader_first and c.role == Role.MEMBER)


def _judge_booking_pin(now: float, b: BookingFact, facts: Facts, conditions: Conditions) -> Decision:
    if not conditions.clock_trusted:
        return Decision(False, Reason.CLOCK_UNTRUSTED)
    return _judge_bookings(now, [b] if b.room in facts.rooms else [], facts, {}, needs_leader=False)


def _judge_bookings(
    now: float, bookings: list[BookingFact], facts: Facts, ident: Mapping[str, str | None], *, needs_leader: bool
) -> Decision:
    current = sorted((b for b in bookings if _in_window(now, b, facts)), key=lambda b: b.start)
    if current:
        open_ = [b for b in current if closed_by(now, b.room, facts.closures) is None]
        if not open_:
            return Decision(False, Reason.CLOSED, booking=current[0].id, **ident)
        if needs_leader:
            led = [b for b in open_ if b.leader_present]
            if not led:
                return Decision(False, Reason.NO_BOOKING, booking=open_[0].id, **ident)
            open_ = led
        return Decision(True, None, booking=open_[0].id, **ident)
    day_start, day_end = facts.day
    today = sorted((b for b in bookings if b.start < day_end and b.end > day_start), key=lambda b: abs(b.start - now))
    if today:
        return Decision(False, Reason.OUTSIDE_WINDOW, booking=today[0].id, **ident)
    return Decision(False, Reason.NO_BOOKING, **ident)


def _in_window(now: float, b: BookingFact, facts: Facts) -> bool:
    opens, closes = window(b, facts)
    return opens <= now < closes
