"""Numbers, counts, weeks and times as a Danish (or English) reader expects them: a
decimal comma, "1 sted" but "2 steder", "uge 48", each site's own local time with its
zone named when it is not the page's."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from haldor.texts import t


def number(value: float, lang: str, digits: int = 1) -> str:
    """1234.5 -> "1.234,5" (da) or "1,234.5" (en); whole numbers without decimals."""
    text = f"{value:,.{digits}f}" if value != int(value) else f"{int(value):,}"
    if lang == "da":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def percent(share: float, lang: str) -> str:
    """Danish writes a space before the sign."""
    whole = round(100 * share)
    return f"{whole} %" if lang == "da" else f"{whole}%"


def count(n: int, key: str, lang: str) -> str:
    """``n`` and the noun of ``fleet.<key>.one`` or ``.many``: "1 sted", "2 steder"."""
    return f"{n} {t(f'fleet.{key}.one' if n == 1 else f'fleet.{key}.many', lang)}"


def week(iso_week: str, lang: str) -> str:
    """ "2026-W48" -> "uge 48, 2026" / "week 48, 2026"."""
    year, number_ = iso_week.split("-W")
    return f"{'uge' if lang == 'da' else 'week'} {int(number_)}, {year}"


def _moment(value: float | str, zone: str) -> datetime | None:
    tz = ZoneInfo(zone)
    try:
        return (
            datetime.fromtimestamp(value, tz) if isinstance(value, (int, float)) else datetime.fromisoformat(value).astimezone(tz)
        )
    except (ValueError, OverflowError, OSError):
        return None


def when(value: float | str | None, zone: str | None, page_zone: str, lang: str) -> str:
    """An instant (POSIX seconds or RFC 3339) as "25. nov. 2026 17.02" (da) or
    "25 Nov 2026 17:02" (en) in the site's zone (:func:`long_day` and :func:`clock`, as
    every date and time on the pages), followed by the zone's abbreviation when that is
    not the page's zone."""
    if value is None or value == "":
        return "-"
    moment = _moment(value, zone or page_zone)
    if moment is None:
        return str(value)
    text = f"{long_day(moment.date(), lang)} {clock(moment, lang)}"
    return text if (zone or page_zone) == page_zone else f"{text} {moment.tzname()}"


def local(value: float | str | None, zone: str | None, page_zone: str) -> datetime | None:
    """An instant as the site's wall-clock time, without zone: what a spreadsheet takes for
    a date and time (a typed cell in xlsx, "25-11-2026 17:02:11" in a Danish CSV)."""
    if value is None or value == "":
        return None
    moment = _moment(value, zone or page_zone)
    return None if moment is None else moment.replace(tzinfo=None, microsecond=0)


def iso(value: float | str | None, zone: str | None, page_zone: str) -> str:
    """The same instant as RFC 3339 with its offset (for a spreadsheet or a machine)."""
    if value is None or value == "":
        return ""
    moment = _moment(value, zone or page_zone)
    return str(value) if moment is None else moment.isoformat(timespec="seconds")


MONTHS = {
    "da": ("jan.", "feb.", "mar.", "apr.", "maj", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "dec."),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


def long_day(value: date | str, lang: str) -> str:
    """ "6. dec. 2026" (da) or "6 Dec 2026" (en), whatever the browser's language."""
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    month = MONTHS["en" if lang == "en" else "da"][day.month - 1]
    return f"{day.day} {month} {day.year}" if lang == "en" else f"{day.day}. {month} {day.year}"


def short_day(value: date | str, lang: str) -> str:
    """ "06-12-2026" (da, as a Danish form is filled in) or "2026-12-06" (en)."""
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return day.isoformat() if lang == "en" else day.strftime("%d-%m-%Y")


def clock(moment: datetime, lang: str) -> str:
    """ "19.30" (da) or "19:30" (en)."""
    return moment.strftime("%H:%M" if lang == "en" else "%H.%M")


def span(start: str, minutes: int, lang: str) -> str:
    """A booking's local start and end as the box sent them: "19.30-21.00"."""
    try:
        first = datetime.fromisoformat(start)
    except ValueError:
        return start
    return f"{clock(first, lang)}–{clock(first + timedelta(minutes=minutes or 0), lang)}"
