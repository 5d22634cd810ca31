"""The page's spreadsheets: CSV and Excel files of what a view shows, read on a
connection of their own and built outside the pages' lock."""

from __future__ import annotations

from starlette.responses import Response

from .exports import Table, access_table, audit_table_export, season_table, sites_table, to_csv, to_xlsx, usage_table
from .report import season_totals
from .request_parts import plain
from .store import FleetStore
from .view import View, today_in
from .view_data import ViewData
from .web import FleetWeb

#: a download holds at most this many rows (Excel's sheet holds 1,048,576)
EXPORT_ROWS = 1_000_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def export(web: FleetWeb, path: str, view: View, now: float) -> Response | None:
    """``/usage``, ``/season``, ``/sites``, ``/audit`` (logged in) or ``/access`` as .csv or .xlsx."""
    stem, _, kind = path.rpartition(".")
    if stem not in ("/usage", "/season", "/sites", "/audit", "/access") or (stem == "/audit" and not view.user):
        return None
    store = FleetStore(web.store.target, migrate=False)  # the page's own store made the schema
    try:
        table = _table(web, ViewData(store, web.zone), stem, view, now)
    finally:
        store.close()
    name = f"haldor-{table.name}-{today_in(web.zone, now).isoformat()}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if kind == "csv":
        return Response(to_csv(table, view.lang), media_type="text/csv; charset=utf-8", headers=headers)
    try:
        body = to_xlsx(table)
    except ImportError:
        return plain(200, "Excel files need openpyxl: pip install 'haldor[fleet]'\n")
    return Response(body, media_type=XLSX, headers=headers)


def _table(web: FleetWeb, read: ViewData, stem: str, view: View, now: float) -> Table:
    page_zone = web.zone
    sites = read.sites(now)
    if stem == "/usage":
        return usage_table(read.usage(view, sites), view.lang)
    if stem == "/season":
        return season_table(season_totals(read.usage(view, sites), web.season), view.lang)
    if stem == "/sites":
        return sites_table(sites, view.lang, page_zone)
    if stem == "/audit":
        since, until = view.period.instants(page_zone)
        return audit_table_export(read.audit.rows(view.site or None, since, until, EXPORT_ROWS), view.lang, page_zone)
    site = next((s for s in sites if s["site"] == view.site), None)
    entries = read.access(view, site, EXPORT_ROWS) if site or not view.site else []
    return access_table(entries, {s["site"]: s for s in sites}, view.lang, page_zone)
