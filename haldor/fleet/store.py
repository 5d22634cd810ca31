"""The fleet's own database: every site's last status and every event once (by id).

SQLite (a file, the default) or PostgreSQL (a ``postgresql://`` URL: several fleet
consumers on several machines, one database), the same schema through
:mod:`haldor.sql`. What the consumer receives is written a batch at a time, in one
transaction (see :mod:`.ingest`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import astuple
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor.protocol import Event
from haldor.sql import Database

from .alerts import DoorState, Notice
from .report import ALL_TIME, Period, UsageLine, booking_figures
from .schema import MIGRATIONS
from .sequences import Sequences

log = logging.getLogger(__name__)

#: the events the fleet lists as alarms
ALARMS = (Event.DOOR_FORCED, Event.DOOR_HELD_OPEN, Event.READER_FAULT, Event.ACCESS_GUESSING, Event.SYNC_REJECTED)

USAGE_COLUMNS = (
    "id",
    "site",
    "booking",
    "day",
    "week",
    "room",
    "association",
    "room_name",
    "association_name",
    "booked_hours",
    "used_hours",
    "no_show",
    "closed",
    "unobserved",
)

#: how long before a door's alarm its openings and closings are read (a held-open comes after its opening)
DOOR_MOVES_BEFORE_S = 24 * 3600

#: a status dated further ahead than this is counted as of its arrival
FUTURE_S = 120.0

#: what the access log lists: who came in or was refused, and what happened to the doors
ACCESS_LOG = (
    Event.ACCESS_GRANTED,
    Event.ACCESS_DENIED,
    Event.DOOR_FORCED,
    Event.DOOR_HELD_OPEN,
    Event.DOOR_MODE,
)
ACCESS_COLUMNS = ("site", "at", "type", "door", "reader", "credential", "booking", "reason")

SITE_COLUMNS = (
    "site",
    "online",
    "since",
    "status_at",
    "seen_at",
    "schedule_version",
    "last_sync",
    "outbox_pending",
    "outbox_oldest",
    "agent_version",
    "mode",
    "doors",
    "readers",
    "name",
    "timezone",
    "names",
    "event_at",
    "storage",
)


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


class FleetStore:
    def __init__(self, target: str | Path, *, migrate: bool = True) -> None:
        """``migrate``: bring the schema up to date (a connection opened beside a running
        fleet, for one download, leaves that to the fleet)."""
        self.target = str(target)
        self.db = Database.open(self.target)
        self.sequences = Sequences(self.db)
        if migrate:
            self.db.migrate("fleet", MIGRATIONS)
            self._fill_usage()

    def _fill_usage(self) -> None:
        """A database from before the usage table: its usage events worked out once."""
        if self.db.one("SELECT 1 FROM usage LIMIT 1") or not self.db.one(
            "SELECT 1 FROM events WHERE type = ? LIMIT 1", [Event.BOOKING_USAGE]
        ):
            return
        rows = self.db.rows(
            "SELECT id, site, booking, usage FROM events WHERE type = ? AND usage IS NOT NULL", [Event.BOOKING_USAGE]
        )
        with self.db.transaction():
            self._insert_usage(
                [
                    {"id": r[0], "site": r[1], "booking": r[2], "type": Event.BOOKING_USAGE, "usage": json.loads(r[3])}
                    for r in rows
                ]
            )

    def _insert_usage(self, events: list[dict[str, Any]]) -> None:
        rows = [row for doc in events if (row := _usage_row(doc)) is not None]
        if rows:
            self.db.executemany(
                f"INSERT INTO usage({', '.join(USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))}) "
                "ON CONFLICT DO NOTHING",
                rows,
            )

    def close(self) -> None:
        self.db.close()

    def writable(self) -> bool:
        """Whether the database takes a write now (a full disk answers a SELECT but not this)."""
        try:
            with self.db.transaction():
                self.db.execute("UPDATE haldor_schema SET version = version WHERE name = ?", ["fleet"])
        except Exception:
            return False
        return True

    # -- writing, a batch at a time -----------------------------------------------------

    def store(self, statuses: Iterable[tuple[str, dict[str, Any], float]], events: Iterable[dict[str, Any]]) -> int:
        """Statuses and events of one batch in one transaction; the number of events that
        were new (each is stored once by id: delivery is at least once, and two
        consumers sharing the load may both get one after a reconnect)."""
        events = list(events)
        with self.db.transaction():
            new = (
                self.db.executemany(
                    "INSERT INTO events(id, site, seq, at, at_ts, type, door, reader, booking, reason, usage, credential) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    [_event_row(doc) for doc in events],
                )
                if events
                else 0
            )
            self._insert_usage(events)
            self.sequences.note_events(events)
            self._audit_commands(events)
            sites = sorted({doc["site"] for doc in events})
            if sites:  # a site known by its events before its first status; when its events last came
                now = time.time()
                self.db.executemany(
                    "INSERT INTO sites(site, online, since, event_at) VALUES (?, 0, NULL, ?) "
                    "ON CONFLICT (site) DO UPDATE SET event_at = excluded.event_at",
                    [[s, now] for s in sites],
                )
            for site, doc, received in statuses:
                self._set_status(site, doc, received)
        return new

    def _audit_commands(self, events: list[dict[str, Any]]) -> None:
        """A command sent from elsewhere (``haldor command``, the booking system) enters the
        audit log when its result event comes: who (the command's ``by``), what, why and the
        box's answer. One from the page has its row already, and gets its answer by id."""
        rows = [
            [
                f"box:{doc['site']}:{doc['command']}"[:200],
                _ts(doc.get("at")) or time.time(),
                _text(doc.get("by")) or "?",
                doc["site"],
                _text(doc.get("action"), 64) or "?",
                _text(doc.get("door")),
                _text(doc.get("why"), 500) or "",
                _text(doc["command"], 64),
                1 if doc.get("ok") is True else 0,
                _text(doc.get("reason"), 500),
                _ts(doc.get("at")) or time.time(),
                doc["command"],
                doc["site"],
            ]
            for doc in events
            if doc.get("type") == Event.COMMAND_RESULT and isinstance(doc.get("command"), str)
        ]
        if rows:
            self.db.executemany(
                "INSERT INTO audit (id, at, who, role, site, action, door, detail, command, ok, error, answered_at) "
                "SELECT ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM audit WHERE command = ? AND site = ?) "
                "ON CONFLICT (id) DO NOTHING",
                rows,
            )

    def add_event(self, doc: dict[str, Any]) -> bool:
        return self.store((), [doc]) == 1

    def set_status(self, site: str, doc: dict[str, Any], received: float) -> None:
        self.store([(site, doc, received)], ())

    def _set_status(self, site: str, doc: dict[str, Any], received: float) -> None:
        """The newest status wins, by the agent's own clock. A Last Will carries no time:
        the broker speaks it the moment the box is gone, so it counts as of its arrival
        and is never taken for a late one."""
        own = _ts(doc.get("at"))
        if own is not None and own > received + FUTURE_S:
            own = received  # a box whose clock is ahead must not hide every later status
        online = doc.get("online") is True
        row = self.db.one("SELECT online, since, status_at FROM sites WHERE site = ?", [site])
        if own is not None and row is not None and row[2] is not None and own < row[2]:
            self.db.execute("UPDATE sites SET seen_at = ? WHERE site = ?", [received, site])  # late, but it is alive
            return  # an older status arriving late
        at = own if own is not None else (row[2] if row is not None else None)
        changed_at = own if own is not None else received
        since = row[1] if row is not None and row[0] is not None and bool(row[0]) == online and row[1] else changed_at
        outbox = doc.get("outbox") or {}
        if isinstance(outbox, dict):
            self.sequences.note_last(site, outbox.get("last_seq"))
        self.db.execute(
            """INSERT INTO sites(site, online, since, status_at, seen_at, schedule_version, last_sync, outbox_pending,
                                 outbox_oldest, agent_version, mode, doors, readers, name, timezone, names, storage)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (site) DO UPDATE SET online = excluded.online, since = excluded.since,
                 status_at = excluded.status_at, seen_at = excluded.seen_at,
                 schedule_version = COALESCE(excluded.schedule_version, sites.schedule_version),
                 last_sync = COALESCE(excluded.last_sync, sites.last_sync),
                 outbox_pending = COALESCE(excluded.outbox_pending, sites.outbox_pending),
                 outbox_oldest = excluded.outbox_oldest,
                 agent_version = COALESCE(excluded.agent_version, sites.agent_version),
                 mode = COALESCE(excluded.mode, sites.mode), doors = COALESCE(excluded.doors, sites.doors),
                 readers = COALESCE(excluded.readers, sites.readers), name = COALESCE(excluded.name, sites.name),
                 timezone = COALESCE(excluded.timezone, sites.timezone), names = COALESCE(excluded.names, sites.names),
                 storage = COALESCE(excluded.storage, sites.storage)""",
            [
                site,
                int(online),
                since,
                at,
                received,
                _int(doc.get("schedule_version")),
                _ts(doc.get("last_sync")),
                _int(outbox.get("pending")) if isinstance(outbox, dict) else None,
                _text(outbox.get("oldest")) if isinstance(outbox, dict) else None,
                _text(doc.get("agent_version")),
                _text(doc.get("mode")),
                _json_table(doc.get("doors")),
                _json_table(doc.get("readers")),
                _text(names.get("site")) if isinstance(names := doc.get("names"), dict) else None,
                _zone(doc.get("timezone")),
                _names(names),
                _json_table(doc.get("storage"), most=20),
            ],
        )

    # -- reading ------------------------------------------------------------------------

    def sites(self) -> list[dict[str, Any]]:
        """Every site's row, with the events the fleet lacks of it (asked for again) and
        those its box no longer holds (lost for good)."""
        columns = ", ".join(f"sites.{c}" for c in SITE_COLUMNS)
        return [
            {**dict(zip(SITE_COLUMNS, r[:-2], strict=True)), "events_missing": r[-2] or 0, "events_lost": r[-1] or 0}
            for r in self.db.rows(
                f"SELECT {columns}, q.missing, q.lost FROM sites LEFT JOIN sequences q ON q.site = sites.site ORDER BY sites.site"
            )
        ]

    def weekly_usage(
        self, period: Period = ALL_TIME, site: str | None = None, site_names: dict[str, str] | None = None
    ) -> list[UsageLine]:
        """Booked versus used hours and no-shows per week, site, room and association, for
        the bookings that start in ``period`` (the site's local days)."""
        after = None if period.last is None else (period.last + timedelta(days=1)).isoformat()
        clause, params = where(site, None if period.first is None else period.first.isoformat(), after, "day")
        rows = self.db.rows(
            "SELECT week, site, room, association, COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), "
            "SUM(closed), SUM(unobserved), MAX(room_name), MAX(association_name) "
            f"FROM usage WHERE 1 = 1{clause} GROUP BY week, site, room, association ORDER BY week, site, room, association",
            params,
        )
        names = site_names or {}
        return [
            UsageLine(
                r[0],
                r[1],
                r[2],
                r[3],
                int(r[4]),
                round(float(r[5]), 2),
                round(float(r[6]), 2),
                int(r[7]),
                int(r[8]),
                int(r[9]),
                names.get(r[1]) or r[1],
                r[10] or r[2],
                r[11] or r[3],
            )
            for r in rows
        ]

    def alarms(
        self, limit: int = 200, site: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        clause, params = where(site, since, until, "at_ts")
        rows = self.db.rows(
            f"SELECT site, at, type, door, reader, reason FROM events WHERE (type IN ({','.join('?' * len(ALARMS))}) "
            f"OR (type = ? AND reason IS NOT NULL)){clause} ORDER BY at_ts DESC LIMIT ?",  # and the commands a box refused
            [*ALARMS, Event.COMMAND_RESULT, *params, limit],
        )
        return [dict(zip(("site", "at", "type", "door", "reader", "reason"), r, strict=True)) for r in rows]

    def access_log(
        self,
        site: str | None = None,
        door: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Who came in or was refused, and what the doors did, newest first; credentials by
        id only (resolving them to people stays in the booking system)."""
        clause, params = where(site, since, until, "at_ts")
        if door:
            clause += " AND door = ?"
            params.append(door)
        rows = self.db.rows(
            f"SELECT {', '.join(ACCESS_COLUMNS)} FROM events WHERE type IN ({','.join('?' * len(ACCESS_LOG))}){clause} "
            "ORDER BY at_ts DESC, seq DESC" + ("" if limit is None else f" LIMIT {int(limit)}"),
            [*ACCESS_LOG, *params],
        )
        return [dict(zip(ACCESS_COLUMNS, r, strict=True)) for r in rows]

    def door_states(self, since: float) -> list[DoorState]:
        """Each door with a forced or held-open event since ``since``, with the last of
        those and of its openings and closings around them. The alarms are few; a door's
        openings are many, so they are read only for the doors that have an alarm (this
        runs every few seconds)."""
        alarms = {Event.DOOR_FORCED: "forced_at", Event.DOOR_HELD_OPEN: "held_at"}
        movements = {Event.DOOR_OPENED: "opened_at", Event.DOOR_CLOSED: "closed_at"}
        doors: dict[tuple[str, str], dict[str, float]] = {}
        for site, door, kind, at in self.db.rows(
            "SELECT site, door, type, MAX(at_ts) FROM events WHERE type IN (?, ?) AND at_ts >= ? AND door IS NOT NULL "
            "GROUP BY site, door, type",
            [*alarms, since],
        ):
            doors.setdefault((site, door), {})[alarms[kind]] = at
        for (site, door), fields in doors.items():
            around = min(fields.values()) - DOOR_MOVES_BEFORE_S  # the opening before a held-open, and everything after
            for kind, at in self.db.rows(
                "SELECT type, MAX(at_ts) FROM events WHERE site = ? AND type IN (?, ?) AND at_ts >= ? AND door = ? GROUP BY type",
                [site, *movements, around, door],
            ):
                fields[movements[kind]] = at
        return [DoorState(site, door, **fields) for (site, door), fields in sorted(doors.items())]

    def guessing(self, since: float) -> list[Notice]:
        """The last lockout for guessing at each reader since ``since``."""
        return self._last_of(Event.ACCESS_GUESSING, "reader", "type = ? AND reader IS NOT NULL", [Event.ACCESS_GUESSING], since)

    def failed_commands(self, since: float) -> list[Notice]:
        """The last command each site refused or could not carry out since ``since``."""
        return self._last_of("command.failed", None, "type = ? AND reason IS NOT NULL", [Event.COMMAND_RESULT], since)

    def refused_schedules(self, since: float) -> list[Notice]:
        """Sites whose last schedule since ``since`` was refused (a later applied one ends it)."""
        applied = {n.site: n.at for n in self._last_of("", None, "type = ?", [Event.SYNC_APPLIED], since)}
        refused = self._last_of(Event.SYNC_REJECTED, None, "type = ?", [Event.SYNC_REJECTED], since)
        return [n for n in refused if n.at > applied.get(n.site, 0.0)]

    def _last_of(self, kind: str, subject: str | None, condition: str, params: list[Any], since: float) -> list[Notice]:
        """The newest event per site (and ``subject`` column) that meets ``condition``."""
        column = subject or "NULL"
        rows = self.db.rows(
            f"SELECT site, {column}, reason, at_ts FROM events e WHERE {condition} AND at_ts >= ? AND at_ts = "
            f"(SELECT MAX(at_ts) FROM events x WHERE x.site = e.site AND x.type = e.type AND x.at_ts >= ?"
            f"{f' AND x.{subject} = e.{subject}' if subject else ''})",
            [*params, since, since],
        )
        last: dict[tuple[str, str | None], Notice] = {}
        for site, subj, reason, at in rows:
            last[site, subj] = Notice(kind, site, subj, reason or "", at)
        return [last[k] for k in sorted(last, key=lambda k: (k[0], k[1] or ""))]

    def usage_count(self) -> int:
        row = self.db.one("SELECT COUNT(*) FROM usage")
        return int(row[0]) if row else 0

    def generation(self) -> tuple:
        """Changes whenever a status or an event arrives, from any consumer writing to this
        database: what the page's self-refresh watches (cheap: one row per site)."""
        sites = self.db.one("SELECT COUNT(*), MAX(seen_at), MAX(event_at), MAX(status_at) FROM sites") or ()
        # a command whose time ran out unanswered changes the page too ("no answer")
        audit = (
            self.db.one(
                "SELECT COUNT(*), MAX(answered_at), SUM(CASE WHEN answered_at IS NULL AND expires_at < ? THEN 1 ELSE 0 END) FROM audit",
                [time.time()],
            )
            or ()
        )
        return (*sites, *audit)

    def command_results(self, results: list[tuple[str, dict[str, Any]]], now: float) -> int:
        """The boxes' answers to commands sent from the page (PROTOCOL 4's result), on
        their audit rows, by command id and the site whose topic the answer came on; an
        answer to a command from elsewhere changes nothing."""
        rows = [
            [1 if r.get("ok") is True else 0, _text(r.get("error"), 500), now, r["id"], site]
            for site, r in results
            if isinstance(r.get("id"), str)
        ]
        if not rows:
            return 0
        with self.db.transaction():
            return self.db.executemany(
                "UPDATE audit SET ok = ?, error = ?, answered_at = ? WHERE command = ? AND site = ? AND answered_at IS NULL", rows
            )

    def counts(self) -> dict[str, int]:
        events, sites = self.db.one("SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM sites)") or (0, 0)
        return {"events": int(events), "sites": int(sites)}
