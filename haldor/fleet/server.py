"""The fleet's web page, CSV exports and JSON summary. Server-rendered HTML with an
inline SVG chart: nothing loaded from elsewhere."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .report import UsageLine, site_rows, weekly_totals, weekly_usage
from .store import FleetStore

log = logging.getLogger(__name__)

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:1.5rem;color:#111;background:#fff}
h1{margin:0 0 1rem 0}h2{margin:2rem 0 .5rem 0}
table{border-collapse:collapse;font-size:.95rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
.on{color:#0a6b2f;font-weight:bold}.off{color:#b00020;font-weight:bold}
.legend span{display:inline-block;width:1rem;height:1rem;vertical-align:middle;margin:0 .3rem 0 1rem}
a{color:#0645ad}
"""


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def chart_svg(totals: list[tuple[str, float, float]]) -> str:
    """Booked (grey) and used (green) hours per week."""
    if not totals:
        return "<p>Ingen forbrugstal endnu / no usage yet.</p>"
    top = max(b for _, b, _ in totals) or 1
    bar, gap, h = 18, 14, 160
    width = len(totals) * (2 * bar + gap) + 40
    parts = [f'<svg id="chart" role="img" aria-label="booked and used hours per week" width="{width}" height="{h + 40}">']
    for i, (week, booked, used) in enumerate(totals):
        x = 30 + i * (2 * bar + gap)
        bh, uh = booked / top * h, used / top * h
        parts.append(
            f'<rect class="booked" x="{x}" y="{h - bh + 5:.1f}" width="{bar}" height="{bh:.1f}" fill="#9e9e9e">'
            f"<title>{week}: {booked} t booket</title></rect>"
        )
        parts.append(
            f'<rect class="used" x="{x + bar}" y="{h - uh + 5:.1f}" width="{bar}" height="{uh:.1f}" fill="#2e7d32">'
            f"<title>{week}: {used} t brugt</title></rect>"
        )
        parts.append(f'<text x="{x}" y="{h + 22}" font-size="10">{html.escape(week[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def usage_csv(lines: list[UsageLine]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(fields := [f.name for f in dataclasses.fields(UsageLine)])
    for line in lines:
        w.writerow([getattr(line, name) for name in fields])
    return out.getvalue()


def sites_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        ["site", "online", "since", "schedule_version", "schedule_age_hours", "outbox_pending", "mode", "readers_at_fault"]
    )
    for r in rows:
        w.writerow(
            [
                r["site"],
                r["online"],
                _when(r["since"]),
                r["schedule_version"],
                r["schedule_age_h"],
                r["outbox_pending"],
                r["mode"],
                "; ".join(f"{k}: {v}" for k, v in r["reader_faults"].items()),
            ]
        )
    return out.getvalue()


def _readers_cell(faults: dict[str, str]) -> str:
    if not faults:
        return "ok"
    return "<br>".join(
        f"<span class='off' title='{html.escape(why)}'>{html.escape(r)}</span>: {html.escape(why)}" for r, why in faults.items()
    )


def page(store: FleetStore, now: float) -> str:
    e = html.escape
    sites = site_rows(store.sites(), now)
    lines = weekly_usage(store.usage_rows())
    alarms = store.alarms(50)
    down = sum(1 for s in sites if not s["online"])
    out = [
        f"<!doctype html><html lang='da'><head><meta charset='utf-8'><title>Haldor fleet</title>"
        f"<style>{STYLE}</style></head><body><h1>Haldor: {len(sites)} steder, {down} offline</h1>",
        "<h2>Steder / sites</h2><table id='sites'><tr><th>Sted</th><th>Status</th><th>Siden</th><th>Skema (version, alder t)</th>"
        "<th>Udbakke</th><th>Tilstand</th><th>Læsere / readers</th></tr>",
    ]
    for s in sites:
        state = (
            "<span class='on'>online</span>"
            if s["online"]
            else f"<span class='off'>{'tavs' if s['silent'] else 'offline'}</span>"
        )
        out.append(
            f"<tr data-site='{e(s['site'])}'><td>{e(s['site'])}</td><td>{state}</td><td>{_when(s['since'])}</td>"
            f"<td class='n'>{s['schedule_version'] or '-'} / {s['schedule_age_h'] if s['schedule_age_h'] is not None else '-'}</td>"
            f"<td class='n'>{s['outbox_pending'] if s['outbox_pending'] is not None else '-'}</td><td>{e(s['mode'] or '-')}</td>"
            f"<td>{_readers_cell(s['reader_faults'])}</td></tr>"
        )
    out.append("</table><p><a href='/sites.csv'>sites.csv</a></p>")
    out.append(
        "<h2>Alarmer / alarms</h2><table id='alarms'><tr><th>Tid</th><th>Sted</th><th>Hændelse</th><th>Dør / læser</th><th>Årsag</th></tr>"
    )
    for a in alarms:
        out.append(
            f"<tr><td>{e(a['at'] or '')}</td><td>{e(a['site'])}</td><td>{e(a['type'])}</td>"
            f"<td>{e(a['door'] or a['reader'] or '')}</td><td>{e(a['reason'] or '')}</td></tr>"
        )
    out.append("</table>")
    out.append(
        "<h2>Forbrug pr. uge / usage per week</h2><p class='legend'><span style='background:#9e9e9e'></span>booket"
        "<span style='background:#2e7d32'></span>brugt</p>"
    )
    out.append(chart_svg(weekly_totals(lines)))
    out.append(
        "<table id='usage'><tr><th>Uge</th><th>Sted</th><th>Lokale</th><th>Forening</th><th>Bookinger</th>"
        "<th>Booket t</th><th>Brugt t</th><th>Brugt %</th><th>Udeblevet</th>"
        "<th title='lokalet var lukket hele tiden / the room was closed throughout'>Lukket</th>"
        "<th title='boksen så ikke hele bookingen / the box did not see all of it'>Ikke set</th></tr>"
    )
    for u in lines:
        out.append(
            f"<tr><td>{e(u.week)}</td><td>{e(u.site)}</td><td>{e(u.room)}</td><td>{e(u.association)}</td>"
            f"<td class='n'>{u.bookings}</td><td class='n'>{u.booked_hours:g}</td><td class='n'>{u.used_hours:g}</td>"
            f"<td class='n'>{round(100 * u.used_share)}</td><td class='n'>{u.no_shows}</td>"
            f"<td class='n'>{u.closed}</td><td class='n'>{u.unobserved}</td></tr>"
        )
    out.append("</table><p><a href='/usage.csv'>usage.csv</a></p></body></html>")
    return "".join(out)


class _Handler(BaseHTTPRequestHandler):
    server: FleetHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)

    def do_GET(self) -> None:  # noqa: N802
        store, now = self.server.store, self.server.clock()
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            if path == "/":
                body, kind = page(store, now), "text/html; charset=utf-8"
            elif path == "/usage.csv":
                body, kind = usage_csv(weekly_usage(store.usage_rows())), "text/csv; charset=utf-8"
            elif path == "/sites.csv":
                body, kind = sites_csv(site_rows(store.sites(), now)), "text/csv; charset=utf-8"
            elif path == "/api/summary":
                body = json.dumps(
                    {
                        "sites": site_rows(store.sites(), now),
                        "counts": store.counts(),
                        "usage": [asdict(u) for u in weekly_usage(store.usage_rows())],
                    }
                )
                kind = "application/json"
            else:
                self.send_error(404)
                return
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FleetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: FleetStore, address: tuple[str, int], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.lock = threading.Lock()
        super().__init__(address, _Handler)
