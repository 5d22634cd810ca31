"""Where in the week booked hours go unused: each booking's hours spread over the hours
of the weekday it covers (a booking from 19.30 to 21.00 gives half an hour to 19 and an
hour to 20), so the map's cells add up to the dashboard's booked and used hours. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from haldor.records import record

#: a cell's colour step, by its unused hours against the map's largest
LEVELS = 4


@record
class Cell:
    booked: float = 0.0
    used: float = 0.0

    @property
    def unused(self) -> float:
        return round(self.booked - self.used, 2)


@record
class WeekMap:
    """cells[weekday][hour] (Monday 0), the hours shown (first to last with a booking)."""

    cells: list[list[Cell]]
    hours: list[int]
    most_unused: float

    def level(self, cell: Cell) -> int:
        """0 (nothing unused) to LEVELS (the most unused of the map)."""
        if cell.unused <= 0 or self.most_unused <= 0:
            return 0
        return max(1, min(LEVELS, round(cell.unused / self.most_unused * LEVELS)))

    def worst(self, n: int = 3) -> list[tuple[int, int, Cell]]:
        """The ``n`` cells with the most unused hours: (weekday, hour, cell), for the text."""
        ranked = sorted(
            ((d, h, c) for d, row in enumerate(self.cells) for h, c in enumerate(row) if c.unused > 0),
            key=lambda x: (-x[2].unused, x[0], x[1]),
        )
        return ranked[:n]

    def total(self) -> Cell:
        return Cell(
            round(sum(c.booked for row in self.cells for c in row), 2), round(sum(c.used for row in self.cells for c in row), 2)
        )


def spread(groups: Iterable[tuple[int, int, float, float, float]]) -> WeekMap:
    """``groups``: (weekday, start minute, one booking's hours, booked hours, used hours),
    bookings of the same start and length summed. A booking past midnight runs on into
    the next day (Sunday into Monday)."""
    acc = [[[0.0, 0.0] for _ in range(24)] for _ in range(7)]
    for weekday, start_min, length_h, booked, used in groups:
        length = length_h * 60
        if length <= 0:
            continue
        at, end = start_min, start_min + length
        while at < end:
            hour_end = (at // 60 + 1) * 60
            part = (min(end, hour_end) - at) / length
            day, hour = (weekday + int(at // (24 * 60))) % 7, int(at // 60) % 24
            acc[day][hour][0] += booked * part
            acc[day][hour][1] += used * part
            at = hour_end
    cells = [[Cell(round(b, 2), round(u, 2)) for b, u in row] for row in acc]
    busy = [h for h in range(24) if any(cells[d][h].booked for d in range(7))]
    hours = list(range(min(busy), max(busy) + 1)) if busy else []
    return WeekMap(cells, hours, max((c.unused for row in cells for c in row), default=0.0))
