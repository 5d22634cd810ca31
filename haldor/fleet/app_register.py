"""The register on the fleet's page (issue 27): every site to enrol and its state; a
registrar creates a site (its code shown once), asks for a new code, or revokes a box, each
in the audit log. And ``POST /enrol``, where a box sends its code and its public key
and gets its configuration back (no session: the code is the box's proof)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from haldor.errors import HaldorError
from haldor.texts import both, t

from .app_forms import BODY_S, MAX_FORM_BYTES, _checked, _session, signed_in_page
from .login_limits import source_of
from .operators import Operator
from .profiles import PROFILES
from .register import Refused
from .request_parts import RequestHeaders, peer, plain, words
from .sessions import same
from .templating import render
from .view import View
from .web import FleetWeb

log = logging.getLogger(__name__)

#: who the audit log names for what a box did itself
BOX = Operator("enrolment", "box")


def _page(web: FleetWeb, view: View, *, code: str = "", code_site: str = "", problem: str = "", status: int = 200) -> Response:
    title = t("fleet.register", view.lang)
    now = web.clock()
    with web.lock:
        sites, heard, generation = web.register.sites(), web.register.heard(), web.generation()
    html = render(
        "register.html",
        view=view,
        title=title,
        heading=title,
        generation=generation,
        updated="",
        register=sites,
        heard=heard,
        profiles=PROFILES,
        admin=view.role == "registrar",
        enrolling=web.enroller is not None,
        code=code,
        code_site=code_site,
        problem=problem,
        zone=web.zone,
        now=now,
    )
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def register_page(request: Request) -> Response:
    """GET /register: for anyone logged in (the page open on loopback without users: read only)."""
    web: FleetWeb = request.app.state.web
    view = signed_in_page(web, request)
    return view if isinstance(view, Response) else _page(web, view)


def _with(view: View, operator: Operator, csrf: str) -> View:
    return replace(view, user=operator.name, role=operator.role, csrf=csrf)


async def register_form(request: Request) -> Response:
    """POST /register: add, code or revoke, by a registrar."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web, form, view = checked
    return await run_in_threadpool(_register_form, web, request, form, view)


def _register_form(web: FleetWeb, request: Request, form: dict[str, str], view: View) -> Response:
    session = _session(web, request, form)
    if isinstance(session, Response):
        return session
    operator = session.operator
    view = _with(view, operator, session.csrf)
    action, site = form.get("action", "")[:16], form.get("site", "").strip()[:64]
    now = web.clock()
    if not operator.enrols:
        with web.lock:
            web.audit.record(now, operator, "refused", site=site or None, detail=f"register {action}: not a registrar")
        return words(403, t("fleet.register_admin_only", view.lang))
    if web.enroller is None:
        return words(404, t("fleet.register_off", view.lang))
    try:
        return _act(web, form, view, operator, action, site, now)
    except Refused as exc:
        with web.lock:
            web.audit.record(now, operator, "refused", site=site or None, detail=f"register {action}: {exc}")
        return _page(web, view, problem=str(exc), status=400)


def _act(web: FleetWeb, form: dict[str, str], view: View, operator: Operator, action: str, site: str, now: float) -> Response:
    assert web.enroller is not None
    if action == "add":
        zone = form.get("zone", "").strip()[:64]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise Refused("bad_zone", f"time zone {zone!r}: unknown") from None
        profile = form.get("profile", "")
        code = web.register.add(site, form.get("name", "")[:120], zone, profile, operator.name, now)
        with web.lock:
            web.audit.record(now, operator, "site_added", site=site, detail=f"{form.get('name', '')[:120]}, {zone}, {profile}")
        return _page(web, view, code=code, code_site=site)
    if action == "code":
        code = web.register.new_code(site, now)
        with web.lock:
            web.audit.record(now, operator, "new_code", site=site)
        return _page(web, view, code=code, code_site=site)
    if action == "revoke":
        with web.lock:
            row = web.audit.record(now, operator, "revoke", site=site)
        try:
            web.enroller.revoke(site, operator.name, now)  # waits for the broker's confirmation
        except Refused as exc:
            web.audit.answer(row, ok=False, error=str(exc), at=web.clock())
            raise
        except HaldorError as exc:
            web.audit.answer(row, ok=False, error=str(exc), at=web.clock())
            return _page(web, view, problem=f"{t('fleet.action.revoke_failed', view.lang)}: {exc}", status=502)
        web.audit.answer(row, ok=True, error=None, at=web.clock())
        return Response(status_code=303, headers={"Location": "/register" + view.query()})
    raise Refused("bad_action", f"unknown action {action!r}")


async def enrol(request: Request) -> Response:
    """POST /enrol: a box's code and public key in, its configuration out (JSON either way)."""
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_S):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    return plain(413, "too large\n")
    except (TimeoutError, ClientDisconnect):
        return plain(408, "the request came too slowly\n")
    web: FleetWeb = request.app.state.web
    if web.enroller is None:
        return _refusal(404, "off", t("fleet.register_off", "da") + " / " + t("fleet.register_off", "en"))
    try:
        doc: Any = json.loads(body)
    except ValueError:
        doc = None
    return await run_in_threadpool(_enrol, web, doc, source_of(peer(request), RequestHeaders(request.headers)))


#: the refusals that are a wrong guess at a code, counted against the source
GUESSES = frozenset({"code_unknown", "code_used", "code_expired", "code_void"})


def _enrol(web: FleetWeb, doc: Any, source: str) -> Response:
    assert web.enroller is not None
    now = web.clock()
    counted = f"enrol:{source}"
    if web.enrol_sources.blocked(counted, now):
        log.warning("enrolment refused from %s: too many wrong codes", source)
        return _refusal(429, "blocked", both("enrol.blocked"))
    try:
        answer = web.enroller.enrol(doc, now)
    except Refused as exc:
        log.warning("enrolment refused from %s: %s", source, exc)
        if exc.reason in GUESSES:
            web.enrol_sources.failed(counted, now)
        key = f"enrol.{exc.reason}"
        return _refusal(409 if exc.reason in ("code_used", "site_enrolled") else 403, exc.reason, both(key))
    except HaldorError as exc:
        log.error("enrolment from %s failed: %s", source, exc)
        return _refusal(503, "broker", f"{both('enrol.broker')}: {exc}")
    site = answer["site"]["id"]
    with web.lock:
        web.audit.record(now, BOX, "enrolled", site=site, detail=source)
    return JSONResponse(answer)


def register_json(request: Request) -> Response:
    """GET /register.json: each enrolled site's pinned sealing key and each revoked site, for
    the bridge (a bearer token of its own: ``[enrolment] register_token_file``)."""
    web: FleetWeb = request.app.state.web
    token = web.enroller.settings.register_token if web.enroller is not None else ""
    header = request.headers.get("Authorization") or ""
    if not token or not header.startswith("Bearer ") or not same(header[7:].strip(), token):
        return plain(401, "a bearer token ([enrolment] register_token_file) is needed\n")
    with web.lock:
        sites = web.register.published()
    return JSONResponse({"sites": sites})


def _refusal(status: int, reason: str, message: str) -> Response:
    return JSONResponse({"error": reason, "message": message}, status_code=status)
