"""Check-in at the kiosk reader, no-shows and usage: the pure rules, then the agent with a
fake clock and restarts in the middle of a booking."""

from __future__ import annotations

import json

import pytest

from haldor.access import checkin
from haldor.access.checkin import BookingRecord, CheckinFacts, TodayBooking, decide_checkin, due_reports
from haldor.access.model import Candidate, Policy
from haldor.access.schedule import parse_document
from haldor.agent.messages import Tick
from haldor.clock import FakeClock
from haldor.drivers.base import CardRead, PinRead

from .helpers import CARD, CARETAKER_CARD, LEADER_CARD, SITE, booking, local, snapshot
from .rig import Rig, step

MEMBER = Candidate("c1001", "a17", "member")
T0 = local(2026, 11, 25, 17, 0)


def _facts(*bookings: TodayBooking, credentials=(MEMBER,)) -> CheckinFacts:
    return CheckinFacts(tuple(credentials), tuple(bookings), Policy(grace_before_min=15))


@pytest.mark.parametrize(
    "now, facts, outcome",
    [
        (T0, _facts(credentials=()), "unknown_card"),
        (T0, _facts(credentials=(Candidate("c1", "a17", "member", valid_until=T0 - 1),)), "expired"),
        (T0, _facts(credentials=(Candidate("c9", None, "caretaker"),)), "caretaker"),
        (T0 - 15 * 60, _facts(TodayBooking("b1", "a17", T0, T0 + 3600)), "checked_in"),  # within the grace window
        (T0 - 16 * 60, _facts(TodayBooking("b1", "a17", T0, T0 + 3600)), "later"),
        (T0 + 1800, _facts(TodayBooking("b1", "a17", T0, T0 + 3600, checked_in=True)), "already"),
        (T0 + 3600, _facts(TodayBooking("b1", "a17", T0, T0 + 3600)), "ended"),
        (T0, _facts(TodayBooking("b2", "a18", T0, T0 + 3600)), "no_booking_today"),  # another association's
        (T0, _facts(), "no_booking_today"),
    ],
)
def test_every_badge_at_the_kiosk_gets_an_answer(now, facts, outcome):
    assert decide_checkin(now, facts).outcome == outcome


def test_a_pin_that_matches_nothing_and_an_untrusted_clock():
    assert decide_checkin(T0, _facts(credentials=()), pin=True).outcome == "wrong_pin"
    assert decide_checkin(T0, _facts(TodayBooking("b1", "a17", T0, T0 + 3600)), clock_trusted=False).outcome == "clock_untrusted"


def test_the_earliest_open_booking_is_the_one_checked_in():
    answer = decide_checkin(
        T0 + 10, _facts(TodayBooking("b2", "a17", T0 + 600, T0 + 3600), TodayBooking("b1", "a17", T0, T0 + 900))
    )
    assert (answer.outcome, answer.booking) == ("checked_in", "b1")
    later = decide_checkin(
        T0 - 3600, _facts(TodayBooking("b2", "a17", T0 + 600, T0 + 3600), TodayBooking("b1", "a17", T0, T0 + 900))
    )
    assert (later.outcome, later.booking, later.starts_at) == ("later", "b1", T0)


def _record(**kw) -> BookingRecord:
    base = dict(
        id="b1",
        start=T0,
        end=T0 + 7200,
        entries=0,
        checkins=0,
        first_entry=None,
        leader_checked_in=False,
        no_show_reported=False,
        usage_reported=False,
        observed=((T0 - 3600, T0 + 86400),),  # the agent watched all along
    )
    return BookingRecord(**{**base, **kw})


def test_no_show_and_usage_fall_due_once():
    assert due_reports(T0 + 19 * 60, [_record()], 20) == []
    assert [k for k, _ in due_reports(T0 + 20 * 60, [_record()], 20)] == ["no_show"]
    assert due_reports(T0 + 20 * 60, [_record(entries=1)], 20) == []
    assert due_reports(T0 + 20 * 60, [_record(checkins=1)], 20) == []  # a member's check-in is presence
    assert [k for k, _ in due_reports(T0 + 7200, [_record(no_show_reported=True)], 20)] == ["usage"]
    assert [k for k, _ in due_reports(T0 + 7200, [_record()], 20)] == ["no_show", "usage"]  # nobody ever looked before
    assert due_reports(T0 + 7200, [_record(no_show_reported=True, usage_reported=True)], 20) == []


def test_used_means_a_leader_checked_in_or_somebody_entered():
    assert not checkin.used(_record(checkins=2))  # members checking in, nobody through a door
    assert checkin.used(_record(checkins=1, leader_checked_in=True))
    assert checkin.used(_record(entries=3))
    assert checkin.usage_of(_record(entries=3, checkins=1, first_entry=T0 + 60, room="gym-a", association="a17")) == {
        "booked_min": 120,
        "first_entry": T0 + 60,
        "entries": 3,
        "checkins": 1,
        "used": True,
        "no_show": False,
        "room": "gym-a",
        "association": "a17",
        "start": T0,
        "closed": False,
        "closed_min": 0,
        "observed": 1.0,
    }


def test_a_booking_closed_throughout_is_nobodys_no_show():
    closed = _record(closures=((T0 - 86400, T0 + 86400),))
    assert [k for k, _ in due_reports(T0 + 7200, [closed], 20)] == ["usage"]
    usage = checkin.usage_of(closed)
    assert usage["closed"] is True and usage["closed_min"] == 120 and usage["no_show"] is False


def test_a_partly_closed_booking_counts_from_when_the_room_opens():
    # closed for the first hour: the no-show deadline is 20 minutes after the room opens
    late = _record(closures=((T0 - 600, T0 + 3600),))
    assert due_reports(T0 + 3600 + 19 * 60, [late], 20) == []
    assert [k for k, _ in due_reports(T0 + 3600 + 20 * 60, [late], 20)] == ["no_show"]
    usage = checkin.usage_of(late)
    assert usage["closed"] is False and usage["closed_min"] == 60 and usage["no_show"] is True


def test_what_the_agent_did_not_watch_is_not_a_no_show():
    # off from before the start until 10 minutes in: nobody can say whether they came
    late_start = _record(observed=((T0 + 600, T0 + 86400),))
    assert [k for k, _ in due_reports(T0 + 7200, [late_start], 20)] == ["usage"]
    usage = checkin.usage_of(late_start)
    assert usage["no_show"] is False and usage["observed"] == 0.92 and usage["used"] is False
    # watched from the start to the deadline, then off: that was a no-show
    early = _record(observed=((T0 - 60, T0 + 21 * 60),))
    assert [k for k, _ in due_reports(T0 + 7200, [early], 20)] == ["no_show", "usage"]
    assert checkin.usage_of(early)["observed"] == 0.17
    assert checkin.covered(0, 100, [(10, 30), (20, 40), (90, 200)]) == 40


# --- in the agent ----------------------------------------------------------------------


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path, schedule=False)  # its only schedule came the day before its bookings (below)
    doc = snapshot(
        43,
        closures=[],
        bookings=[
            booking("b881", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00"),
            booking("b882", "2026-11-25T20:00:00+01:00", "2026-11-25T21:00:00+01:00", association="a18", room="gym-b"),
            booking("b883", "2026-11-25T21:00:00+01:00", "2026-11-25T22:00:00+01:00"),
        ],
    )
    r.store.set_meta("reports_since", None)
    r.store.schedule.apply(parse_document(doc), T0 - 86400)  # the schedule came the day before
    r.store.set_meta("reports_since", T0 - 86400)
    yield r
    r.close()


def _agent(rig, at: float):
    clock = FakeClock(at)
    agent = rig.agent(clock)
    answers: list[dict] = []

    class Kiosk:
        def answer(self, doc):
            answers.append(doc)

        def status(self, doc):
            pass

    agent.kiosk = Kiosk()
    agent.start()
    agent.settle()
    return agent, clock, answers


def test_a_leader_checks_in_at_the_kiosk_and_the_booking_is_used(rig):
    agent, clock, answers = _agent(rig, T0 - 600)
    step(agent, CardRead("kiosk", LEADER_CARD))
    (event,) = rig.events("checkin")
    assert (event["reader"], event["credential"], event["booking"]) == ("kiosk", "c1002", "b881")
    assert answers[-1]["outcome"] == "checked_in" and answers[-1]["booking"] == "b881" and "card" not in answers[-1]
    step(agent, CardRead("kiosk", LEADER_CARD))
    assert answers[-1]["outcome"] == "already" and len(rig.events("checkin")) == 1  # counted once
    step(agent, PinRead("kiosk", "4821"))  # a member's PIN at the kiosk
    assert answers[-1]["outcome"] == "checked_in" and len(rig.events("checkin")) == 2
    step(agent, CardRead("kiosk", "uid:04DEADBEEF0102"))
    assert answers[-1]["outcome"] == "unknown_card" and "card" not in answers[-1]  # a public screen: no number
    step(agent, CardRead("kiosk", CARETAKER_CARD))  # the caretaker opens enrolment for a minute ...
    assert answers[-1]["outcome"] == "caretaker" and answers[-1]["enrol_open"] is True
    clock.advance(30)
    step(agent, CardRead("kiosk", "uid:04DEADBEEF0102"))  # ... and the new card's number is shown
    assert answers[-1]["card"] == "uid:04DEADBEEF0102" and answers[-1]["card_reversed"] == "uid:0201EFBEADDE04"
    assert not any("04DEADBEEF0102" in str(e) for e in rig.events())  # shown, never stored
    clock.advance(31)
    step(agent, CardRead("kiosk", "uid:04DEADBEEF0102"))
    assert "card" not in answers[-1]  # the minute is over
    assert not rig.pin(17).state  # a kiosk reader never opens a door
    clock.set(local(2026, 11, 25, 19, 0))
    step(agent, Tick())
    (usage,) = rig.events("booking.usage")
    assert usage["booking"] == "b881"
    assert usage["usage"] == {
        "booked_min": 120,
        "first_entry": None,
        "entries": 0,
        "checkins": 2,
        "used": True,
        "no_show": False,
        "room": "gym-a",
        "association": "a17",
        "start": "2026-11-25T17:00:00.000+01:00",
        "closed": False,
        "closed_min": 0,
        "observed": 1.0,
        "room_name": "Gymnastiksal A",
        "association_name": "Valby Volley",
    }
    assert not rig.events("booking.no_show")
    agent.hw.close()


def test_later_today_and_no_booking_today(rig):
    agent, clock, answers = _agent(rig, local(2026, 11, 25, 19, 30))
    step(agent, CardRead("kiosk", CARD))
    assert answers[-1]["outcome"] == "later" and answers[-1]["booking"] == "b883"
    assert answers[-1]["starts_at"] == local(2026, 11, 25, 21, 0)
    clock.set(local(2026, 11, 26, 10, 0))
    step(agent, CardRead("kiosk", CARD))
    assert answers[-1]["outcome"] == "no_booking_today"
    agent.hw.close()


def test_an_agent_stopped_over_the_no_show_deadline_sends_no_no_show(rig):
    """It cannot tell "nobody came" from "we did not see": the usage says how much it saw."""
    agent, clock, _ = _agent(rig, T0 - 60)
    clock.set(T0 + 10 * 60)
    step(agent, Tick())
    agent.hw.close()  # off from 10 to 40 minutes into the booking (a power cut)
    agent, clock, _ = _agent(rig, T0 + 40 * 60)
    clock.set(T0 + 7200)
    step(agent, Tick())
    assert not rig.events("booking.no_show")
    (usage,) = [e["usage"] for e in rig.events("booking.usage") if e["booking"] == "b881"]
    assert usage["no_show"] is False and usage["used"] is False and usage["observed"] == 0.75
    agent.hw.close()


def test_a_door_entry_is_presence_and_counts_in_the_usage(rig):
    agent, clock, answers = _agent(rig, T0 + 60)
    step(agent, CardRead("main-in", CARD))
    clock.set(T0 + 3600)
    step(agent, Tick())
    assert not rig.events("booking.no_show")
    clock.set(T0 + 7200)
    step(agent, Tick())
    (usage,) = rig.events("booking.usage")
    assert usage["usage"]["entries"] == 1 and usage["usage"]["used"] is True
    assert usage["usage"]["first_entry"].startswith("2026-11-25T17:01:00")
    agent.hw.close()


def test_no_show_and_usage_exactly_once_across_restarts(rig):
    agent, clock, _ = _agent(rig, T0 - 60)  # watching before the booking starts
    clock.set(T0 + 19 * 60)
    step(agent, Tick())
    assert not rig.events("booking.no_show")
    clock.set(T0 + 20 * 60)
    step(agent, Tick())
    assert [e["booking"] for e in rig.events("booking.no_show")] == ["b881"]
    agent.hw.close()
    agent, clock, _ = _agent(rig, T0 + 30 * 60)  # a restart in the middle of the booking
    step(agent, Tick())
    assert len(rig.events("booking.no_show")) == 1
    clock.set(T0 + 7200)
    step(agent, Tick())
    agent.hw.close()
    agent, clock, _ = _agent(rig, T0 + 7300)
    step(agent, Tick())
    assert [e["booking"] for e in rig.events("booking.usage")] == ["b881"]
    assert rig.events("booking.usage")[0]["usage"]["used"] is False
    clock.set(local(2026, 11, 25, 22, 30))
    step(agent, Tick())
    agent.hw.close()
    assert sorted(e["booking"] for e in rig.events("booking.usage")) == ["b881", "b882", "b883"]
    assert sorted(e["booking"] for e in rig.events("booking.no_show")) == ["b881", "b882", "b883"]


def test_bookings_from_before_the_first_schedule_are_not_reported(rig):
    rig.store.set_meta("reports_since", T0 + 3600)  # the box got its first schedule during b881
    agent, clock, _ = _agent(rig, local(2026, 11, 25, 23, 0))
    step(agent, Tick())
    assert sorted(e["booking"] for e in rig.events("booking.usage")) == ["b882", "b883"]
    agent.hw.close()


def test_a_second_badge_while_the_first_check_in_is_unwritten_is_already(rig, tmp_path):
    """Another process holds the write lock (a snapshot being applied): the first check-in
    waits to be stored, and a second badge of the same card is "already", not a second one."""
    import sqlite3
    from pathlib import Path

    agent, clock, answers = _agent(rig, T0 + 10 * 60)
    blocker = sqlite3.connect(Path(rig.cfg.data_dir) / "haldor.db", timeout=5)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        agent.handle(CardRead("kiosk", LEADER_CARD))
        agent.handle(CardRead("kiosk", LEADER_CARD))
        assert [a["outcome"] for a in answers[-2:]] == ["checked_in", "already"]
    finally:
        blocker.rollback()
        blocker.close()
    agent.settle()
    assert len(rig.events("checkin")) == 1
    agent.hw.close()


def test_in_the_agent_a_closed_room_gets_no_no_show_and_says_so(rig):
    """A room closed over a booking (paint drying in gym A): its association is not blamed."""
    closure = {"room": "gym-a", "start": "2026-11-25T16:00:00+01:00", "end": "2026-11-25T23:00:00+01:00", "reason": "Maling"}
    delta = {"schema": "haldor.delta/1", "site": SITE, "base_version": 43, "version": 44, "upsert": {"closures": [closure]}}
    rig.store.schedule.apply(parse_document(delta), T0 - 3600)
    agent, clock, _ = _agent(rig, T0 - 60)
    clock.set(T0 + 7200)
    step(agent, Tick())
    clock.set(local(2026, 11, 25, 22, 30))
    step(agent, Tick())
    assert [e["booking"] for e in rig.events("booking.no_show")] == ["b882"]  # gym B was open; not b881, b883
    usage = {e["booking"]: e["usage"] for e in rig.events("booking.usage")}
    assert usage["b881"]["closed"] is True and usage["b881"]["no_show"] is False
    assert usage["b882"]["closed"] is False
    agent.hw.close()


def test_a_booking_the_box_did_not_hold_is_not_watched_nor_a_no_show(rig):
    """Issue 24: last night's extra training entered afterwards, a booking that came
    halfway, and one whose id changed (the bridge's time zone was changed): the box was
    running all along, but it only watches a booking while it holds it."""
    from haldor.store import intake

    agent, clock, _ = _agent(rig, T0 - 60)  # running, trusted, watching from before 17:00
    clock.set(local(2026, 11, 25, 19, 30))
    late = snapshot(
        44,
        closures=[],
        bookings=[
            booking("b881-new-id", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00"),  # b881 under a new id
            booking("b884", "2026-11-25T17:00:00+01:00", "2026-11-25T18:00:00+01:00"),  # entered after it ended
            booking("b885", "2026-11-25T19:00:00+01:00", "2026-11-25T20:00:00+01:00"),  # entered halfway
        ],
    )
    outcome = intake.receive(rig.store, json.dumps(late).encode(), keys={}, require_signature=False, now=clock.now())
    assert outcome.status == "applied"
    step(agent, Tick())
    clock.set(local(2026, 11, 25, 20, 30))
    step(agent, Tick())
    agent.hw.close()
    usage = {e["booking"]: e["usage"] for e in rig.events("booking.usage")}
    assert rig.events("booking.no_show") == []
    assert (usage["b884"]["observed"], usage["b884"]["no_show"]) == (0.0, False)
    assert (usage["b881-new-id"]["observed"], usage["b881-new-id"]["no_show"]) == (0.0, False)
    assert (usage["b885"]["observed"], usage["b885"]["no_show"]) == (0.5, False)  # watched from 19:30


def test_a_booking_moved_to_a_time_already_past_is_not_a_no_show(rig):
    """Review of issue 24: b883 moved at 19:30 from 21-22 to 18-20 (same id) kept its old
    "known since" and got a phantom no-show."""
    from haldor.store import intake

    agent, clock, _ = _agent(rig, T0 - 60)
    clock.set(local(2026, 11, 25, 19, 30))
    moved = snapshot(
        44,
        closures=[],
        bookings=[
            booking("b881", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00"),
            booking("b883", "2026-11-25T18:00:00+01:00", "2026-11-25T20:00:00+01:00"),
        ],
    )
    assert (
        intake.receive(rig.store, json.dumps(moved).encode(), keys={}, require_signature=False, now=clock.now()).status
        == "applied"
    )
    clock.set(local(2026, 11, 25, 20, 30))
    step(agent, Tick())
    agent.hw.close()
    usage = {e["booking"]: e["usage"] for e in rig.events("booking.usage")}
    assert [e["booking"] for e in rig.events("booking.no_show")] == ["b881"]  # b881 was held all along
    assert (usage["b883"]["observed"], usage["b883"]["no_show"]) == (0.25, False)  # watched from 19:30 of 18-20


def test_wrong_pins_at_the_check_in_reader_are_guesses_too(rig):
    """Review of issue 23: the kiosk told a caretaker's PIN from a wrong one without any limit."""
    agent, clock, answers = _agent(rig, T0 - 600)
    for n in range(5):
        step(agent, PinRead("kiosk", f"{n:06d}"))
    assert [a["outcome"] for a in answers] == ["wrong_pin"] * 5
    (guessing,) = rig.events("access.guessing")
    assert (guessing["reader"], guessing["door"], guessing["reason"]) == ("kiosk", None, "wrong_pin")
    step(agent, PinRead("kiosk", "909090"))  # the caretaker's PIN
    assert answers[-1]["outcome"] == "rate_limited" and not answers[-1].get("enrol_open")
    step(agent, CardRead("kiosk", LEADER_CARD))  # cards still check in
    assert answers[-1]["outcome"] == "checked_in"
    agent.hw.close()
