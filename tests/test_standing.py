"""The standing facts held in memory are never stale: a badge right after a snapshot or
delta that changes policy, closures, rooms or bookings is decided on the new schedule, by
the store that applied it, by another connection (the loop beside the schedule worker),
by the running agent and by `haldor decide`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from haldor.access import policy
from haldor.access.model import Conditions, Policy
from haldor.agent.http_fallback import HttpSchedule
from haldor.agent.messages import Stop
from haldor.drivers.base import CardRead
from haldor.store import Store, intake

from .helpers import CARD, LEADER_CARD, SITE, booking, dump, snapshot, ts, wait_for, write_config
from .rig import Rig, around_now, running
from .test_cli import haldor

AT = "2026-11-25T17:30:00+01:00"  # inside booking b881 of the sample snapshot (gym-a, a17)
NOW = ts(AT)


def delta(version: int, **upsert: Any) -> dict[str, Any]:
    deletes = upsert.pop("delete", {})
    return {
        "schema": "haldor.delta/1",
        "site": SITE,
        "base_version": version - 1,
        "version": version,
        "upsert": upsert,
        "delete": deletes,
    }


def load(store: Store, doc: dict[str, Any]) -> None:
    outcome = intake.receive(store, json.dumps(doc), keys={}, require_signature=False, now=0.0)
    assert outcome.status == "applied", outcome.message


def decided(store: Store, card: str = CARD, door: str = "main") -> tuple[bool, str | None]:
    d = policy.decide(NOW, store.schedule.facts(door, NOW, card=card), Conditions())
    return d.granted, d.reason


ALL_DAY = {"start": "2026-11-25T00:00:00+01:00", "end": "2026-11-26T00:00:00+01:00"}
#: each change, and what CARD at main at AT is decided after it (it was granted before)
CHANGES: dict[str, tuple[dict[str, Any], tuple[bool, str | None]]] = {
    "policy (a snapshot)": (
        snapshot(43, policy={"grace_before_min": 15, "grace_after_min": 15, "no_show_after_min": 20, "leader_first": True}),
        (False, "no_booking"),
    ),
    "closures": (delta(43, closures=[{"room": "gym-a", **ALL_DAY, "reason": "Vandskade"}]), (False, "closed")),
    "rooms": (delta(43, rooms=[{"id": "gym-a", "name": "Gymnastiksal A", "doors": ["gym-a"]}]), (False, "no_booking")),
    "bookings": (delta(43, delete={"bookings": ["b881"]}), (False, "no_booking")),
}


@pytest.fixture
def two_stores(tmp_path):
    """The applying store (the schedule worker's) and the deciding one (the loop's)."""
    writer = Store.open(tmp_path / "data", SITE, "Europe/Copenhagen", Policy())
    reader = Store.open(tmp_path / "data", SITE, "Europe/Copenhagen", Policy())
    yield writer, reader
    reader.close()
    writer.close()


@pytest.mark.parametrize("change", CHANGES)
def test_a_badge_after_a_change_is_decided_on_it_by_the_same_store(store, change):
    doc, after = CHANGES[change]
    load(store, snapshot())
    assert decided(store) == (True, None)
    load(store, doc)
    assert decided(store) == after


@pytest.mark.parametrize("change", CHANGES)
def test_a_badge_after_a_change_is_decided_on_it_by_another_connection(two_stores, change):
    writer, reader = two_stores
    doc, after = CHANGES[change]
    load(writer, snapshot())
    assert decided(reader) == (True, None)
    load(writer, doc)
    assert decided(reader) == after


def test_a_new_time_zone_moves_the_local_day_at_once(two_stores):
    """The held local day belongs to the time zone it was computed in."""
    writer, reader = two_stores
    night = booking("b1", "2026-11-25T01:00:00+01:00", "2026-11-25T02:00:00+01:00")  # 24 Nov in New York
    load(writer, snapshot(bookings=[night]))
    assert decided(reader) == (False, "outside_window")  # earlier today in Copenhagen
    load(writer, snapshot(43, timezone="America/New_York", bookings=[night]))
    assert decided(reader) == (False, "no_booking")  # yesterday in New York


def test_a_booking_added_by_a_delta_counts_at_once(two_stores):
    writer, reader = two_stores
    load(writer, snapshot(bookings=[]))
    assert decided(reader) == (False, "no_booking")
    load(writer, delta(43, bookings=[booking("b900", "2026-11-25T17:00:00+01:00", "2026-11-25T18:00:00+01:00")]))
    assert decided(reader) == (True, None)


def test_the_same_version_applied_again_is_seen(two_stores):
    """A snapshot of the applied version is taken again after the device secret changed:
    the held facts follow the stamp of the apply, not the version."""
    writer, reader = two_stores
    load(writer, snapshot())
    assert decided(reader) == (True, None)
    writer.put_meta("any_version", True)  # as reset_version leaves it
    load(writer, snapshot(42, closures=[{"room": None, **ALL_DAY, "reason": "Valg"}]))
    assert decided(reader) == (False, "closed")


def test_a_rolled_back_apply_leaves_the_held_facts_in_force(two_stores):
    writer, reader = two_stores
    load(writer, snapshot())
    assert decided(reader) == (True, None)
    broken = delta(43, closures=[{"room": "cellar", **ALL_DAY, "reason": "x"}])  # an unknown room
    outcome = intake.receive(writer, json.dumps(broken), keys={}, require_signature=False, now=0.0)
    assert outcome.status == "rejected" and "closures[0].room" in outcome.message
    assert decided(reader) == (True, None)


def test_the_card_s_bookings_are_found_through_the_association_index(store):
    """The read finds the association's bookings directly, not by walking the rooms' bookings."""
    load(store, snapshot())
    run: list[str] = []
    store.db.conn.set_trace_callback(run.append)
    try:
        assert decided(store, LEADER_CARD) == (True, None)
    finally:
        store.db.conn.set_trace_callback(None)
    bookings = [sql for sql in run if "FROM bookings" in sql]
    assert bookings and all("INDEXED BY bookings_by_association" in sql for sql in bookings)  # SQLite uses it or fails


def _badge(rig: Rig, agent: Any, card: str) -> dict[str, Any]:
    seen = len(rig.events("access.granted")) + len(rig.events("access.denied"))
    agent.post(CardRead("main-in", card))
    events = wait_for(
        lambda: [e for e in rig.events() if e["type"] in ("access.granted", "access.denied")][seen:], what="the badge's event"
    )
    return events[0]


def _apply(rig: Rig, agent: Any, doc: dict[str, Any], version: int) -> None:
    agent.post(HttpSchedule(json.dumps(doc).encode(), "test"))  # through the schedule worker's child
    wait_for(lambda: rig.version() == version, timeout=30, what=f"version {version} applied")


def test_the_running_agent_decides_a_badge_after_each_delta_on_it(tmp_path):
    rig = Rig(tmp_path)
    agent = rig.agent()
    thread = running(agent)
    try:
        assert _badge(rig, agent, CARD)["type"] == "access.granted"
        now = around_now()
        b881 = now["bookings"][0]
        steps: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
            (
                delta(43, closures=[{"room": "gym-a", "start": b881["start"], "end": b881["end"], "reason": "Vandskade"}]),
                _denied("closed"),
            ),
            (delta(44, closures=[]), _granted),
            (delta(45, rooms=[{"id": "gym-a", "name": "A", "doors": ["gym-a"]}]), _denied("no_booking")),
            (delta(46, rooms=[{"id": "gym-a", "name": "A", "doors": ["main", "gym-a"]}]), _granted),
            (delta(47, delete={"bookings": ["b881"]}), _denied("no_booking")),
            (delta(48, bookings=[b881]), _granted),
        ]
        for version, (doc, expected) in enumerate(steps, start=43):
            _apply(rig, agent, doc, version)
            event = _badge(rig, agent, CARD)
            assert expected(event), (version, event)
        _apply(rig, agent, {**now, "version": 49, "policy": {**now["policy"], "leader_first": True}}, 49)
        assert _denied("no_booking")(_badge(rig, agent, CARD))
    finally:
        agent.post(Stop())
        thread.join(10)
        rig.close()
    assert not thread.errors


def _granted(event: dict[str, Any]) -> bool:
    return event["type"] == "access.granted"


def _denied(reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == "access.denied" and event["reason"] == reason


def test_haldor_decide_after_a_delta_decides_on_it(tmp_path):
    cfg = str(write_config(tmp_path / "haldor.toml", tmp_path / "data"))
    haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot())), check=0)

    def decide() -> dict[str, Any]:
        return json.loads(haldor("decide", "--config", cfg, "--door", "main", "--card", CARD, "--at", AT, check=0).stdout)

    assert decide()["granted"]
    for version, (doc, reason) in enumerate(
        [
            (delta(43, closures=[{"room": "gym-a", **ALL_DAY, "reason": "Vandskade"}]), "closed"),
            (delta(44, closures=[], rooms=[{"id": "gym-a", "name": "A", "doors": ["gym-a"]}]), "no_booking"),
        ],
        start=43,
    ):
        haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / f"d{version}.json", doc)), check=0)
        assert decide()["reason"] == reason


def test_the_stamp_is_written_with_every_apply(store):
    load(store, snapshot())
    first = store.meta("schedule_stamp")
    load(store, delta(43, closures=[]))
    assert store.meta("schedule_stamp") not in (None, first)
