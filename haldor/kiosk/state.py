"""What the screen shows, built from the day (:mod:`haldor.store.kiosk_reads` reads it) and the agent's
last word. Pure, so the rules of the screen (current and next booking, banners,
greetings, what fits on a card and how a time is written) are tested without a server
or a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from haldor.protocol import APPROVED
from haldor.store.kiosk_reads import Day, DayBooking, DayClosure
from haldor.texts import kiosk_labels, t

from .layout import LINE_REM, MAX_ROOMS, SMALL_REM, Card, Layout, layout

STALE_AFTER_S = 24 * 3600
GREETING_S = 8.0
PAST_SHOWN = 1  # ended bookings kept on a room's card (when there is room for it)
ENROL_S = 60.0  # an unknown card's number stays up long enough to type it in
TOMORROW_SHOWN = 2  # tomorrow's first bookings of a room, when today's leave room for them

#: how a time of day is written, per language: Danes write 20.10, the English 20:10;
#: the page's clock takes the same separator from the state
TIME_SEPARATOR = {"da": ".", "en": ":"}


@dataclass
class AgentView:
    """The last status and check-in answer the agent pushed, with when they came."""

    status: dict[str, Any] | None = None
    status_at: float | None = None
    answer: dict[str, Any] | None = None
    answer_at: float | None = None


def hhmm(ts: float, tz: ZoneInfo, language: str) -> str:
    """A time of day as the screen writes it, in one place: 20.10 in Danish, 20:10 in English."""
    moment = datetime.fromtimestamp(ts, tz)
    return f"{moment:%H}{TIME_SEPARATOR.get(language, TIME_SEPARATOR['da'])}{moment:%M}"


def build_state(
    now: float, day: Day, agent: AgentView, *, title: str, language: str, doors: list[tuple[str, str]], offline_after_s: float
) -> dict[str, Any]:
    """The whole screen as JSON. It holds no clock reading of its own, so it changes only
    when something on the screen does."""
    tz = ZoneInfo(day.timezone)
    online = agent.status_at is not None and now - agent.status_at <= offline_after_s
    status = (agent.status or {}) if online else {}
    site_closure = next((c for c in day.closures if c.room is None and c.start <= now < c.end), None)
    banner = _banner(now, day, agent, online, language, doors, tz)
    shown_rooms = _rooms_shown(now, day)
    grid = layout(
        len(shown_rooms),
        banners=(banner is not None) + (site_closure is not None),
        rooms_more=len(shown_rooms) < len(day.rooms),
    )
    return {
        "title": title,
        "language": language,
        "timezone": day.timezone,
        "time_separator": TIME_SEPARATOR.get(language, TIME_SEPARATOR["da"]),
        "labels": kiosk_labels(language),
        "online": online,
        "mode": status.get("mode", "normal") if online else None,
        "banner": banner,
        "site_closed": None if site_closure is None else site_closure.reason,
        "layout": {"columns": grid.columns, "rows": grid.rows, "booking": grid.booking, "compact": grid.compact},
        "rooms": [_room(now, day, room_id, name, site_closure, tz, language, grid) for room_id, name in shown_rooms],
        "rooms_more": len(day.rooms) - len(shown_rooms),
        "doors": _doors(status.get("doors", {}), doors),
        "greeting": greeting(now, day, agent, language, tz),
    }


def _rooms_shown(now: float, day: Day) -> list[tuple[str, str]]:
    """At most :data:`MAX_ROOMS` rooms, in their order: those with something still to come
    today (or closed now) first; the rest are summarised as "+N more rooms"."""
    busy = {b.room for b in day.bookings if b.end > now} | {c.room for c in day.closures if c.start <= now < c.end}
    ranked = sorted(range(len(day.rooms)), key=lambda i: (day.rooms[i][0] not in busy, i))[:MAX_ROOMS]
    return [day.rooms[i] for i in sorted(ranked)]


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
        when = t("kiosk.since", language).format(time=hhmm(since, tz, language)) if isinstance(since, (int, float)) else ""
        return {"kind": "storage", "text": t("kiosk.storage_fault", language).format(since=when)}
    if day.last_sync is None:
        return {"kind": "stale", "text": t("kiosk.no_schedule", language)}
    if now - day.last_sync > STALE_AFTER_S:
        synced = datetime.fromtimestamp(day.last_sync, tz)
        when = f"{synced.day}/{synced.month} {hhmm(day.last_sync, tz, language)}"
        return {"kind": "stale", "text": t("kiosk.stale", language).format(when=when)}
    return None


def closure_over(b: DayBooking, closures: list[DayClosure]) -> DayClosure | None:
    """The closure of its room (or the whole site) that overlaps the booking: it cannot
    take place as booked, so it is never shown as on now or next."""
    return next((c for c in closures if c.room in (None, b.room) and c.start < b.end and c.end > b.start), None)


def _item(b: DayBooking, state: str, closure: DayClosure | None, tz: ZoneInfo, language: str) -> dict[str, Any]:
    return {
        "id": b.id,
        "association": b.association,
        "title": b.title,
        "start": hhmm(b.start, tz, language),
        "end": hhmm(b.end, tz, language),
        "state": state,
        "approved": b.status == APPROVED,
        "checked_in": b.checked_in,
        "no_show": b.no_show,
        "closed": None if closure is None else closure.reason,
    }


def _room(
    now: float,
    day: Day,
    room_id: str,
    name: str,
    site_closure: DayClosure | None,
    tz: ZoneInfo,
    language: str,
    grid: Layout,
) -> dict[str, Any]:
    """A room's card: its bookings now and next and the rest of today as far as they fit
    (then the last one that ended, then tomorrow's first), the others counted in ``more``."""
    mine = [b for b in day.bookings if b.room == room_id]
    closed_by = {b.id: closure_over(b, day.closures) for b in mine}
    approved = [b for b in mine if b.status == APPROVED and closed_by[b.id] is None]
    current = next((b for b in approved if b.start <= now < b.end), None)
    upcoming = next((b for b in approved if b.start > now), None)
    closure = site_closure or next((c for c in day.closures if c.room == room_id and c.start <= now < c.end), None)
    notes = [
        {"start": hhmm(c.start, tz, language), "end": hhmm(min(c.end, c.start + 86400), tz, language), "reason": c.reason}
        for c in day.closures
        if c.room in (None, room_id) and not (c.start <= now < c.end) and (day.day_end is None or c.start < day.day_end)
    ]
    ended = [b for b in mine if b.end <= now][-PAST_SHOWN:]  # the screen is for now and next, not the morning

    def item(b: DayBooking) -> dict[str, Any]:
        state = "past" if b.end <= now else "current" if b is current else "next" if b is upcoming else "later"
        over = closed_by[b.id]
        return _item(b, "closed" if over is not None and b.end > now else state, over, tz, language)

    # what the card holds below its name and its closure now: its other closures today (given
    # up from the last should the first booking not fit beside them), then its bookings
    card = Card(grid, name, language)
    closed_label = t("kiosk.closed", language)
    if closure is not None:
        card.left -= card.small(f"{closed_label}: {closure.reason}", "bold") + 0.2  # a white box
    left = [item(b) for b in mine if b.end > now]
    notes = _closures_that_fit(card, notes, left, closed_label)
    if not mine:
        card.left -= grid.line_gap_rem + LINE_REM  # "No bookings today"
    past: list[dict[str, Any]] = []
    tomorrow: list[dict[str, Any]] = []
    if sum(card.height(x) for x in left) <= card.left + 1e-9:
        shown, more = left, 0
        card.left -= sum(card.height(x) for x in left)
        for b in ended:  # on a card with nothing left today it stays: "no bookings today" would be wrong
            if card.height(x := item(b)) <= card.left or not left:
                card.take(x, past)
        tomorrow = _tomorrow_that_fits(card, day, room_id, tz)
    else:
        shown, more = _today_that_fits(card, left)
    return {
        "id": room_id,
        "name": name,
        "bookings": past + shown,
        "more": more,
        "tomorrow": tomorrow,
        "closed": None if closure is None else closure.reason,
        "closures_today": notes,
    }


def _closures_that_fit(card: Card, notes: list[dict[str, Any]], left: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The room's other closures today, given up from the last while the first booking left
    today would not fit beside them (with its "+N more" line when there are more)."""
    least = (card.height(left[0]) + (card.small("+9") if len(left) > 1 else 0)) if left else 0.0
    rems = [card.small(f"{label} {n['start']}–{n['end']}: {n['reason']}") for n in notes]
    while notes and card.left - sum(rems) < least:
        notes, rems = notes[:-1], rems[:-1]
    card.left -= sum(rems)
    return notes


def _tomorrow_that_fits(card: Card, day: Day, room_id: str, tz: ZoneInfo) -> list[dict[str, Any]]:
    card.left -= card.grid.line_gap_rem + SMALL_REM  # the heading "Tomorrow"
    tomorrow: list[dict[str, Any]] = []
    for b in [b for b in day.tomorrow if b.room == room_id and b.status == APPROVED][:TOMORROW_SHOWN]:
        over = closure_over(b, day.closures)
        x = _item(b, "closed" if over else "tomorrow", over, tz, card.language)
        if card.height(x) > card.left:
            break
        card.take(x, tomorrow)
    return tomorrow


def _today_that_fits(card: Card, left: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Today's bookings as far as they fit, and how many did not."""
    card.left -= card.grid.line_gap_rem + SMALL_REM  # the line "+N more today"
    shown: list[dict[str, Any]] = []
    for x in left:
        if shown and card.height(x) > card.left:
            break  # the first is always sent (the page, which measures, has the last word)
        card.take(x, shown)
    return shown, len(left) - len(shown)


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
        "time": hhmm(starts_at, tz, language) if starts_at else "",
    }
    text = t(f"checkin.{outcome}", language).format(**names)
    result = {"id": f"{agent.answer_at:.3f}", "outcome": outcome, "text": text, "good": bool(answer.get("good"))}
    # a refusal is a short word in a corner: the schedule behind it stays readable
    result["corner"] = not result["good"] and not enrol
    if answer.get("card") is not None:
        result["enrol"] = t("checkin.enrol", language).format(card=answer["card"], reversed=answer.get("card_reversed") or "-")
    return result
