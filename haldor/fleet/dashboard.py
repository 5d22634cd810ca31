"""The dashboard's figures, from the same usage lines the tables and spreadsheets show
(never a second way of counting): the period's totals, the season's weeks beside last
season's, and the sites in the order the office should look at them. Pure, so each
figure is checked against a hand-made table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from haldor.records import record

from .report import Period, UsageLine, weekly_totals

#: last season's week beside this one's: 52 weeks earlier keeps ISO week numbers and weekdays
YEAR_BACK = timedelta(weeks=52)
#: a schedule older than this, or an outbox longer than this, needs a look
OLD_SCHEDULE_H = 48.0
LONG_OUTBOX = 100


@record
class Totals:
    """The period's figures over every line shown (the CSV's rows summed)."""

    bookings: int = 0
    booked_hours: float = 0.0
    used_hours: float = 0.0
    no_shows: int = 0
    closed: int = 0
    unobserved: int = 0

    @property
    def used_share(self) -> float:
        return self.used_hours / self.booked_hours if self.booked_hours else 0.0

    @property
    def unused_hours(self) -> float:
        return round(self.booked_hours - self.used_hours, 2)


def totals(lines: Iterable[UsageLine]) -> Totals:
    b = h = u = n = c = o = 0.0
    for line in lines:
        b += line.bookings
        h += line.booked_hours
        u += line.used_hours
        n += line.no_shows
        c += line.closed
        o += line.unobserved
    return Totals(int(b), round(h, 2), round(u, 2), int(n), int(c), int(o))


def week_back(iso_week: str) -> str:
    """The same week a year (52 weeks) before: "2026-W48" -> "2025-W48"."""
    year, number = iso_week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1) - YEAR_BACK
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


@record
class SeasonWeek:
    week: str
    booked: float
    used: float
    #: the same week last season (None: no data that far back)
    last_booked: float | None
    last_used: float | None


def season_weeks(lines: list[UsageLine], last_lines: list[UsageLine]) -> list[SeasonWeek]:
    """This period's weeks (every week from its first to its last booking) with last
    season's same weeks beside them, when last season has any booking at all."""
    last = {w: (b, u) for w, b, u in weekly_totals(last_lines, most=10_000)} if last_lines else {}
    out = []
    for w, booked, used in weekly_totals(lines):
        before = last.get(week_back(w), (0.0, 0.0) if last else None)
        out.append(SeasonWeek(w, booked, used, *(before if before is not None else (None, None))))
    return out


def attention(site: dict[str, Any]) -> list[str]:
    """What needs a look at a site, as text keys (``fleet.dash.why.*``); empty: all is well."""
    why = []
    if site.get("unknown"):
        why.append("unknown")
    elif site.get("silent"):
        why.append("silent")
    elif not site.get("online"):
        why.append("offline")
    if site.get("reader_faults"):
        why.append("reader")
    if site.get("events_missing") or site.get("events_lost"):
        why.append("events")
    if (site.get("outbox_pending") or 0) > LONG_OUTBOX:
        why.append("outbox")
    age = site.get("schedule_age_h")
    if age is None or age > OLD_SCHEDULE_H:
        why.append("schedule")
    if site.get("mode") == "lockdown":
        why.append("lockdown")
    return why


def state(site: dict[str, Any]) -> str:
    """``bad`` (not heard), ``warn`` (heard, but something needs a look) or ``ok``."""
    why = attention(site)
    if any(w in ("unknown", "silent", "offline") for w in why):
        return "bad"
    return "warn" if why else "ok"


def by_attention(sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sites needing attention first (not heard, then the rest), then by name; each with
    its ``state`` and ``why``."""
    rank = {"bad": 0, "warn": 1, "ok": 2}
    rows = [{**s, "state": state(s), "why": attention(s)} for s in sites]
    return sorted(rows, key=lambda s: (rank[s["state"]], s["name"].casefold(), s["site"]))


def online_count(sites: list[dict[str, Any]]) -> int:
    return sum(1 for s in sites if s.get("online") and not s.get("unknown"))


def year_before(period: Period) -> Period:
    """The same days 52 weeks earlier; an open end closes where this period begins (last
    season's figures never reach into this one's)."""
    first = None if period.first is None else period.first - YEAR_BACK
    if period.last is not None:
        last: date | None = period.last - YEAR_BACK
    else:
        last = None if period.first is None else period.first - timedelta(days=1)
    return Period(first, last)


@record
class AssociationRank:
    association: str
    name: str
    sites: int
    figures: Totals

    @property
    def no_show_share(self) -> float:
        """No-shows of the bookings that could be judged (neither closed nor unobserved)."""
        counted = self.figures.bookings - self.figures.closed - self.figures.unobserved
        return self.figures.no_shows / counted if counted > 0 else 0.0


#: the ranking's orders: ?sort= and its key (largest first, the name breaking ties)
SORTS = ("unused", "no_shows", "booked", "name")


def by_association(lines: Iterable[UsageLine], sort: str = "unused") -> list[AssociationRank]:
    """Each association's period over every site, the same sums as the dashboard's."""
    grouped: dict[str, list[UsageLine]] = {}
    for line in lines:
        grouped.setdefault(line.association, []).append(line)
    ranks = [
        AssociationRank(a, rows[-1].association_name or a, len({r.site for r in rows}), totals(rows))
        for a, rows in grouped.items()
    ]
    return sorted_ranks(ranks, sort)


def sorted_ranks(ranks: list[AssociationRank], sort: str) -> list[AssociationRank]:
    """The ranking in the order ``sort`` names (unused hours when it names none), the name breaking ties."""
    ranks = sorted(ranks, key=lambda r: (r.name.casefold(), r.association))
    if sort == "no_shows":
        ranks.sort(key=lambda r: -r.no_show_share)
    elif sort == "booked":
        ranks.sort(key=lambda r: -r.figures.booked_hours)
    elif sort != "name":
        ranks.sort(key=lambda r: -r.figures.unused_hours)
    return ranks


@record
class Figures:
    """What the dashboard and the report show of a period, worked out once from its usage
    lines (and last season's) and kept until a booking's figures come in."""

    totals: Totals
    weeks: list[SeasonWeek]
    ranks: list[AssociationRank]
    sites: list[tuple[str, str, Totals]]


def figures(lines: list[UsageLine], last_lines: list[UsageLine]) -> Figures:
    return Figures(totals(lines), season_weeks(lines, last_lines), by_association(lines), by_site(lines))


def why(booking: dict[str, Any]) -> str:
    """Why a booking was used or not, as a key of ``fleet.why.*``."""
    if booking.get("closed"):
        return "closed"
    if booking.get("used"):
        return "checkin" if booking.get("checkins") else "entry"
    if booking.get("unobserved"):
        return "unobserved"
    return "no_show" if booking.get("no_show") else "unused"


def by_site(lines: Iterable[UsageLine]) -> list[tuple[str, str, Totals]]:
    """(site, name, figures) per site, by name: the report's table of the sites."""
    grouped: dict[str, list[UsageLine]] = {}
    for line in lines:
        grouped.setdefault(line.site, []).append(line)
    rows = [(site, rows[-1].site_name or site, totals(rows)) for site, rows in grouped.items()]
    return sorted(rows, key=lambda r: (r[1].casefold(), r[0]))
