"""The outbox: events stored before their effect is reported, sent in ``seq`` order,
leaving only when the broker acknowledged them (PROTOCOL 5)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from haldor.access.resend import ranges_of
from haldor.protocol import DOOR_MOVEMENTS, Schema

if TYPE_CHECKING:
    from .database import Store

log = logging.getLogger(__name__)

#: an event's own fields, beside its id, seq, time and type (PROTOCOL 5); ``extra`` holds the rest
FIELDS = ("door", "reader", "credential", "booking", "reason")
#: the columns an event is read back with, written once
COLUMNS = ("seq", "id", "at", "type", *FIELDS, "extra")
_INSERT = f"INSERT INTO events({', '.join(COLUMNS[1:])}, at_ts) VALUES ({', '.join('?' * len(COLUMNS[1:]))}, ?)"


class Outbox:
    def __init__(self, store: Store) -> None:
        self._s = store

    def append(self, events: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Store events durably (one transaction) and return them as published (PROTOCOL 5)."""
        import uuid  # here, in the journal's thread: 3.5 ms (platform) the doors' start does without

        tz = ZoneInfo(self._s.timezone)
        stored = []
        with self._s.write():
            for event in events:
                at_ts = event.get("at_ts", now)
                row = {name: event.get(name) for name in FIELDS}
                row.update(
                    id=str(uuid.uuid4()),
                    at=datetime.fromtimestamp(at_ts, tz).isoformat(timespec="milliseconds"),
                    type=event["type"],
                    extra=json.dumps(event["extra"]) if event.get("extra") else None,
                )
                cursor = self._s.db.execute(_INSERT, [row[c] for c in COLUMNS[1:]] + [at_ts])
                row["seq"] = cursor.lastrowid
                stored.append(self._document(row))
        return stored

    def _document(self, row: dict[str, Any]) -> dict[str, Any]:
        """A stored row as the event document (PROTOCOL 5): ``extra``'s keys beside the others."""
        doc = {
            "schema": Schema.EVENT,
            "id": row["id"],
            "site": self._s.site,
            "seq": row["seq"],
            **{name: row[name] for name in ("at", "type", *FIELDS)},
        }
        if row.get("extra"):
            doc.update(json.loads(row["extra"]))
        return doc

    def events(
        self,
        *,
        undelivered: bool = False,
        delivered: bool = False,
        after_seq: int = 0,
        upto: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        where = (
            "seq > ?"
            + (" AND delivered_at IS NULL" if undelivered else "")
            + (" AND delivered_at IS NOT NULL" if delivered else "")
        )
        params: list[Any] = [after_seq]
        if upto is not None:
            where += " AND seq <= ?"
            params.append(upto)
        rows = self._s.db.execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE {where} ORDER BY seq LIMIT ?", [*params, limit])
        return [self._document(dict(zip(COLUMNS, r, strict=True))) for r in rows]

    def last_seq(self) -> int:
        """The highest ``seq`` ever given (events purged or dropped since included)."""
        row = self._s.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row and row[0] else 0

    def held(self, first: int, last: int) -> tuple[list[tuple[int, int]], int]:
        """The seqs of ``first``..``last`` the journal still holds, as ranges, and how many
        of them wait in the outbox (they go out anyway)."""
        rows = self._s.db.execute(
            "SELECT seq, delivered_at IS NULL FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", [first, last]
        ).fetchall()
        return ranges_of(r[0] for r in rows), sum(1 for r in rows if r[1])

    def mark_delivered(self, seqs: Iterable[int], now: float) -> None:
        """The broker acknowledged these events: they leave the outbox (kept for the kiosk
        and for local reports until the retention period ends)."""
        seqs = list(seqs)
        with self._s.write():
            self._s.db.conn.executemany(
                "UPDATE events SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL", [(now, seq) for seq in seqs]
            )

    def stats(self) -> dict[str, Any]:
        """``{"pending": n, "oldest": "<at of the oldest undelivered>", ...}`` for the status;
        ``last_seq`` lets the fleet see events it lacks."""
        row = self._s.db.execute(
            "SELECT COUNT(*), (SELECT at FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT 1) "
            "FROM events WHERE delivered_at IS NULL"
        ).fetchone()
        return {"pending": row[0], "oldest": row[1], "dropped": self._s.meta("outbox_dropped") or 0, "last_seq": self.last_seq()}

    def enforce_capacity(self, capacity: int) -> int:
        """Beyond ``capacity`` undelivered events, the oldest door.opened / door.closed go;
        access and alarm events never do. Returns how many were dropped (also counted in
        the meta ``outbox_dropped`` for the status)."""
        pending = self._s.db.execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]
        if pending <= capacity:
            return 0
        with self._s.write():
            dropped = self._s.db.execute(
                """DELETE FROM events WHERE seq IN (
                     SELECT seq FROM events WHERE delivered_at IS NULL AND type IN (?, ?)
                     ORDER BY seq LIMIT ?)""",
                [*DOOR_MOVEMENTS, pending - capacity],
            ).rowcount
            if dropped:
                self._s.put_meta("outbox_dropped", (self._s.meta("outbox_dropped") or 0) + dropped)
        if dropped:
            log.warning("outbox full: dropped the %d oldest door.opened/door.closed events", dropped)
        return dropped

    def purge_delivered(self, older_than: float) -> int:
        """Events the broker acknowledged before ``older_than`` go (the privacy retention):
        until then the fleet can ask for them again, should the broker lose them."""
        with self._s.write():
            purged: int = self._s.db.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?", [older_than]
            ).rowcount
        if purged:
            log.info("purged %d delivered events", purged)
        return purged
