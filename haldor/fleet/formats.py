"""Numbers, counts, weeks and times as a Danish (or English) reader expects them: a
decimal comma, "1 sted" but "2 steder", "uge 48", each site's own local time with its
zone named when it is not the page's."""

from __future__ import annotations

from datetime import datetime
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


def when(value: float | str | None, zone: str | None, page_zone: str) -> str:
    """An instant (POSIX seconds or RFC 3339) as "2026-11-25 17:02" in the site's zone,
    followed by the zone's abbreviation when that is not the page's zone."""
    if value is None or value == "":
        return "-"
    moment = _moment(value, zone or page_zone)
    if moment is None:
        return str(value)
    text = moment.strftime("%Y-%m-%d %H:%M")
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
