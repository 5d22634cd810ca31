"""The bridge parses a feed or sheet again only when something its result depends on
changed; otherwise it uses what it kept in its state, and does not start the reading
process at all."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from haldor.bridge import service, settings
from haldor.bridge.calendar import AssociationRule
from haldor.bridge.inputs import read_inputs
from haldor.bridge.parsed import window
from haldor.bridge.state import BridgeState
from haldor.bridge.worker import InputWorker

from .test_bridge import CPH, Municipality, calendar, event


@pytest.fixture
def town(tmp_path):
    return Municipality(tmp_path, 1)  # no broker: these runs read and plan, they publish nothing


@pytest.fixture
def parses(monkeypatch):
    """What the reading process was asked to read, and how often it was started (the real
    process, watched)."""
    seen: dict[str, list] = {"read": [], "started": []}
    call, start = InputWorker.call, InputWorker._start

    def watched_call(self, what, *args, **kwargs):
        seen["read"].append(what.rsplit("/", 1)[-1])
        return call(self, what, *args, **kwargs)

    def watched_start(self):
        seen["started"].append(1)
        return start(self)

    monkeypatch.setattr(InputWorker, "call", watched_call)
    monkeypatch.setattr(InputWorker, "_start", watched_start)
    return seen


def read(cfg: settings.BridgeConfig, now: float):
    state = BridgeState(cfg.state)
    try:
        inputs, unread = read_inputs(cfg, state, now)
        plans = service.plan(cfg, state, inputs, unread, now)
        return inputs, [(site.id, new) for site, _, _, new in plans]
    finally:
        state.close()


def timeless(plans: list) -> list:
    """Snapshots without their version and time (those are ``now``'s)."""
    return [(site, {k: v for k, v in new.items() if k not in ("version", "generated_at")}) for site, new in plans]


def noon(days: int = 0) -> float:
    return (datetime.now(CPH).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=days)).timestamp()


def test_a_second_unchanged_run_does_not_start_the_reading_process(town, parses):
    cfg = settings.load(town.config)
    first, first_plans = read(cfg, noon())
    assert sorted(parses["read"]) == ["associations.csv", "credentials.csv", "gym-a.ics", "hal.ics", "rooms.csv"]
    assert parses["started"] == [1]
    parses["read"].clear()
    parses["started"].clear()
    again, again_plans = read(cfg, noon() + 3600)
    assert parses == {"read": [], "started": []}
    assert again == first  # the same bookings, problems, rows
    assert timeless(again_plans) == timeless(first_plans)  # the same snapshots
    assert first.bookings["valby-skole"] and first_plans[0][1]["bookings"]


def test_a_feed_whose_bytes_change_is_parsed_again_and_nothing_else(town, parses):
    cfg = settings.load(town.config)
    first, _ = read(cfg, noon())
    parses["read"].clear()
    town.write_feed(hours=1)
    again, _ = read(cfg, noon())
    assert parses["read"] == ["gym-a.ics"]
    ends = {b["end"] for b in again.bookings["valby-skole"]} - {b["end"] for b in first.bookings["valby-skole"]}
    assert ends and again.bookings["vanlose-skole"] == first.bookings["vanlose-skole"]


def test_a_changed_association_name_or_rule_parses_the_feeds_again(town, parses):
    cfg = settings.load(town.config)
    read(cfg, noon())
    parses["read"].clear()
    (town.dir / "associations.csv").write_text("id;name\na17;Valby Volleyball\na18;Valby Badminton\n")
    read(cfg, noon())
    assert sorted(parses["read"]) == ["associations.csv", "gym-a.ics", "hal.ics"]
    parses["read"].clear()
    by_summary = dataclasses.replace(cfg, rule=AssociationRule("summary"))
    got, _ = read(by_summary, noon())
    assert sorted(parses["read"]) == ["gym-a.ics", "hal.ics"]
    assert got.bookings == {"valby-skole": [], "vanlose-skole": []}  # "Volleyball U14" names no association
    assert any("no association from summary" in p for p in got.problems)
    parses["read"].clear()
    read(by_summary, noon())
    assert parses["read"] == []


def test_what_is_kept_holds_only_within_its_key(town, parses):
    """The same day: kept. The next day (the window moved), another horizon, another cap,
    another zone: parsed again."""
    cfg = settings.load(town.config)
    read(cfg, noon())
    for now in (noon() - 11 * 3600, noon() + 11 * 3600):  # 01:00 and 23:00 of the same day
        parses["read"].clear()
        read(cfg, now)
        assert parses["read"] == []
    feeds = ["gym-a.ics", "hal.ics"]
    london = tuple(dataclasses.replace(s, timezone="Europe/London") for s in cfg.sites)
    changed = [
        (cfg, feeds),  # the next day
        (dataclasses.replace(cfg, horizon_days=30), feeds),
        (dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, feed_bookings=1000)), feeds),
        (dataclasses.replace(cfg, sites=london), ["associations.csv", "credentials.csv", *feeds, "rooms.csv"]),
    ]
    for changed_cfg, expected in changed:
        parses["read"].clear()
        read(changed_cfg, noon(1))
        assert sorted(parses["read"]) == expected


def test_a_refused_feed_is_not_kept_and_a_feed_no_longer_configured_leaves(town, parses):
    cfg = settings.load(town.config)
    tight = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, feed_bookings=5))
    for _ in range(2):  # refused at every run: read every time
        parses["read"].clear()
        got, _ = read(tight, noon())
        assert "gym-a.ics" in parses["read"]
        assert any("more than 5 bookings over the horizon" in p for p in got.problems)
    read(cfg, noon())
    fewer = dataclasses.replace(cfg, feeds=cfg.feeds[1:])
    read(fewer, noon())
    state = BridgeState(cfg.state)
    try:
        assert [r[0].rsplit("|", 1)[0] for r in state.db.rows("SELECT input FROM bridge_parsed WHERE input LIKE 'feed:%'")] == [
            "feed:vanlose-skole/hal"
        ]
    finally:
        state.close()


def test_the_window_moves_once_a_day_so_old_bookings_stay_a_day_longer(town):
    """From local midnight a day back: a booking that ended at 01:30 yesterday is still in
    the window at noon today (with ``now - 1 day`` it had left at 01:30 today), and leaves
    at the first run after midnight."""
    today = datetime.now(CPH).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    start, end = window(today.timestamp(), CPH, 365)
    assert start == yesterday.replace(hour=0) and end == start + timedelta(days=365)
    assert window((today + timedelta(hours=11, minutes=59)).timestamp(), CPH, 365) == (start, end)
    assert window((today + timedelta(hours=12, minutes=1)).timestamp(), CPH, 365)[0] == today.replace(hour=0)
    old = yesterday.replace(hour=0, minute=30)
    (town.dir / "gym-a.ics").write_bytes(calendar(event("old@b", old, 1), event("volley@b", today + timedelta(days=1))))
    cfg = settings.load(town.config)
    at_noon, _ = read(cfg, today.timestamp())
    assert starts(at_noon) == [old.isoformat(), (today + timedelta(days=1)).isoformat()]
    after_midnight, _ = read(cfg, (today + timedelta(hours=12, minutes=1)).timestamp())
    assert starts(after_midnight) == [(today + timedelta(days=1)).isoformat()]


def starts(inputs) -> list[str]:
    return sorted(b["start"] for b in inputs.bookings["valby-skole"])
