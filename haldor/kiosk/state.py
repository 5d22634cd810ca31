"""What the screen shows, built from the day (:mod:`.queries` reads it) and the agent's
last word. Pure, so the rules of the screen (current and next booking, banners,
greetings) are tested without a server or a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from haldor.protocol import APPROVED
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


def build_state(
    now: float, day: Day, agent: AgentView, *, title: str, language: str, doors: list[tuple[str, str]], offline_after_s: float
) -> dict[str, Any]:
    """The whole screen as JSON. It holds no clock reading of its own, so it changes only
    when something on the screen does."""
    tz = ZoneInfo(day.timezone)
    online = agent.status_at is not None and now - agent.status_at <= offline_after_s
    status = (agent.status or {}) if online else {}
    site_closure = next((c for c in day.closures if c.room is None and c.start <= now < c.end), None)
    return {
        "title": title,
        "language": language,
        "timezone": day.timezone,
        "labels": kiosk_labels(language),
        "online": online,
        "mode": status.get("mode", "normal") if online else None,
        "banner": _banner(now, day, agent, online, language, doors, tz),
        "site_closed": None if site_closure is None else site_closure.reason,
        "rooms": [_room(now, day, room_id, name, site_closure, tz) for room_id, name in day.rooms],
        "doors": _doors(status.get("doors", {}), doors),
        "greeting": greeting(now, day, agent, language, tz),
    }


def _hhmm(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M")


def _banner(
    now: float, day: Day, agent: AgentView, online: bool, language: str, doors: list[tuple[str, str]], tz: ZoneInfo
) -> dict[str, str] | None:
    """The one thing wrong that matters most, in words for the caretaker."""
    faults = ((agent.status or {}).get("reader_faults") or []) if online else []
    storage = (agent.status or {}).get("storage") or {"ok": True}
    if not online:
        return {"kind": "offline", "text": t("kiosk.offline", language)}
    if storage.get("cards_work") is False:
        return {"kind": "storage", "text": t("kiosk.cards_unknown", language)}
    if faults:
        names = dict(doors)
        where = sorted(
            {names.get(f.get("door"), f.get("door")) if f.get("door") else t("kiosk.checkin_reader", language) for f in faults}
        )
        return {"kind": "reader", "text": t("kiosk.reader_fault", language).format(where=", ".join(where))}
    if not storage.get("ok", True):
        since = storage.get("since")
        when = t("kiosk.since", language).format(time=_hhmm(since, tz)) if isinstance(since, (int, float)) else ""
        return {"kind": "storage", "text": t("kiosk.storage_fault", language).format(since=when)}
    if day.last_sync is None:
        return {"kind": "stale", "text": t("kiosk.no_schedule", language)}
    if now - day.last_sync > STALE_AFTER_S:
        when = datetime.fromtimestamp(day.last_sync, tz).strftime("%d/%m %H:%M")
        return {"kind": "stale", "text": t("kiosk.stale", language).format(when=when)}
    return None


def closure_over(b: DayBooking, closures: list[DayClosure]) -> DayClosure | None:
    """The closure of its room (or the whole site) that overlaps the booking: it cannot
    take place as booked, so it is never shown as on now or next."""
    return next((c for c in closures if c.room in (None, b.room) and c.start < b.end and c.end > b.start), None)


def _room(now: float, day: Day, room_id: str, name: str, site_closure: DayClosure | None, tz: ZoneInfo) -> dict[str, Any]:
    """A room's card: its bookings now and next (and the last one that ended), its closures."""
    mine = [b for b in day.bookings if b.room == room_id]
    closed_by = {b.id: closure_over(b, day.closures) for b in mine}
    approved = [b for b in mine if b.status == APPROVED and closed_by[b.id] is None]
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
        closure = closed_by[b.id]
        if closure is not None and b.end > now:
            state = "closed"
        items.append(
            {
                "id": b.id,
                "association": b.association,
                "title": b.title,
                "start": _hhmm(b.start, tz),
                "end": _hhmm(b.end, tz),
                "state": state,
                "approved": b.status == APPROVED,
                "checked_in": b.checked_in,
                "no_show": b.no_show,
                "closed": None if closure is None else closure.reason,
            }
        )
    return {
        "id": room_id,
        "name": name,
        "bookings": items,
        "closed": None if closure is None else closure.reason,
        "closures_today": [
            {"start": _hhmm(c.start, tz), "end": _hhmm(min(c.end, c.start + 86400), tz), "reason": c.reason}
            for c in day.closures
            if c.room in (None, room_id) and not (c.start <= now < c.end)
        ],
    }


def _doors(states: dict[str, Any], doors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    door_list = []
    for door_id, door_name in doors:
        d = states.get(door_id)
        if d is None:
            state = "unknown"
        else:
            state = "open" if d.get("open") else "locked" if d.get("locked") else "unlocked"
        door_list.append({"id": door_id, "name": door_name, "state": state, "mode": (d or {}).get("mode", "normal")})
    return door_list


def greeting(now: float, day: Day, agent: AgentView, language: str, tz: ZoneInfo) -> dict[str, Any] | None:
    """The answer to the last badge at the kiosk reader, while it is fresh."""
    answer = agent.answer
    if answer is None or agent.answer_at is None:
        return None
    enrol = answer.get("card") is not None or bool(answer.get("enrol_open"))
    if now - agent.answer_at > (ENROL_S if enrol else GREETING_S):
        return None
    outcome = "enrol_open" if answer.get("enrol_open") else answer["outcome"]
    title, room, start = day.booking_titles.get(answer.get("booking") or "", ("", "", None))
    starts_at = answer.get("starts_at") or start
    names = {
        "association": day.associations.get(answer.get("association") or "", ""),
        "title": title,
        "room": room,
        "time": datetime.fromtimestamp(starts_at, tz).strftime("%H:%M") if starts_at else "",
    }
    text = t(f"checkin.{outcome}", language).format(**names)
    result = {"id": f"{agent.answer_at:.3f}", "outcome": outcome, "text": text, "good": bool(answer.get("good"))}
    # a refusal is a short word in a corner: the schedule behind it stays readable
    result["corner"] = not result["good"] and not enrol
    if answer.get("card") is not None:
        result["enrol"] = t("checkin.enrol", language).format(card=answer["card"], reversed=answer.get("card_reversed") or "-")
    return result
