"""The season report as a PDF for the committee's papers (``/report.pdf``): the same
figures as the report's page, written with the same helpers (a decimal comma, "uge 48,
2026", "25. nov. 2026"), laid out on A4 by fpdf2, a pure-Python library (no browser on
the server). Its built-in Helvetica writes Latin-1, which holds Danish; any other
character a box sends is written as "?"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from haldor.texts import t

from .dashboard import AssociationRank, SeasonWeek, Totals
from .formats import long_day, number, percent, span, week

#: a table: its heading, its columns' heads and its rows, every cell as text
Table = tuple[str, list[str], list[list[str]]]


def _latin(text: str) -> str:
    return text.replace("–", "-").replace("—", "-").encode("latin-1", "replace").decode("latin-1")


def _share(f: Totals, lang: str) -> str:
    return percent(f.used_share, lang) if f.booked_hours else "-"


def figures_table(s: Totals, lang: str) -> Table:
    rows = [
        (t("fleet.dash.booked", lang), number(s.booked_hours, lang)),
        (t("fleet.dash.bookings", lang), str(s.bookings)),
        (t("fleet.dash.used", lang), number(s.used_hours, lang)),
        (t("fleet.dash.share", lang), _share(s, lang)),
        (t("fleet.dash.unused", lang), number(s.unused_hours, lang)),
        (t("fleet.dash.no_shows", lang), str(s.no_shows)),
        (t("fleet.dash.closed", lang), str(s.closed)),
        (t("fleet.dash.unobserved", lang), str(s.unobserved)),
    ]
    return t("fleet.dash.title", lang), ["", ""], [list(r) for r in rows]


def weeks_table(weeks: Sequence[SeasonWeek], lang: str) -> Table:
    last = any(w.last_booked is not None for w in weeks)
    head = [t("fleet.week", lang), t("fleet.booked_h", lang), t("fleet.used_h", lang)]
    if last:
        head += [t("fleet.dash.last_booked", lang), t("fleet.dash.last_used", lang)]
    rows = []
    for w in weeks:
        row = [week(w.week, lang), number(w.booked, lang), number(w.used, lang)]
        if last:
            row += ["-" if v is None else number(v, lang) for v in (w.last_booked, w.last_used)]
        rows.append(row)
    return t("fleet.dash.chart", lang), head, rows


def ranks_table(ranks: Sequence[AssociationRank], lang: str) -> Table:
    head = [t("fleet.association", lang), t("fleet.site_count", lang), t("fleet.bookings", lang), t("fleet.booked_h", lang)]
    head += [t("fleet.used_h", lang), t("fleet.used_pct", lang), t("fleet.dash.unused", lang), t("fleet.no_shows", lang)]
    rows = [
        [r.name, str(r.sites), str(r.figures.bookings), number(r.figures.booked_hours, lang), number(r.figures.used_hours, lang)]
        + [_share(r.figures, lang), number(r.figures.unused_hours, lang), str(r.figures.no_shows)]
        for r in ranks
    ]
    return t("fleet.association", lang), head, rows


def sites_table(sites: Sequence[tuple[str, str, Totals]], lang: str) -> Table:
    head = [t("fleet.site", lang), t("fleet.bookings", lang), t("fleet.booked_h", lang), t("fleet.used_h", lang)]
    head += [t("fleet.used_pct", lang), t("fleet.no_shows", lang)]
    rows = [
        [name, str(f.bookings), number(f.booked_hours, lang), number(f.used_hours, lang), _share(f, lang), str(f.no_shows)]
        for _, name, f in sites
    ]
    return t("fleet.report.sites", lang), head, rows


def bookings_table(bookings: Sequence[dict[str, Any]], lang: str) -> Table:
    head = [t("fleet.col.date", lang), t("fleet.col.time", lang), t("fleet.site", lang), t("fleet.room", lang)]
    head += [t("fleet.booked_h", lang), t("fleet.col.used", lang), t("fleet.col.why", lang)]
    rows = [
        [long_day(b["day"], lang), span(b["start"], b["booked_min"], lang), b["site_name"], b["room_name"] or b["room"]]
        + [number(b["booked_hours"], lang), t("fleet.yes" if b["used_hours"] > 0 else "fleet.no", lang)]
        + [t("fleet.why." + b["why"], lang)]
        for b in bookings
    ]
    return t("fleet.assoc.bookings", lang), head, rows


def season_pdf(title: str, lines: Sequence[str], tables: Sequence[Table]) -> bytes:
    """A4, the title and lines of text, then each table under its heading (its head
    repeated on each sheet it runs over)."""
    from fpdf import FPDF  # only the PDF download pays for it

    pdf = FPDF(format="A4")
    pdf.set_title(_latin(title))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 8, _latin(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in lines:
        pdf.multi_cell(0, 5, _latin(line), new_x="LMARGIN", new_y="NEXT")
    for heading, head, rows in tables:
        if not rows:
            continue
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, _latin(heading), new_x="LMARGIN", new_y="NEXT")
        _table(pdf, head, rows)
    return bytes(pdf.output())


#: a row's height (mm) and the first column's share of the width (the rest share alike)
ROW_H, FIRST = 4.5, 0.34


def _table(pdf: Any, head: list[str], rows: list[list[str]]) -> None:
    """Plain cells, one line each (a cell too narrow for its text ends in "..."): a
    thousand sites in a second, where fpdf2's wrapping table takes seconds."""
    columns = len(head)
    first = FIRST if columns > 2 else 0.6
    widths = [pdf.epw * first] + [pdf.epw * (1 - first) / (columns - 1)] * (columns - 1)

    def row(cells: list[str], style: str) -> None:
        pdf.set_font("Helvetica", style, 7 if style else 8)
        for i, (width, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(width, ROW_H, _fit(pdf, _latin(text), width), border=1, align="L" if i == 0 else "R")
        pdf.ln(ROW_H)

    if any(head):
        row(head, "B")
    for cells in rows:
        if pdf.will_page_break(ROW_H):
            pdf.add_page()
            if any(head):
                row(head, "B")
        row(cells, "")


def _fit(pdf: Any, text: str, width: float) -> str:
    room = width - 2 * pdf.c_margin
    if pdf.get_string_width(text) <= room:
        return text
    while text and pdf.get_string_width(text + "...") > room:
        text = text[:-1]
    return text + "..."
