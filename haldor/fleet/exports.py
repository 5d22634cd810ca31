"""The fleet's tables as spreadsheets that open right in Excel: CSV with a BOM (``;``
and a decimal comma in Danish, as Danish Excel reads them) or ``.xlsx`` (openpyxl,
when installed: typed cells, so no locale can misread a number). Names and ids both:
the page shows names, a spreadsheet keeps the ids for joining with the booking system."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from haldor.protocol import Event
from haldor.records import record
from haldor.texts import event, reason, t

from .formats import iso, local
from .report import SeasonLine, UsageLine


@record
class Table:
    name: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]


def to_csv(table: Table, lang: str) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, delimiter=";" if lang == "da" else ",", lineterminator="\r\n")
    w.writerow(table.headers)
    for row in table.rows:
        w.writerow([_cell(v, lang) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


#: a formula to a spreadsheet: a sign (the full-width ones too, which an East Asian Excel reads
#: as the plain ones), perhaps after spaces, tabs, line breaks, a no-break space or an invisible
#: character (Excel and LibreOffice skip them); a name a box sent must stay text
FORMULA = re.compile(r"[\s\u180e\u200b\u200c\u200d\u2060\ufeff]*[=+\-@\uff1d\uff0b\uff0d\uff20]")


def formula_like(text: str) -> bool:
    """A text a spreadsheet could take for a formula (a tab or CR at the start always counts)."""
    return text.startswith(("\t", "\r")) or FORMULA.match(text) is not None


def _cell(value: Any, lang: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    if isinstance(value, bool):
        return ("ja" if value else "nej") if lang == "da" else ("yes" if value else "no")
    if isinstance(value, datetime):  # as Danish (or any) Excel reads a date and time, not as text
        return value.strftime("%d-%m-%Y %H:%M:%S" if lang == "da" else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")  # no thousands separator: Excel takes it for text
        return text.replace(".", ",") if lang == "da" else text
    return str(value)


def to_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook  # only the fleet's server has it (pip install haldor[fleet])

    book = Workbook(write_only=True)
    sheet = book.create_sheet(table.name[:31])
    sheet.append(list(table.headers))
    for row in table.rows:
        sheet.append([_text_cell(sheet, v) if isinstance(v, str) else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _text_cell(sheet: Any, value: str) -> Any:
    """A string as a text cell, never a formula (openpyxl takes "=..." for one)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


#: the figures a usage line and a season line both have, in the spreadsheets' order
FIGURES = ("bookings", "booked_h", "used_h", "used_pct", "no_shows", "closed", "unobserved")


def _figure_headers(lang: str) -> list[str]:
    return [t(f"fleet.{key}", lang) + (" %" if key == "used_pct" else "") for key in FIGURES]


def _figures(u: UsageLine | SeasonLine) -> list[Any]:
    share = round(100 * u.used_share) if u.booked_hours else None
    return [u.bookings, float(u.booked_hours), float(u.used_hours), share, u.no_shows, u.closed, u.unobserved]


def usage_table(lines: Iterable[UsageLine], lang: str) -> Table:
    h = [t("fleet.week", lang), t("fleet.site", lang), t("fleet.room", lang), t("fleet.association", lang)]
    h += [*_figure_headers(lang), "site_id", "room_id", "association_id"]
    rows = [[u.week, u.site_name, u.room_name, u.association_name, *_figures(u), u.site, u.room, u.association] for u in lines]
    return Table("usage", h, rows)


def season_table(lines: Iterable[SeasonLine], lang: str) -> Table:
    h = [t("fleet.season_col", lang), t("fleet.association", lang), t("fleet.site_count", lang), *_figure_headers(lang)]
    h.append("association_id")
    rows = [[s.season, s.association_name, s.sites, *_figures(s), s.association] for s in lines]
    return Table("season", h, rows)


def sites_table(rows: Iterable[dict[str, Any]], lang: str, page_zone: str) -> Table:
    h = [
        t("fleet.site", lang),
        t("fleet.status", lang),
        t("fleet.since", lang),
        "schedule_version",
        "schedule_age_hours",
        t("fleet.outbox", lang),
        t("fleet.mode", lang),
        t("fleet.readers", lang),
        "site_id",
    ]
    out = [
        [
            r["name"],
            t("fleet.online" if r["online"] else "fleet.silent" if r["silent"] else "fleet.offline", lang),
            local(r["since"], r["timezone"], page_zone),
            r["schedule_version"],
            None if r["schedule_age_h"] is None else float(r["schedule_age_h"]),
            r["outbox_pending"],
            t(f"fleet.mode.{r['mode']}", lang) if r["mode"] in ("normal", "lockdown") else r["mode"],
            "; ".join(f"{k}: {v}" for k, v in r["reader_faults"].items()) or t("fleet.ok", lang),
            r["site"],
        ]
        for r in rows
    ]
    return Table("sites", h, out)


def access_table(entries: Iterable[dict[str, Any]], sites: dict[str, dict[str, Any]], lang: str, page_zone: str) -> Table:
    h = [
        t("fleet.time", lang),
        t("fleet.site", lang),
        t("fleet.door", lang),
        t("fleet.event", lang),
        t("fleet.reason", lang),
        t("fleet.credential", lang),
        t("fleet.booking", lang),
        t("fleet.reader", lang),
        "site_id",
        "door_id",
        "type",
        "reason_code",
        "at",
    ]
    out = []
    for e in entries:
        site = sites.get(e["site"], {})
        out.append(
            [
                local(e["at"], site.get("timezone"), page_zone),
                site.get("name") or e["site"],
                site.get("doors", {}).get(e["door"]) or e["door"],
                event(e["type"], lang),
                reason_text(e, lang),
                e["credential"],
                e["booking"],
                e["reader"],
                e["site"],
                e["door"],
                e["type"],
                e["reason"],
                iso(e["at"], site.get("timezone"), page_zone),  # with its offset, for a machine
            ]
        )
    return Table("access", h, out)


def reason_text(entry: dict[str, Any], lang: str) -> str:
    """A denial's reason in words; other reasons (a door's new mode) as they came."""
    code = entry.get("reason")
    if not code:
        return ""
    try:
        return reason(code, lang) if entry.get("type") == Event.ACCESS_DENIED else str(code)
    except KeyError:
        return str(code)


def audit_table_export(rows: Iterable[dict[str, Any]], lang: str, page_zone: str) -> Table:
    h = [
        t("fleet.time", lang),
        t("fleet.who", lang),
        "role",
        "site_id",
        t("fleet.what", lang),
        "door_id",
        t("fleet.reason", lang),
        "command",
        t("fleet.result", lang),
        "error",
        "answered_at",
    ]
    out = [
        [
            local(r["at"], None, page_zone),
            r["who"],
            r["role"],
            r["site"],
            r["action"],
            r["door"],
            r["detail"],
            r["command"],
            None if r["answered_at"] is None else t("fleet.result.ok" if r["ok"] else "fleet.result.refused", lang),
            r["error"],
            local(r["answered_at"], None, page_zone),
        ]
        for r in rows
    ]
    return Table("audit", h, out)
