"""How many instances a feed's rules make at least, counted by dateutil without building them.

Expanding a rule through recurring-ical-events builds an event per instance (about 0.1 ms
each); when a window begins in an empty stretch before a rule by the second, one stretch
can hold hundreds of thousands before the cap is looked at (measured: 24 s and 444 MB
for one feed). dateutil walks the same rule in microseconds an instance, so a feed whose
rules alone are sure to pass the cap is refused before anything is built.

The count is a lower bound, so that no feed is refused that the expansion would keep:
the window is a day shorter at each end (wall-clock times here, instants there), each
EXDATE is taken to remove an instance, and what this cannot read (an odd rule, UNTIL
and DTSTART of different kinds) counts nothing and is left to the expansion.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import islice, takewhile
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr


def at_least(components: list[Any], start: datetime, end: datetime, tz: ZoneInfo, cap: int) -> int:
    """Instances the components' RRULEs surely make between ``start`` and ``end``,
    counted no further than one past ``cap``."""
    total = 0
    for component in components:
        total += _of_one(component, start, end, tz, cap + 1 - total)
        if total > cap:
            break
    return total


def _of_one(component: Any, start: datetime, end: datetime, tz: ZoneInfo, most: int) -> int:
    rules = component.get("rrule")
    first = component.get("dtstart")
    if rules is None or first is None:
        return 0
    removed = sum(len(getattr(x, "dts", ())) for x in _listed(component.get("exdate")))
    begin, until, dtstart = _wall(start + timedelta(days=1), tz), _wall(end - timedelta(days=1), tz), _wall(first.dt, tz)
    best = 0
    for rule in _listed(rules):
        try:
            walk = rrulestr(rule.to_ical().decode(), dtstart=dtstart).xafter(begin, inc=True)
            best = max(best, sum(1 for _ in islice(takewhile(lambda d: d < until, walk), most + removed)))
        except (ValueError, TypeError, OverflowError):  # counted by the expansion instead
            continue
    return max(0, best - removed)


def _wall(moment: datetime | date, tz: ZoneInfo) -> datetime:
    """The wall-clock time in ``tz``, naive, as a floating DTSTART is read."""
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time(0))
    return moment.astimezone(tz).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
