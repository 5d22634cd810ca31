import json
import os
import stat

import pytest

from haldor.access import policy
from haldor.access.model import Conditions
from haldor.store import DB_NAME, Store, intake
from haldor.store.migrations import MIGRATIONS

from .helpers import CARD, LEADER_CARD, SITE, booking, local, snapshot


def load(store, doc, now=0.0):
    return intake.receive(store, json.dumps(doc), keys={}, require_signature=False, now=now)


def decide_card(store, card, now, door="main", **conditions):
    return policy.decide(now, store.schedule.facts(door, now, card=card), Conditions(**conditions))


def tables(store):
    return {t: list(store.iter_table(t)) for t in ("rooms", "room_doors", "associations", "credentials", "bookings", "closures")}


def test_snapshot_applied_and_recorded(store):
    assert load(store, snapshot()).status == "applied"
    assert store.version == 42
    assert store.timezone == "Europe/Copenhagen"
    assert [e["type"] for e in store.outbox.events()] == ["sync.applied"]
    assert store.outbox.events()[0]["reason"] == "snapshot 42"
    assert decide_card(store, CARD, local(2026, 11, 25, 17, 30)).granted


def test_stale_and_other_site_are_ignored_not_rejected(store):
    load(store, snapshot(42))
    before = tables(store)
    assert load(store, snapshot(42)).status == "stale"
    assert load(store, snapshot(41)).status == "stale"
    assert load(store, snapshot(50, site="other-site")).status == "other_site"
    assert tables(store) == before and store.version == 42
    assert [e["type"] for e in store.outbox.events()] == ["sync.applied"]


def test_bad_snapshot_leaves_everything_as_it_was(store):
    load(store, snapshot(42))
    before = tables(store)
    bad = snapshot(43, bookings=[booking("x", "2026-11-25T17:00:00+01:00", "2026-11-25T16:00:00+01:00")])
    outcome = load(store, bad)
    assert outcome.status == "rejected" and "bookings[0].end" in outcome.message
    assert tables(store) == before and store.version == 42
    assert store.outbox.events()[-1]["type"] == "sync.rejected"
    assert "bookings[0].end" in store.outbox.events()[-1]["reason"]


def test_delta_applies_atomically(store):
    load(store, snapshot(42))
    delta = {
        "schema": "haldor.delta/1",
        "site": SITE,
        "base_version": 42,
        "version": 43,
        "upsert": {"bookings": [booking("b900", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00")], "closures": []},
        "delete": {"credentials": ["c1001"]},
    }
    assert load(store, delta).status == "applied"
    assert store.version == 43
    assert {b["id"] for b in store.iter_table("bookings")} == {"b881", "b900"}
    assert "c1001" not in {c["id"] for c in store.iter_table("credentials")}
    assert list(store.iter_table("closures")) == []
    assert store.outbox.events()[-1]["reason"] == "delta 43"


def test_delta_with_a_broken_reference_changes_nothing(store):
    load(store, snapshot(42))
    before = tables(store)
    delta = {
        "schema": "haldor.delta/1",
        "site": SITE,
        "base_version": 42,
        "version": 43,
        "upsert": {"bookings": [booking("b900", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00", room="pool")]},
        "delete": {"bookings": ["b881"]},
    }
    outcome = load(store, delta)
    assert outcome.status == "rejected" and "unknown room 'pool'" in outcome.message
    assert tables(store) == before and store.version == 42


def test_delta_gap_and_stale_delta(store):
    load(store, snapshot(42))
    gap = {"schema": "haldor.delta/1", "site": SITE, "base_version": 44, "version": 45}
    assert load(store, gap).status == "gap"
    stale = {"schema": "haldor.delta/1", "site": SITE, "base_version": 40, "version": 41}
    assert load(store, stale).status == "stale"
    assert store.version == 42


def test_delta_before_any_snapshot_is_a_gap(store):
    assert load(store, {"schema": "haldor.delta/1", "site": SITE, "base_version": 0, "version": 1}).status == "gap"


def test_cards_and_pins_never_reach_the_disk_in_clear(store, tmp_path):
    load(store, snapshot(42, bookings=[booking("b1", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00", pin="55667788")]))
    store.outbox.append([{"type": "access.denied", "reason": "unknown_card"}], 0)
    store.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir())
    for secret in (CARD, CARD[4:], LEADER_CARD, "4821", "909090", "55667788"):
        assert secret.encode() not in raw, secret


def test_device_secret_is_private_and_stable(tmp_path):
    a = Store.open(tmp_path / "d", SITE)
    digest = a.card_hash(CARD)
    a.close()
    path = tmp_path / "d" / "device.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "d" / DB_NAME).st_mode) == 0o600
    b = Store.open(tmp_path / "d", SITE)
    assert b.card_hash(CARD) == digest
    b.close()
    c = Store.open(tmp_path / "other", SITE)
    assert c.card_hash(CARD) != digest  # keyed per device
    c.close()


def test_event_seq_never_goes_back_even_after_a_purge(store):
    first = store.outbox.append([{"type": "agent.started"}, {"type": "door.opened", "door": "main"}], 1.0)
    assert [e["seq"] for e in first] == [1, 2]
    store.db.execute("DELETE FROM events")
    store.db.conn.commit()
    again = store.outbox.append([{"type": "agent.started"}], 2.0)
    assert again[0]["seq"] == 3
    e = again[0]
    assert set(e) >= {"schema", "id", "site", "seq", "at", "type", "door", "reader", "credential", "booking", "reason"}
    assert e["schema"] == "haldor.event/1" and e["site"] == SITE


def test_event_time_is_local_with_offset(store):
    (e,) = store.outbox.append([{"type": "agent.started"}], local(2026, 11, 25, 17, 2))
    assert e["at"] == "2026-11-25T17:02:00.000+01:00"


@pytest.mark.parametrize(
    "start, end, inside, outside",
    [
        # spring forward: 02:00 does not exist; 01:30+01:00 to 03:30+02:00 is one hour
        ("2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:45:00+02:00"),
        # fall back: 02:30 happens twice; the booking is the hour between them
        ("2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T02:10:00+01:00", "2026-10-25T02:45:00+01:00"),
    ],
)
def test_dst_bookings_open_for_exactly_their_real_duration(store, start, end, inside, outside):
    from datetime import datetime

    doc = snapshot(42, policy={"grace_before_min": 0, "grace_after_min": 0}, bookings=[booking("night", start, end)])
    assert load(store, doc).status == "applied"
    s, e = datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()
    assert e - s == 3600
    assert decide_card(store, CARD, s).granted
    assert decide_card(store, CARD, e - 1).granted
    assert not decide_card(store, CARD, e).granted
    assert not decide_card(store, CARD, s - 1).granted
    assert decide_card(store, CARD, datetime.fromisoformat(inside).timestamp()).granted
    assert decide_card(store, CARD, datetime.fromisoformat(outside).timestamp()).reason == "outside_window"


@pytest.mark.parametrize("day, hours", [((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 11, 25), 24)])
def test_local_day_has_its_real_length(store, day, hours):
    start, end = store.local_day(local(*day, 12))
    assert end - start == hours * 3600


def test_facts_gather_a_booking_that_spans_many_days(store):
    doc = snapshot(42, bookings=[booking("camp", "2026-11-20T08:00:00+01:00", "2026-11-29T18:00:00+01:00")])
    load(store, doc)
    assert decide_card(store, CARD, local(2026, 11, 25, 3)).booking == "camp"


def test_leader_presence_is_remembered_for_leader_first(store):
    load(store, snapshot(42, policy={"leader_first": True}))
    now = local(2026, 11, 25, 17, 5)
    assert decide_card(store, CARD, now).reason == "no_booking"
    d = decide_card(store, LEADER_CARD, now)
    assert d.granted
    store.activity.note_entry(d.booking, d.role, now)
    assert decide_card(store, CARD, now).granted
    (activity,) = store.iter_table("booking_activity")
    assert activity == {"booking": "b881", "first_entry": now, "entries": 1, "checkins": 0, "leader_present": 1}


def test_migrations_are_idempotent(tmp_path):
    Store.open(tmp_path / "d", SITE).close()
    s = Store.open(tmp_path / "d", SITE)
    assert s.db.execute("SELECT version FROM haldor_schema WHERE name = 'store'").fetchone()[0] == len(MIGRATIONS)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_a_full_outbox_drops_the_oldest_door_movements_and_never_an_access_event(store):
    now = 1_800_000_000.0
    store.outbox.append([{"type": "access.granted", "door": "main"}] * 10, now)
    store.outbox.append([{"type": "door.opened", "door": "main"}, {"type": "door.closed", "door": "main"}] * 20, now)
    store.outbox.append([{"type": "door.forced", "door": "main"}] * 10, now)
    assert store.outbox.enforce_capacity(40) == 20
    kept = store.outbox.events(undelivered=True, limit=1000)
    assert [e["type"] for e in kept].count("access.granted") == 10 and [e["type"] for e in kept].count("door.forced") == 10
    assert [e["seq"] for e in kept if e["type"].startswith("door.") and e["type"] != "door.forced"][0] == 31
    assert store.outbox.stats()["dropped"] == 20
    assert store.outbox.enforce_capacity(5) == 20  # the rest of the door movements; the access and alarm events stay
    assert store.outbox.stats()["pending"] == 20
    assert store.outbox.enforce_capacity(5) == 0


def test_delivered_events_are_purged_after_the_retention_period(store):
    old, recent = 1_800_000_000.0, 1_800_000_000.0 + 90 * 86400
    first = store.outbox.append([{"type": "door.opened"}] * 3, old)
    store.outbox.append([{"type": "door.opened"}] * 2, recent)
    store.outbox.mark_delivered([e["seq"] for e in first[:2]], old)
    assert store.outbox.purge_delivered(recent - 60 * 86400) == 2  # delivered and old; the undelivered old one stays
    assert [e["seq"] for e in store.outbox.events(limit=10)] == [3, 4, 5]
    assert store.outbox.stats()["pending"] == 3


def test_an_old_event_is_kept_for_the_retention_period_after_the_broker_took_it(store):
    """The fleet may ask for it again until then (a broker that lost it)."""
    old, late = 1_800_000_000.0, 1_800_000_000.0 + 50 * 86400
    made = store.outbox.append([{"type": "door.opened"}] * 2, old)  # made offline, delivered 50 days later
    store.outbox.mark_delivered([made[0]["seq"]], late)
    assert store.outbox.purge_delivered(late + 20 * 86400 - 60 * 86400) == 0
    assert store.outbox.held(1, 5) == ([(1, 2)], 1)
    assert store.outbox.stats()["last_seq"] == 2
    assert store.outbox.purge_delivered(late + 61 * 86400 - 60 * 86400) == 1
    assert store.outbox.held(1, 5) == ([(2, 2)], 1) and store.outbox.last_seq() == 2


def test_cached_settings_follow_another_connections_commits(tmp_path):
    a = Store.open(tmp_path / "d", SITE)
    b = Store.open(tmp_path / "d", SITE)
    try:
        a.set_meta("x", 1)
        assert b.meta("x") == 1 and b.meta("x") == 1  # the second read from the cache
        a.set_meta("x", 2)
        assert b.meta("x") == 2  # another connection committed: read again
        b.set_meta("x", 3)
        assert b.meta("x") == 3  # its own write
        try:
            with b.write():
                b.set_meta("x", 4)
                assert b.meta("x") == 4
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert b.meta("x") == 3 and a.meta("x") == 3
    finally:
        a.close()
        b.close()
