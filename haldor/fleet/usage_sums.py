"""The dashboard's sums, kept up to date in the transaction that stores each booking's
figures: per site and day (site ``''``: every site) in ``usage_sums``, and the
weekday-by-hour map's slots per site, room and day in ``usage_slots``. A season of a
thousand sites is then a few hundred rows to add, not 200,000 bookings. The same SQL adds
the bookings a batch brought and, over every booking, makes the tables again
(:func:`rebuild`): there is one way of counting, the sum of each booking's figures, which
are to the hundredth so any grouping of them adds up to the same figure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from haldor.sql import Database

from .dashboard import AssociationRank, Totals, sorted_ranks
from .report import SEASON_WEEKS, Period, SeasonLine, UsageLine, season_of
from .rows import where
from .week_map import WeekMap, spread

_FIGURES = "booked_hours, used_hours, no_show, closed, unobserved"

#: the kept sums of the bookings ``{rows}`` picks, added to what the tables hold
_ADD_SUMS = f"""
INSERT INTO usage_sums (site, day, week, bookings, booked_hours, used_hours, no_shows, closed, unobserved)
SELECT scope, day, MAX(week), COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), SUM(closed), SUM(unobserved)
FROM (SELECT site AS scope, day, week, {_FIGURES} FROM usage WHERE {{rows}}
      UNION ALL SELECT '', day, week, {_FIGURES} FROM usage WHERE {{rows}}) AS u
WHERE 1 = 1 GROUP BY scope, day ORDER BY scope, day
ON CONFLICT (site, day) DO UPDATE SET bookings = usage_sums.bookings + excluded.bookings,
  booked_hours = usage_sums.booked_hours + excluded.booked_hours, used_hours = usage_sums.used_hours + excluded.used_hours,
  no_shows = usage_sums.no_shows + excluded.no_shows, closed = usage_sums.closed + excluded.closed,
  unobserved = usage_sums.unobserved + excluded.unobserved
"""
_SLOT = "day, weekday, start_min, booked_hours AS hours, booked_hours, used_hours FROM usage WHERE weekday IS NOT NULL AND"
_ADD_SLOTS = f"""
INSERT INTO usage_slots (site, room, day, weekday, start_min, hours, booked_hours, used_hours)
SELECT scope, scope_room, day, MAX(weekday), start_min, hours, SUM(booked_hours), SUM(used_hours)
FROM (SELECT site AS scope, room AS scope_room, {_SLOT} {{rows}}
      UNION ALL SELECT site, '', {_SLOT} {{rows}}
      UNION ALL SELECT '', '', {_SLOT} {{rows}}) AS u
WHERE 1 = 1 GROUP BY scope, scope_room, day, start_min, hours ORDER BY scope, scope_room, day, start_min, hours
ON CONFLICT (site, room, day, start_min, hours) DO UPDATE SET booked_hours = usage_slots.booked_hours + excluded.booked_hours,
  used_hours = usage_slots.used_hours + excluded.used_hours
"""
#: ids in one statement (SQLite takes 32,766 parameters; each statement names them three times)
_CHUNK = 500


def add(db: Database, ids: Sequence[str]) -> None:
    """Add the bookings of ``ids`` (just stored, in the caller's transaction) to the kept sums."""
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        rows = f"id IN ({', '.join('?' * len(chunk))})"
        db.execute(_ADD_SUMS.format(rows=rows), chunk * 2)
        db.execute(_ADD_SLOTS.format(rows=rows), chunk * 3)


def rebuild(db: Database) -> None:
    """The kept sums made again from every booking (in the caller's transaction): after a
    booking's figures were worked out again, or for a database from before they were kept."""
    db.execute("DELETE FROM usage_sums")
    db.execute("DELETE FROM usage_slots")
    db.execute(_ADD_SUMS.format(rows="1 = 1"))
    db.execute(_ADD_SLOTS.format(rows="1 = 1"))


def _days(period: Period) -> tuple[str | None, str | None]:
    after = None if period.last is None else (period.last + timedelta(days=1)).isoformat()
    return (None if period.first is None else period.first.isoformat()), after


def _totals(r: Sequence[Any]) -> Totals:
    """(bookings, booked, used, no-shows, closed, unobserved) as the dashboard's figures."""
    return Totals(int(r[0]), round(float(r[1]), 2), round(float(r[2]), 2), int(r[3]), int(r[4]), int(r[5]))


_SUMMED = "COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), SUM(closed), SUM(unobserved)"


class UsageSums:
    """Reads of the kept sums, and of the usage table's covering indexes (the caller holds
    whatever lock it shares)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def bookings(self) -> int:
        """Every booking counted: changes whenever a booking's figures come in (the pages' caches watch it)."""
        row = self.db.one("SELECT SUM(bookings) FROM usage_sums WHERE site = ''")
        return int(row[0]) if row and row[0] is not None else 0

    def weeks(self, period: Period, site: str | None = None) -> list[UsageLine]:
        """One line per week of the period (of one site, or of all): the weeks the chart
        and the figures sum."""
        first, after = _days(period)
        clause, params = where(None, first, after, "day")
        rows = self.db.rows(
            "SELECT week, SUM(bookings), SUM(booked_hours), SUM(used_hours), SUM(no_shows), SUM(closed), SUM(unobserved) "
            f"FROM usage_sums WHERE site = ?{clause} GROUP BY week ORDER BY week",
            [site or "", *params],
        )
        return [UsageLine(r[0], site or "", "", "", *_line(r[1:])) for r in rows]

    def sites(self, period: Period, names: dict[str, str], site: str | None = None) -> list[tuple[str, str, Totals]]:
        """(site, name, figures) per site (or of the one), by name: the report's table of the sites."""
        first, after = _days(period)
        clause, params = where(site, first, after, "day")
        rows = self.db.rows(
            "SELECT site, SUM(bookings), SUM(booked_hours), SUM(used_hours), SUM(no_shows), SUM(closed), SUM(unobserved) "
            f"FROM usage_sums WHERE site <> ''{clause} GROUP BY site",
            params,
        )
        out = [(r[0], names.get(r[0]) or r[0], _totals(r[1:])) for r in rows]
        return sorted(out, key=lambda r: (r[1].casefold(), r[0]))

    def _associations(self, period: Period, site: str | None, weeks: tuple[str, str] | None = None) -> list[tuple]:
        first, after = _days(period)
        clause, params = where(site, first, after, "day")
        if weeks is not None:
            clause += " AND week >= ? AND week <= ?"
            params += list(weeks)
        # every site's: in the order of the index that holds what is summed (association, then
        # site: the distinct sites counted as they pass); SQLite, without statistics, would
        # take the day's index and sort a season of bookings
        table = "usage INDEXED BY idx_usage_association_site" if not site and self.db.kind == "sqlite" else "usage"
        return self.db.rows(
            f"SELECT association, MAX(association_name), COUNT(DISTINCT site), {_SUMMED} "
            f"FROM {table} WHERE 1 = 1{clause} GROUP BY association",
            params,
        )

    def ranks(self, period: Period, site: str | None = None) -> list[AssociationRank]:
        """Each association's period over every site (or at one), by unused hours."""
        ranks = [AssociationRank(r[0], r[1] or r[0], int(r[2]), _totals(r[3:])) for r in self._associations(period, site)]
        return sorted_ranks(ranks, "unused")

    def seasons(
        self,
        period: Period,
        weeks: tuple[int, int] = SEASON_WEEKS,
        ranks: list[AssociationRank] | None = None,
        site: str | None = None,
    ) -> list[SeasonLine]:
        """Per season and association over every site or at one (the summer break belongs to
        none): ``ranks`` of the same period and site stand for its one season when every week
        of it is in that season."""
        first, after = _days(period)
        clause, params = where(None, first, after, "day")
        spans: dict[str | None, tuple[str, str]] = {}
        for (week,) in self.db.rows(f"SELECT DISTINCT week FROM usage_sums WHERE site = ?{clause}", [site or "", *params]):
            year, number = (int(x) for x in week.split("-W"))
            season = season_of(year, number, weeks)
            low, high = spans.get(season, (week, week))
            spans[season] = (min(low, week), max(high, week))
        out = []
        for season, span in spans.items():
            if season is None:
                continue
            if ranks is not None and len(spans) == 1:
                out += [SeasonLine(season, r.association, r.name, r.sites, *_season(r.figures)) for r in ranks]
                continue
            for r in self._associations(period, site, span):
                out.append(SeasonLine(season, r[0], r[1] or r[0], int(r[2]), *_season(_totals(r[3:]))))
        return sorted(out, key=lambda s: (s.season, s.association_name.casefold(), s.association))

    def week_map(self, period: Period, site: str | None = None, room: str | None = None) -> WeekMap:
        """The period's bookings (those of a site, or of one of its rooms) by weekday and hour."""
        first, after = _days(period)
        clause, params = where(None, first, after, "day")
        rows = self.db.rows(
            "SELECT weekday, start_min, hours, SUM(booked_hours), SUM(used_hours) FROM usage_slots "
            f"WHERE site = ? AND room = ?{clause} GROUP BY weekday, start_min, hours",
            [site or "", (room or "") if site else "", *params],
        )
        return spread((int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows)


def _line(r: Sequence[Any]) -> tuple[int, float, float, int, int, int]:
    return int(r[0]), round(float(r[1]), 2), round(float(r[2]), 2), int(r[3]), int(r[4]), int(r[5])


def _season(t: Totals) -> tuple[int, float, float, int, int, int]:
    return t.bookings, t.booked_hours, t.used_hours, t.no_shows, t.closed, t.unobserved
