"""The fleet's web pages: the overview (sites, alarms, use per week, the season per
association) and a site's access log. Server-rendered HTML with an inline SVG chart,
nothing loaded from elsewhere; names shown, ids on hover; Danish first. The page
refreshes its ``<main>`` itself when the store changes (server-sent events), so a
manager can leave it open on a wall screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from haldor.texts import event, t

from .alerts import describe
from .exports import reason_text
from .formats import count, number, percent, week, when
from .operator_pages import actions, audit_table
from .page_parts import PAGE_ROWS, document, downloads, e, filter_form, more, named
from .report import SeasonLine, UsageLine, weekly_totals
from .view import View


@dataclass(frozen=True, slots=True)
class Overview:
    """What the overview shows, read from the store by the server."""

    sites: list[dict[str, Any]]
    alarms: list[dict[str, Any]]
    usage: list[UsageLine]
    seasons: list[SeasonLine]
    generation: str
    now: float
    incidents: list[dict[str, Any]] = field(default_factory=list)
    #: alert messages not delivered yet, and the last error
    undelivered: tuple[int, str | None] = (0, None)


def chart_svg(totals: list[tuple[str, float, float]], lang: str) -> str:
    """Booked (grey) and used (green) hours per week."""
    if not totals:
        return ""
    top = max(b for _, b, _ in totals) or 1
    bar, gap, h = 18, 14, 160
    width = len(totals) * (2 * bar + gap) + 80
    booked_word, used_word = t("fleet.booked", lang), t("fleet.used", lang)
    parts = [
        f"<div class='scroll'><svg id='chart' role='img' aria-label='{e(t('fleet.chart', lang))}' "
        f"width='{width}' height='{h + 40}'>"
    ]
    # the scale: a line at the top value, named in hours
    parts.append(f"<line x1='56' x2='{width}' y1='5' y2='5' stroke='#8a8a8a' stroke-dasharray='4 3'/>")
    parts.append(f"<text x='52' y='9' font-size='11' text-anchor='end'>{number(top, lang)} t</text>")
    parts.append(f"<line x1='56' x2='{width}' y1='{h + 5}' y2='{h + 5}' stroke='#8a8a8a'/>")
    parts.append(f"<text x='52' y='{h + 9}' font-size='11' text-anchor='end'>0</text>")
    for i, (w, booked, used) in enumerate(totals):
        x = 60 + i * (2 * bar + gap)
        bh, uh = booked / top * h, used / top * h
        label = week(w, lang)
        parts.append(
            f"<rect class='booked' x='{x}' y='{h - bh + 5:.1f}' width='{bar}' height='{bh:.1f}' fill='#767676'>"
            f"<title>{e(label)}: {number(booked, lang)} t {booked_word}</title></rect>"
        )
        parts.append(
            f"<rect class='used' x='{x + bar}' y='{h - uh + 5:.1f}' width='{bar}' height='{uh:.1f}' fill='#2e7d32'>"
            f"<title>{e(label)}: {number(used, lang)} t {used_word}</title></rect>"
        )
        parts.append(f"<text x='{x}' y='{h + 22}' font-size='11'>{int(w.split('-W')[1])}</text>")
    parts.append("</svg></div>")
    return "".join(parts)


def _sites_table(view: View, sites: list[dict[str, Any]], now: float, page_zone: str) -> str:
    lang = view.lang
    out = [
        f"<h2>{t('fleet.sites', lang)}</h2><table id='sites'><thead><tr><th scope='col'>{t('fleet.site', lang)}</th>"
        f"<th scope='col'>{t('fleet.status', lang)}</th><th scope='col'>{t('fleet.since', lang)}</th>"
        f"<th scope='col'>{t('fleet.schedule', lang)}</th><th scope='col' class='n'>{t('fleet.outbox', lang)}</th>"
        f"<th scope='col'>{t('fleet.mode', lang)}</th><th scope='col'>{t('fleet.readers', lang)}</th>"
        f"<th scope='col'>{t('fleet.access', lang)}</th></tr></thead><tbody>"
    ]
    for s in sites:
        if s["online"]:
            state = f"<span class='on'>{t('fleet.online', lang)}</span>"
        else:
            state = f"<span class='off'>{t('fleet.silent' if s['silent'] else 'fleet.offline', lang)}</span>"
        if s.get("unknown"):  # the fleet lost the broker: the state as it was then, said to be unknown now
            state = f"<span class='unknown'>{t('fleet.unknown', lang)}</span> ({state})"
        version = s["schedule_version"] if s["schedule_version"] is not None else "-"
        age = "-" if s["schedule_age_h"] is None else f"{number(s['schedule_age_h'], lang)} {t('fleet.hours_old', lang)}"
        mode = t(f"fleet.mode.{s['mode']}", lang) if s["mode"] in ("normal", "lockdown") else e(s["mode"] or "-")
        if s["reader_faults"]:
            readers = "<br>".join(f"<span class='off'>{e(r)}</span>: {e(why)}" for r, why in s["reader_faults"].items())
        else:
            readers = t("fleet.ok", lang)
        pending = str(s["outbox_pending"]) if s["outbox_pending"] is not None else "-"
        for key in ("events_missing", "events_lost"):  # the record is not whole: said, not hidden
            if s[key]:
                pending += f"<br><span class='off'>{e(t(f'fleet.{key}', lang).format(n=s[key]))}</span>"
        access = e(view.query(site=s["site"], door=""))
        out.append(
            f"<tr data-site='{e(s['site'])}'><th scope='row'>{named(s['name'], s['site'])}</th><td>{state}</td>"
            f"<td>{e(when(s['since'], s['timezone'], page_zone))}</td><td class='n'>{version} · {age}</td>"
            f"<td class='n'>{pending}</td><td>{mode}</td><td>{readers}</td>"
            f"<td><a href='/access{access}'>{t('fleet.access', lang)}<span class='visually-hidden'> {e(s['name'])}</span></a></td></tr>"
        )
    out.append("</tbody></table>")
    out.append(downloads(view, "/sites"))
    return "".join(out)


def _incidents(view: View, o: Overview, sites: dict[str, dict[str, Any]], page_zone: str) -> str:
    """What the alerting holds open now, and any message it could not deliver."""
    lang = view.lang
    waiting, error = o.undelivered
    if not o.incidents and not waiting:
        return ""
    out = [f"<h2>{t('fleet.incidents', lang)}</h2>"]
    if waiting:
        out.append(
            f"<p class='problem' role='alert'>{e(t('fleet.undelivered_one' if waiting == 1 else 'fleet.undelivered', lang).format(n=waiting, error=error or '-'))}</p>"
        )
    if not o.incidents:
        return "".join(out) + f"<p>{t('fleet.no_incidents', lang)}</p>"
    out.append(
        f"<table id='incidents'><thead><tr><th scope='col'>{t('fleet.since', lang)}</th><th scope='col'>{t('fleet.site', lang)}</th>"
        f"<th scope='col'>{t('fleet.event', lang)}</th></tr></thead><tbody>"
    )
    for i in sorted(o.incidents, key=lambda i: i["opened_at"], reverse=True):
        site = sites.get(i["site"], {})
        subject = site.get("doors", {}).get(i["subject"]) or i["subject"]
        text = describe(i["kind"], "", subject, i["detail"] or "", lang)
        since = i["since"] if i["since"] is not None else i["opened_at"]
        out.append(
            f"<tr data-kind='{e(i['kind'])}'><td>{e(when(since, site.get('timezone'), page_zone))}</td>"
            f"<td>{named(site.get('name') or i['site'], i['site'])}</td><td>{e(text)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _alarms_table(view: View, alarms: list[dict[str, Any]], sites: dict[str, dict[str, Any]], page_zone: str) -> str:
    lang = view.lang
    out = [f"<h2>{t('fleet.alarms', lang)}</h2>"]
    if not alarms:
        return out[0] + f"<p>{t('fleet.no_alarms', lang)}</p>"
    out.append(
        f"<table id='alarms'><thead><tr><th scope='col'>{t('fleet.time', lang)}</th><th scope='col'>{t('fleet.site', lang)}</th>"
        f"<th scope='col'>{t('fleet.event', lang)}</th><th scope='col'>{t('fleet.door', lang)} / {t('fleet.reader', lang)}</th>"
        f"<th scope='col'>{t('fleet.reason', lang)}</th></tr></thead><tbody>"
    )
    for a in alarms:
        site = sites.get(a["site"], {})
        door = site.get("doors", {}).get(a["door"]) or a["door"]
        out.append(
            f"<tr><td>{e(when(a['at'], site.get('timezone'), page_zone))}</td>"
            f"<td>{named(site.get('name') or a['site'], a['site'])}</td><td>{e(event(a['type'], lang))}</td>"
            f"<td>{named(door, a['door']) if a['door'] else e(a['reader'] or '')}</td><td>{e(a['reason'] or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _usage_table(view: View, lines: list[UsageLine]) -> str:
    lang = view.lang
    out = [f"<h2>{t('fleet.usage', lang)}</h2>"]
    if not lines:
        return out[0] + f"<p>{t('fleet.no_usage', lang)}</p>"
    out.append(
        f"<p class='legend'><span style='background:#767676'></span>{t('fleet.booked', lang)}"
        f"<span style='background:#2e7d32'></span>{t('fleet.used', lang)}</p>"
    )
    out.append(chart_svg(weekly_totals(lines), lang))
    out.append(
        f"<div class='scroll'><table id='usage'><thead><tr><th scope='col'>{t('fleet.week', lang)}</th>"
        f"<th scope='col'>{t('fleet.site', lang)}</th><th scope='col'>{t('fleet.room', lang)}</th>"
        f"<th scope='col'>{t('fleet.association', lang)}</th>" + _figure_headers(lang) + "</tr></thead><tbody>"
    )
    for u in lines[:PAGE_ROWS]:
        out.append(
            f"<tr><td title='{e(u.week)}'>{e(week(u.week, lang))}</td><td>{named(u.site_name, u.site)}</td>"
            f"<td>{named(u.room_name, u.room)}</td><td>{named(u.association_name, u.association)}</td>"
            + _figures(u, lang)
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    out.append(more(view, min(PAGE_ROWS, len(lines)), len(lines)))
    out.append(downloads(view, "/usage"))
    return "".join(out)


def _figure_headers(lang: str) -> str:
    return (
        f"<th scope='col' class='n'>{t('fleet.bookings', lang)}</th><th scope='col' class='n'>{t('fleet.booked_h', lang)}</th>"
        f"<th scope='col' class='n'>{t('fleet.used_h', lang)}</th><th scope='col' class='n'>{t('fleet.used_pct', lang)}</th>"
        f"<th scope='col' class='n'>{t('fleet.no_shows', lang)}</th>"
        f"<th scope='col' class='n'><abbr title='{e(t('fleet.closed_help', lang))}'>{t('fleet.closed', lang)}</abbr></th>"
        f"<th scope='col' class='n'><abbr title='{e(t('fleet.unobserved_help', lang))}'>{t('fleet.unobserved', lang)}</abbr></th>"
    )


def _figures(u: UsageLine | SeasonLine, lang: str) -> str:
    return (
        f"<td class='n'>{u.bookings}</td><td class='n'>{number(u.booked_hours, lang)}</td>"
        f"<td class='n'>{number(u.used_hours, lang)}</td><td class='n'>{percent(u.used_share, lang) if u.booked_hours else '–'}</td>"
        f"<td class='n'>{u.no_shows}</td><td class='n'>{u.closed}</td><td class='n'>{u.unobserved}</td>"
    )


def _season_table(view: View, seasons: list[SeasonLine]) -> str:
    lang = view.lang
    if not seasons:
        return ""
    out = [
        f"<h2>{t('fleet.season', lang)}</h2><div class='scroll'><table id='season'><thead><tr>"
        f"<th scope='col'>{t('fleet.season_col', lang)}</th><th scope='col'>{t('fleet.association', lang)}</th>"
        f"<th scope='col' class='n'>{t('fleet.site_count', lang)}</th>" + _figure_headers(lang) + "</tr></thead><tbody>"
    ]
    for s in seasons[:PAGE_ROWS]:
        out.append(
            f"<tr><td>{e(s.season)}</td><td>{named(s.association_name, s.association)}</td><td class='n'>{s.sites}</td>"
            + _figures(s, lang)
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    out.append(more(view, min(PAGE_ROWS, len(seasons)), len(seasons)))
    out.append(downloads(view, "/season"))
    return "".join(out)


def overview(view: View, o: Overview, page_zone: str) -> str:
    lang = view.lang
    down = sum(1 for s in o.sites if not s["online"])
    heading = f"Haldor: {count(len(o.sites), 'site', lang)}, {down} {t('fleet.offline_count', lang)}"
    by_id = {s["site"]: s for s in o.sites}
    shown = [s for s in o.sites if not view.site or s["site"] == view.site]
    body = (
        filter_form(view, o.sites, "/")
        + "<main id='main'>"
        + f"<p class='note'>{t('fleet.local_times', lang)}</p>"
        + _incidents(view, o, by_id, page_zone)
        + _sites_table(view, shown, o.now, page_zone)
        + _alarms_table(view, o.alarms, by_id, page_zone)
        + _usage_table(view, o.usage)
        + _season_table(view, o.seasons)
        + "</main>"
    )
    return document(view, t("fleet.title", lang), e(heading), body, o.generation, when(o.now, None, page_zone))


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
    if site is None:
        body = filter_form(view, sites, "/access", {}) + (
            f"<main id='main'><p class='problem'>{t('fleet.unknown_site', lang)}</p>"
            f"<p><a href='/{e(view.query(site='', door=''))}'>{t('fleet.back', lang)}</a></p></main>"
        )
        return document(view, t("fleet.access", lang), t("fleet.access", lang), body, generation, when(now, None, page_zone))
    doors = site.get("doors", {})
    out = [
        filter_form(view, sites, "/access", doors),
        f"<main id='main'><p class='note'>{t('fleet.access_help', lang)} {t('fleet.local_times', lang)}</p>",
        f"<p><a href='/{e(view.query(site='', door=''))}'>{t('fleet.back', lang)}</a></p>",
    ]
    if not entries:
        out.append(f"<p>{t('fleet.no_access', lang)}</p>")
    else:
        out.append(
            f"<table id='access'><thead><tr><th scope='col'>{t('fleet.time', lang)}</th><th scope='col'>{t('fleet.door', lang)}</th>"
            f"<th scope='col'>{t('fleet.event', lang)}</th><th scope='col'>{t('fleet.reason', lang)}</th>"
            f"<th scope='col'>{t('fleet.credential', lang)}</th><th scope='col'>{t('fleet.booking', lang)}</th>"
            f"<th scope='col'>{t('fleet.reader', lang)}</th></tr></thead><tbody>"
        )
        for a in entries:
            door = doors.get(a["door"]) or a["door"] or ""
            out.append(
                f"<tr data-type='{e(a['type'])}'><td>{e(when(a['at'], site.get('timezone'), page_zone))}</td>"
                f"<td>{named(door, a['door'] or '')}</td><td>{e(event(a['type'], lang))}</td><td>{e(reason_text(a, lang))}</td>"
                f"<td>{e(a['credential'] or '')}</td><td>{e(a['booking'] or '')}</td><td>{e(a['reader'] or '')}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(more(view, len(entries), total))
    out.append(downloads(view, "/access"))
    out.append(actions(view, site, can_send))
    if audit is not None:
        out.append(f"<h2>{t('fleet.audit', lang)}</h2>" + audit_table(view, audit, {site["site"]: site}, now, page_zone))
        out.append(f"<p><a href='/audit{e(view.query(door=''))}'>{t('fleet.audit', lang)}</a></p>")
    out.append("</main>")
    heading = f"{t('fleet.access_for', lang)} {site['name']}"
    return document(view, heading, e(heading), "".join(out), generation, when(now, None, page_zone))
