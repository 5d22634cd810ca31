"""The fleet's web server: the overview and access-log pages, their spreadsheets, a
JSON summary, and ``/live``, the server-sent events that tell an open page the store
has changed (polled from the database, so it sees what every consumer wrote)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from haldor.errors import DocumentError
from haldor.texts import t

from .commands import AuditLog, Commander
from .exports import Table, access_table, audit_table_export, season_table, sites_table, to_csv, to_xlsx, usage_table
from .incidents import IncidentBook
from .login_limits import HashSlots, from_proxy, source_of
from .metrics import FleetCollector, exposition
from .operator_pages import audit_page, login_page
from .operators import Operator
from .page import Overview, access_page, overview
from .page_parts import PAGE_ROWS
from .report import SEASON_WEEKS, SeasonLine, UsageLine, season_totals
from .sessions import Sessions, same
from .store import FleetStore
from .view import View, read_view, today_in
from .view_data import ViewData

if TYPE_CHECKING:
    from .alerting import AlertWorker
    from .ingest import FleetConsumer

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
SAFE_TARGET = re.compile(r"/[A-Za-z0-9/_.~%?&=+-]*")
#: how often an open page's stream looks for changes: also the fastest it refreshes
LIVE_POLL_S = 5.0
HEARTBEAT_S = 15.0
ALARMS_SHOWN = 50
#: how often the page looks whether users exist (the first one added locks every running page)
USERS_CHECK_S = 2.0
#: a download holds at most this many rows (Excel's sheet holds 1,048,576)
EXPORT_ROWS = 1_000_000


def safe_target(target: str) -> str:
    """Where to go after the login: a path of this site, or the overview."""
    return target if SAFE_TARGET.fullmatch(target) and not target.startswith("//") else "/"


class _Handler(BaseHTTPRequestHandler):
    server: FleetHTTPServer
    #: a client that sends its request slowly is dropped after this
    timeout = 20

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        path, _, query = self.path.partition("?")
        now = srv.clock()
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        if path == "/metrics":
            if srv.auth is not None and not self._metrics_token_ok():
                self._send(401, b"a bearer token (--metrics-token-file) or a login is needed\n", "text/plain")
                return
            self._metrics()
            return
        access = path.startswith("/access")
        view = read_view(query, today_in(srv.zone, now), access=access, weeks=srv.season)
        view = replace(view, blind_since=srv.blind_since(), zone=srv.zone)
        if path == "/login":
            self._send(200, *_html(login_page(view, parse_qs(query).get("next", ["/"])[-1])))
            return
        if srv.auth is not None:
            session = srv.auth.session(self.headers, self.client_address[0])
            if session is None:
                self._to_login(path, query)
                return
            view = replace(
                view, user=session.operator.name, role=session.operator.role, csrf=session.csrf, sso=not srv.auth.passwords
            )
        if path == "/live":
            self._live()
            return
        try:
            if path.endswith((".csv", ".xlsx")):
                answer = self._export(path, view, now)
            else:
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
            sites = srv.sites(now)
            view = view.known({s["site"]: s for s in sites})
            return _html(overview(view, srv.overview(view, now, sites), page_zone))
        if path == "/api/summary":
            sites = srv.sites(now)
            doc = {"sites": sites, "counts": srv.store.counts(), "usage": [asdict(u) for u in srv.usage(view, sites)]}
            return json.dumps(doc).encode(), "application/json", {}
        if path == "/access":
            sites = srv.sites(now)
            site = next((s for s in sites if s["site"] == view.site), None)
            if site is not None:
                view = view.known({s["site"]: s for s in sites})
            entries = srv.access(view, site, PAGE_ROWS + 1) if site else []
            audit = srv.audit.rows(view.site, limit=20) if site and view.user else None
            html = access_page(
                view,
                site,
                sites,
                entries[:PAGE_ROWS],
                len(entries),
                srv.generation(),
                now,
                page_zone,
                audit=audit,
                can_send=srv.commander is not None,
            )
            return _html(html)
        if path == "/audit" and view.user:
            since, until = view.period.instants(page_zone)
            rows = srv.audit.rows(view.site or None, since, until, PAGE_ROWS + 1)
            return _html(audit_page(view, rows, srv.sites(now), srv.generation(), now, page_zone))
        return None

    def _export(self, path: str, view: View, now: float) -> tuple[bytes, str, dict[str, str]] | None:
        """A spreadsheet, read on a connection of its own and built outside the pages' lock."""
        srv = self.server
        page_zone = srv.zone
        stem, _, kind = path.rpartition(".")
        if stem not in ("/usage", "/season", "/sites", "/audit", "/access") or (stem == "/audit" and not view.user):
            return None
        store = FleetStore(srv.store.target, migrate=False)  # the server's own store made the schema
        try:
            read = ViewData(store, page_zone)
            sites = read.sites(now)
            table: Table
            if stem == "/usage":
                table = usage_table(read.usage(view, sites), view.lang)
            elif stem == "/season":
                table = season_table(season_totals(read.usage(view, sites), srv.season), view.lang)
            elif stem == "/sites":
                table = sites_table(sites, view.lang, page_zone)
            elif stem == "/audit":
                since, until = view.period.instants(page_zone)
                table = audit_table_export(read.audit.rows(view.site or None, since, until, EXPORT_ROWS), view.lang, page_zone)
            else:
                site = next((s for s in sites if s["site"] == view.site), None)
                entries = read.access(view, site, EXPORT_ROWS) if site or not view.site else []
                table = access_table(entries, {s["site"]: s for s in sites}, view.lang, page_zone)
        finally:
            store.close()
        name = f"haldor-{table.name}-{today_in(page_zone, now).isoformat()}.{kind}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if kind == "csv":
            return to_csv(table, view.lang), "text/csv; charset=utf-8", headers
        try:
            body = to_xlsx(table)
        except ImportError:
            return b"Excel files need openpyxl: pip install 'haldor[fleet]'\n", "text/plain; charset=utf-8", {}
        return body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers

    def _to_login(self, path: str, query: str) -> None:
        if path in ("/", "/access") or path.endswith((".csv", ".xlsx")):
            target = quote(path + ("?" + query if query else ""), safe="")
            self._send(303, b"", "text/plain", {"Location": f"/login?next={target}"})
        else:
            self._send(401, b"log in first\n", "text/plain")

    def _metrics_token_ok(self) -> bool:
        srv = self.server
        header = self.headers.get("Authorization") or ""
        if srv.metrics_token and header.startswith("Bearer ") and same(header[7:].strip(), srv.metrics_token):
            return True
        return srv.auth is not None and srv.auth.session(self.headers, self.client_address[0]) is not None

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        path, _, query = self.path.partition("?")
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit():
            self.close_connection = True
            self._send(400, b"Content-Length: a number of bytes\n", "text/plain", {"Connection": "close"})
            return
        length = int(length_text)
        if length > MAX_FORM_BYTES:
            self.close_connection = True
            self._send(413, b"too large\n", "text/plain", {"Connection": "close"})
            return
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        view = read_view(query, today_in(srv.zone, srv.clock()), weeks=srv.season)
        if srv.auth is None:
            self._send(404, b"no login here: the page is open on loopback\n", "text/plain")
            return
        if not self._same_origin():
            self._send(403, b"a form from another site\n", "text/plain")
            return
        if path == "/login":
            if srv.auth.passwords:
                self._login(form, view)
            else:
                self._send(404, b"the login is the proxy's single sign-on\n", "text/plain")
            return
        session = srv.auth.session(self.headers, self.client_address[0])
        if session is None:
            self._send(401, b"log in first\n", "text/plain")
            return
        if not session.csrf or not same(form.get("csrf", ""), session.csrf):
            self._send(403, b"the form is out of date: reload the page\n", "text/plain")
            return
        if path == "/logout" and srv.auth.passwords:
            srv.auth.operators.end_sessions(session.operator.name)  # a copied cookie ends too
            with srv.lock:
                srv.audit.record(srv.clock(), session.operator, "logout")
            self._send(303, b"", "text/plain", {"Location": "/login" + view.query(), "Set-Cookie": srv.auth.ended()})
        elif path == "/command":
            self._command(form, session.operator, view)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _same_origin(self) -> bool:
        """A browser that names the page a form came from must name this one: the public
        address when one is given (a proxy may change Host), else the Host asked for."""
        origin = self.headers.get("Origin")
        if not origin or origin == "null":
            return True  # not a browser's cross-site form (SameSite=Strict keeps the cookie off those)
        expected = self.server.public_origin or f"http://{self.headers.get('Host')}"
        parts, want = urlsplit(origin), urlsplit(expected)
        return (parts.scheme, parts.netloc) == (want.scheme, want.netloc) or (
            not self.server.public_origin and parts.netloc == self.headers.get("Host")
        )

    def _login(self, form: dict[str, str], view: View) -> None:
        """Outside the pages' lock (argon2 takes a tenth of a second), at most two at once and
        one per source: a flood of logins answers 503 instead of holding up an operator's
        unlock, and a flood from one address leaves a slot for everyone else."""
        srv = self.server
        assert srv.auth is not None
        name, password = form.get("name", "").strip()[:64], form.get("password", "")[:1024]
        target = safe_target(form.get("next", "/"))
        source = source_of(self.client_address[0], self.headers)
        if srv.public_origin and from_proxy(source):  # every browser would count as one address
            log.warning("a login through the proxy without X-Forwarded-For: set it in the proxy (README: Operators)")
        with srv.slots.held(source) as slot:
            if not slot:
                self._send(503, b"too many logins at once: try again in a moment\n", "text/plain", {"Retry-After": "2"})
                return
            operator, why = srv.auth.operators.check(name, password, source) if name and password else (None, "unknown")
        if operator is None:
            log.warning("fleet login refused for %r from %s: %s", name, source, why)
            if why in ("wrong", "locked now"):  # a known user: the audit log says so (an unknown name would only fill it)
                known = srv.auth.operators.get(name)
                if known is not None:
                    with srv.lock:
                        srv.audit.record(srv.clock(), known, "login_refused" if why == "wrong" else "locked", detail=source)
            self._send(401, *_html(login_page(view, target, failed=True)))
            return
        log.info("fleet login: %s (%s) from %s", operator.name, operator.role, source)
        with srv.lock:
            srv.audit.record(srv.clock(), operator, "login", detail=source)
        self._send(303, b"", "text/plain", {"Location": target, "Set-Cookie": srv.auth.cookie_for(operator)})

    def _command(self, form: dict[str, str], operator: Operator, view: View) -> None:
        """An operator's action; a refusal is in the audit log too (a viewer who tried)."""
        srv = self.server
        site, action = form.get("site", "")[:64], form.get("action", "")[:32]
        if srv.commander is None:
            self._send(404, *_words(t("fleet.no_command_key", view.lang)))
            return
        now = srv.clock()
        try:
            if not operator.acts:
                raise PermissionError(t("fleet.viewer_refused", view.lang))
            minutes_text = form.get("minutes", "").strip()
            minutes = None
            if action == "unlock":
                if not minutes_text.isdigit() or not 1 <= int(minutes_text) <= 24 * 60:
                    raise DocumentError(t("fleet.bad_minutes", view.lang))
                minutes = float(minutes_text)
            with srv.lock:
                known = {s["site"]: s for s in srv.sites(now)}
            door = form.get("door") or None
            if site not in known or (door is not None and door not in known[site].get("doors", {})):
                raise DocumentError(t("fleet.unknown_target", view.lang))
            srv.commander.send(
                operator, site, action, door, minutes, form.get("reason", "").strip(), now
            )  # not under the lock: it waits for the broker
        except (DocumentError, PermissionError) as exc:
            with srv.lock:
                srv.audit.record(
                    now, operator, "refused", site=site or None, door=form.get("door") or None, detail=f"{action}: {exc}"
                )
            self._send(403 if isinstance(exc, PermissionError) else 400, *_words(str(exc)))
            return
        self._send(303, b"", "text/plain", {"Location": "/access" + view.query(site=site, door="") + "#audit"})

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
            if any(ch in v for ch in "\r\n\x00"):
                raise ValueError(f"header {k}: a line break")  # never a header of two
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
                auth = srv.auth  # a page opened before the first user was added: its stream ends without a login
                if auth is not None and auth.session(self.headers, self.client_address[0]) is None:
                    break
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


def _words(text: str) -> tuple[bytes, str]:
    """A refusal a person reads: one line, in the page's language, never the input echoed at length."""
    return f"{text[:300]}\n".encode(), "text/plain; charset=utf-8"


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
        self.audit = AuditLog(store.db)
        self.read = ViewData(store, zone)
        #: signs and sends the page's commands; None without the fleet's command key
        self.commander: Commander | None = None
        #: the login; whether it is asked for: see ``auth``
        self._sessions: Sessions | None = None
        #: the login is asked for whether or not users exist (beyond loopback, behind a proxy's sign-on)
        self.login_always = False
        self._users_exist = False
        self._users_checked_at = float("-inf")
        self.metrics_token = ""
        #: the page's address as the browsers see it ("https://fleet.kommune.dk"), for the forms' origin check
        self.public_origin = ""
        #: argon2 verifications at once: two in all, one per source
        self.slots = HashSlots(2)
        #: this process's consumer and alerting, for /metrics (set by whoever starts them)
        self.consumer: FleetConsumer | None = None
        self.alerting: AlertWorker | None = None
        self._usage_cache: OrderedDict[tuple, tuple[int, list[UsageLine], list[SeasonLine]]] = OrderedDict()
        super().__init__(address, _Handler)

    @property
    def auth(self) -> Sessions | None:
        """Who may look: None while the page is open (on loopback, no users). The users are
        looked at again every few seconds, so the first ``haldor fleet user add`` locks every
        running page at once, and removing the last opens one on loopback again."""
        sessions = self._sessions
        if sessions is None or self.login_always:
            return sessions
        now = time.monotonic()
        if now - self._users_checked_at >= USERS_CHECK_S:
            self._users_exist = sessions.operators.any()
            self._users_checked_at = now
        return sessions if self._users_exist else None

    @auth.setter
    def auth(self, sessions: Sessions | None) -> None:
        self._sessions = sessions
        self._users_checked_at = float("-inf")

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    # -- reading the store for a view (the caller holds the lock) --------------------------

    def generation(self) -> str:
        """Changes with what the page shows: the database's writes, and the broker lost or heard again."""
        return json.dumps([self.store.generation(), self.blind_since()])

    def blind_since(self) -> float | None:
        """Since when this process has not heard the broker (None: it hears it, or it has no consumer)."""
        return self.consumer.blind_since if self.consumer is not None else None

    def sites(self, now: float) -> list[dict[str, Any]]:
        return self.read.sites(now, self.consumer.unsure_before(now) if self.consumer is not None else None)

    def usage(self, view: View, sites: list[dict[str, Any]]) -> list[UsageLine]:
        return self.read.usage(view, sites)

    def access(self, view: View, site: dict[str, Any] | None, limit: int | None) -> list[dict[str, Any]]:
        return self.read.access(view, site, limit)

    def _cached_usage(self, view: View, sites: list[dict[str, Any]]) -> tuple[list[UsageLine], list[SeasonLine]]:
        """The sums of a view, made again only when a booking's figures came in since
        (a season of a thousand sites takes half a second; a status changes nothing)."""
        key = (view.period, view.site)
        count = self.store.usage_count()
        hit = self._usage_cache.get(key)
        if hit is None or hit[0] != count:
            lines = self.usage(view, sites)
            hit = (count, lines, season_totals(lines, self.season))
            self._usage_cache[key] = hit
        self._usage_cache.move_to_end(key)
        while len(self._usage_cache) > 32:
            self._usage_cache.popitem(last=False)
        return hit[1], hit[2]

    def overview(self, view: View, now: float, sites: list[dict[str, Any]]) -> Overview:
        lines, seasons = self._cached_usage(view, sites)
        since, until = view.period.instants(self.read.zone_of(view, sites))
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
