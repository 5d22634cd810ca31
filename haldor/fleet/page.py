"""The fleet's web pages: the overview (sites, alarms, use per week, the season per
association) and a site's access log. Server-rendered HTML with an inline SVG chart,
nothing loaded from elsewhere; names shown, ids on hover; Danish first. The page
refreshes its ``<main>`` itself when the store changes (server-sent events), so a
manager can leave it open on a wall screen."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from haldor.texts import TEXTS, event, t

from .alerts import describe
from .exports import reason_text
from .formats import count, number, percent, week, when
from .report import SeasonLine, UsageLine, weekly_totals
from .view import View

#: rows a table shows on the page; the spreadsheet has them all
PAGE_ROWS = 500

e = html.escape

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:1.5rem;color:#111;background:#fff;line-height:1.4}
h1{margin:0 0 .5rem 0;font-size:1.6rem}h2{margin:2rem 0 .5rem 0;font-size:1.25rem}
header nav a{margin-right:1rem}
form.who{display:inline-flex;margin:0 0 0 1rem;gap:.5rem;align-items:center}
form.act{border:1px solid #8a8a8a;padding:.5rem;margin:.5rem 0;align-items:flex-end}
table{border-collapse:collapse;font-size:.95rem;margin-bottom:.5rem}
th,td{border:1px solid #8a8a8a;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#e8e8e8}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:bold;padding:.3rem 0}
.on{color:#0a6b2f;font-weight:bold}.off{color:#b00020;font-weight:bold}
.legend span{display:inline-block;width:1rem;height:1rem;vertical-align:middle;margin:0 .3rem 0 1rem}
.problem{color:#b00020;font-weight:bold}
.note{color:#333}
form{margin:1rem 0;display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-end}
label{display:flex;flex-direction:column;font-size:.9rem}
input,select,button{font-size:1rem;padding:.25rem .4rem}
.scroll{overflow-x:auto}
a{color:#0645ad}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
"""

#: swaps <main> for a fresh one when the store has changed; leaves a form being filled in alone
SCRIPT = """
(function () {
  let busy = false;
  const source = new EventSource("/live");
  source.onmessage = async (message) => {
    if (busy || message.data === document.body.dataset.generation) return;
    busy = true;
    try {
      const reply = await fetch(location.href, {cache: "no-store"});
      if (!reply.ok) return;
      const fresh = new DOMParser().parseFromString(await reply.text(), "text/html");
      for (const id of ["main", "heading", "updated"]) {
        const old = document.getElementById(id), now = fresh.getElementById(id);
        if (old && now) old.replaceWith(now);
      }
      document.body.dataset.generation = fresh.body.dataset.generation;
    } catch (error) {
      /* the next change tries again */
    } finally {
      busy = false;
    }
  };
})();
"""


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


def _document(view: View, title: str, heading: str, body: str, generation: str, updated: str) -> str:
    other = view.other_language()
    return (
        f"<!doctype html><html lang='{view.lang}'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body data-generation='{e(generation)}'>"
        f"<header><h1 id='heading'>{heading}</h1>"
        f"<nav><a href='{e(view.query(lang=other))}' lang='{other}' hreflang='{other}'>{t('fleet.switch', view.lang)}</a>"
        f"<span id='updated' role='status'>{t('fleet.live', view.lang)}. {t('fleet.updated', view.lang)} {e(updated)}</span>"
        f"{_who(view)}</nav></header>{body}<script>{SCRIPT}</script></body></html>"
    )


def _who(view: View) -> str:
    """Who is logged in, and the way out (a form: logging out changes something)."""
    if not view.user:
        return ""
    lang = view.lang
    if view.sso:  # the proxy's single sign-on logs in and out
        return f"<span class='who'>{t('fleet.logged_in', lang)} <strong>{e(view.user)}</strong> ({t('fleet.role.' + view.role, lang)})</span>"
    return (
        f"<form method='post' action='/logout{e(view.query())}' class='who'>{t('fleet.logged_in', lang)} "
        f"<strong>{e(view.user)}</strong> ({t('fleet.role.' + view.role, lang)})"
        f"<input type='hidden' name='csrf' value='{e(view.csrf)}'><button type='submit'>{t('fleet.logout', lang)}</button></form>"
    )


def login_page(view: View, target: str, failed: bool = False) -> str:
    """The login form; ``target``: where to go after it (a path of this site)."""
    lang = view.lang
    problem = f"<p class='problem' role='alert'>{t('fleet.login_failed', lang)}</p>" if failed else ""
    body = (
        f"<main id='main'>{problem}<form method='post' action='/login{e(view.query())}' id='login'>"
        f"<input type='hidden' name='next' value='{e(target)}'>"
        f"<label>{t('fleet.user_name', lang)}<input name='name' autocomplete='username' required></label>"
        f"<label>{t('fleet.password', lang)}<input name='password' type='password' autocomplete='current-password' required></label>"
        f"<button type='submit'>{t('fleet.login', lang)}</button></form></main>"
    )
    title = t("fleet.login_title", lang)
    other = view.other_language()
    switch = (
        f"<nav><a href='/login?lang={other}&amp;next={quote(target, safe='')}' lang='{other}'>{t('fleet.switch', lang)}</a></nav>"
    )
    return (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{e(title)}</h1>{switch}</header>{body}</body></html>"
    )


def _filter_form(view: View, sites: list[dict[str, Any]], action: str, doors: dict[str, str] | None = None) -> str:
    lang = view.lang
    options = [f"<option value=''>{t('fleet.all_sites', lang)}</option>"] if doors is None else []
    for s in sorted(sites, key=lambda s: s["name"].casefold()):
        chosen = " selected" if s["site"] == view.site else ""
        options.append(f"<option value='{e(s['site'])}'{chosen}>{e(s['name'])}</option>")
    parts = [
        f"<form method='get' action='{action}' id='filter'><input type='hidden' name='lang' value='{lang}'>",
        f"<label>{t('fleet.from', lang)}<input type='date' name='from' value='{e(view.typed.get('from', ''))}'></label>",
        f"<label>{t('fleet.to', lang)}<input type='date' name='to' value='{e(view.typed.get('to', ''))}'></label>",
        f"<label>{t('fleet.site', lang)}<select name='site'>{''.join(options)}</select></label>",
    ]
    if doors is not None:
        door_options = [f"<option value=''>{t('fleet.all_doors', lang)}</option>"]
        for door_id, name in sorted(doors.items(), key=lambda d: d[1].casefold()):
            chosen = " selected" if door_id == view.door else ""
            door_options.append(f"<option value='{e(door_id)}'{chosen}>{e(name)}</option>")
        parts.append(f"<label>{t('fleet.door', lang)}<select name='door'>{''.join(door_options)}</select></label>")
    parts.append(f"<button type='submit'>{t('fleet.filter', lang)}</button></form>")
    parts += [f"<p class='problem' role='alert'>{e(p)}</p>" for p in view.problems]
    return "".join(parts)


def _named(name: str, ident: str) -> str:
    """A name, with the id on hover when they differ."""
    return e(name) if name == ident else f"<span title='{e(ident)}'>{e(name)}</span>"


def _downloads(view: View, path: str) -> str:
    q = e(view.query())
    return (
        f"<p>{t('fleet.download', view.lang)}: <a href='{path}.csv{q}'>CSV</a> · <a href='{path}.xlsx{q}'>Excel (.xlsx)</a></p>"
    )


def _more(view: View, shown: int, total: int) -> str:
    if total <= shown:
        return ""
    return f"<p class='note'>{e(t('fleet.more_rows', view.lang).format(shown=shown))}</p>"


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
        version = s["schedule_version"] if s["schedule_version"] is not None else "-"
        age = "-" if s["schedule_age_h"] is None else f"{number(s['schedule_age_h'], lang)} {t('fleet.hours_old', lang)}"
        mode = t(f"fleet.mode.{s['mode']}", lang) if s["mode"] in ("normal", "lockdown") else e(s["mode"] or "-")
        if s["reader_faults"]:
            readers = "<br>".join(f"<span class='off'>{e(r)}</span>: {e(why)}" for r, why in s["reader_faults"].items())
        else:
            readers = t("fleet.ok", lang)
        pending = s["outbox_pending"] if s["outbox_pending"] is not None else "-"
        access = e(view.query(site=s["site"], door=""))
        out.append(
            f"<tr data-site='{e(s['site'])}'><th scope='row'>{_named(s['name'], s['site'])}</th><td>{state}</td>"
            f"<td>{e(when(s['since'], s['timezone'], page_zone))}</td><td class='n'>{version} · {age}</td>"
            f"<td class='n'>{pending}</td><td>{mode}</td><td>{readers}</td>"
            f"<td><a href='/access{access}'>{t('fleet.access', lang)}<span class='visually-hidden'> {e(s['name'])}</span></a></td></tr>"
        )
    out.append("</tbody></table>")
    out.append(_downloads(view, "/sites"))
    return "".join(out)


def _incidents(view: View, o: Overview, sites: dict[str, dict[str, Any]], page_zone: str) -> str:
    """What the alerting holds open now, and any message it could not deliver."""
    lang = view.lang
    waiting, error = o.undelivered
    if not o.incidents and not waiting:
        return ""
    out = [f"<h2>{t('fleet.incidents', lang)}</h2>"]
    if waiting:
        out.append(f"<p class='problem' role='alert'>{e(t('fleet.undelivered', lang).format(n=waiting, error=error or '-'))}</p>")
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
            f"<td>{_named(site.get('name') or i['site'], i['site'])}</td><td>{e(text)}</td></tr>"
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
            f"<td>{_named(site.get('name') or a['site'], a['site'])}</td><td>{e(event(a['type'], lang))}</td>"
            f"<td>{_named(door, a['door']) if a['door'] else e(a['reader'] or '')}</td><td>{e(a['reason'] or '')}</td></tr>"
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
            f"<tr><td title='{e(u.week)}'>{e(week(u.week, lang))}</td><td>{_named(u.site_name, u.site)}</td>"
            f"<td>{_named(u.room_name, u.room)}</td><td>{_named(u.association_name, u.association)}</td>"
            + _figures(u, lang)
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    out.append(_more(view, min(PAGE_ROWS, len(lines)), len(lines)))
    out.append(_downloads(view, "/usage"))
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
            f"<tr><td>{e(s.season)}</td><td>{_named(s.association_name, s.association)}</td><td class='n'>{s.sites}</td>"
            + _figures(s, lang)
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    out.append(_more(view, min(PAGE_ROWS, len(seasons)), len(seasons)))
    out.append(_downloads(view, "/season"))
    return "".join(out)


def _actions(view: View, site: dict[str, Any], can_send: bool) -> str:
    """The operator's buttons: a form each, with the CSRF token and an optional reason."""
    lang = view.lang
    if view.role != "operator":
        return ""
    out = [f"<h2>{t('fleet.actions', lang)}</h2>"]
    if not can_send:
        return "".join(out) + f"<p class='note'>{t('fleet.no_command_key', lang)}</p>"
    out.append(f"<p class='note'>{t('fleet.actions_help', lang)}</p>")
    hidden = (
        f"<input type='hidden' name='csrf' value='{e(view.csrf)}'><input type='hidden' name='site' value='{e(site['site'])}'>"
    )
    why = f"<label>{t('fleet.why', lang)}<input name='reason' maxlength='200'></label>"
    action_url = f"/command{e(view.query())}"
    for door_id, name in sorted(site.get("doors", {}).items(), key=lambda d: d[1].casefold()):
        out.append(
            f"<form method='post' action='{action_url}' class='act' data-door='{e(door_id)}' aria-label='{e(name)}'>{hidden}"
            f"<input type='hidden' name='door' value='{e(door_id)}'><strong>{e(name)}</strong>{why}"
            f"<label>{t('fleet.minutes', lang)}<input name='minutes' type='number' min='1' max='1440' value='10'></label>"
            f"<button name='action' value='unlock'>{t('fleet.action.unlock', lang)}</button>"
            f"<button name='action' value='hold_open'>{t('fleet.action.hold_open', lang)}</button>"
            f"<button name='action' value='release'>{t('fleet.action.release', lang)}</button></form>"
        )
    out.append(f"<p class='note'>{t('fleet.hold_open_help', lang)}</p>")
    out.append(
        f"<form method='post' action='{action_url}' class='act' aria-label='{e(site['name'])}'>{hidden}<strong>{e(site['name'])}</strong>{why}"
        + "".join(
            f"<button name='action' value='{a}'{_ask(a, lang)}>{t('fleet.action.' + a, lang)}</button>"
            for a in ("lockdown", "lift_lockdown", "resync")
        )
        + "</form>"
    )
    return "".join(out)


def _ask(action: str, lang: str) -> str:
    """A lockdown is asked for twice: it locks every door of the site."""
    if action != "lockdown":
        return ""
    return f" data-ask='{e(t('fleet.confirm_lockdown', lang))}' onclick='return confirm(this.dataset.ask)'"


def _result(row: dict[str, Any], now: float, lang: str) -> str:
    if row["command"] is None:
        return ""
    if row["answered_at"] is not None:
        if row["ok"]:
            return f"<span class='on'>{t('fleet.result.ok', lang)}</span>"
        return f"<span class='off'>{t('fleet.result.refused', lang)}</span>: {e(row['error'] or '')}"
    if row["expires_at"] is not None and now > row["expires_at"]:
        return f"<span class='off'>{t('fleet.result.none', lang)}</span>"
    return t("fleet.result.waiting", lang)


def audit_table(view: View, rows: Sequence[dict[str, Any]], sites: dict[str, dict[str, Any]], now: float, page_zone: str) -> str:
    lang = view.lang
    if not rows:
        return f"<p>{t('fleet.no_audit', lang)}</p>"
    out = [
        f"<table id='audit'><thead><tr><th scope='col'>{t('fleet.time', lang)}</th><th scope='col'>{t('fleet.who', lang)}</th>"
        f"<th scope='col'>{t('fleet.site', lang)}</th><th scope='col'>{t('fleet.what', lang)}</th>"
        f"<th scope='col'>{t('fleet.reason', lang)}</th><th scope='col'>{t('fleet.result', lang)}</th></tr></thead><tbody>"
    ]
    for r in rows:
        site = sites.get(r["site"] or "", {})
        door = site.get("doors", {}).get(r["door"]) or r["door"]
        what = t(f"fleet.action.{r['action']}", lang) if f"fleet.action.{r['action']}" in TEXTS else r["action"]
        out.append(
            f"<tr data-command='{e(r['command'] or '')}'><td>{e(when(r['at'], site.get('timezone'), page_zone))}</td>"
            f"<td>{e(r['who'])} ({t('fleet.role.' + r['role'], lang) if r['role'] in ('viewer', 'operator') else ''})</td>"
            f"<td>{_named(site.get('name') or r['site'] or '', r['site'] or '')}</td><td>{e(what)}{': ' + e(door) if door else ''}</td>"
            f"<td>{e(r['detail'] or '')}</td><td class='result'>{_result(r, now, lang)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def audit_page(
    view: View, rows: Sequence[dict[str, Any]], sites: list[dict[str, Any]], generation: str, now: float, page_zone: str
) -> str:
    lang = view.lang
    body = (
        _filter_form(view, sites, "/audit")
        + f"<main id='main'><p class='note'>{t('fleet.audit_help', lang)} {t('fleet.local_times', lang)}</p>"
        + f"<p><a href='/{e(view.query(site='', door=''))}'>{t('fleet.back', lang)}</a></p>"
        + audit_table(view, rows[:PAGE_ROWS], {s["site"]: s for s in sites}, now, page_zone)
        + _more(view, min(PAGE_ROWS, len(rows)), len(rows))
        + _downloads(view, "/audit")
        + "</main>"
    )
    return _document(view, t("fleet.audit", lang), t("fleet.audit", lang), body, generation, when(now, None, page_zone))


def overview(view: View, o: Overview, page_zone: str) -> str:
    lang = view.lang
    down = sum(1 for s in o.sites if not s["online"])
    heading = f"Haldor: {count(len(o.sites), 'site', lang)}, {down} {t('fleet.offline_count', lang)}"
    by_id = {s["site"]: s for s in o.sites}
    shown = [s for s in o.sites if not view.site or s["site"] == view.site]
    body = (
        _filter_form(view, o.sites, "/")
        + "<main id='main'>"
        + f"<p class='note'>{t('fleet.local_times', lang)}</p>"
        + _incidents(view, o, by_id, page_zone)
        + _sites_table(view, shown, o.now, page_zone)
        + _alarms_table(view, o.alarms, by_id, page_zone)
        + _usage_table(view, o.usage)
        + _season_table(view, o.seasons)
        + "</main>"
    )
    return _document(view, t("fleet.title", lang), e(heading), body, o.generation, when(o.now, None, page_zone))


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
        body = _filter_form(view, sites, "/access", {}) + (
            f"<main id='main'><p class='problem'>{t('fleet.unknown_site', lang)}</p>"
            f"<p><a href='/{e(view.query(site='', door=''))}'>{t('fleet.back', lang)}</a></p></main>"
        )
        return _document(view, t("fleet.access", lang), t("fleet.access", lang), body, generation, when(now, None, page_zone))
    doors = site.get("doors", {})
    out = [
        _filter_form(view, sites, "/access", doors),
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
                f"<td>{_named(door, a['door'] or '')}</td><td>{e(event(a['type'], lang))}</td><td>{e(reason_text(a, lang))}</td>"
                f"<td>{e(a['credential'] or '')}</td><td>{e(a['booking'] or '')}</td><td>{e(a['reader'] or '')}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(_more(view, len(entries), total))
    out.append(_downloads(view, "/access"))
    out.append(_actions(view, site, can_send))
    if audit is not None:
        out.append(f"<h2>{t('fleet.audit', lang)}</h2>" + audit_table(view, audit, {site["site"]: site}, now, page_zone))
        out.append(f"<p><a href='/audit{e(view.query(door=''))}'>{t('fleet.audit', lang)}</a></p>")
    out.append("</main>")
    heading = f"{t('fleet.access_for', lang)} {site['name']}"
    return _document(view, heading, e(heading), "".join(out), generation, when(now, None, page_zone))
