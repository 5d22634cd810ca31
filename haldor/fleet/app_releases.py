"""The rollout on the fleet's page (issue 27): ``GET /releases`` shows the last rollout's
progress per stage and how many boxes run each version (read-only for a viewer);
``POST /releases`` plans a rollout from the form (the plan shown with a second button),
starts it, or stops it, by an operator, each in the audit log."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from haldor.errors import DocumentError
from haldor.integrator.stages import version_order
from haldor.texts import t

from .app_forms import _checked, _session, signed_in_page
from .request_parts import words
from .rollout_book import Planned
from .rollouts import planned_from
from .templating import render
from .view import View
from .web import FleetWeb

#: the form's fields that a plan carries to its start button
FIELDS = ("manifest", "url", "stages", "test", "max_failures", "wait")


def _progress(web: FleetWeb) -> dict[str, Any] | None:
    """The last rollout, with each stage's counts and failures, for the page."""
    doc = web.rollouts.latest()
    if doc is None:
        return None
    counts = web.rollouts.book.counts(doc["id"])
    failures = web.rollouts.book.failures(doc["id"])
    doc["rows"] = [{"name": name, "index": i, **_stage_counts(counts.get(i, {}))} for i, name in enumerate(doc["stages"])]
    doc["skipped"] = counts.get(-1, {}).get("skipped", 0)
    doc["failures"] = failures
    return doc


def _stage_counts(counts: dict[str, int]) -> dict[str, int]:
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    return {"count": sum(counts.values()), "done": done, "failed": failed, "waiting": counts.get("sent", 0)}


def _page(
    web: FleetWeb,
    view: View,
    *,
    planned: Planned | None = None,
    form: dict[str, str] | None = None,
    problem: str = "",
    status: int = 200,
) -> Response:
    title = t("fleet.releases", view.lang)
    with web.lock:
        versions = web.rollouts.book.versions()
        generation = web.generation()
    progress = _progress(web)
    html = render(
        "releases.html",
        view=view,
        title=title,
        heading=title,
        generation=generation,
        updated="",
        acts=view.role in ("operator", "registrar"),
        can_send=web.commander is not None,
        running=web.rollouts.running(),
        progress=progress,
        versions=sorted(Counter(versions.values()).items(), key=lambda kv: version_order(kv[0])),
        planned=planned,
        form=form or {},
        problem=problem,
    )
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def releases_page(request: Request) -> Response:
    """GET /releases: for anyone logged in (the page open on loopback without users: read only)."""
    web: FleetWeb = request.app.state.web
    view = signed_in_page(web, request)
    return view if isinstance(view, Response) else _page(web, view)


async def releases_form(request: Request) -> Response:
    """POST /releases: plan, start or stop, by an operator."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web, form, view = checked
    return await run_in_threadpool(_releases_form, web, request, form, view)


def _releases_form(web: FleetWeb, request: Request, form: dict[str, str], view: View) -> Response:
    session = _session(web, request, form)
    if isinstance(session, Response):
        return session
    operator = session.operator
    view = replace(view, user=operator.name, role=operator.role, csrf=session.csrf)
    action = form.get("action", "")[:16]
    if not operator.acts:
        with web.lock:
            web.audit.record(web.clock(), operator, "refused", detail=f"rollout {action}: a viewer")
        return words(403, t("fleet.releases_viewer", view.lang))
    if action == "stop":
        web.rollouts.stop(operator)
        return Response(status_code=303, headers={"Location": "/releases" + view.query()})
    if web.commander is None:
        return words(404, t("fleet.releases_no_key", view.lang))
    if form.get("manifest_file", "").strip():  # the file uploaded, in place of the pasted text
        form = {**form, "manifest": form["manifest_file"]}
    kept = {k: form.get(k, "") for k in FIELDS}
    try:
        planned = planned_from(form, web.rollouts.book.versions())
        if action == "start":
            web.rollouts.start(web.commander, operator, planned)
            return Response(status_code=303, headers={"Location": "/releases" + view.query()})
        if action != "plan":
            raise DocumentError(f"unknown action {action!r}")
    except DocumentError as exc:
        if action == "start":
            with web.lock:
                web.audit.record(web.clock(), operator, "refused", detail=f"rollout start: {exc}")
        return _page(web, view, form=kept, problem=str(exc), status=400)
    return _page(web, view, planned=planned, form={**kept, "manifest": json.dumps(planned.manifest, ensure_ascii=False)})
