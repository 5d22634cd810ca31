"""The dashboard's kept sums: after any mix of batches, bookings arriving late, a usage
sent again (under its own id or a new one), two consumers writing the same database and
rows worked out again at start, they equal a recount of the bookings, and every figure
read from them equals the one summed from the usage lines the tables and spreadsheets
show. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import copy
from datetime import date

from haldor.fleet.dashboard import by_association, by_site, totals
from haldor.fleet.report import Period, season_totals
from haldor.fleet.store import FleetStore
from haldor.fleet.usage_details import UsageDetails
from haldor.fleet.usage_sums import UsageSums

from .test_fleet import fleet_db as fleet_db  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from .test_fleet import usage

SEASON = Period(date(2026, 8, 10), date(2027, 6, 27))
LAST_SEASON = Period(date(2025, 8, 11), date(2026, 6, 28))


def booking(site: str, n: int, start: str, minutes: int, used: bool, **usage_fields) -> dict:
    doc = usage(site, f"b{n}", start, minutes, used, no_show=not used, room=f"r{n % 2}", association=f"a{n % 3}")
    doc["usage"] |= {"room_name": f"Sal {n % 2}", "association_name": f"Forening {n % 3}", **usage_fields}
    return doc


def mixed() -> list[list[dict]]:
    """Batches as the consumers get them: odd lengths (50 minutes: 0.83 h), closed and
    unobserved bookings, a booking past midnight, last season, a late one, sent again."""
    first = [
        booking("valby", 1, "2026-11-24T19:30:00+01:00", 90, True),
        booking("valby", 2, "2026-11-24T20:00:00+01:00", 50, False),
        booking("valby", 3, "2026-11-25T17:00:00+01:00", 50, True),
        booking("vanlose", 4, "2026-11-25T23:30:00+01:00", 60, True),  # past midnight
        booking("vanlose", 5, "2025-11-25T18:00:00+01:00", 120, False),  # last season
    ]
    second = [
        booking("vanlose", 6, "2026-12-01T18:00:00+01:00", 120, False, closed=True, closed_min=120),
        booking("vanlose", 7, "2026-12-01T18:00:00+01:00", 110, False, observed=0.5),
        booking("valby", 8, "2026-12-02T18:00:00+01:00", 120, True, closed_min=70),
        booking("valby", 9, "2027-07-05T18:00:00+02:00", 60, True),  # the summer break: no season
    ]
    late = [booking("valby", 10, "2026-08-12T16:00:00+02:00", 45, True)]  # a booking of August, in December
    again = [copy.deepcopy(first[0]), {**copy.deepcopy(second[1]), "id": "another-id"}]  # delivered twice; sent anew
    again[1]["usage"] |= {"used": True, "no_show": False}  # a second usage of a booking: the first one counts
    return [first, second, late, again]


def recount(store: FleetStore) -> tuple[list[tuple], list[tuple]]:
    """What the kept tables must hold, counted from the bookings themselves."""
    sums = [
        (scope, day, week, int(n), round(b, 2), round(u, 2), int(ns), int(c), int(o))
        for scope, day, week, n, b, u, ns, c, o in store.db.rows(
            "SELECT site, day, week, COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), SUM(closed), SUM(unobserved) "
            "FROM usage GROUP BY site, day, week UNION ALL "
            "SELECT '', day, week, COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), SUM(closed), SUM(unobserved) "
            "FROM usage GROUP BY day, week"
        )
    ]
    slots = [
        (site, room, day, int(w), int(m), round(h, 2), round(b, 2), round(u, 2))
        for site, room, day, w, m, h, b, u in store.db.rows(
            "SELECT site, room, day, weekday, start_min, booked_hours, SUM(booked_hours), SUM(used_hours) FROM usage "
            "GROUP BY site, room, day, weekday, start_min, booked_hours UNION ALL "
            "SELECT site, '', day, weekday, start_min, booked_hours, SUM(booked_hours), SUM(used_hours) FROM usage "
            "GROUP BY site, day, weekday, start_min, booked_hours UNION ALL "
            "SELECT '', '', day, weekday, start_min, booked_hours, SUM(booked_hours), SUM(used_hours) FROM usage "
            "GROUP BY day, weekday, start_min, booked_hours"
        )
    ]
    return sorted(sums), sorted(slots)


def kept(store: FleetStore) -> tuple[list[tuple], list[tuple]]:
    sums = [
        (s, d, w, int(n), round(b, 2), round(u, 2), int(ns), int(c), int(o))
        for s, d, w, n, b, u, ns, c, o in store.db.rows(
            "SELECT site, day, week, bookings, booked_hours, used_hours, no_shows, closed, unobserved FROM usage_sums"
        )
    ]
    slots = [
        (s, r, d, int(w), int(m), round(h, 2), round(b, 2), round(u, 2))
        for s, r, d, w, m, h, b, u in store.db.rows(
            "SELECT site, room, day, weekday, start_min, hours, booked_hours, used_hours FROM usage_slots"
        )
    ]
    return sorted(sums), sorted(slots)


def same_figures(store: FleetStore) -> None:
    """Every figure the pages read from the kept sums is the one the usage lines sum to."""
    reads = UsageSums(store.db)
    for period in (SEASON, LAST_SEASON, Period(), Period(date(2026, 11, 25), date(2026, 12, 1))):
        lines = store.weekly_usage(period)
        assert totals(reads.weeks(period)) == totals(lines), period
        assert totals(reads.weeks(period, "valby")) == totals(store.weekly_usage(period, "valby")), period
        assert [(w.week, w.booked_hours, w.used_hours) for w in reads.weeks(period)] == [
            (
                w,
                round(sum(u.booked_hours for u in lines if u.week == w), 2),
                round(sum(u.used_hours for u in lines if u.week == w), 2),
            )
            for w in sorted({u.week for u in lines})
        ]
        assert [(r.association, r.sites, r.figures) for r in reads.ranks(period)] == [
            (r.association, r.sites, r.figures) for r in by_association(lines)
        ], period
        assert reads.sites(period, {}) == by_site(lines), period
        assert reads.seasons(period) == season_totals(lines), period
        assert reads.seasons(period, ranks=reads.ranks(period)) == season_totals(lines), period
        details = UsageDetails(store.db)
        assert reads.week_map(period) == details.week_map(period), period
        assert reads.week_map(period, "valby", "r1") == details.week_map(period, "valby", "r1"), period
        assert reads.week_map(period, "vanlose") == details.week_map(period, "vanlose"), period


def test_the_kept_sums_equal_a_recount_after_any_mix_of_arrivals(fleet_db):
    store, other = FleetStore(fleet_db), FleetStore(fleet_db)  # two consumers, one database
    for i, batch in enumerate(mixed()):
        (store if i % 2 == 0 else other).store((), batch)
        assert kept(store) == recount(store), i
    assert store.usage_count() == 10 and UsageSums(store.db).bookings() == 10
    # 50 minutes is 0.83 h, whichever way its bookings are grouped
    assert store.db.one("SELECT booked_hours FROM usage WHERE booking = 'b2'") == (0.83,)
    same_figures(store)
    # rows stored before their details: worked out again at start, and the sums with them
    store.db.execute("UPDATE usage SET start = NULL, weekday = NULL, start_min = NULL WHERE site = 'valby'")
    store.db.execute("UPDATE usage_sums SET bookings = bookings + 100")  # what was kept is not trusted
    other.close()
    store.close()
    again = FleetStore(fleet_db)
    assert kept(again) == recount(again) and UsageSums(again.db).bookings() == 10
    same_figures(again)
    again.close()


def test_a_database_from_before_the_sums_has_them_made_at_start(fleet_db):
    store = FleetStore(fleet_db)
    for batch in mixed():
        store.store((), batch)
    store.db.execute("DELETE FROM usage_sums")
    store.db.execute("DELETE FROM usage_slots")
    store.close()
    again = FleetStore(fleet_db)
    assert kept(again) == recount(again) and kept(again)[0]
    again.close()


def test_an_older_database_has_its_hours_to_the_hundredth_and_its_sums_made(fleet_db):
    """A fleet.db (or PostgreSQL) from before the kept sums: its bookings' hours rounded by the
    migration (50 minutes stored as 0.8333... before), the sums made at start."""
    from haldor.fleet.schema import MIGRATIONS
    from haldor.sql import Database

    db = Database.open(fleet_db)
    db.migrate("fleet", MIGRATIONS[:8])
    db.executemany(
        "INSERT INTO usage (id, site, booking, day, week, room, association, booked_hours, used_hours, no_show, closed, "
        "unobserved, start, weekday, start_min) VALUES (?, 'valby', ?, '2026-11-24', '2026-W48', 'r0', 'a0', ?, ?, 0, 0, 0, "
        "'2026-11-24T19:00:00+01:00', 1, 1140)",
        [["u1", "b1", 50 / 60, 50 / 60], ["u2", "b2", 50 / 60, 0.0]],
    )
    db.close()
    store = FleetStore(fleet_db)
    assert sorted(r[0] for r in store.db.rows("SELECT booked_hours FROM usage")) == [0.83, 0.83]
    assert kept(store) == recount(store)
    assert totals(UsageSums(store.db).weeks(Period())).booked_hours == 1.66 == totals(store.weekly_usage()).booked_hours
    store.close()
