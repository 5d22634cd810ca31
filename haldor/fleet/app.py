"""The fleet's web application (Starlette): the overview and access-log pages, the audit
log, their spreadsheets, a JSON summary, ``/metrics``, ``/healthz``, and ``/live``, the
server-sent events that tell an open page the store has changed (polled from the
database, so it sees what every consumer wrote). Built by :func:`build_app` from the
objects ``run.py`` wires (a :class:`FleetWeb`); the forms are in ``app_forms.py``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import app_forms, app_register, app_releases
from .app_dashboard import association_page, report_page
from .app_exports import export
from .metrics import FleetCollector, exposition
from .request_parts import RequestHeaders, peer, plain
from .sessions import same
from .templating import PAGE_ROWS, access_page, audit_page, environment, login_page, overview
from .view import View, read_view, today_in
from .web import FleetWeb

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
#: the page's own files only: no inline script or style, no frame around it, no other site
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
]


class SecurityHeaders:
    """Every answer, a refusal or a static file too, carries the page's protections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in SECURITY_HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


def build_app(web: FleetWeb) -> Starlette:
    """The page's routes over ``web``; no state of its own beyond what ``web`` holds."""
    routes = [
        Route("/healthz", lambda request: PlainTextResponse("ok\n")),
        Route("/metrics", metrics),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", app_forms.login, methods=["POST"]),
        Route("/logout", app_forms.logout, methods=["POST"]),
        Route("/command", app_forms.command, methods=["POST"]),
        Route("/register", app_register.register_page, methods=["GET"]),
        Route("/register", app_register.register_form, methods=["POST"]),
        Route("/enrol", app_register.enrol, methods=["POST"]),
        Route("/releases", app_releases.releases_page, methods=["GET"]),
        Route("/releases", app_releases.releases_form, methods=["POST"]),
        Route("/register.json", app_register.register_json),
        Route("/live", live),
        Route("/", page),
        Route("/api/summary", page),
        Route("/access", page),
        Route("/audit", page),
        Route("/association", page),
        Route("/report", page),
        Route("/report.pdf", page),
        Route("/{stem}.csv", page),
        Route("/{stem}.xlsx", page),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    environment()  # the templates compiled now, not by the first request
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.web = web
    app.add_middleware(SecurityHeaders)
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return plain(404, "not found\n")


def _web(request: Request) -> FleetWeb:
    return request.app.state.web


def _view(web: FleetWeb, request: Request, now: float) -> View:
    access = request.url.path.startswith("/access")
    view = read_view(request.url.query, today_in(web.zone, now), access=access, weeks=web.season)
    return replace(view, blind_since=web.blind_since(), zone=web.zone)


def login_form(request: Request) -> Response:
    web = _web(request)
    view = _view(web, request, web.clock())
    return _html(login_page(view, request.query_params.get("next", "/")))


def _signed_in(web: FleetWeb, request: Request, view: View) -> View | Response:
    """The view with who is logged in, or the way to the login (a page) or a refusal."""
    auth = web.auth
    if auth is None:
        return view
    session = auth.session(RequestHeaders(request.headers), peer(request))
    if session is not None:
        return replace(view, user=session.operator.name, role=session.operator.role, csrf=session.csrf, sso=not auth.passwords)
    path, query = request.url.path, request.url.query
    if path in ("/", "/access", "/association", "/report", "/report.pdf") or path.endswith((".csv", ".xlsx")):
        target = quote(path + ("?" + query if query else ""), safe="")
        return Response(status_code=303, headers={"Location": f"/login?next={target}"})
    return plain(401, "log in first\n")


def page(request: Request) -> Response:
    """A page, the summary or a spreadsheet (run in a worker thread: it reads the store)."""
    web = _web(request)
    now = web.clock()
    view = _signed_in(web, request, _view(web, request, now))
    if isinstance(view, Response):
        return view
    path = request.url.path
    try:
        if path.endswith((".csv", ".xlsx")):
            answer = export(web, path, view, now)
        else:
            with web.lock:  # the store's connection is the pages': read under the lock, render after it
                made = _answer(web, path, view, now)
            answer = made() if made is not None else None
    except Exception:
        log.exception("the fleet page failed for %s", request.url.path)
        return plain(500, "the fleet's database did not answer; see the log\n")
    return answer if answer is not None else plain(404, "not found\n")


def _answer(web: FleetWeb, path: str, view: View, now: float) -> Callable[[], Response] | None:
    """What a path shows, read from the store now; the page made from it when called."""
    if path == "/":
        sites = web.sites(now)
        known = view.known({s["site"]: s for s in sites})
        shown = web.overview(known, now, sites)
        return lambda: _html(overview(known, shown, web.zone))
    if path == "/api/summary":
        sites = web.sites(now)
        doc = {"sites": sites, "counts": web.store.counts(), "usage": [asdict(u) for u in web.usage(view, sites)]}
        return lambda: Response(json.dumps(doc), media_type="application/json")
    if path == "/access":
        sites = web.sites(now)
        site = next((s for s in sites if s["site"] == view.site), None)
        if site is not None:
            view = view.known({s["site"]: s for s in sites})
        entries = web.access(view, site, PAGE_ROWS + 1) if site else []
        audit = web.audit.rows(view.site, limit=20) if site and view.user else None
        generation, can_send, known = web.generation(), web.commander is not None, view
        return lambda: _html(
            access_page(
                known, site, sites, entries[:PAGE_ROWS], len(entries), generation, now, web.zone, audit=audit, can_send=can_send
            )
        )
    if path == "/association" and view.association:
        return association_page(web, view, now, _html)
    if path in ("/report", "/report.pdf"):
        return report_page(web, view, now, _html, pdf=path == "/report.pdf")
    if path == "/audit" and view.user:
        since, until = view.period.instants(web.zone)
        rows = web.audit.rows(view.site or None, since, until, PAGE_ROWS + 1)
        sites, generation = web.sites(now), web.generation()
        return lambda: _html(audit_page(view, rows, sites, generation, now, web.zone))
    return None


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/html; charset=utf-8")


def metrics(request: Request) -> Response:
    web = _web(request)
    if web.auth is not None and not _metrics_token_ok(web, request):
        return plain(401, "a bearer token (--metrics-token-file) or a login is needed\n")
    try:
        body, kind = exposition(FleetCollector(web.store, web.lock, web.consumer, web.alerting, web.clock))
    except ImportError:
        return plain(501, "/metrics needs prometheus-client: pip install 'haldor[fleet]'\n")
    except Exception:
        log.exception("/metrics failed")
        return plain(500, "the fleet's database did not answer; see the log\n")
    return Response(body, media_type=kind)


def _metrics_token_ok(web: FleetWeb, request: Request) -> bool:
    header = request.headers.get("Authorization") or ""
    if web.metrics_token and header.startswith("Bearer ") and same(header[7:].strip(), web.metrics_token):
        return True
    auth = web.auth
    return auth is not None and auth.session(RequestHeaders(request.headers), peer(request)) is not None


async def live(request: Request) -> Response:
    """One message per change of the store (at most every live_poll_s); a comment now and
    then keeps proxies from closing the stream. It ends when the session does."""
    web = _web(request)
    refused = await run_in_threadpool(_signed_in, web, request, View())
    if isinstance(refused, Response):
        return refused
    return StreamingResponse(_changes(web, request), media_type="text/event-stream")


async def _changes(web: FleetWeb, request: Request) -> Any:
    seen, quiet_since = None, time.monotonic()
    headers, source = RequestHeaders(request.headers), peer(request)
    try:
        while not web.stopping.is_set():
            generation = await run_in_threadpool(_generation_for, web, headers, source)
            if generation is None:
                break
            if generation != seen:
                seen, quiet_since = generation, time.monotonic()
                yield f"data: {generation}\n\n"
            elif time.monotonic() - quiet_since > HEARTBEAT_S:
                quiet_since = time.monotonic()
                yield ": still here\n\n"
            deadline = time.monotonic() + web.live_poll_s
            while not web.stopping.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(min(0.25, web.live_poll_s))
    except Exception:  # the database went away: the page's EventSource reconnects
        log.warning("the live stream of a fleet page ended", exc_info=True)


def _generation_for(web: FleetWeb, headers: RequestHeaders, source: str) -> str | None:
    """The store's generation, or None once the session is over (a page opened before the
    first user was added: its stream ends without a login)."""
    auth = web.auth
    if auth is not None and auth.session(headers, source) is None:
        return None
    with web.lock:
        return web.generation()
