"""What the screen shows, built from the database and the agent's last word.

`read_day` is the only IO here (one read-only connection); `build_state` is pure, so
the rules of the screen (current and next booking, banners, greetings) are tested
without a server or a browser.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from haldor.texts import kiosk_labels, t

STALE_AFTER_S = 24 * 3600
GREETING_S = 8.0
PAST_SHOWN = 1  # ended bookings kept on a room's card
ENROL_S = 60.0  # an unknown card's number stays up long enough to type it in


@dataclass(frozen=True, slots=True)
class DayBooking:
    id: str
    room: str
    association: str
    title: str
    start: float
    end: float
    status: str
    checked_in: bool
    no_show: bool


@dataclass(frozen=True, slots=True)
class DayClosure:
    room: str | None
    start: float
    end: float
    reason: str


@dataclass
class Day:
    """The day's schedule as the database holds it."""

    timezone: str = "Europe/Copenhagen"
    rooms: list[tuple[str, str]] = field(default_factory=list)
    bookings: list[DayBooking] = field(default_factory=list)
    closures: list[DayClosure] = field(default_factory=list)
    associations: dict[str, str] = field(default_factory=dict)
    booking_titles: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id -> (title, room name, start)
    last_sync: float | None = None
    version: int | None = None


@dataclass
class AgentView:
    """The last status and check-in answer the agent pushed, with when they came."""

    status: dict[str, Any] | None = None
    status_at: float | None = None
    answer: dict[str, Any] | None = None
    answer_at: float | None = None


def _meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else json.loads(row[0])


def read_day(conn: sqlite3.Connection, now: float, default_tz: str) -> Day:
    tz_name = _meta(conn, "timezone") or default_tz
    tz = ZoneInfo(tz_name)
    today = datetime.fromtimestamp(now, tz).date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=tz).timestamp()
    following = today + timedelta(days=1)
    day_end = datetime(following.year, following.month, following.day, tzinfo=tz).timestamp()
    longest = _meta(conn, "max_booking_s") or 0
    day = Day(timezone=tz_name, last_sync=_meta(conn, "last_sync"), version=_meta(conn, "schedule_version"))
    day.rooms = [(r[0], r[1] or r[0]) for r in conn.execute("SELECT id, name FROM rooms ORDER BY name, id")]
    day.associations = {r[0]: r[1] or r[0] for r in conn.execute("SELECT id, name FROM associations")}
    rows = conn.execute(
        """SELECT b.id, b.room, b.association, b.title, b.start, b.end, b.status,
                  EXISTS(SELECT 1 FROM booking_checkins c WHERE c.booking = b.id),
                  EXISTS(SELECT 1 FROM booking_reports r WHERE r.booking = b.id AND r.no_show_at IS NOT NULL)
           FROM bookings b WHERE b.start >= ? AND b.start < ? AND b.end > ? ORDER BY b.start, b.id""",
        [day_start - longest - 1, day_end, day_start])
    day.bookings = [DayBooking(r[0], r[1], day.associations.get(r[2], r[2]), r[3] or "", r[4], r[5], r[6], bool(r[7]), bool(r[8]))
                    for r in rows]
    rooms = dict(day.rooms)
    day.booking_titles = {b.id: (b.title, rooms.get(b.room, b.room), b.start) for b in day.bookings}
    day.closures = [DayClosure(*r) for r in conn.execute(
        "SELECT room, start, end, reason FROM closures WHERE start < ? AND end > ? ORDER BY start", [day_end, day_start])]
    return day


def build_state(now: float, day: Day, agent: AgentView, *, title: str, language: str, doors: list[tuple[str, str]],
                offline_after_s: float) -> dict[str, Any]:
    """The whole screen as JSON. It holds no clock reading of its own, so it changes only
    when something on the screen does."""
    tz = ZoneInfo(day.timezone)

    def hhmm(ts: float) -> str:
        return datetime.fromtimestamp(ts, tz).strftime("%H:%M")

    online = agent.status_at is not None and now - agent.status_at <= offline_after_s
    banner = None
    faults = ((agent.status or {}).get("reader_faults") or []) if online else []
    storage = (agent.status or {}).get("storage") or {"ok": True}
    if not online:
        banner = {"kind": "offline", "text": t("kiosk.offline", language)}
    elif storage.get("cards_work") is False:
        banner = {"kind": "storage", "text": t("kiosk.cards_unknown", language)}
    elif faults:
        names = dict(doors)
        where = sorted({names.get(f.get("door"), f.get("door")) if f.get("door") else t("kiosk.checkin_reader", language)
                        for f in faults})
        banner = {"kind": "reader", "text": t("kiosk.reader_fault", language).format(where=", ".join(where))}
    elif not storage.get("ok", True):
        since = storage.get("since")
        when = t("kiosk.since", language).format(time=hhmm(since)) if isinstance(since, (int, float)) else ""
        banner = {"kind": "storage", "text": t("kiosk.storage_fault", language).format(since=when)}
    elif day.last_sync is None:
        banner = {"kind": "stale", "text": t("kiosk.no_schedule", language)}
    elif now - day.last_sync > STALE_AFTER_S:
        when = datetime.fromtimestamp(day.last_sync, tz).strftime("%d/%m %H:%M")
        banner = {"kind": "stale", "text": t("kiosk.stale", language).format(when=when)}

    site_closure = next((c for c in day.closures if c.room is None and c.start <= now < c.end), None)
    rooms = []
    for room_id, name in day.rooms:
        mine = [b for b in day.bookings if b.room == room_id]
        approved = [b for b in mine if b.status == "approved"]
        current = next((b for b in approved if b.start <= now < b.end), None)
        upcoming = next((b for b in approved if b.start > now), None)
        closure = site_closure or next((c for c in day.closures if c.room == room_id and c.start <= now < c.end), None)
        items = []
        ended = [b for b in mine if b.end <= now]
        shown_past = set(id(b) for b in ended[-PAST_SHOWN:])  # the screen is for now and next, not the morning
        for b in mine:
            if b.end <= now and id(b) not in shown_past:
                continue
            state = "past" if b.end <= now else "current" if b is current else "next" if b is upcoming else "later"
            items.append({"id": b.id, "association": b.association, "title": b.title, "start": hhmm(b.start),
                          "end": hhmm(b.end), "state": state, "approved": b.status == "approved",
                          "checked_in": b.checked_in, "no_show": b.no_show})
        rooms.append({"id": room_id, "name": name, "bookings": items,
                      "closed": None if closure is None else closure.reason,
                      "closures_today": [{"start": hhmm(c.start), "end": hhmm(min(c.end, c.start + 86400)), "reason": c.reason}
                                         for c in day.closures if c.room in (None, room_id) and not (c.start <= now < c.end)]})
    door_states = (agent.status or {}).get("doors", {}) if online else {}
    door_list = []
    for door_id, door_name in doors:
        d = door_states.get(door_id)
        if d is None:
            state = "unknown"
        else:
            state = "open" if d.get("open") else "locked" if d.get("locked") else "unlocked"
        door_list.append({"id": door_id, "name": door_name, "state": state, "mode": (d or {}).get("mode", "normal")})
    return {
        "title": title,
        "language": language,
        "timezone": day.timezone,
        "labels": kiosk_labels(language),
        "online": online,
        "mode": (agent.status or {}).get("mode", "normal") if online else None,
        "banner": banner,
        "site_closed": None if site_closure is None else site_closure.reason,
        "rooms": rooms,
        "doors": door_list,
        "greeting": greeting(now, day, agent, language, tz),
    }


def greeting(now: float, day: Day, agent: AgentView, language: str, tz: ZoneInfo) -> dict[str, Any] | None:
    """The answer to the last badge at the kiosk reader, while it is fresh."""
    answer = agent.answer
    if answer is None or agent.answer_at is None:
        return None
    enrol = answer.get("card") is not None
    if now - agent.answer_at > (ENROL_S if enrol else GREETING_S):
        return None
    outcome = answer["outcome"]
    title, room, start = day.booking_titles.get(answer.get("booking") or "", ("", "", None))
    starts_at = answer.get("starts_at") or start
    names = {
        "association": day.associations.get(answer.get("association") or "", ""),
        "title": title, "room": room,
        "time": datetime.fromtimestamp(starts_at, tz).strftime("%H:%M") if starts_at else "",
    }
    text = t(f"checkin.{outcome}", language).format(**names)
    good = outcome in ("checked_in", "already", "caretaker")
    result = {"id": f"{agent.answer_at:.3f}", "outcome": outcome, "text": text, "good": good}
    if enrol:
        result["enrol"] = t("checkin.enrol", language).format(card=answer["card"], reversed=answer.get("card_reversed") or "-")
    return result
