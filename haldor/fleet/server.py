"""The fleet's web server: the overview and access-log pages, their spreadsheets, a
JSON summary, and ``/live``, the server-sent events that tell an open page the store
has changed (polled from the database, so it sees what every consumer wrote)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .exports import Table, access_table, season_table, sites_table, to_csv, to_xlsx, usage_table
from .incidents import IncidentBook
from .metrics import FleetCollector, exposition
from .page import PAGE_ROWS, Overview, access_page, overview
from .report import SEASON_WEEKS, SeasonLine, UsageLine, season_totals, site_rows
from .store import FleetStore
from .view import View, read_view, today_in

if TYPE_CHECKING:
    from .alerting import AlertWorker
    from .ingest import FleetConsumer

log = logging.getLogger(__name__)

#: how often an open page's stream looks for changes: also the fastest it refreshes
LIVE_POLL_S = 5.0
HEARTBEAT_S = 15.0
ALARMS_SHOWN = 50
#: the page's usage figures may be this old: summing a season of a thousand sites takes a
#: second, and a booking's figures come only once it ended (downloads are always exact)
USAGE_FRESH_S = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: FleetHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        path, _, query = self.path.partition("?")
        now = srv.clock()
        if path == "/live":
            self._live()
            return
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        if path == "/metrics":
            self._metrics()
            return
        access = path.startswith("/access")
        view = read_view(query, today_in(srv.zone, now), access=access, weeks=srv.season)
        try:
            with srv.lock:
                answer = self._answer(path, view, now)
        except Exception:
            log.exception("the fleet page failed for %s", self.path)
            self._send(500, b"the fleet's database did not answer; see the log\n", "text/plain")
            return
        if answer is None:
            self._send(404, b"not found\n", "text/plain")
        else:
            self._send(200, *answer)

    def _answer(self, path: str, view: View, now: float) -> tuple[bytes, str, dict[str, str]] | None:
        srv = self.server
        page_zone = srv.zone
        if path == "/":
            return _html(overview(view, srv.overview(view, now), page_zone))
        if path == "/api/summary":
            lines = srv.usage(view, srv.sites(now))
            doc = {"sites": srv.sites(now), "counts": srv.store.counts(), "usage": [asdict(u) for u in lines]}
            return json.dumps(doc).encode(), "application/json", {}
        if path == "/access":
            sites = srv.sites(now)
            site = next((s for s in sites if s["site"] == view.site), None)
            entries = srv.access(view, site, PAGE_ROWS + 1) if site else []
            html = access_page(view, site, sites, entries[:PAGE_ROWS], len(entries), srv.generation(), now, page_zone)
            return _html(html)
        stem, dot, kind = path.rpartition(".")
        if not dot or kind not in ("csv", "xlsx"):
            return None
        table: Table
        if stem == "/usage":
            table = usage_table(srv.usage(view, srv.sites(now)), view.lang)
        elif stem == "/season":
            table = season_table(season_totals(srv.usage(view, srv.sites(now)), srv.season), view.lang)
        elif stem == "/sites":
            table = sites_table(srv.sites(now), view.lang, page_zone)
        elif stem == "/access":
            sites = srv.sites(now)
            site = next((s for s in sites if s["site"] == view.site), None)
            entries = srv.access(view, site, None) if site or not view.site else []
            table = access_table(entries, {s["site"]: s for s in sites}, view.lang, page_zone)
        else:
            return None
        name = f"haldor-{table.name}-{today_in(page_zone, now).isoformat()}.{kind}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if kind == "csv":
            return to_csv(table, view.lang), "text/csv; charset=utf-8", headers
        try:
            body = to_xlsx(table)
        except ImportError:
            return b"Excel files need openpyxl: pip install 'haldor[fleet]'\n", "text/plain; charset=utf-8", {}
        return body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers

    def _metrics(self) -> None:
        srv = self.server
        try:
            body, kind = exposition(FleetCollector(srv.store, srv.lock, srv.consumer, srv.alerting, srv.clock))
        except ImportError:
            self._send(501, b"/metrics needs prometheus-client: pip install 'haldor[fleet]'\n", "text/plain")
            return
        except Exception:
            log.exception("/metrics failed")
            self._send(500, b"the fleet's database did not answer; see the log\n", "text/plain")
            return
        self._send(200, body, kind)

    def _send(self, code: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if kind.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
            )
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _live(self) -> None:
        """One message per change of the store (at most every LIVE_POLL_S); a comment now
        and then keeps proxies from closing the stream."""
        srv = self.server
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen, quiet_since = None, time.monotonic()
        try:
            while not srv.stopping.is_set():
                with srv.lock:
                    generation = srv.generation()
                if generation != seen:
                    seen, quiet_since = generation, time.monotonic()
                    self.wfile.write(f"data: {generation}\n\n".encode())
                elif time.monotonic() - quiet_since > HEARTBEAT_S:
                    quiet_since = time.monotonic()
                    self.wfile.write(b": still here\n\n")
                self.wfile.flush()
                srv.stopping.wait(srv.live_poll_s)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # the database went away: the page's EventSource reconnects
            log.warning("the live stream of a fleet page ended", exc_info=True)
        self.close_connection = True


def _html(text: str) -> tuple[bytes, str, dict[str, str]]:
    return text.encode("utf-8"), "text/html; charset=utf-8", {}


class FleetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        store: FleetStore,
        address: tuple[str, int],
        clock: Callable[[], float] = time.time,
        *,
        zone: str = "Europe/Copenhagen",
        season: tuple[int, int] = SEASON_WEEKS,
        live_poll_s: float = LIVE_POLL_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.zone = zone
        self.season = season
        self.live_poll_s = live_poll_s
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.incidents = IncidentBook(store.db)
        #: this process's consumer and alerting, for /metrics (set by whoever starts them)
        self.consumer: FleetConsumer | None = None
        self.alerting: AlertWorker | None = None
        self._usage_cache: OrderedDict[tuple, tuple[float, list[UsageLine], list[SeasonLine]]] = OrderedDict()
        super().__init__(address, _Handler)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    # -- reading the store for a view (the caller holds the lock) --------------------------

    def generation(self) -> str:
        return json.dumps(self.store.generation())

    def sites(self, now: float) -> list[dict[str, Any]]:
        return site_rows(self.store.sites(), now)

    def _zone_of(self, view: View, sites: list[dict[str, Any]]) -> str:
        site = next((s for s in sites if s["site"] == view.site), None)
        return (site or {}).get("timezone") or self.zone

    def usage(self, view: View, sites: list[dict[str, Any]]) -> list[UsageLine]:
        return self.store.weekly_usage(view.period, view.site or None, {s["site"]: s["name"] for s in sites})

    def access(self, view: View, site: dict[str, Any] | None, limit: int | None) -> list[dict[str, Any]]:
        since, until = view.period.instants((site or {}).get("timezone") or self.zone)
        return self.store.access_log(view.site or None, view.door or None, since, until, limit)

    def _cached_usage(self, view: View, sites: list[dict[str, Any]]) -> tuple[list[UsageLine], list[SeasonLine]]:
        key = (view.period, view.site)
        at = time.monotonic()
        hit = self._usage_cache.get(key)
        if hit is None or at - hit[0] > USAGE_FRESH_S:
            lines = self.usage(view, sites)
            hit = (at, lines, season_totals(lines, self.season))
            self._usage_cache[key] = hit
        self._usage_cache.move_to_end(key)
        while len(self._usage_cache) > 32:
            self._usage_cache.popitem(last=False)
        return hit[1], hit[2]

    def overview(self, view: View, now: float) -> Overview:
        sites = self.sites(now)
        lines, seasons = self._cached_usage(view, sites)
        since, until = view.period.instants(self._zone_of(view, sites))
        return Overview(
            sites=sites,
            alarms=self.store.alarms(ALARMS_SHOWN, view.site or None, since, until),
            usage=lines,
            seasons=seasons,
            generation=self.generation(),
            now=now,
            incidents=list(self.incidents.open_incidents().values()),
            undelivered=self.incidents.undelivered(),
        )
