"""The fleet's numbers, from what the store holds. Pure, so the usage arithmetic is
checked against a hand-made table."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SILENT_AFTER_S = 180  # agents republish their status every 60 s


@dataclass(frozen=True, slots=True)
class UsageLine:
    week: str
    site: str
    room: str
    association: str
    bookings: int
    booked_hours: float
    used_hours: float
    no_shows: int
    #: bookings whose room was closed throughout: nobody could use them
    closed: int = 0
    #: unused bookings the box did not watch wholly (it was off): not counted as unused
    unobserved: int = 0

    @property
    def used_share(self) -> float:
        return self.used_hours / self.booked_hours if self.booked_hours else 0.0


def week_of(start: str) -> str:
    """ISO week of the booking's local start: "2026-W48"."""
    year, week, _ = datetime.fromisoformat(start).isocalendar()
    return f"{year}-W{week:02d}"


def weekly_usage(rows: Iterable[dict[str, Any]]) -> list[UsageLine]:
    """Booked versus used hours and no-shows per week, site, room and association. Fair
    to the associations: a booking whose room was closed throughout is counted apart
    (and the closed part of one partly closed is not booked time), and so is an unused
    booking the box did not watch wholly, since nobody can tell it was unused."""
    acc: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0, 0, 0])
    for r in rows:
        if not isinstance(r.get("start"), str) or not isinstance(r.get("booked_min"), (int, float)):
            continue  # a usage from an agent that does not name its booking's start
        key = (week_of(r["start"]), r["site"], r.get("room") or "?", r.get("association") or "?")
        a = acc[key]
        a[0] += 1
        if r.get("closed"):
            a[4] += 1
            continue
        if not r.get("used") and r.get("observed", 1) < 1:
            a[5] += 1
            continue
        hours = max(0.0, r["booked_min"] - (r.get("closed_min") or 0)) / 60
        a[1] += hours
        a[2] += hours if r.get("used") else 0.0
        a[3] += 1 if r.get("no_show") else 0
    return [
        UsageLine(*k, int(v[0]), round(v[1], 2), round(v[2], 2), int(v[3]), int(v[4]), int(v[5])) for k, v in sorted(acc.items())
    ]


def weekly_totals(lines: list[UsageLine]) -> list[tuple[str, float, float]]:
    """(week, booked hours, used hours) over every site, for the chart."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for line in lines:
        acc[line.week][0] += line.booked_hours
        acc[line.week][1] += line.used_hours
    return [(w, round(b, 2), round(u, 2)) for w, (b, u) in sorted(acc.items())]


def _reader_faults(readers: str | None) -> dict[str, str]:
    """Reader id -> fault, from the status's ``readers`` (stored as JSON)."""
    try:
        entries = json.loads(readers) if readers else {}
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        r: str(v.get("fault") or "fault") for r, v in sorted(entries.items()) if isinstance(v, dict) and not v.get("ok", True)
    }


def site_rows(sites: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Online, offline since when, or silent (no status for three minutes), with the
    schedule's age and the outbox backlog; the offline ones first."""
    out = []
    for s in sites:
        silent = s.get("seen_at") is not None and now - s["seen_at"] > SILENT_AFTER_S
        online = bool(s.get("online")) and not silent
        since = s.get("since")
        if silent and s.get("online"):
            since = s["seen_at"]
        out.append(
            {
                "site": s["site"],
                "online": online,
                "silent": silent,
                "since": since,
                "schedule_version": s.get("schedule_version"),
                "schedule_age_h": None if s.get("last_sync") is None else round((now - s["last_sync"]) / 3600, 1),
                "outbox_pending": s.get("outbox_pending"),
                "outbox_oldest": s.get("outbox_oldest"),
                "mode": s.get("mode"),
                "reader_faults": _reader_faults(s.get("readers")),
            }
        )
    return sorted(out, key=lambda r: (r["online"], r["site"]))
