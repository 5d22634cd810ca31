"""What a request asks the fleet to show: language, period, site and door, read from
the query string once, with a word for what could not be read (never an error page
for a mistyped date)."""

from __future__ import annotations

import re
from dataclasses import field, replace
from datetime import date, datetime
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from haldor.records import record
from haldor.texts import LANGUAGES, t

from .report import SEASON_WEEKS, Period, season_start

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: the Danish way of writing a day, as the form asks for it: 06-12-2026 (also 6.12.2026, 6/12/2026)
DANISH_DAY = re.compile(r"(\d{1,2})[-./](\d{1,2})[-./](\d{4})")
#: the days a filter can name (the page's instants stay in range)
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)


@record
class View:
    lang: str = "da"
    period: Period = Period()
    site: str = ""
    door: str = ""
    #: one room of the chosen site (the dashboard's weekday-by-hour map)
    room: str = ""
    #: what the query asked for, as typed (the form shows it back)
    typed: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    #: who is logged in (empty: the page is open, on loopback without users), and the form token
    user: str = ""
    role: str = ""
    csrf: str = ""
    #: logged in by a reverse proxy's single sign-on (no logout here)
    sso: bool = False
    #: since when the fleet has not heard the broker (every page says so), in the page's zone
    blind_since: float | None = None
    zone: str = "Europe/Copenhagen"
    #: the association whose season is shown, and the order of the associations' ranking
    association: str = ""
    sort: str = ""

    def query(self, **changes: str) -> str:
        """This view's query string with ``changes`` (an empty value drops the key)."""
        values = {**self.typed, "lang": self.lang, **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v})

    def other_language(self) -> str:
        return "en" if self.lang == "da" else "da"

    def known(self, sites: dict[str, dict]) -> View:
        """This view without a site or door that does not exist, and a word saying so."""
        view = self
        if view.site and view.site not in sites:
            view = replace(view, site="", door="", room="", problems=(*view.problems, t("fleet.unknown_filter_site", view.lang)))
        if view.door and view.door not in sites.get(view.site, {}).get("doors", {}):
            view = replace(view, door="", problems=(*view.problems, t("fleet.unknown_door", view.lang)))
        return view


def read_view(query: str, today: date, *, access: bool = False, weeks: tuple[int, int] = SEASON_WEEKS) -> View:
    """The period defaults to the season so far (the overview) or the last seven days
    (the access log)."""
    q = {k: v[-1].strip() for k, v in parse_qs(query, keep_blank_values=True).items() if v}
    lang = q.get("lang", "da")
    lang = lang if lang in LANGUAGES else "da"
    problems = []
    days: list[date | None] = []
    for key in ("from", "to"):
        text = q.get(key, "")
        try:
            day = parse_day(text)
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                raise ValueError(text)
            days.append(day)
        except ValueError:
            problems.append(f"{t('fleet.bad_date', lang)}: {text[:40]}")
            days.append(None)
    first, last = days
    if first is None and "from" not in q:
        first = date.fromordinal(today.toordinal() - 6) if access else season_start(today, weeks)
    if first and last and first > last:
        first, last = last, first
    typed = {k: q[k] for k in ("from", "to", "site", "door", "room", "association", "sort") if q.get(k)}
    if first is not None and "from" not in typed:
        typed["from"] = first.isoformat()
    site = q.get("site", "")
    room = q.get("room", "") if site else ""
    view = View(lang, Period(first, last), site, q.get("door", ""), room, typed, tuple(problems))
    return replace(view, association=q.get("association", ""), sort=q.get("sort", ""))


def parse_day(text: str) -> date | None:
    """A day typed as 06-12-2026 (the form's Danish way) or 2026-12-06 (ISO, links and
    English); ValueError for anything else."""
    if not text:
        return None
    danish = DANISH_DAY.fullmatch(text)
    if danish:
        return date(int(danish[3]), int(danish[2]), int(danish[1]))
    if not DAY.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def today_in(zone: str, now: float) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(zone)).date()
