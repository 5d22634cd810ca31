"""The page's forms: the login (limited per address, argon2 two at a time), the logout
and an operator's command. Every POST is bounded in size and time, comes from this
page (Origin), and, but for the login, carries the session's CSRF token."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from haldor.errors import DocumentError
from haldor.texts import t

from .login_limits import from_proxy, source_of
from .operators import Operator
from .request_parts import RequestHeaders, peer, plain, words
from .sessions import Session, same
from .templating import login_page
from .view import View, read_view, today_in
from .web import FleetWeb

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
#: a client that sends its form this slowly is dropped
BODY_S = 20.0
SAFE_TARGET = re.compile(r"/[A-Za-z0-9/_.~%?&=+-]*")
CLOSE = {"Connection": "close"}


def safe_target(target: str) -> str:
    """Where to go after the login: a path of this site, or the overview."""
    return target if SAFE_TARGET.fullmatch(target) and not target.startswith("//") else "/"


async def _form(request: Request) -> dict[str, str] | Response:
    """The form's fields, or the refusal of a body that is too large, too slow or not counted in bytes."""
    length_text = request.headers.get("Content-Length")
    if length_text is not None and not length_text.isdigit():
        return plain(400, "Content-Length: a number of bytes\n", CLOSE)
    if length_text is not None and int(length_text) > MAX_FORM_BYTES:
        return plain(413, "too large\n", CLOSE)
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_S):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    return plain(413, "too large\n", CLOSE)
    except (TimeoutError, ClientDisconnect):
        return plain(408, "the form came too slowly\n", CLOSE)
    return _fields(bytes(body), request.headers.get("Content-Type", ""))


def _fields(body: bytes, content_type: str) -> dict[str, str]:
    """A form's fields, URL-encoded or, for a file's content (a release's manifest), multipart:
    the standard library's MIME parser, within the same bound as every form."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def _same_origin(web: FleetWeb, request: Request) -> bool:
    """A browser that names the page a form came from must name this one: the public
    address when one is given (a proxy may change Host), else the Host asked for."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return True  # not a browser's cross-site form (SameSite=Strict keeps the cookie off those)
    host = request.headers.get("Host")
    parts, want = urlsplit(origin), urlsplit(web.public_origin or f"http://{host}")
    return (parts.scheme, parts.netloc) == (want.scheme, want.netloc) or (not web.public_origin and parts.netloc == host)


async def _checked(request: Request) -> tuple[FleetWeb, dict[str, str], View] | Response:
    """What every form goes through before its own work."""
    web: FleetWeb = request.app.state.web
    form = await _form(request)
    if isinstance(form, Response):
        return form
    view = read_view(request.url.query, today_in(web.zone, web.clock()), weeks=web.season)
    if web.auth is None:
        return plain(404, "no login here: the page is open on loopback\n")
    if not _same_origin(web, request):
        return plain(403, "a form from another site\n")
    return web, form, view


def signed_in_page(web: FleetWeb, request: Request) -> View | Response:
    """A page's view with who is logged in, or the way to the login and back (the page
    open on loopback without users: read only)."""
    view = read_view(request.url.query, today_in(web.zone, web.clock()), weeks=web.season)
    auth = web.auth
    if auth is None:
        return view
    session = auth.session(RequestHeaders(request.headers), peer(request))
    if session is None:
        return Response(status_code=303, headers={"Location": f"/login?next={quote(request.url.path, safe='')}"})
    return replace(view, user=session.operator.name, role=session.operator.role, csrf=session.csrf, sso=not auth.passwords)


def _session(web: FleetWeb, request: Request, form: dict[str, str]) -> Session | Response:
    auth = web.auth
    session = auth.session(RequestHeaders(request.headers), peer(request)) if auth is not None else None
    if session is None:
        return plain(401, "log in first\n")
    if not session.csrf or not same(form.get("csrf", ""), session.csrf):
        return plain(403, "the form is out of date: reload the page\n")
    return session


async def login(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web, form, view = checked
    assert web.auth is not None
    if not web.auth.passwords:
        return plain(404, "the login is the proxy's single sign-on\n")
    source = source_of(peer(request), RequestHeaders(request.headers))
    return await run_in_threadpool(_login, web, form, view, source)


def _login(web: FleetWeb, form: dict[str, str], view: View, source: str) -> Response:
    """Off the event loop (argon2 takes a tenth of a second), at most two at once and one
    per source: a flood of logins answers 503 instead of holding up an operator's unlock,
    and a flood from one address leaves a slot for everyone else."""
    auth = web.auth
    assert auth is not None
    name, password = form.get("name", "").strip()[:64], form.get("password", "")[:1024]
    target = safe_target(form.get("next", "/"))
    if web.public_origin and from_proxy(source):  # every browser would count as one address
        log.warning("a login through the proxy without X-Forwarded-For: set it in the proxy (README: Operators)")
    with web.slots.held(source) as slot:
        if not slot:
            return plain(503, "too many logins at once: try again in a moment\n", {"Retry-After": "2"})
        operator, why = auth.operators.check(name, password, source) if name and password else (None, "unknown")
    if operator is None:
        log.warning("fleet login refused for %r from %s: %s", name, source, why)
        if why in ("wrong", "locked now"):  # a known user: the audit log says so (an unknown name would only fill it)
            known = auth.operators.get(name)
            if known is not None:
                with web.lock:
                    web.audit.record(web.clock(), known, "login_refused" if why == "wrong" else "locked", detail=source)
        return Response(login_page(view, target, failed=True), status_code=401, media_type="text/html; charset=utf-8")
    log.info("fleet login: %s (%s) from %s", operator.name, operator.role, source)
    with web.lock:
        web.audit.record(web.clock(), operator, "login", detail=source)
    return Response(status_code=303, headers={"Location": target, "Set-Cookie": auth.cookie_for(operator)})


async def logout(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web, form, view = checked
    return await run_in_threadpool(_logout, web, request, form, view)


def _logout(web: FleetWeb, request: Request, form: dict[str, str], view: View) -> Response:
    session = _session(web, request, form)
    if isinstance(session, Response):
        return session
    auth = web.auth
    if auth is None or not auth.passwords:
        return plain(404, "not found\n")
    auth.operators.end_sessions(session.operator.name)  # a copied cookie ends too
    with web.lock:
        web.audit.record(web.clock(), session.operator, "logout")
    return Response(status_code=303, headers={"Location": "/login" + view.query(), "Set-Cookie": auth.ended()})


async def command(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web, form, view = checked
    return await run_in_threadpool(_command_checked, web, request, form, view)


def _command_checked(web: FleetWeb, request: Request, form: dict[str, str], view: View) -> Response:
    session = _session(web, request, form)
    if isinstance(session, Response):
        return session
    return _command(web, form, session.operator, view)


def _command(web: FleetWeb, form: dict[str, str], operator: Operator, view: View) -> Response:
    """An operator's action; a refusal is in the audit log too (a viewer who tried)."""
    site, action = form.get("site", "")[:64], form.get("action", "")[:32]
    if web.commander is None:
        return words(404, t("fleet.no_command_key", view.lang))
    now = web.clock()
    try:
        door, minutes = _checked_command(web, form, operator, site, action, view.lang, now)
        web.commander.send(operator, site, action, door, minutes, form.get("reason", "").strip(), now)  # waits for the broker
    except (DocumentError, PermissionError) as exc:
        with web.lock:
            web.audit.record(
                now, operator, "refused", site=site or None, door=form.get("door") or None, detail=f"{action}: {exc}"
            )
        return words(403 if isinstance(exc, PermissionError) else 400, str(exc))
    return Response(status_code=303, headers={"Location": "/access" + view.query(site=site, door="") + "#audit"})


def _checked_command(
    web: FleetWeb, form: dict[str, Any], operator: Operator, site: str, action: str, lang: str, now: float
) -> tuple[str | None, float | None]:
    """The door and minutes of a command this operator may send to a site that exists."""
    if not operator.acts:
        raise PermissionError(t("fleet.viewer_refused", lang))
    minutes_text = form.get("minutes", "").strip()
    minutes = None
    if action == "unlock":
        if not minutes_text.isdigit() or not 1 <= int(minutes_text) <= 24 * 60:
            raise DocumentError(t("fleet.bad_minutes", lang))
        minutes = float(minutes_text)
    with web.lock:
        known = {s["site"]: s for s in web.sites(now)}
    door = form.get("door") or None
    if site not in known or (door is not None and door not in known[site].get("doors", {})):
        raise DocumentError(t("fleet.unknown_target", lang))
    return door, minutes
