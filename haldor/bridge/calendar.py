"""A room's calendar feed (iCalendar, RFC 5545) as bookings over the season.

Recurrences are expanded by ``recurring-ical-events`` (RRULE, RDATE, EXDATE, moved and
cancelled single instances by RECURRENCE-ID, TZID with daylight-saving changes): a
weekly booking at 19:00 stays 19:00 local time after the clocks go back. A booking's id
is made from the event's UID and the instance it is, so it stays the same from run to
run and a change to one instance is a change to one booking.

Instances are expanded a stretch of time at a time (an hour first, longer while they are
sparse), and expanding stops at the cap: a rule of ten million seconds costs what its
first 20,000 do, not gigabytes. (The library's own lazy ``after`` does the same, at two
and a half times the cost of a whole season for a feed of weekly series.) Before that, a
feed whose rules alone surely pass the cap is refused without building one instance
(:mod:`haldor.bridge.rule_count`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from haldor.errors import DocumentError
from haldor.protocol import APPROVED
from haldor.records import record

from . import rule_count

#: RFC 5545 STATUS -> a booking's status; CANCELLED instances are left out
STATUSES = {"CONFIRMED": APPROVED, "TENTATIVE": "pending"}
#: properties an association can be read from
ASSOCIATION_SOURCES = ("categories", "organizer", "summary", "location", "description")


@record
class AssociationRule:
    """Which property names a booking's association, and an optional pattern whose group
    ``association`` (or whole match) is the name looked up in the associations sheet (by
    id, name, or its ``calendar`` column)."""

    source: str = "categories"
    pattern: str = ""

    def values(self, event: Any, master: Any | None) -> list[str]:
        found: list[str] = []
        for component in (event, master):
            if component is None or found:
                continue
            prop = component.get(self.source)
            if prop is None:
                continue
            if self.source == "categories":
                props = prop if isinstance(prop, list) else [prop]
                found = [str(c) for p in props for c in p.cats]
            else:
                found = [str(prop).removeprefix("mailto:").removeprefix("MAILTO:")]
        if not self.pattern:
            return found
        matched = []
        for value in found:
            m = re.search(self.pattern, value)
            if m:
                matched.append(m.group("association") if "association" in m.re.groupindex else m.group(0))
        return matched


@dataclass
class Feed:
    """What a feed gave: bookings and closures, and the events left out with why."""

    source: str
    bookings: list[dict[str, Any]]
    closures: list[dict[str, Any]]
    problems: list[str]


#: more instances than this in one feed over the horizon is a runaway rule, not a season
MAX_INSTANCES = 20_000


class TooManyBookings(DocumentError):
    """A feed gives more bookings over the horizon than it may (its site is kept)."""


def booking_id(uid: str, instance: datetime | date, room: str = "") -> str:
    """Stable across runs and machines: the same event instance in the same room is
    always the same booking (the instance as a local time with its offset, so the two
    19:00s of the night the clocks go back differ, and the host's zone plays no part)."""
    key = f"{room}|{uid}|{instance.isoformat()}"
    return "ics-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def read_feed(
    data: bytes,
    source: str,
    *,
    site: str,
    room: str,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    rule: AssociationRule,
    associations: Mapping[str, str],
    all_day_closures: bool = False,
    max_bookings: int = MAX_INSTANCES,
) -> Feed:
    """The bookings of one room between ``start`` and ``end``. ``associations`` maps every
    name an association goes by (lower case) to its id."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
        components = calendar.walk("VEVENT")
        if rule_count.at_least(components, start, end, tz, max_bookings) > max_bookings:
            raise TooManyBookings(f"{source}: more than {max_bookings} bookings over the horizon")
        events = _instances(recurring_ical_events.of(calendar), start, end, tz, max_bookings, source)
    except DocumentError:
        raise
    except Exception as exc:  # the parsers raise many kinds for a broken feed
        raise DocumentError(f"{source}: not a readable calendar ({_short(exc)})") from None
    masters = {str(c.get("uid")): c for c in components if c.get("rrule") is not None}
    feed = Feed(source, [], [], [])
    backwards = _checked_components(components, feed)
    reading = _Reading(source, site, room, tz, rule, associations, masters, all_day_closures)
    for event in events:
        uid = str(event.get("uid", ""))
        status = str(event.get("status", "CONFIRMED")).upper()
        if status != "CANCELLED" and uid not in backwards:
            reading.take(event, uid, status, feed)
    return feed


def _checked_components(components: list[Any], feed: Feed) -> set[str]:
    """The uids of events that end before they start (the library would swap them: a booking
    nobody made), with a problem for them and for uids given twice without RECURRENCE-ID."""
    backwards, plain = set(), Counter(str(c.get("uid")) for c in components if c.get("recurrence-id") is None)
    for c in components:
        first, last = c.get("dtstart"), c.get("dtend")
        if first is not None and last is not None and isinstance(first.dt, datetime) and last.dt < first.dt:
            backwards.add(str(c.get("uid")))
    feed.problems += [f"{feed.source}: event {uid!r} ends before it starts (left out)" for uid in sorted(backwards)]
    feed.problems += [
        f"{feed.source}: event {uid!r} appears {n} times without RECURRENCE-ID: only one is used"
        for uid, n in sorted(plain.items())
        if n > 1
    ]
    return backwards


@record
class _Reading:
    """One feed's room and rules, applied to each of its event instances."""

    source: str
    site: str
    room: str
    tz: ZoneInfo
    rule: AssociationRule
    associations: Mapping[str, str]
    masters: dict[str, Any]
    all_day_closures: bool

    def take(self, event: Any, uid: str, status: str, feed: Feed) -> None:
        """The instance as a booking, a closure or a problem of ``feed``."""
        tz = self.tz
        first, last = event["dtstart"].dt, event["dtend"].dt if event.get("dtend") else None
        instance = event["recurrence-id"].dt if event.get("recurrence-id") else first
        if isinstance(instance, datetime):
            instance = (instance.replace(tzinfo=tz) if instance.tzinfo is None else instance).astimezone(tz)
        where = f"{self.source}: event {uid!r} at {first.isoformat()}"
        if not isinstance(first, datetime):  # an all-day event: a holiday, a closed hall
            if self.all_day_closures:
                self._close(feed, event, first, last or first)
            else:
                feed.problems.append(f"{where}: an all-day event, not a booking (left out)")
            return
        if first.tzinfo is None:  # a floating time: the site's local time
            first, last = first.replace(tzinfo=tz), last.replace(tzinfo=tz) if isinstance(last, datetime) else last
        if not isinstance(last, datetime) or last <= first:
            feed.problems.append(f"{where}: no end after its start (left out)")
            return
        names = self.rule.values(event, self.masters.get(uid))
        ids = {self.associations[n.strip().lower()] for n in names if n.strip().lower() in self.associations}
        if len(ids) != 1:
            why = "no association" if not ids else f"several associations ({', '.join(sorted(ids))})"
            feed.problems.append(f"{where}: {why} from {self.rule.source} {names!r} (left out)")
            return
        title = event.get("summary") or (self.masters[uid].get("summary") if uid in self.masters else "") or ""
        feed.bookings.append(
            {
                "id": booking_id(uid, instance, self.room),
                "room": self.room,
                "association": ids.pop(),
                "title": str(title)[:200],
                "start": first.astimezone(tz).isoformat(),
                "end": last.astimezone(tz).isoformat(),
                "status": STATUSES.get(status, "pending"),
                "pin": None,
                "unlocked_during": False,
            }
        )

    def _close(self, feed: Feed, event: Any, first: Any, last: Any) -> None:
        feed.closures.append(
            {
                "_site": self.site,
                "room": self.room,
                "start": datetime.combine(first, time(0), self.tz).isoformat(),
                "end": datetime.combine(last, time(0), self.tz).isoformat(),
                "reason": str(event.get("summary", "")),
            }
        )


def _instances(query: Any, start: datetime, end: datetime, tz: ZoneInfo, cap: int, source: str) -> list[Any]:
    """The instances between ``start`` and ``end``, a stretch of time at a time: an hour
    first, eight times as long while they are sparse (each query costs about a millisecond
    however few it finds: doubling took 14 for a season's weekly series). Taking stops at
    ``cap``: a rule by the second is expanded a few hours' worth, not ten million instances."""
    taken: list[Any] = []
    since, span = start, timedelta(hours=1)
    while since < end:
        until = min((since.astimezone(UTC) + span).astimezone(tz), end)  # in absolute time across summer time
        stretch = query.between(since, until)
        if since > start:  # one that began before it was taken with the stretch it began in
            stretch = [event for event in stretch if _start(event, tz) >= since]
        if len(taken) + len(stretch) > cap:
            raise TooManyBookings(f"{source}: more than {cap} bookings over the horizon")
        taken += stretch
        span = span * 8 if len(stretch) * 16 < cap else span
        since = until
    return taken


def _start(event: Any, tz: ZoneInfo) -> datetime:
    first = event["dtstart"].dt
    if not isinstance(first, datetime):
        return datetime.combine(first, time(0), tz)
    return first.replace(tzinfo=tz) if first.tzinfo is None else first


def _short(exc: Exception) -> str:
    """A parser's complaint in one short printable line (it may quote the whole feed)."""
    text = " ".join(str(exc).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= 120 else text[:117] + "..."
