"""The dashboard's own pages: an association's season (every booking, used or not and
why) and the committee's season report. Read under the pages' lock, made after it, as
the overview is (``app.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from haldor.texts import t

from .charts import season_chart
from .dashboard import Figures, by_association, figures, sorted_ranks, totals, why, year_before
from .formats import clock, long_day, when
from .report import Period
from .report_pdf import bookings_table, figures_table, ranks_table, season_pdf, sites_table, weeks_table
from .request_parts import plain
from .templating import PAGE_ROWS, render
from .view import View
from .web import FleetWeb


def period_text(period: Period, lang: str) -> str:
    """ "10. aug. 2026 – 27. jun. 2027" (an open end in words)."""
    first = long_day(period.first, lang) if period.first else t("fleet.report.start", lang)
    last = long_day(period.last, lang) if period.last else t("fleet.report.open_end", lang)
    return f"{first} – {last}"


def moment_text(now: float, zone: str, lang: str) -> str:
    """ "6. dec. 2026 kl. 10.20" (da) or "6 Dec 2026 at 10:20" (en), in the page's zone."""
    moment = datetime.fromtimestamp(now, ZoneInfo(zone))
    return f"{long_day(moment.date(), lang)} {'at' if lang == 'en' else 'kl.'} {clock(moment, lang)}"


def association_page(web: FleetWeb, view: View, now: float, html: Callable[[str], Response]) -> Callable[[], Response]:
    """One association's bookings over every site in the period, with the dashboard's sums
    of the same usage lines (the page's and the spreadsheets' figures)."""
    sites = web.sites(now)
    whole = replace(view, site="", room="", door="")
    own = web.read.usage(whole, sites, association=view.association)
    names = {s["site"]: s["name"] for s in sites}
    bookings = [
        {**b, "site_name": names.get(b["site"], b["site"]), "why": why(b)}
        for b in web.details.bookings(view.association, view.period)
    ]
    generation = web.generation()
    rank = next(iter(by_association(own)), None)
    name = rank.name if rank else view.association

    def made() -> Response:
        title = t("fleet.assoc.season_of", view.lang).format(name=name)
        return html(
            render(
                "association.html",
                view=view,
                title=title,
                heading=title,
                generation=generation,
                updated=when(now, None, web.zone, view.lang),
                d={"totals": totals(own)},
                bookings=bookings,
                period_text=period_text(view.period, view.lang),
            )
        )

    return made


def report_page(
    web: FleetWeb, view: View, now: float, html: Callable[[str], Response], *, pdf: bool = False
) -> Callable[[], Response]:
    """The committee's season report, of every site or of one association: the same
    usage lines as the overview and the spreadsheets, laid out for A4 (``pdf``: as a PDF)."""
    sites = web.sites(now)
    whole = replace(view, site="", room="", door="", sort="")
    if view.association:
        own = web.read.usage(whole, sites, association=view.association)
        last = web.read.usage(replace(whole, period=year_before(view.period)), sites, association=view.association)
        f = figures(own, last)
        names = {s["site"]: s["name"] for s in sites}
        bookings = [
            {**b, "site_name": names.get(b["site"], b["site"]), "why": why(b)}
            for b in web.details.bookings(view.association, view.period)
        ]
        week_map = None
    else:
        f, bookings, week_map = web.figures(whole, sites, with_sites=True), [], web.week_map(whole)
    generation = web.generation()

    def made() -> Response:
        lang = view.lang
        title = t("fleet.report.for_all", lang)
        if view.association:
            title = t("fleet.report.for", lang).format(name=f.ranks[0].name if f.ranks else view.association)
        d = {
            "totals": f.totals,
            "chart": season_chart(f.weeks),
            "week_map": week_map,
            "ranks": sorted_ranks(f.ranks, view.sort)[:PAGE_ROWS],
            "sites": f.sites,
        }
        if pdf:
            return _pdf(view, title, now, web.zone, f, d, bookings)
        return html(
            render(
                "report.html",
                view=view,
                title=title,
                heading=title,
                generation=generation,
                updated=when(now, None, web.zone, view.lang),
                made=moment_text(now, web.zone, lang),
                d=d,
                bookings=bookings,
                period_text=period_text(view.period, lang),
            )
        )

    return made


def _pdf(view: View, title: str, now: float, zone: str, f: Figures, d: dict[str, Any], bookings: list) -> Response:
    """The report's figures and tables as a PDF download (the page's, in the same words)."""
    lang = view.lang
    lines = [
        f"{t('fleet.report.period', lang)}: {period_text(view.period, lang)}. "
        f"{t('fleet.report.made', lang)} {moment_text(now, zone, lang)}."
    ]
    tables = [figures_table(f.totals, lang), weeks_table(f.weeks, lang)]
    if not view.association:
        tables.append(ranks_table(d["ranks"], lang))
    tables.append(sites_table(f.sites, lang))
    if view.association:
        tables.append(bookings_table(bookings, lang))
    try:
        body = season_pdf(title, lines, tables)
    except ImportError:
        return plain(200, "PDF files need fpdf2: pip install 'haldor[fleet]'\n")
    name = f"haldor-report-{datetime.fromtimestamp(now, ZoneInfo(zone)).date().isoformat()}.pdf"
    return Response(body, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'})
