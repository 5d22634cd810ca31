"""What is wrong across the fleet right now, as conditions with a stable key: a
condition that appears opens an incident (one alert), one that goes away resolves it
(one "resolved" message). Pure: the rules are checked against plain rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from haldor.protocol import Event
from haldor.records import record
from haldor.texts import t

from .report import site_rows
from .settings import AlertRules

#: the kinds of incident, as the webhook's ``kind`` names them
KINDS = (
    Event.DOOR_FORCED,
    Event.DOOR_HELD_OPEN,
    Event.READER_FAULT,
    Event.STORAGE_FAULT,
    "offline",
    "outbox.backlog",
    Event.ACCESS_GUESSING,
    "broker",
    Event.SYNC_REJECTED,
    "command.failed",
)


@record
class DoorState:
    """The last of each door event the fleet holds for one door (instants, or None)."""

    site: str
    door: str
    forced_at: float | None = None
    held_at: float | None = None
    opened_at: float | None = None
    closed_at: float | None = None


@record
class Notice:
    """The last of one kind of event that is an alarm for a while after it came: a lockout
    for guessing at a reader (``detail`` wrong_pin or unknown_card), a schedule the box
    refused (while no later one was applied), a command it refused or could not carry out."""

    kind: str
    site: str
    subject: str | None
    detail: str
    at: float


@record
class Condition:
    key: str
    kind: str
    site: str
    subject: str | None
    since: float | None
    detail: str = ""


def _after(a: float | None, b: float | None) -> bool:
    return a is not None and (b is None or a > b)


def conditions(
    sites: list[dict[str, Any]],
    doors: list[DoorState],
    now: float,
    rules: AlertRules,
    notices: Iterable[Notice] = (),
    unsure_before: float | None = None,
) -> dict[str, Condition]:
    """Every condition the rules call an alarm, by key. ``notices``: the ones the store
    found within each rule's minutes (a guesser who keeps at it is one alert, not one a
    minute; a refused schedule lasts until one is applied)."""
    found: list[Condition] = [
        Condition(":".join(x for x in (n.kind, n.site, n.subject) if x), n.kind, n.site, n.subject, n.at, n.detail)
        for n in notices
    ]
    for s in site_rows(sites, now, unsure_before):
        site = s["site"]
        if (
            rules.offline_min
            and not s["unknown"]
            and not s["online"]
            and s["since"] is not None
            and now - s["since"] >= rules.offline_min * 60
        ):
            found.append(Condition(f"offline:{site}", "offline", site, None, s["since"], "silent" if s["silent"] else ""))
        if rules.outbox_backlog and (s["outbox_pending"] or 0) >= rules.outbox_backlog:
            found.append(Condition(f"outbox.backlog:{site}", "outbox.backlog", site, None, None, str(s["outbox_pending"])))
        if rules.reader_fault:
            for reader, why in s["reader_faults"].items():
                found.append(Condition(f"{Event.READER_FAULT}:{site}:{reader}", Event.READER_FAULT, site, reader, None, why))
    if rules.storage_fault:
        for raw in sites:
            storage = _json(raw.get("storage"))
            if isinstance(storage, dict) and storage.get("ok") is False:
                found.append(
                    Condition(
                        f"{Event.STORAGE_FAULT}:{raw['site']}",
                        Event.STORAGE_FAULT,
                        raw["site"],
                        None,
                        None,
                        str(storage.get("fault") or ""),
                    )
                )
    for d in doors:
        if rules.door_forced and _after(d.forced_at, d.closed_at):
            found.append(Condition(f"{Event.DOOR_FORCED}:{d.site}:{d.door}", Event.DOOR_FORCED, d.site, d.door, d.forced_at))
        if rules.door_held_open_min and _after(d.held_at, d.closed_at):
            opened = d.opened_at if _after(d.opened_at, d.closed_at) else d.held_at
            if opened is not None and now - opened >= rules.door_held_open_min * 60:
                found.append(Condition(f"{Event.DOOR_HELD_OPEN}:{d.site}:{d.door}", Event.DOOR_HELD_OPEN, d.site, d.door, opened))
    return {c.key: c for c in found}


def fields(incident: dict[str, Any]) -> dict[str, Any]:
    """An open incident's row as the fields of its condition."""
    return {k: incident[k] if k != "detail" else incident[k] or "" for k in ("key", "kind", "site", "subject", "since", "detail")}


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def describe(kind: str, site_name: str, subject_name: str | None, detail: str, lang: str) -> str:
    """One line a caretaker understands: "Valby Skole: Hovedindgang: døren er brudt op"."""
    key = f"alert.{kind}.{detail}" if kind == Event.ACCESS_GUESSING else f"alert.{kind}"  # what was guessed
    detail = detail[:200]
    text = t(key, lang).format(detail=detail).replace(" ()", "")
    return ": ".join(x for x in (site_name, subject_name, text) if x)
