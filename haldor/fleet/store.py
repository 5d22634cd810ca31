"""The fleet's own database: every site's last status and every event once (by id).

SQLite (a file, the default) or PostgreSQL (a ``postgresql://`` URL: several fleet
consumers on several machines, one database), the same schema through
:mod:`haldor.sql`. What the consumer receives is written a batch at a time, in one
transaction (see :mod:`.ingest`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from haldor.protocol import Event
from haldor.sql import Database

from . import usage_rows
from .alarm_reads import AlarmReads
from .report import ALL_TIME, Period, UsageLine
from .rows import _event_row, _int, _json_table, _names, _text, _ts, _zone, where
from .schema import MIGRATIONS
from .sequences import Sequences

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


class FleetStore(AlarmReads):
    def __init__(self, target: str | Path, *, migrate: bool = True) -> None:
        """``migrate``: bring the schema up to date (a connection opened beside a running
        fleet, for one download, leaves that to the fleet)."""
        self.target = str(target)
        self.db = Database.open(self.target)
        self.sequences = Sequences(self.db)
        if migrate:
            self.db.migrate("fleet", MIGRATIONS)
            usage_rows.fill(self.db)

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
            usage_rows.insert(self.db, events)
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
        self,
        period: Period = ALL_TIME,
        site: str | None = None,
        site_names: dict[str, str] | None = None,
        *,
        association: str | None = None,
        limit: int | None = None,
    ) -> list[UsageLine]:
        """Booked versus used hours and no-shows per week, site, room and association, for
        the bookings that start in ``period`` (the site's local days); of one association,
        or the first ``limit`` lines (a page's table: read in the index's order, never all)."""
        after = None if period.last is None else (period.last + timedelta(days=1)).isoformat()
        clause, params = where(site, None if period.first is None else period.first.isoformat(), after, "day")
        if association is not None:
            clause += " AND association = ?"
            params.append(association)
        for bound, day in ((">=", period.first), ("<=", period.last)):  # a booking's week is its day's: the index's seek
            if day is not None:
                year, number, _ = day.isocalendar()
                clause += f" AND week {bound} ?"
                params.append(f"{year}-W{number:02d}")
        # the first lines of every site: in the order of the index that holds them, stopping at
        # ``limit`` (SQLite would otherwise pick the day's index and sort a season of bookings)
        table = "usage INDEXED BY idx_usage_lines" if limit and not site and self.db.kind == "sqlite" else "usage"
        rows = self.db.rows(
            "SELECT week, site, room, association, COUNT(*), SUM(booked_hours), SUM(used_hours), SUM(no_show), "
            "SUM(closed), SUM(unobserved), MAX(room_name), MAX(association_name) "
            f"FROM {table} WHERE 1 = 1{clause} GROUP BY week, site, room, association ORDER BY week, site, room, association"
            + ("" if limit is None else f" LIMIT {int(limit)}"),
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
