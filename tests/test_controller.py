"""The door state machine, driven step by step with time given by the test."""

from haldor.access.controller import Controller, DoorSpec, Emit, Entered, Feedback, Lock, ModesChanged
from haldor.access.guessing import Limits
from haldor.access.model import BookingFact, Candidate, Facts, Policy

T0 = 1_764_086_400.0
MEMBER = Candidate("c1", "a17", "member")
CARETAKER = Candidate("c9", None, "caretaker")
BOOKING = BookingFact("b1", "gym-a", "a17", T0, T0 + 7200)


def facts(*creds, door="main", bookings=(BOOKING,)):
    return Facts(door, frozenset({"gym-a"}), tuple(creds), tuple(bookings), (), Policy(), (T0 - 86400, T0 + 86400))


def controller(**kw):
    c = Controller([DoorSpec("main", unlock_s=5, held_open_s=60), DoorSpec("gym-a", fail="safe")], **kw)
    return c


def types(effects):
    return [e.type if isinstance(e, Emit) else type(e).__name__ for e in effects]


def test_start_drives_each_lock_to_its_normal_state_once():
    c = controller()
    effects = c.start(T0)
    assert effects == [Emit("agent.started"), Lock("main", False), Lock("gym-a", False)]
    assert c.tick(T0 + 1) == []


def test_grant_pulses_the_lock_then_relocks():
    c = controller()
    c.start(T0)
    decision, effects = c.present(T0, "main-out", facts(MEMBER), pin=False, clock_trusted=True)
    assert decision.granted
    assert effects[0] == Lock("main", True)  # the lock moves before anything else
    assert effects[1] == Emit("access.granted", door="main", reader="main-out", credential="c1", booking="b1")
    assert effects[2:] == [Feedback("main-out", True), Entered("b1", "member")]
    assert c.next_deadline() == T0 + 5
    assert c.tick(T0 + 4.9) == []
    assert c.tick(T0 + 5) == [Lock("main", False)]


def test_closing_the_door_relocks_early_and_no_forced_alarm_in_a_pulse():
    c = controller()
    c.start(T0)
    c.present(T0, "r", facts(MEMBER), pin=False, clock_trusted=True)
    assert types(c.contact(T0 + 1, "main", True)) == ["door.opened"]
    assert c.contact(T0 + 2, "main", False) == [Emit("door.closed", door="main"), Lock("main", False)]


def test_forced_open_and_exit_button():
    c = controller()
    c.start(T0)
    assert types(c.contact(T0, "main", True)) == ["door.opened", "door.forced"]
    c.contact(T0 + 1, "main", False)
    c.exit_request(T0 + 10, "main")
    assert types(c.contact(T0 + 11, "main", True)) == ["door.opened"]
    c.contact(T0 + 12, "main", False)
    # the excuse expires
    assert types(c.contact(T0 + 30, "main", True)) == ["door.opened", "door.forced"]


def test_held_open_alarm_once():
    c = controller()
    c.start(T0)
    c.present(T0, "r", facts(MEMBER), pin=False, clock_trusted=True)
    c.contact(T0 + 1, "main", True)
    assert c.next_deadline() == T0 + 5
    assert c.tick(T0 + 5) == [Lock("main", False)]
    assert c.next_deadline() == T0 + 61
    assert c.tick(T0 + 60.9) == []
    assert c.tick(T0 + 61) == [Emit("door.held_open", door="main")]
    assert c.tick(T0 + 200) == []
    assert types(c.contact(T0 + 201, "main", False)) == ["door.closed"]


def test_wrong_pins_lock_out_the_keypad_and_are_reported_once():
    c = controller(guessing=Limits(max_wrong_pins=3, window_s=600, lockout_s=60))
    c.start(T0)
    for i in range(2):
        d, effects = c.present(T0 + i, "r", facts(), pin=True, clock_trusted=True)
        assert d.reason == "wrong_pin"
        assert effects == [Emit("access.denied", door="main", reader="r", reason="wrong_pin"), Feedback("r", False)]
    d, effects = c.present(T0 + 2, "r", facts(), pin=True, clock_trusted=True)
    extra = {"kind": "pin", "attempts": 3, "window_s": 600, "lockout_s": 60, "lockouts": 1}
    assert effects[2:] == [Emit("access.guessing", door="main", reader="r", reason="wrong_pin", extra=extra), ModesChanged()]
    assert c.present(T0 + 3, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].reason == "rate_limited"
    assert types(c.present(T0 + 4, "r", facts(), pin=True, clock_trusted=True)[1]) == ["access.denied", "Feedback"]
    # cards at the same reader, and PINs at another, keep working; the lockout ends
    assert c.present(T0 + 3, "r", facts(MEMBER), pin=False, clock_trusted=True)[0].granted
    assert c.present(T0 + 3, "other", facts(CARETAKER), pin=True, clock_trusted=True)[0].granted
    assert c.present(T0 + 2 + 60, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].granted


def test_no_grant_clears_the_count_and_lockouts_double_up_to_the_longest():
    c = controller(guessing=Limits(max_wrong_pins=3, window_s=600, lockout_s=60, lockout_max_s=200))
    c.start(T0)
    now, lockouts = T0, []
    for _ in range(12):
        for _ in range(2):
            effects = c.present(now, "r", facts(), pin=True, clock_trusted=True)[1]
            lockouts += [e.extra["lockout_s"] for e in effects if isinstance(e, Emit) and e.type == "access.guessing"]
            now += 1
        assert c.present(now, "r", facts(MEMBER), pin=False, clock_trusted=True)[0].granted
        now += 30
    assert lockouts[:3] == [60, 120, 200]  # 60, 120, then the longest (not 240)
    # a day without a lockout starts again from the first
    c2 = controller(guessing=Limits(max_wrong_pins=1, lockout_s=60))
    c2.start(T0)
    c2.present(T0, "r", facts(), pin=True, clock_trusted=True)
    effects = c2.present(T0 + 86400 + 61, "r", facts(), pin=True, clock_trusted=True)[1]
    assert effects[-2].extra["lockouts"] == 1 and effects[-2].extra["lockout_s"] == 60


def test_unknown_cards_lock_out_card_reads_but_not_the_keypad():
    c = controller(guessing=Limits(max_unknown_cards=3, window_s=600, lockout_s=60))
    c.start(T0)
    for i in range(3):
        c.present(T0 + i, "r", facts(), pin=False, clock_trusted=True)
    assert c.present(T0 + 3, "r", facts(MEMBER), pin=False, clock_trusted=True)[0].reason == "rate_limited"
    assert c.present(T0 + 3, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].granted
    # known cards that are merely refused are no guess
    c2 = controller(guessing=Limits(max_unknown_cards=2))
    c2.start(T0)
    late = facts(MEMBER, bookings=[BookingFact("b2", "gym-a", "a17", T0 + 7200, T0 + 9000)])
    for i in range(5):
        assert c2.present(T0 + i, "r", late, pin=False, clock_trusted=True)[0].reason == "outside_window"


def test_a_site_may_have_a_keypad_lockout_stop_cards_too():
    c = controller(guessing=Limits(max_wrong_pins=2, pin_lockout_blocks_cards=True))
    c.start(T0)
    c.present(T0, "r", facts(), pin=True, clock_trusted=True)
    c.present(T0 + 1, "r", facts(), pin=True, clock_trusted=True)
    assert c.present(T0 + 2, "r", facts(MEMBER), pin=False, clock_trusted=True)[0].reason == "rate_limited"


def test_guesses_spread_over_time_do_not_lock_out():
    c = controller(guessing=Limits(max_unknown_cards=3, window_s=60))
    c.start(T0)
    for i in range(10):
        assert c.present(T0 + i * 31, "r", facts(), pin=False, clock_trusted=True)[0].reason == "unknown_card"


def test_a_lockout_survives_a_restart():
    c = controller(guessing=Limits(max_wrong_pins=1, lockout_s=60))
    c.start(T0)
    c.present(T0, "r", facts(), pin=True, clock_trusted=True)
    again = controller(guessing=Limits(max_wrong_pins=1, lockout_s=60))
    again.start(T0 + 10, c.lasting_state())
    assert again.present(T0 + 10, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].reason == "rate_limited"
    effects = again.present(T0 + 61, "r", facts(), pin=True, clock_trusted=True)[1]
    assert effects[-2].extra["lockouts"] == 2  # the escalation remembered too


def test_lockdown_admits_only_caretakers_and_survives_restart():
    c = controller()
    c.start(T0)
    effects = c.command(T0, "hold_open", "main")
    assert Lock("main", True) in effects and Emit("door.mode", door="main", reason="hold_open") in effects
    effects = c.command(T0 + 1, "lockdown")
    assert Lock("main", False) in effects and ModesChanged() in effects
    assert c.present(T0 + 2, "r", facts(MEMBER), pin=False, clock_trusted=True)[0].reason == "lockdown"
    d, effects = c.present(T0 + 3, "r", facts(CARETAKER), pin=False, clock_trusted=True)
    assert d.granted and effects[0] == Lock("main", True)
    again = controller()
    assert Lock("main", False) in again.start(T0 + 10, c.lasting_state())
    assert again.lockdown
    effects = again.command(T0 + 11, "lift_lockdown")
    assert Lock("main", True) in effects  # hold-open resumes


def test_unlocked_during_booking_keeps_the_rooms_doors_open_until_its_end():
    c = controller()
    c.start(T0)
    public = BookingFact("b1", "gym-a", "a17", T0, T0 + 3600, unlocked_during=True, doors=("main", "gym-a"))
    _, effects = c.present(T0 + 60, "r", facts(MEMBER, bookings=[public]), pin=False, clock_trusted=True)
    assert Lock("main", True) in effects and Lock("gym-a", True) in effects
    assert c.tick(T0 + 600) == []
    assert c.status()["gym-a"] == {"locked": False, "open": False, "mode": "unlocked"}
    effects = c.tick(T0 + 3600)
    assert Lock("main", False) in effects and Lock("gym-a", False) in effects


def test_fire_alarm_releases_a_fail_safe_door_even_in_lockdown():
    c = controller()
    c.start(T0)
    c.command(T0, "lockdown")
    effects = c.fire_alarm(T0 + 1, "gym-a", True)
    assert effects == [Lock("gym-a", True), Emit("door.mode", door="gym-a", reason="fire")]
    assert c.tick(T0 + 1000) == []
    assert Lock("gym-a", False) in c.fire_alarm(T0 + 1001, "gym-a", False)


def test_commands_unlock_for_a_duration_and_lock():
    c = controller()
    c.start(T0)
    assert c.command(T0, "unlock", "main", 30) == [Lock("main", True)]
    assert c.tick(T0 + 29) == []
    assert c.command(T0 + 10, "lock", "main") == [Lock("main", False)]


def test_guesses_count_during_a_lockdown_when_a_caretakers_pin_still_opens():
    """Review of issue 23: a lockdown reported `lockdown` first, and no guess was counted."""
    c = controller(guessing=Limits(max_wrong_pins=3))
    c.start(T0)
    c.command(T0, "lockdown")
    told = [e for i in range(6) for e in c.present(T0 + i, "r", facts(), pin=True, clock_trusted=True)[1] if isinstance(e, Emit)]
    assert [e.reason for e in told if e.type == "access.denied"] == ["lockdown"] * 6  # what the member is told
    assert [e.extra["lockouts"] for e in told if e.type == "access.guessing"] == [1]  # counted; not again while locked out
    assert c.present(T0 + 7, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].reason == "rate_limited"


def test_a_lockout_begun_by_a_clock_far_ahead_ends_when_the_clock_is_put_right():
    c = controller(guessing=Limits(max_wrong_pins=1, lockout_s=60, lockout_max_s=3600))
    c.start(T0)
    c.present(T0 + 4 * 365 * 86400, "r", facts(), pin=True, clock_trusted=True)  # the clock years ahead
    again = controller(guessing=Limits(max_wrong_pins=1, lockout_s=60, lockout_max_s=3600))
    again.start(T0, c.lasting_state())  # put right, and restarted
    assert again.present(T0 + 1, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].granted


def test_a_damaged_note_of_lockouts_never_stops_a_start():
    c = controller()
    c.start(T0, {"guessing": {"r/pin": {"until": "soon"}, "r/card": "x", "nonsense": {}}})
    assert c.present(T0, "r", facts(CARETAKER), pin=True, clock_trusted=True)[0].granted
