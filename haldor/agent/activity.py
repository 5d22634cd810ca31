"""Who came: badges at the kiosk reader (check-in) and the no-show and usage reports.

The store answers what is committed; what the loop has decided and not yet stored
(``pending``: the effects of the batches still on their way) counts too, so a second
badge a moment after the first is "already checked in", and a report is not made
twice nor before an entry that would change it is stored.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from haldor import cards
from haldor.access import checkin
from haldor.access.controller import Controller, Emit, Entered, Feedback
from haldor.access.model import Facts
from haldor.drivers.base import CardRead, PinRead
from haldor.protocol import Event, Role
from haldor.store import Store

from .messages import CheckedIn, Reported

log = logging.getLogger(__name__)


def with_unwritten_leaders(facts: Facts, pending: list) -> Facts:
    """A leader's entry still on its way to the store already admits the members (leader_first)."""
    leaders = {e.booking for e in pending if isinstance(e, (Entered, CheckedIn)) and e.role == Role.LEADER}
    if not leaders or not any(b.id in leaders and not b.leader_present for b in facts.bookings):
        return facts
    return dataclasses.replace(
        facts, bookings=tuple(dataclasses.replace(b, leader_present=True) if b.id in leaders else b for b in facts.bookings)
    )


def _with_unwritten_checkins(facts: checkin.CheckinFacts, pending: list) -> checkin.CheckinFacts:
    """A check-in still on its way to the store counts: a second badge is "already"."""
    ids = {c.id for c in facts.credentials}
    done = {e.booking for e in pending if isinstance(e, CheckedIn) and e.credential in ids}
    if not done:
        return facts
    return dataclasses.replace(
        facts, bookings=tuple(dataclasses.replace(b, checked_in=True) if b.id in done else b for b in facts.bookings)
    )


class Enrolment:
    """A caretaker's card at the check-in reader opens enrolment for a minute: only then
    does an unknown card's number go to the screen, for the caretaker to type into the
    booking system. At any other time the screen by the entrance is public, and for a
    125 kHz card the number is all it takes to copy it."""

    WINDOW_S = 60.0

    def __init__(self) -> None:
        self.until = 0.0

    def open(self, now: float) -> None:
        self.until = now + self.WINDOW_S

    def is_open(self, now: float) -> bool:
        return now < self.until


def check_in(
    store: Store,
    read: CardRead | PinRead,
    now: float,
    *,
    clock_trusted: bool,
    pending: list,
    kiosk: Any = None,
    enrolment: Enrolment | None = None,
    controller: Controller | None = None,
) -> list:
    """A badge at the kiosk reader (a reader with no door): the effects, and the screen's
    answer. Its wrong PINs and unknown cards count as guesses as a door reader's do: its
    answer tells a right PIN from a wrong one."""
    pin = isinstance(read, PinRead)
    limited = controller is not None and controller.guesses.refused(read.reader, now, pin=pin)
    if isinstance(read, PinRead):
        facts = store.activity.checkin_facts(now, pin=read.pin)
    else:
        facts = store.activity.checkin_facts(now, card=read.card)
    facts = _with_unwritten_checkins(facts, pending)
    answer = checkin.decide_checkin(now, facts, pin=pin, clock_trusted=clock_trusted, rate_limited=limited)
    log.info(
        "%s at kiosk reader %s: %s (credential %s, booking %s)",
        "PIN" if pin else "card",
        read.reader,
        answer.outcome,
        answer.credential,
        answer.booking,
    )
    effects: list = []
    if answer.outcome == checkin.CARETAKER and enrolment is not None:
        enrolment.open(now)
        log.info("enrolment open at kiosk reader %s for %.0f s", read.reader, Enrolment.WINDOW_S)
    if answer.outcome == checkin.CHECKED_IN and answer.booking is not None and answer.credential is not None:
        effects += [
            CheckedIn(answer.booking, answer.credential, answer.role),
            Emit(Event.CHECKIN, reader=read.reader, credential=answer.credential, booking=answer.booking),
        ]
    effects.append(Feedback(read.reader, answer.welcome))
    if controller is not None and answer.outcome in (checkin.WRONG_PIN, checkin.UNKNOWN_CARD):
        effects += controller.guess(now, read.reader, None, pin=pin, reason=answer.outcome)
    if kiosk is not None:
        enrolling = enrolment is not None and enrolment.is_open(now)
        kiosk.answer(kiosk_answer(answer, read, now, enrolling=enrolling))
    return effects


def due_reports(store: Store, now: float, pending: list, watching: tuple[float, float] | None = None) -> list:
    """No-show and usage, each exactly once: the event and the mark in one transaction.
    ``watching``: this run's span of watching, up to now."""
    since = store.meta("reports_since")
    if since is None:
        return []
    if any(isinstance(e, (Entered, CheckedIn)) for e in pending):
        return []  # an entry or check-in on its way to the store would change the verdict: next round
    effects: list = []
    unwritten = {(e.kind, e.booking) for e in pending if isinstance(e, Reported)}
    after = store.policy.no_show_after_min
    names: dict[str, dict[str, str]] = {}
    for kind, record in checkin.due_reports(now, store.activity.booking_records(now, since, watching), after):
        if (kind, record.id) in unwritten:
            continue
        if kind == "no_show":
            effects.append(Emit(Event.BOOKING_NO_SHOW, booking=record.id))
        else:
            usage = checkin.usage_of(record, after)
            if usage["first_entry"] is not None:
                usage["first_entry"] = store.iso(usage["first_entry"])
            usage["start"] = store.iso(usage["start"])
            # names for the municipality's reports (the schedule's own; never a person's), read once a round
            names = names or {table: store.names(table) for table in ("rooms", "associations")}
            usage["room_name"] = names["rooms"].get(usage["room"], usage["room"])
            usage["association_name"] = names["associations"].get(usage["association"], usage["association"])
            effects.append(Emit(Event.BOOKING_USAGE, booking=record.id, extra={"usage": usage}))
        effects.append(Reported(kind, record.id))
    return effects


def kiosk_answer(
    answer: checkin.CheckinAnswer, read: CardRead | PinRead, now: float, *, enrolling: bool = False
) -> dict[str, Any]:
    """What the kiosk shows for a badge at its reader. Ids only: the kiosk looks up the
    names. An unknown card's number is shown only while a caretaker has enrolment open
    (``enrolling``, with ``enrol_until``); it is never stored."""
    doc: dict[str, Any] = {
        "at": now,
        "outcome": answer.outcome,
        "reader": read.reader,
        "association": answer.association,
        "booking": answer.booking,
        "starts_at": answer.starts_at,
        "role": answer.role,
        "good": answer.welcome,
    }
    if enrolling and answer.outcome == checkin.UNKNOWN_CARD and isinstance(read, CardRead):
        doc["card"] = read.card
        doc["card_reversed"] = cards.reversed_uid(read.card)
    if answer.outcome == checkin.CARETAKER and enrolling:
        doc["enrol_open"] = True  # the screen says: hold the new card to the reader
    return doc
