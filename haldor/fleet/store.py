"""The fleet's own database: every site's last status and every event once (by id)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from haldor.db import migrate
from haldor.protocol import Event

#: the events the fleet lists as alarms
ALARMS = (Event.DOOR_FORCED, Event.DOOR_HELD_OPEN, Event.READER_FAULT)


def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _m1_sites_and_events(db: sqlite_utils.Database) -> None:
    if "sites" in db.table_names():  # made before the fleet's schema had a version
        return
    db.table("sites").create(
        {
            "site": str,
            "online": int,
            "since": float,
            "status_at": float,
            "seen_at": float,
            "schedule_version": int,
            "last_sync": float,
            "outbox_pending": int,
            "outbox_oldest": str,
            "agent_version": str,
            "mode": str,
            "doors": str,
        },
        pk="site",
    )
    db.table("events").create(
        {
            "id": str,
            "site": str,
            "seq": int,
            "at": str,
            "at_ts": float,
            "type": str,
            "door": str,
            "reader": str,
            "booking": str,
            "reason": str,
            "usage": str,
        },
        pk="id",
    )
    db.table("events").create_index(["site", "type", "at_ts"])
    db.table("events").create_index(["type", "at_ts"])


def _m2_readers(db: sqlite_utils.Database) -> None:
    if "readers" not in db.table("sites").columns_dict:
        db.table("sites").add_column("readers", str)


MIGRATIONS = (_m1_sites_and_events, _m2_readers)


class FleetStore:
    def __init__(self, path: str | Path) -> None:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        migrate(self.db, MIGRATIONS)

    def close(self) -> None:
        self.db.conn.close()

    def add_event(self, doc: dict[str, Any]) -> bool:
        """Store an event once; False for a duplicate (delivery is at least once)."""
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO events(id, site, seq, at, at_ts, type, door, reader, booking, reason, usage) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    doc["id"],
                    doc["site"],
                    doc.get("seq"),
                    doc.get("at"),
                    _ts(doc.get("at")),
                    doc["type"],
                    doc.get("door"),
                    doc.get("reader"),
                    doc.get("booking"),
                    doc.get("reason"),
                    json.dumps(doc["usage"]) if isinstance(doc.get("usage"), dict) else None,
                ],
            )
            if cursor.rowcount:
                self.db.execute("INSERT OR IGNORE INTO sites(site, online, since) VALUES (?, 0, NULL)", [doc["site"]])
            return cursor.rowcount == 1

    def set_status(self, site: str, doc: dict[str, Any], received: float) -> None:
        """The newest status wins, by the agent's own clock. A Last Will carries no time:
        the broker speaks it the moment the box is gone, so it counts as of its arrival
        and is never taken for a late one."""
        own = _ts(doc.get("at"))
        online = bool(doc.get("online"))
        with self.db.atomic():
            row = self.db.execute("SELECT online, since, status_at FROM sites WHERE site = ?", [site]).fetchone()
            if own is not None and row is not None and row[2] is not None and own < row[2]:
                return  # an older status arriving late
            at = own if own is not None else (row[2] if row is not None else None)
            changed_at = own if own is not None else received
            since = row[1] if row is not None and row[0] is not None and bool(row[0]) == online and row[1] else changed_at
            outbox = doc.get("outbox") or {}
            self.db.execute(
                """INSERT INTO sites(site, online, since, status_at, seen_at, schedule_version, last_sync, outbox_pending,
                                     outbox_oldest, agent_version, mode, doors, readers)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(site) DO UPDATE SET online = excluded.online, since = excluded.since,
                     status_at = excluded.status_at, seen_at = excluded.seen_at,
                     schedule_version = COALESCE(excluded.schedule_version, schedule_version),
                     last_sync = COALESCE(excluded.last_sync, last_sync),
                     outbox_pending = COALESCE(excluded.outbox_pending, outbox_pending),
                     outbox_oldest = excluded.outbox_oldest,
                     agent_version = COALESCE(excluded.agent_version, agent_version),
                     mode = COALESCE(excluded.mode, mode), doors = COALESCE(excluded.doors, doors),
                     readers = COALESCE(excluded.readers, readers)""",
                [
                    site,
                    int(online),
                    since,
                    at,
                    received,
                    doc.get("schedule_version"),
                    _ts(doc.get("last_sync")),
                    outbox.get("pending"),
                    outbox.get("oldest"),
                    doc.get("agent_version"),
                    doc.get("mode"),
                    json.dumps(doc["doors"]) if isinstance(doc.get("doors"), dict) else None,
                    json.dumps(doc["readers"]) if isinstance(doc.get("readers"), dict) else None,
                ],
            )

    def sites(self) -> list[dict[str, Any]]:
        return list(self.db.table("sites").rows_where(order_by="site"))

    def usage_rows(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT site, booking, usage FROM events WHERE type = ? AND usage IS NOT NULL", [Event.BOOKING_USAGE]
        )
        return [{"site": r[0], "booking": r[1], **json.loads(r[2])} for r in rows]

    def alarms(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT site, at, type, door, reader, reason FROM events WHERE type IN ({','.join('?' * len(ALARMS))}) "
            "ORDER BY at_ts DESC LIMIT ?",
            [*ALARMS, limit],
        )
        return [dict(zip(("site", "at", "type", "door", "reader", "reason"), r, strict=True)) for r in rows]

    def counts(self) -> dict[str, int]:
        return {
            "events": self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            "sites": self.db.execute("SELECT COUNT(*) FROM sites").fetchone()[0],
        }
