"""The operators' pages: the login, a site's actions (signed commands) and the audit
log of what operators did and what the boxes answered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from haldor.texts import TEXTS, t

from .formats import when
from .page_parts import PAGE_ROWS, STYLE, document, downloads, e, filter_form, more, named
from .view import View


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


def actions(view: View, site: dict[str, Any], can_send: bool) -> str:
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
            f"<td>{named(site.get('name') or r['site'] or '', r['site'] or '')}</td><td>{e(what)}{': ' + e(door) if door else ''}</td>"
            f"<td>{e(r['detail'] or '')}</td><td class='result'>{_result(r, now, lang)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def audit_page(
    view: View, rows: Sequence[dict[str, Any]], sites: list[dict[str, Any]], generation: str, now: float, page_zone: str
) -> str:
    lang = view.lang
    body = (
        filter_form(view, sites, "/audit")
        + f"<main id='main'><p class='note'>{t('fleet.audit_help', lang)} {t('fleet.local_times', lang)}</p>"
        + f"<p><a href='/{e(view.query(site='', door=''))}'>{t('fleet.back', lang)}</a></p>"
        + audit_table(view, rows[:PAGE_ROWS], {s["site"]: s for s in sites}, now, page_zone)
        + more(view, min(PAGE_ROWS, len(rows)), len(rows))
        + downloads(view, "/audit")
        + "</main>"
    )
    return document(view, t("fleet.audit", lang), t("fleet.audit", lang), body, generation, when(now, None, page_zone))
