"""What a box sends, as the fleet's rows: each value checked and cut to its column, so one
odd field never makes a batch fail for ever (a PostgreSQL batch is refused whole), and
control characters never reach the database."""

from __future__ import annotations

import json
import logging
from dataclasses import astuple
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor.protocol import Event

from .report import booking_figures

log = logging.getLogger(__name__)


def _int(value: Any) -> int | None:
    """An integer column takes an integer or nothing: a box's odd value must not make a
    PostgreSQL batch fail, and be tried again for ever."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63 else None


#: control characters: a name with a line break would break an e-mail's subject, NUL a PostgreSQL row
_CONTROL = dict.fromkeys([*range(32), 127])


def _text(value: Any, longest: int = 200) -> str | None:
    """A string column takes a string (without control characters) or nothing."""
    return value[:longest].translate(_CONTROL) if isinstance(value, str) else None


def _json_table(value: Any, most: int = 200) -> str | None:
    """A status's doors or readers, at most ``most`` of them (a box is not a thousand doors)."""
    if not isinstance(value, dict):
        return None
    return json.dumps(dict(list(value.items())[:most]))


def _names(doc: Any) -> str | None:
    """The status's ``names`` of rooms and doors, kept only as strings of strings."""
    if not isinstance(doc, dict):
        return None
    kept = {}
    for kind in ("rooms", "doors"):
        entries = doc.get(kind)
        if isinstance(entries, dict):
            kept[kind] = {_text(k, 100): _text(v) for k, v in list(entries.items())[:500] if isinstance(v, str)}
    return json.dumps(kept)


def _zone(value: Any) -> str | None:
    """A time zone the page can use, or nothing: a box's odd value must not break the page."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _event_row(doc: dict[str, Any]) -> list[Any]:
    return [
        _text(doc["id"], 100),
        str(doc["site"]),
        _int(doc.get("seq")),
        _text(doc.get("at")),
        _ts(doc.get("at")),
        _text(doc["type"], 64),
        _text(doc.get("door")),
        _text(doc.get("reader")),
        _text(doc.get("booking")),
        _text(doc.get("reason")),
        json.dumps(doc["usage"]) if isinstance(doc.get("usage"), dict) else None,
        _text(doc.get("credential")),
    ]


def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _usage_row(doc: dict[str, Any]) -> list[Any] | None:
    usage = doc.get("usage")
    if doc.get("type") != Event.BOOKING_USAGE or not isinstance(usage, dict):
        return None
    try:
        figures = booking_figures(usage)
    except (TypeError, ValueError, OverflowError) as exc:  # a box's odd values: the event is kept, its figures not
        log.warning("usage of booking %r at %r not counted: %s", doc.get("booking"), doc.get("site"), exc)
        return None
    if figures is None:
        return None
    return [str(doc["id"]), str(doc["site"]), _text(doc.get("booking")), *astuple(figures)]


def where(site: str | None, since: float | str | None, until: float | str | None, at: str) -> tuple[str, list[Any]]:
    """`` AND ...`` for one site (or all) and a span in column ``at`` (instants, or ISO days), the end excluded."""
    clause, params = "", list[Any]()
    if site:
        clause += " AND site = ?"
        params.append(site)
    if since is not None:
        clause += f" AND {at} >= ?"
        params.append(since)
    if until is not None:
        clause += f" AND {at} < ?"
        params.append(until)
    return clause, params
