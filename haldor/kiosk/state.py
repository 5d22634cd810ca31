"""What the screen shows, built from the day (:mod:`.queries` reads it) and the agent's
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

STALE_AFTER_S = 24 * 3600
GREETING_S = 8.0
PAST_SHOWN = 1  # ended bookings kept on a room's card (when there is room for it)
ENROL_S = 60.0  # an unknown card's number stays up long enough to type it in
TOMORROW_SHOWN = 2  # tomorrow's first bookings of a room, when today's leave room for them

#: how a time of day is written, per language: Danes write 20.10, the English 20:10;
#: the page's clock takes the same separator from the state
TIME_SEPARATOR = {"da": ".", "en": ":"}

# -- what fits on the screen ---------------------------------------------------------------
#
# The page sizes its type from the screen (1 rem = min(2.6 vw, 4.3 vh), at least 20 px),
# so a landscape screen from 5:3 (the 800x480 panel) to 16:9 (a 1080p television) is
# always about 19.8 rem high below its header and above its footer, and 38.8 to 41.3 rem
# wide: the same lines fit on both, and how many is decided here, from the number of rooms
# and the length of the names. The sizes are the page's, in rem, measured in Chromium with
# DejaVu Sans (tests/test_kiosk.py holds the page to them: nothing may leave its box).
# Should a card still run over (a font wider than this one), the page takes off its latest
# bookings and counts them in "+N more": a booking is summarised, never cut.

MAX_ROOMS = 8
#: columns and rows of room cards, by the number of rooms shown
GRIDS = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2), 5: (3, 2), 6: (3, 2), 7: (4, 2), 8: (4, 2)}
ROOMS_REM = (38.8, 19.8)  # the room cards' area (width at 5:3, the narrower; height)
BANNER_REM = 2.2  # a banner of up to two lines, or the site's closure
ROOMS_MORE_REM = 1.0  # the line "+N more rooms"
LINE_REM = 1.2  # a main line (1 rem type)
SMALL_REM = 0.96  # a line of titles and notes (0.8 rem type)
TAG_LINE_REM = 0.9  # a line of tags (0.75 rem type)
TIME_REM = 6.3  # "17.00–18.00"
TAG_REM = 6.6  # the tags' column of a one-room card
#: the advance of DejaVu Sans's letters, in hundredths of an em, bold and plain (measured in
#: Chromium); a letter not here counts as a wide one
_WIDTHS = {
    "bold": {
        31: "'", 34: "ijl", 35: " ", 37: "IJ/", 38: ".,·", 40: ":;", 42: "-", 44: "f", 46: "()!", 48: "t", 49: "r",
        50: "–", 58: "z?", 59: "c", 60: "s", 64: "L", 65: "vxy", 67: "akå", 68: "eEFT", 69: "oø", 70: "0123456789",
        71: "hnu", 72: "bdgpqSY", 73: "CPZ", 76: "B", 77: "AKRVXÅ", 81: "U", 82: "G", 83: "D", 84: "HN+✓", 85: "OQØ",
        87: "&", 92: "w", 100: "M", 104: "m", 105: "æ", 108: "Æ", 110: "W",
    },
    "plain": {
        27: "'", 28: "ijl", 29: "IJ", 32: " .,·", 34: ":;/", 35: "f", 36: "-", 39: "t()", 40: "!", 41: "r", 50: "–",
        52: "sz", 53: "?", 55: "c", 56: "L", 58: "kF", 59: "vxy", 60: "P", 61: "aoøåTY", 62: "e", 63: "bdghnpquES",
        64: "0123456789", 66: "K", 67: "B", 68: "AVÅ", 69: "RXZ", 70: "C", 73: "U", 75: "HN", 77: "DG", 78: "&",
        79: "OQØ", 82: "w", 84: "+✓", 86: "M", 97: "mÆ", 98: "æ", 99: "W",
    },
}  # fmt: skip
_EM = {weight: {c: w / 100 for w, cs in table.items() for c in cs} for weight, table in _WIDTHS.items()}


@dataclass(frozen=True, slots=True)
class Layout:
    """How the room cards share the screen, and how a booking is laid out on a card:
    "row" (one room: time, association, title and tag on one line), "two" (time and
    association, then tag and title) or "stacked" (time and tag, association, title).
    Compact cards (two rows of rooms) leave the titles out."""

    columns: int
    rows: int
    booking: str
    compact: bool
    width_rem: float  # a card's text width (a booking's: less its border and padding)
    height_rem: float  # the height a card has for its name and what follows
    line_gap_rem: float  # between the lines of a card


def layout(rooms: int, *, banners: int = 0, rooms_more: bool = False) -> Layout:
    """The grid for ``rooms`` cards (at most :data:`MAX_ROOMS`), under ``banners`` lines
    of warning or closure; the page's paddings and gaps, in rem."""
    columns, rows = GRIDS[min(max(rooms, 1), MAX_ROOMS)]
    booking = "row" if columns == 1 else "two" if columns == 2 else "stacked"
    if booking == "stacked":  # narrow cards: tighter
        gap, pad, pad_top, line_gap, booking_pad = 0.2, 0.2, 0.1, 0.1, 0.5
    else:
        gap, pad, pad_top, line_gap, booking_pad = 0.3, 0.35, 0.3, 0.15, 0.9
    width = (ROOMS_REM[0] - 2 * gap - (columns - 1) * gap) / columns - 2 * pad - 0.2
    height = ROOMS_REM[1] - 2 * gap - banners * BANNER_REM - (ROOMS_MORE_REM if rooms_more else 0)
    card = (height - (rows - 1) * gap) / rows - 2 * pad_top - 0.1  # less its padding and border
    return Layout(columns, rows, booking, rows > 1, width - booking_pad, card, line_gap)


def _width_em(text: str, weight: str) -> float:
    """The width of ``text`` in DejaVu Sans, in em."""
    em = _EM[weight]
    return sum(em.get(c, 0.85) for c in text)


def _lines(text: str, width_rem: float, size_rem: float = 1.0, weight: str = "plain") -> int:
    """How many lines ``text`` takes in ``width_rem``, wrapped at spaces (a word longer
    than the line is broken, as the page does)."""
    width = width_rem / size_rem  # in em
    space = _width_em(" ", weight)
    lines, used = 1, 0.0
    for word in text.split():
        length = _width_em(word, weight)
        if used and used + space + length > width:
            lines, used = lines + 1, 0.0
        elif used:
            used += space
        while length > width:
            lines, length = lines + 1, length - width
        used += length
    return lines


def tag_text(item: dict[str, Any], language: str) -> str:
    """The word in a booking's tag, as the page picks it ("" for none)."""
    if item["state"] == "closed":
        return t("kiosk.closed", language)
    if item["checked_in"]:
        return "✓ " + t("kiosk.checked_in", language)
    if item["no_show"]:
        return t("kiosk.no_show", language)
    label = {"current": "kiosk.now", "next": "kiosk.next"}.get(item["state"])
    return "" if label is None else t(label, language)


def booking_rem(item: dict[str, Any], grid: Layout, language: str = "da") -> float:
    """The height of a booking on the page, from its texts and the card's layout."""
    tag = tag_text(item, language)
    pending = "" if item["approved"] else t("kiosk.pending", language)
    notes = " · ".join(x for x in (item["title"], pending, item["closed"] or "") if x)
    notes = "" if grid.compact else notes
    width = grid.width_rem
    if grid.booking == "row":
        share = (width - TIME_REM - TAG_REM - 1.5) / 2.3  # the association's column is 1.3 of these, the title's 1
        return 0.2 + max(LINE_REM * _lines(item["association"], share * 1.3, 1, "bold"), SMALL_REM * _lines(notes, share, 0.8))
    if grid.booking == "two":
        association = LINE_REM * _lines(item["association"], width - TIME_REM - 0.5, 1, "bold")
        second = max(TAG_LINE_REM if tag else 0, SMALL_REM * _lines(notes, width - TIME_REM - 0.5, 0.8) if notes else 0)
        return 0.2 + association + second
    beside = TIME_REM + 0.3 + 0.75 * _width_em(tag, "bold") + 0.6 <= width
    return (
        0.1
        + LINE_REM
        + (TAG_LINE_REM if tag and not beside else 0)
        + LINE_REM * _lines(item["association"], width, 1, "bold")
        + (SMALL_REM * _lines(notes, width, 0.8) if notes else 0)
    )


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


class _Card:
    """What is left of a room card's height (in rem) as its lines are laid on it."""

    def __init__(self, grid: Layout, name: str, language: str) -> None:
        self.grid, self.language = grid, language
        self.full = grid.width_rem + (0.5 if grid.booking == "stacked" else 0.9)
        self.left = grid.height_rem - LINE_REM * _lines(name, self.full, 1, "bold") - (0 if grid.booking == "stacked" else 0.1)

    def height(self, x: dict[str, Any]) -> float:
        return self.grid.line_gap_rem + booking_rem(x, self.grid, self.language)

    def small(self, text: str, weight: str = "plain") -> float:
        return self.grid.line_gap_rem + SMALL_REM * _lines(text, self.full, 0.8, weight)

    def take(self, x: dict[str, Any], into: list[dict[str, Any]]) -> None:
        into.append(x)
        self.left -= self.height(x)


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
    card = _Card(grid, name, language)
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


def _closures_that_fit(card: _Card, notes: list[dict[str, Any]], left: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The room's other closures today, given up from the last while the first booking left
    today would not fit beside them (with its "+N more" line when there are more)."""
    least = (card.height(left[0]) + (card.small("+9") if len(left) > 1 else 0)) if left else 0.0
    rems = [card.small(f"{label} {n['start']}–{n['end']}: {n['reason']}") for n in notes]
    while notes and card.left - sum(rems) < least:
        notes, rems = notes[:-1], rems[:-1]
    card.left -= sum(rems)
    return notes


def _tomorrow_that_fits(card: _Card, day: Day, room_id: str, tz: ZoneInfo) -> list[dict[str, Any]]:
    card.left -= card.grid.line_gap_rem + SMALL_REM  # the heading "Tomorrow"
    tomorrow: list[dict[str, Any]] = []
    for b in [b for b in day.tomorrow if b.room == room_id and b.status == APPROVED][:TOMORROW_SHOWN]:
        over = closure_over(b, day.closures)
        x = _item(b, "closed" if over else "tomorrow", over, tz, card.language)
        if card.height(x) > card.left:
            break
        card.take(x, tomorrow)
    return tomorrow


def _today_that_fits(card: _Card, left: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
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
