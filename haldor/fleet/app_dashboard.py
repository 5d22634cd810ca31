"""The dashboard's own pages: an association's season (every booking, used or not and
why) and the committee's season report. Read under the pages' lock, made after it, as
the overview is (``app.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from starlette.responses import Response

from haldor.texts import t

from .dashboard import by_association, totals, why
from .formats import long_day, when
from .report import Period
from .templating import render
from .view import View
from .web import FleetWeb


def period_text(period: Period, lang: str) -> str:
    """ "10. aug. 2026 – 27. jun. 2027" (an open end in words)."""
    first = long_day(period.first, lang) if period.first else t("fleet.report.start", lang)
    last = long_day(period.last, lang) if period.last else t("fleet.report.open_end", lang)
    return f"{first} – {last}"


def association_page(web: FleetWeb, view: View, now: float, html: Callable[[str], Response]) -> Callable[[], Response]:
    """One association's bookings over every site in the period, with the dashboard's sums
    of the same usage lines (the page's and the spreadsheets' figures)."""
    sites = web.sites(now)
    whole = replace(view, site="", room="", door="")
    lines, _ = web.sums(whole, sites)
    own = [u for u in lines if u.association == view.association]
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
                updated=when(now, None, web.zone),
                d={"totals": totals(own)},
                bookings=bookings,
                period_text=period_text(view.period, view.lang),
            )
        )

    return made
