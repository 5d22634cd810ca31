"""What a request asks the fleet to show: language, period, site and door, read from
the query string once, with a word for what could not be read (never an error page
for a mistyped date)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from haldor.texts import LANGUAGES, t

from .report import SEASON_WEEKS, Period, season_start


@dataclass(frozen=True, slots=True)
class View:
    lang: str = "da"
    period: Period = Period()
    site: str = ""
    door: str = ""
    #: what the query asked for, as typed (the form shows it back)
    typed: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    #: who is logged in (empty: the page is open, on loopback without users), and the form token
    user: str = ""
    role: str = ""
    csrf: str = ""

    def query(self, **changes: str) -> str:
        """This view's query string with ``changes`` (an empty value drops the key)."""
        values = {**self.typed, "lang": self.lang, **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v})

    def other_language(self) -> str:
        return "en" if self.lang == "da" else "da"

    def with_site(self, site: str) -> View:
        return replace(self, site=site)


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
            days.append(date.fromisoformat(text) if text else None)
        except ValueError:
            problems.append(f"{t('fleet.bad_date', lang)}: {text}")
            days.append(None)
    first, last = days
    if first is None and "from" not in q:
        first = date.fromordinal(today.toordinal() - 6) if access else season_start(today, weeks)
    if first and last and first > last:
        first, last = last, first
    typed = {k: q[k] for k in ("from", "to", "site", "door") if q.get(k)}
    if first is not None and "from" not in typed:
        typed["from"] = first.isoformat()
    return View(lang, Period(first, last), q.get("site", ""), q.get("door", ""), typed, tuple(problems))


def today_in(zone: str, now: float) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(zone)).date()
