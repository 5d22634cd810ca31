"""The decision as tables of cases over hand-built facts, plus properties (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haldor.access.model import BookingFact, Candidate, ClosureFact, Conditions, Facts, Policy
from haldor.access.policy import decide

T0 = 1_764_086_400.0  # a Tuesday 17:00 local, as an instant; only differences matter here
MIN = 60.0

MEMBER = Candidate("c1", "a17", "member")
LEADER = Candidate("c2", "a17", "leader")
CARETAKER = Candidate("c9", None, "caretaker")
CARETAKER_GONE = Candidate("c9", None, "caretaker", valid_until=T0 - 1)  # left yesterday
CARETAKER_NEW = Candidate("c9", None, "caretaker", valid_from=T0 + 1)  # starts tomorrow
OTHER = Candidate("c5", "a18", "member")
BOOKING = BookingFact("b1", "gym-a", "a17", T0, T0 + 120 * MIN)
DAY = (T0 - 17 * 3600, T0 + 7 * 3600)


DEFAULT = Policy()


def facts(*credentials, bookings=(BOOKING,), closures=(), policy=DEFAULT, rooms=("gym-a",), day=DAY):
    return Facts("main", frozenset(rooms), tuple(credentials), tuple(bookings), tuple(closures), policy, day)


OK = Conditions()
CASES = [
    # (name, now, facts, conditions, pin, expected (granted, reason, booking, credential))
    ("member in booking", T0 + 10 * MIN, facts(MEMBER), OK, False, (True, None, "b1", "c1")),
    ("grace before", T0 - 15 * MIN, facts(MEMBER), OK, False, (True, None, "b1", "c1")),
    ("before grace", T0 - 15 * MIN - 1, facts(MEMBER), OK, False, (False, "outside_window", "b1", "c1")),
    ("grace after, last second", T0 + 135 * MIN - 1, facts(MEMBER), OK, False, (True, None, "b1", "c1")),
    ("after grace", T0 + 135 * MIN, facts(MEMBER), OK, False, (False, "outside_window", "b1", "c1")),
    (
        "next day",
        T0 + 24 * 3600,
        facts(MEMBER, day=(DAY[0] + 86400, DAY[1] + 86400)),
        OK,
        False,
        (False, "no_booking", None, "c1"),
    ),
    ("other association", T0, facts(OTHER), OK, False, (False, "no_booking", None, "c5")),
    ("room not behind this door", T0, facts(MEMBER, rooms=("gym-b",)), OK, False, (False, "no_booking", None, "c1")),
    ("unknown card", T0, facts(), OK, False, (False, "unknown_card", None, None)),
    ("wrong pin", T0, facts(), OK, True, (False, "wrong_pin", None, None)),
    ("expired", T0, facts(Candidate("c1", "a17", "member", valid_until=T0 - 1)), OK, False, (False, "expired", None, "c1")),
    ("not yet valid", T0, facts(Candidate("c1", "a17", "member", valid_from=T0 + 1)), OK, False, (False, "expired", None, "c1")),
    ("valid until inclusive", T0, facts(Candidate("c1", "a17", "member", valid_until=T0)), OK, False, (True, None, "b1", "c1")),
    ("clock untrusted", T0, facts(MEMBER), Conditions(clock_trusted=False), False, (False, "clock_untrusted", None, "c1")),
    (
        "site closed",
        T0,
        facts(MEMBER, closures=[ClosureFact(None, T0 - 1, T0 + 1, "Juleferie")]),
        OK,
        False,
        (False, "closed", "b1", "c1"),
    ),
    ("room closed", T0, facts(MEMBER, closures=[ClosureFact("gym-a", T0 - 1, T0 + 1)]), OK, False, (False, "closed", "b1", "c1")),
    (
        "other room closed",
        T0,
        facts(MEMBER, closures=[ClosureFact("gym-b", T0 - 1, T0 + 1)]),
        OK,
        False,
        (True, None, "b1", "c1"),
    ),
    ("lockdown", T0, facts(MEMBER), Conditions(lockdown=True), False, (False, "lockdown", None, "c1")),
    ("lockdown before unknown card", T0, facts(), Conditions(lockdown=True), False, (False, "lockdown", None, None)),
    (
        "lockdown before rate limit",
        T0,
        facts(MEMBER),
        Conditions(lockdown=True, rate_limited=True),
        False,
        (False, "lockdown", None, "c1"),
    ),
    ("rate limited", T0, facts(MEMBER), Conditions(rate_limited=True), False, (False, "rate_limited", None, "c1")),
    ("rate limit before unknown", T0, facts(), Conditions(rate_limited=True), True, (False, "rate_limited", None, None)),
    (
        "expired before clock",
        T0,
        facts(Candidate("c1", "a17", "member", valid_until=T0 - 1)),
        Conditions(clock_trusted=False),
        False,
        (False, "expired", None, "c1"),
    ),
    ("caretaker any time", T0 + 10 * 3600, facts(CARETAKER, bookings=()), OK, False, (True, None, None, "c9")),
    (
        "caretaker in lockdown and closure",
        T0,
        facts(CARETAKER, closures=[ClosureFact(None, T0 - 1, T0 + 1)]),
        Conditions(lockdown=True, clock_trusted=False),
        False,
        (True, None, None, "c9"),
    ),
    ("caretaker rate limited", T0, facts(CARETAKER), Conditions(rate_limited=True), False, (False, "rate_limited", None, "c9")),
    ("caretaker in lockdown", T0, facts(CARETAKER), Conditions(lockdown=True), False, (True, None, None, "c9")),
    (
        "caretaker valid until inclusive",
        T0,
        facts(Candidate("c9", None, "caretaker", valid_until=T0), bookings=()),
        OK,
        False,
        (True, None, None, "c9"),
    ),
    ("caretaker expired", T0, facts(CARETAKER_GONE, bookings=()), OK, False, (False, "expired", None, "c9")),
    ("caretaker not yet valid", T0, facts(CARETAKER_NEW, bookings=()), OK, False, (False, "expired", None, "c9")),
    (
        "caretaker expired, clock untrusted: expired by the clock as it is",
        T0,
        facts(CARETAKER_GONE),
        Conditions(clock_trusted=False),
        False,
        (False, "expired", None, "c9"),
    ),
    (
        "caretaker valid, clock untrusted",
        T0,
        facts(Candidate("c9", None, "caretaker", valid_until=T0 + 1)),
        Conditions(clock_trusted=False),
        False,
        (True, None, None, "c9"),
    ),
    (
        "caretaker expired in a closure",
        T0,
        facts(CARETAKER_GONE, closures=[ClosureFact(None, T0 - 1, T0 + 1)]),
        OK,
        False,
        (False, "expired", None, "c9"),
    ),
    (
        "caretaker expired in lockdown: expired, not lockdown (the exemption is the role's)",
        T0,
        facts(CARETAKER_GONE),
        Conditions(lockdown=True),
        False,
        (False, "expired", None, "c9"),
    ),
    (
        "caretaker expired rate limited",
        T0,
        facts(CARETAKER_GONE),
        Conditions(rate_limited=True),
        False,
        (False, "rate_limited", None, "c9"),
    ),
    (
        "caretaker expired in lockdown, rate limited",
        T0,
        facts(CARETAKER_GONE),
        Conditions(lockdown=True, rate_limited=True),
        False,
        (False, "rate_limited", None, "c9"),
    ),
    (
        "caretaker expired, member of the same card granted",
        T0,
        facts(CARETAKER_GONE, MEMBER),
        OK,
        False,
        (True, None, "b1", "c1"),
    ),
    (
        "caretaker expired, member of the same card outside window",
        T0 + 3 * 3600,
        facts(CARETAKER_GONE, MEMBER),
        OK,
        False,
        (False, "outside_window", "b1", "c1"),
    ),
    (
        "caretaker expired, member of the same card, clock untrusted",
        T0,
        facts(CARETAKER_GONE, MEMBER),
        Conditions(clock_trusted=False),
        False,
        (False, "clock_untrusted", None, "c1"),
    ),
    (
        "caretaker expired, member of the same card in lockdown: expired",
        T0,
        facts(MEMBER, CARETAKER_GONE),
        Conditions(lockdown=True),
        False,
        (False, "expired", None, "c9"),
    ),
    (
        "caretaker expired, another caretaker of the same card valid",
        T0,
        facts(CARETAKER_GONE, Candidate("c8", None, "caretaker")),
        Conditions(lockdown=True),
        False,
        (True, None, None, "c8"),
    ),
    (
        "caretaker pin expired, booking pin granted",
        T0,
        facts(CARETAKER_GONE, bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)]),
        OK,
        True,
        (True, None, "b7", None),
    ),
    (
        "leader_first: member waits",
        T0,
        facts(MEMBER, policy=Policy(leader_first=True)),
        OK,
        False,
        (False, "no_booking", "b1", "c1"),
    ),
    ("leader_first: leader enters", T0, facts(LEADER, policy=Policy(leader_first=True)), OK, False, (True, None, "b1", "c2")),
    (
        "leader_first: member after leader",
        T0,
        facts(
            MEMBER,
            bookings=[BookingFact("b1", "gym-a", "a17", T0, T0 + 7200, leader_present=True)],
            policy=Policy(leader_first=True),
        ),
        OK,
        False,
        (True, None, "b1", "c1"),
    ),
    (
        "booking pin",
        T0,
        facts(bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)]),
        OK,
        True,
        (True, None, "b7", None),
    ),
    (
        "booking pin ignores leader_first",
        T0,
        facts(bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)], policy=Policy(leader_first=True)),
        OK,
        True,
        (True, None, "b7", None),
    ),
    (
        "booking pin later today",
        T0 - 3600,
        facts(bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)]),
        OK,
        True,
        (False, "outside_window", "b7", None),
    ),
    (
        "booking pin other room",
        T0,
        facts(bookings=[BookingFact("b7", "gym-b", "a18", T0, T0 + 3600, pin_match=True)]),
        OK,
        True,
        (False, "no_booking", None, None),
    ),
    (
        "booking pin closed",
        T0,
        facts(
            bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)],
            closures=[ClosureFact(None, T0 - 1, T0 + 1)],
        ),
        OK,
        True,
        (False, "closed", "b7", None),
    ),
    (
        "booking pin untrusted clock",
        T0,
        facts(bookings=[BookingFact("b7", "gym-a", "a18", T0, T0 + 3600, pin_match=True)]),
        Conditions(clock_trusted=False),
        True,
        (False, "clock_untrusted", None, None),
    ),
    ("one card, two associations", T0, facts(OTHER, MEMBER), OK, False, (True, None, "b1", "c1")),
    (
        "two candidates denied: the most telling",
        T0 + 24 * 3600 - 3600 * 2,
        facts(Candidate("c1", "a17", "member", valid_until=T0), OTHER),
        OK,
        False,
        (False, "no_booking", None, "c5"),
    ),
    (
        "closed beats a later booking today",
        T0,
        facts(
            MEMBER,
            bookings=[BOOKING, BookingFact("b2", "gym-a", "a17", T0 + 3 * 3600, T0 + 4 * 3600)],
            closures=[ClosureFact("gym-a", T0 - 1, T0 + 1)],
        ),
        OK,
        False,
        (False, "closed", "b1", "c1"),
    ),
    (
        "open booking wins over a closed one",
        T0,
        facts(
            MEMBER,
            bookings=[BOOKING, BookingFact("b2", "gym-b", "a17", T0, T0 + 3600)],
            closures=[ClosureFact("gym-a", T0 - 1, T0 + 1)],
            rooms=("gym-a", "gym-b"),
        ),
        OK,
        False,
        (True, None, "b2", "c1"),
    ),
]


@pytest.mark.parametrize("name, now, f, conditions, pin, expected", CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, now, f, conditions, pin, expected):
    d = decide(now, f, conditions, pin=pin)
    assert (d.granted, d.reason, d.booking, d.credential) == expected


instants = st.floats(min_value=T0 - 2 * 86400, max_value=T0 + 2 * 86400, allow_nan=False)
durations = st.floats(min_value=60, max_value=6 * 3600, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    now=instants,
    starts=st.lists(st.tuples(instants, durations), max_size=4),
    valid=st.tuples(st.none() | instants, st.none() | instants),
    role=st.sampled_from(["member", "leader"]),
    grace=st.tuples(st.integers(0, 60), st.integers(0, 60)),
    leader_first=st.booleans(),
    trusted=st.booleans(),
)
def test_never_granted_outside_a_window_or_to_an_expired_credential(now, starts, valid, role, grace, leader_first, trusted):
    bookings = tuple(BookingFact(f"b{i}", "gym-a", "a17", s, s + d) for i, (s, d) in enumerate(starts))
    policy = Policy(grace_before_min=grace[0], grace_after_min=grace[1], leader_first=leader_first)
    cred = Candidate("c1", "a17", role, valid[0], valid[1])
    d = decide(now, facts(cred, bookings=bookings, policy=policy), Conditions(clock_trusted=trusted))
    if d.granted:
        assert trusted
        assert valid[0] is None or now >= valid[0]
        assert valid[1] is None or now <= valid[1]
        b = next(b for b in bookings if b.id == d.booking)
        assert b.start - grace[0] * 60 <= now < b.end + grace[1] * 60
    else:
        assert d.reason in ("expired", "clock_untrusted", "outside_window", "no_booking")


@settings(max_examples=300, deadline=None)
@given(
    now=instants,
    valid=st.tuples(st.none() | instants, st.none() | instants),
    lockdown=st.booleans(),
    rate_limited=st.booleans(),
    trusted=st.booleans(),
    closed=st.booleans(),
)
def test_a_caretaker_is_admitted_exactly_when_valid_and_not_rate_limited(now, valid, lockdown, rate_limited, trusted, closed):
    closures = [ClosureFact(None, now - 1, now + 1)] if closed else []
    cred = Candidate("c9", None, "caretaker", valid[0], valid[1])
    d = decide(
        now, facts(cred, closures=closures), Conditions(lockdown=lockdown, rate_limited=rate_limited, clock_trusted=trusted)
    )
    in_validity = (valid[0] is None or now >= valid[0]) and (valid[1] is None or now <= valid[1])
    assert d.granted == (in_validity and not rate_limited)
    assert d.reason == (None if d.granted else "rate_limited" if rate_limited else "expired")
