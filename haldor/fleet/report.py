"""The fleet's numbers, from what the store holds. Pure, so the usage arithmetic is
checked against a hand-made table."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from haldor.records import record

SILENT_AFTER_S = 180  # agents republish their status every 60 s
#: a sports season: from ISO week 33 (mid-August) to week 26 (end of June) the next year
SEASON_WEEKS = (33, 26)


@record
class UsageLine:
    week: str
    site: str
    room: str
    association: str
    bookings: int
    booked_hours: float
    used_hours: float
    no_shows: int
    #: bookings whose room was closed throughout: nobody could use them
    closed: int = 0
    #: unused bookings the box did not watch wholly (it was off): not counted as unused
    unobserved: int = 0
    site_name: str = ""
    room_name: str = ""
    association_name: str = ""

    @property
    def used_share(self) -> float:
        return self.used_hours / self.booked_hours if self.booked_hours else 0.0


@record
class SeasonLine:
    """One association's season: what it booked and used, over every site."""

    season: str
    association: str
    association_name: str
    sites: int
    bookings: int
    booked_hours: float
    used_hours: float
    no_shows: int
    closed: int
    unobserved: int

    @property
    def used_share(self) -> float:
        return self.used_hours / self.booked_hours if self.booked_hours else 0.0


@record
class Period:
    """Local calendar days, both ends included; None: open."""

    first: date | None = None
    last: date | None = None

    def instants(self, zone: str) -> tuple[float | None, float | None]:
        """The period as instants in ``zone`` (the end exclusive), for the database."""
        tz = ZoneInfo(zone)
        since = None if self.first is None else datetime.combine(self.first, datetime.min.time(), tz).timestamp()
        until = (
            None if self.last is None else datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tz).timestamp()
        )
        return since, until


#: no limit either way
ALL_TIME = Period()


def week_of(start: str) -> str:
    """ISO week of the booking's local start: "2026-W48"."""
    year, week, _ = datetime.fromisoformat(start).isocalendar()
    return f"{year}-W{week:02d}"


def season_of(year: int, week: int, weeks: tuple[int, int] = SEASON_WEEKS) -> str | None:
    """The season an ISO week belongs to ("2026/27"), or None for the weeks between
    seasons (the summer break). A season within one year (first week before last) is
    named by its year."""
    first, last = weeks
    if first <= last:
        return str(year) if first <= week <= last else None
    if week >= first:
        return f"{year}/{(year + 1) % 100:02d}"
    if week <= last:
        return f"{year - 1}/{year % 100:02d}"
    return None


def season_start(today: date, weeks: tuple[int, int] = SEASON_WEEKS) -> date:
    """The Monday the season of ``today`` began (in the summer break: the last one's)."""
    first, last = weeks
    year, week, _ = today.isocalendar()
    if first > last and week < first:
        year -= 1
    return date.fromisocalendar(year, first, 1)


@record
class BookingFigures:
    """One booking's part in the usage report, worked out once, when its usage arrives
    (the store sums these; the page never parses a usage again)."""

    day: str
    week: str
    room: str
    association: str
    room_name: str
    association_name: str
    booked_hours: float
    used_hours: float
    no_show: int
    closed: int
    unobserved: int
    #: the booking's local start as the box sent it, its length, who came, and when in the week
    start: str = ""
    booked_min: int = 0
    entries: int = 0
    checkins: int = 0
    used: int = 0
    weekday: int = 0
    start_min: int = 0


def _count(value: Any) -> int:
    """A count a box sends (entries, check-ins): a whole number from 0, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else 0


def _minutes(value: Any) -> bool:
    """A length a booking can have: 0 to a week of minutes (a box's odd number is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 7 * 24 * 60


def booking_figures(u: dict[str, Any]) -> BookingFigures | None:
    """Fair to the associations: a booking whose room was closed throughout is counted
    apart (and the closed part of one partly closed is not booked time), and so is an
    unused booking the box did not watch wholly, since nobody can tell it was unused.
    None for a usage that does not name its booking's start (an old agent's)."""
    if not isinstance(u.get("start"), str) or not _minutes(u.get("booked_min")):
        return None
    try:
        start = datetime.fromisoformat(u["start"])
    except ValueError:
        return None
    room, association = str(u.get("room") or "?"), str(u.get("association") or "?")
    closed = 1 if u.get("closed") else 0
    observed = u.get("observed", 1)
    unobserved = 1 if not closed and not u.get("used") and isinstance(observed, (int, float)) and 0 <= observed < 1 else 0
    counted = not closed and not unobserved
    closed_min = u.get("closed_min") if _minutes(u.get("closed_min")) else 0
    # to the hundredth: every sum of bookings (a line, a week, a season) adds up to the same figure
    hours = round(max(0.0, u["booked_min"] - closed_min) / 60, 2) if counted else 0.0
    return BookingFigures(
        day=start.date().isoformat(),
        week=week_of(u["start"]),
        room=room,
        association=association,
        room_name=str(u.get("room_name") or room)[:200],
        association_name=str(u.get("association_name") or association)[:200],
        booked_hours=hours,
        used_hours=hours if u.get("used") else 0.0,
        no_show=1 if counted and u.get("no_show") else 0,
        closed=closed,
        unobserved=unobserved,
        start=u["start"][:40],
        booked_min=round(u["booked_min"]),
        entries=_count(u.get("entries")),
        checkins=_count(u.get("checkins")),
        used=1 if u.get("used") else 0,
        weekday=start.weekday(),
        start_min=start.hour * 60 + start.minute,
    )


def season_totals(lines: Iterable[UsageLine], weeks: tuple[int, int] = SEASON_WEEKS) -> list[SeasonLine]:
    """Per season and association, over every site (the summer break belongs to none)."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0, 0, 0])
    sites: dict[tuple[str, str], set[str]] = defaultdict(set)
    names: dict[tuple[str, str], str] = {}
    for line in lines:
        year, week = (int(x) for x in line.week.split("-W"))
        season = season_of(year, week, weeks)
        if season is None:
            continue
        key = (season, line.association)
        a = acc[key]
        for i, value in enumerate(
            (line.bookings, line.booked_hours, line.used_hours, line.no_shows, line.closed, line.unobserved)
        ):
            a[i] += value
        sites[key].add(line.site)
        names[key] = line.association_name or line.association
    return sorted(
        (
            SeasonLine(
                k[0], k[1], names[k], len(sites[k]), int(v[0]), round(v[1], 2), round(v[2], 2), int(v[3]), int(v[4]), int(v[5])
            )
            for k, v in acc.items()
        ),
        key=lambda s: (s.season, s.association_name.casefold(), s.association),
    )


def _monday(iso_week: str) -> date:
    year, number = iso_week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def weekly_totals(lines: list[UsageLine], most: int = 60) -> list[tuple[str, float, float]]:
    """(week, booked hours, used hours) over every site, for the chart: every week from
    the first to the last, a quiet one as nothing (so time runs evenly), the last
    ``most`` weeks at most."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for line in lines:
        acc[line.week][0] += line.booked_hours
        acc[line.week][1] += line.used_hours
    if not acc:
        return []
    first, last = (_monday(w) for w in (min(acc), max(acc)))
    first = max(first, last - timedelta(weeks=most - 1))
    weeks = []
    while first <= last:
        year, number, _ = first.isocalendar()
        weeks.append(f"{year}-W{number:02d}")
        first += timedelta(weeks=1)
    return [(w, round(acc[w][0], 2), round(acc[w][1], 2)) if w in acc else (w, 0.0, 0.0) for w in weeks]


def _reader_faults(readers: str | None) -> dict[str, str]:
    """Reader id -> fault, from the status's ``readers`` (stored as JSON)."""
    try:
        entries = json.loads(readers) if readers else {}
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        r: str(v.get("fault") or "fault") for r, v in sorted(entries.items()) if isinstance(v, dict) and not v.get("ok", True)
    }


def site_names(names: str | None) -> dict[str, dict[str, str]]:
    """The status's room and door names (stored as JSON): {"rooms": {...}, "doors": {...}}."""
    try:
        entries = json.loads(names) if names else {}
    except ValueError:
        entries = {}
    if not isinstance(entries, dict):
        entries = {}
    return {kind: dict(entries.get(kind) or {}) for kind in ("rooms", "doors")}


def site_rows(sites: list[dict[str, Any]], now: float, unsure_before: float | None = None) -> list[dict[str, Any]]:
    """Online, offline since when, or silent (no status for three minutes), with the
    schedule's age and the outbox backlog; the offline ones first, then by name. A site
    last heard before ``unsure_before`` (the fleet lost the broker then, or has heard it
    again only since) is ``unknown``: what is shown is as of then, and nobody is called
    offline for the fleet's fault."""
    out = []
    heard_until = now if unsure_before is None else min(now, unsure_before)
    for s in sites:
        silent = s.get("seen_at") is not None and heard_until - s["seen_at"] > SILENT_AFTER_S
        online = bool(s.get("online")) and not silent
        since = s.get("since")
        if silent and s.get("online"):
            since = s["seen_at"]
        out.append(
            {
                "site": s["site"],
                "name": s.get("name") or s["site"],
                "timezone": s.get("timezone"),
                "online": online,
                "silent": silent,
                "unknown": unsure_before is not None and (s.get("seen_at") or 0.0) < unsure_before,
                "since": since,
                "schedule_version": s.get("schedule_version"),
                "agent_version": s.get("agent_version"),
                "schedule_age_h": None if s.get("last_sync") is None else round((now - s["last_sync"]) / 3600, 1),
                "outbox_pending": s.get("outbox_pending"),
                "outbox_oldest": s.get("outbox_oldest"),
                "events_missing": s.get("events_missing") or 0,
                "events_lost": s.get("events_lost") or 0,
                "mode": s.get("mode"),
                "reader_faults": _reader_faults(s.get("readers")),
                **site_names(s.get("names")),
            }
        )
    return sorted(out, key=lambda r: (r["online"], r["name"].casefold(), r["site"]))
