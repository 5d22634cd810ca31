"""The dashboard's pictures laid out for their templates: numbers in, coordinates out,
so a template only writes SVG elements and the server draws every chart (no script
library, nothing from elsewhere). Each picture has a table beside it saying the same."""

from __future__ import annotations

from haldor.records import record

from .dashboard import SeasonWeek

#: the season chart's drawing box (the SVG scales to the page's width by its viewBox)
PLOT_H = 180
LEFT, TOP, BOTTOM = 48, 10, 28
#: the drawing's widest (a week's slot narrows as weeks add up; a few weeks draw narrower)
WIDTH = 720


@record
class WeekBars:
    week: SeasonWeek
    number: int
    x: float
    width: float
    booked_y: float
    booked_h: float
    used_y: float
    used_h: float
    #: where last season's used hours stand (None: no data)
    last_y: float | None


@record
class SeasonChart:
    weeks: list[WeekBars]
    top: float
    width: float
    height: float
    #: the line through last season's weeks ("x,y x,y ..."), empty when it has none
    last_line: str
    has_last: bool
    #: every how many weeks a week number is written under the axis
    label_every: int


def _y(value: float, top: float) -> float:
    return round(TOP + PLOT_H - value / top * PLOT_H, 1)


def season_chart(weeks: list[SeasonWeek]) -> SeasonChart | None:
    """Booked and used bars per week; last season's used hours as a line over them."""
    if not weeks:
        return None
    top = max([w.booked for w in weeks] + [w.last_booked or 0.0 for w in weeks] + [w.last_used or 0.0 for w in weeks]) or 1.0
    slot = min(48.0, (WIDTH - LEFT - 8) / len(weeks))
    bar = slot * 0.4
    out = []
    for i, w in enumerate(weeks):
        x = LEFT + i * slot + slot * 0.1
        out.append(
            WeekBars(
                week=w,
                number=int(w.week.split("-W")[1]),
                x=round(x, 1),
                width=round(bar, 1),
                booked_y=_y(w.booked, top),
                booked_h=round(w.booked / top * PLOT_H, 1),
                used_y=_y(w.used, top),
                used_h=round(w.used / top * PLOT_H, 1),
                last_y=None if w.last_used is None else _y(w.last_used, top),
            )
        )
    points = " ".join(f"{b.x + bar:.1f},{b.last_y}" for b in out if b.last_y is not None)
    return SeasonChart(
        weeks=out,
        top=top,
        width=round(LEFT + len(weeks) * slot + 8, 1),
        height=TOP + PLOT_H + BOTTOM,
        last_line=points,
        has_last=any(w.last_used is not None for w in weeks),
        label_every=1 if len(weeks) <= 20 else 4,
    )
