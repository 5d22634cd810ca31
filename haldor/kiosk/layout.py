"""What fits on the screen by the entrance: the room cards' grid by the number of rooms,
and how high a booking's lines stand on a card (pure: measured, never drawn)."""

from __future__ import annotations

from typing import Any

from haldor.records import record
from haldor.texts import t

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


@record
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


class Card:
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
