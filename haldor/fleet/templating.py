"""The fleet's pages from the Jinja2 templates in ``templates/`` (autoescape on: every
name a box sends is escaped by the template, never by hand). This module only gathers
what a page shows; the HTML is in the templates, the CSS and JS in ``static/``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from haldor.records import record
from haldor.texts import TEXTS, event, t

from .alerts import describe
from .charts import season_chart
from .dashboard import by_attention, online_count, sorted_ranks, totals
from .exports import reason_text
from .formats import clock, count, long_day, number, percent, short_day, span, week, when
from .report import weekly_totals
from .view import View
from .web import PAGE_ROWS, Overview

#: the dashboard's lists: the first of them (every site in the table of sites, every association in the report)
DASH_SITES, DASH_ASSOCIATIONS = 20, 15


@record
class Bar:
    week: str
    number: int
    x: int
    booked: float
    used: float
    booked_y: str
    booked_h: str
    used_y: str
    used_h: str


@record
class Chart:
    """Booked (grey) and used (green) hours per week, laid out for the SVG."""

    bars: list[Bar]
    top: float
    width: int
    height: int = 160
    bar: int = 18


def chart(totals: list[tuple[str, float, float]]) -> Chart | None:
    if not totals:
        return None
    top = max(b for _, b, _ in totals) or 1
    bar, gap, h = 18, 14, 160
    bars = []
    for i, (w, booked, used) in enumerate(totals):
        bh, uh = booked / top * h, used / top * h
        x = 60 + i * (2 * bar + gap)
        bars.append(
            Bar(w, int(w.split("-W")[1]), x, booked, used, f"{h - bh + 5:.1f}", f"{bh:.1f}", f"{h - uh + 5:.1f}", f"{uh:.1f}")
        )
    return Chart(bars, top, len(totals) * (2 * bar + gap) + 80, h, bar)


def _action_name(action: str, lang: str) -> str:
    key = f"fleet.action.{action}"
    return t(key, lang) if key in TEXTS else action


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("haldor.fleet", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(t=t, when=when, number=number, percent=percent, week=week, event=event)
    env.globals.update(reason_text=reason_text, action_name=_action_name)
    env.globals.update(long_day=long_day, short_day=short_day, clock=clock, span=span)
    env.filters["urlencode_all"] = lambda text: quote(str(text), safe="")
    for name in env.list_templates(extensions=["html"]):  # compiled once, before the first visitor
        env.get_template(name)
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(page_rows=PAGE_ROWS, **context)


def login_page(view: View, target: str, failed: bool = False) -> str:
    """The login form; ``target``: where to go after it (a path of this site)."""
    return render("login.html", view=view, target=target, failed=failed)


def overview(view: View, o: Overview, page_zone: str) -> str:
    lang = view.lang
    down = sum(1 for s in o.sites if not s["online"])
    by_id = {s["site"]: s for s in o.sites}
    return render(
        "overview.html",
        view=view,
        o=o,
        title=t("fleet.title", lang),
        heading=f"Haldor: {count(len(o.sites), 'site', lang)}, {down} {t('fleet.offline_count', lang)}",
        generation=o.generation,
        updated=when(o.now, None, page_zone, lang),
        page_zone=page_zone,
        shown=[s for s in o.sites if not view.site or s["site"] == view.site],
        incidents=_incidents(o, by_id, lang),
        alarms=[_alarm(a, by_id) for a in o.alarms],
        # the weeks the dashboard summed already (weekly_totals of the same lines), else summed here
        chart=chart([(w.week, w.booked, w.used) for w in o.figures.weeks] if o.figures else weekly_totals(o.usage)),
        d=dashboard_figures(view, o),
    )


def dashboard_figures(view: View, o: Overview) -> dict[str, Any]:
    """The dashboard's figures from the overview's own usage lines (the tables' and the CSV's)."""
    shown = [s for s in o.sites if not view.site or s["site"] == view.site]
    f = o.figures
    ranks = sorted_ranks(f.ranks, view.sort) if f else []
    return {
        "totals": f.totals if f else totals([]),
        "chart": season_chart(f.weeks) if f else None,
        "sites": by_attention(shown)[:DASH_SITES],
        "online": online_count(shown),
        "count": len(shown),
        "week_map": o.week_map,
        "rooms": o.rooms,
        "ranks": ranks[:DASH_ASSOCIATIONS],
        "all_ranks": len(ranks),
    }


def _incidents(o: Overview, sites: dict[str, dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """What the alerting holds open now, newest first, in words."""
    out = []
    for i in sorted(o.incidents, key=lambda i: i["opened_at"], reverse=True):
        site = sites.get(i["site"], {})
        subject = site.get("doors", {}).get(i["subject"]) or i["subject"]
        out.append(
            {
                "kind": i["kind"],
                "site": i["site"],
                "site_name": site.get("name") or i["site"],
                "timezone": site.get("timezone"),
                "since": i["since"] if i["since"] is not None else i["opened_at"],
                "text": describe(i["kind"], "", subject, i["detail"] or "", lang),
            }
        )
    return out


def _alarm(a: dict[str, Any], sites: dict[str, dict[str, Any]]) -> dict[str, Any]:
    site = sites.get(a["site"], {})
    door_name = site.get("doors", {}).get(a["door"]) or a["door"]
    return {**a, "site_name": site.get("name") or a["site"], "timezone": site.get("timezone"), "door_name": door_name}


def access_page(
    view: View,
    site: dict[str, Any] | None,
    sites: list[dict[str, Any]],
    entries: Sequence[dict[str, Any]],
    total: int,
    generation: str,
    now: float,
    page_zone: str,
    *,
    audit: Sequence[dict[str, Any]] | None = None,
    can_send: bool = False,
) -> str:
    lang = view.lang
    heading = f"{t('fleet.access_for', lang)} {site['name']}" if site is not None else t("fleet.access", lang)
    return render(
        "access.html",
        view=view,
        site=site,
        sites=sites,
        entries=entries,
        total=total,
        title=heading,
        heading=heading,
        generation=generation,
        now=now,
        updated=when(now, None, page_zone, view.lang),
        page_zone=page_zone,
        audit=audit,
        can_send=can_send,
    )


def audit_page(
    view: View, rows: Sequence[dict[str, Any]], sites: list[dict[str, Any]], generation: str, now: float, page_zone: str
) -> str:
    title = t("fleet.audit", view.lang)
    return render(
        "audit.html",
        view=view,
        rows=rows,
        sites=sites,
        by_id={s["site"]: s for s in sites},
        title=title,
        heading=title,
        generation=generation,
        now=now,
        updated=when(now, None, page_zone, view.lang),
        page_zone=page_zone,
    )
