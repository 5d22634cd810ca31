"""What every page of the fleet shares: the document around a page (with its live
refresh), the filter form, who is logged in, names with ids on hover, downloads."""

from __future__ import annotations

import html
from typing import Any

from haldor.texts import t

from .formats import when
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
.on{color:#0a6b2f;font-weight:bold}.off{color:#b00020;font-weight:bold}.unknown{color:#5c4400;font-weight:bold}
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
      for (const id of ["main", "heading", "updated", "blind"]) {
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


def document(view: View, title: str, heading: str, body: str, generation: str, updated: str) -> str:
    other = view.other_language()
    return (
        f"<!doctype html><html lang='{view.lang}'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body data-generation='{e(generation)}'>"
        f"<header><h1 id='heading'>{heading}</h1>"
        f"<nav><a href='{e(view.query(lang=other))}' lang='{other}' hreflang='{other}'>{t('fleet.switch', view.lang)}</a>"
        f"<span id='updated' role='status'>{t('fleet.live', view.lang)}. {t('fleet.updated', view.lang)} {e(updated)}</span>"
        f"{who(view)}</nav>{blind(view)}</header>{body}<script>{SCRIPT}</script></body></html>"
    )


def blind(view: View) -> str:
    """The banner of a fleet that lost its broker: what the page shows is as of then. An
    empty placeholder otherwise, so that the live refresh can put one in or take it out."""
    if view.blind_since is None:
        return "<div id='blind'></div>"
    text = t("fleet.blind", view.lang).format(since=when(view.blind_since, None, view.zone))
    return f"<div id='blind'><p class='problem' role='alert'>{e(text)}</p></div>"


def who(view: View) -> str:
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


def filter_form(view: View, sites: list[dict[str, Any]], action: str, doors: dict[str, str] | None = None) -> str:
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


def named(name: str, ident: str) -> str:
    """A name, with the id on hover when they differ."""
    return e(name) if name == ident else f"<span title='{e(ident)}'>{e(name)}</span>"


def downloads(view: View, path: str) -> str:
    q = e(view.query())
    return (
        f"<p>{t('fleet.download', view.lang)}: <a href='{path}.csv{q}'>CSV</a> · <a href='{path}.xlsx{q}'>Excel (.xlsx)</a></p>"
    )


def more(view: View, shown: int, total: int) -> str:
    if total <= shown:
        return ""
    return f"<p class='note'>{e(t('fleet.more_rows', view.lang).format(shown=shown))}</p>"
