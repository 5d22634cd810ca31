"""Incidents and their messages, in the fleet's database: an incident is opened once
per condition (one open per key, whoever writes), each message waits per channel until
it was delivered, so a restart sends nothing twice and a receiver that is down gets
its message once it is back."""

from __future__ import annotations

import uuid
from typing import Any

from haldor.records import record
from haldor.sql import Database

from .alerts import Condition

INCIDENT_COLUMNS = ("id", "key", "kind", "site", "subject", "detail", "since", "opened_at", "resolved_at")
#: a failed message is tried again after 5 s, 10 s, 20 s ... at most every quarter of an hour
FIRST_RETRY_S, LAST_RETRY_S = 5.0, 900.0


@record
class Delivery:
    id: str
    phase: str  # "open" or "resolved"
    channel: str
    attempts: int
    incident: dict[str, Any]


def retry_after(attempts: int, first: float = FIRST_RETRY_S) -> float:
    return min(LAST_RETRY_S, first * 2 ** max(0, attempts - 1))


class IncidentBook:
    def __init__(self, db: Database, first_retry_s: float = FIRST_RETRY_S) -> None:
        self.db = db
        self.first_retry_s = first_retry_s

    def open_incidents(self) -> dict[str, dict[str, Any]]:
        rows = self.db.rows(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE resolved_at IS NULL")
        return {r[1]: dict(zip(INCIDENT_COLUMNS, r, strict=True)) for r in rows}

    def update(self, found: dict[str, Condition], channels: list[str], now: float) -> tuple[int, int]:
        """Open an incident for each new condition and resolve each that went away, with a
        message queued per channel; (opened, resolved)."""
        opened = resolved = 0
        with self.db.transaction():
            current = self.open_incidents()
            for key, c in found.items():
                if key in current:
                    continue
                incident = str(uuid.uuid4())
                added = self.db.executemany(
                    f"INSERT INTO incidents({', '.join(INCIDENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                    "ON CONFLICT DO NOTHING",
                    [[incident, key, c.kind, c.site, c.subject, c.detail, c.since, now]],
                )
                if added:  # another fleet process may have opened it a moment ago
                    self._queue(incident, "open", channels, now)
                    opened += 1
            for key, row in current.items():
                if key not in found:
                    self.db.execute("UPDATE incidents SET resolved_at = ? WHERE id = ?", [now, row["id"]])
                    self._queue(row["id"], "resolved", channels, now)
                    resolved += 1
        return opened, resolved

    def _queue(self, incident: str, phase: str, channels: list[str], now: float) -> None:
        if channels:
            self.db.executemany(
                "INSERT INTO deliveries(id, incident, phase, channel, created_at, attempts, next_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                [[str(uuid.uuid4()), incident, phase, ch, now, now] for ch in channels],
            )

    def due(self, now: float, limit: int = 50) -> list[Delivery]:
        """Messages to send now, oldest first (an "open" always before its "resolved")."""
        rows = self.db.rows(
            f"SELECT d.id, d.phase, d.channel, d.attempts, {', '.join('i.' + c for c in INCIDENT_COLUMNS)} "
            "FROM deliveries d JOIN incidents i ON i.id = d.incident WHERE d.sent_at IS NULL AND d.next_at <= ? "
            "ORDER BY d.created_at, d.phase DESC LIMIT ?",
            [now, limit],
        )
        return [Delivery(r[0], r[1], r[2], int(r[3]), dict(zip(INCIDENT_COLUMNS, r[4:], strict=True))) for r in rows]

    def claim(self, delivery: Delivery, now: float, hold_s: float = 60.0) -> bool:
        """Take a due message for this process: another fleet process with alerts on will
        not send it meanwhile (if this one dies, it is due again after ``hold_s``)."""
        return (
            self.db.executemany(
                "UPDATE deliveries SET next_at = ? WHERE id = ? AND sent_at IS NULL AND next_at <= ?",
                [[now + hold_s, delivery.id, now]],
            )
            == 1
        )

    def sent(self, delivery: str, now: float) -> None:
        self.db.execute(
            "UPDATE deliveries SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?", [now, delivery]
        )

    def failed(self, delivery: Delivery, error: str, now: float) -> None:
        self.db.execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
            [now + retry_after(delivery.attempts + 1, self.first_retry_s), error[:500], delivery.id],
        )

    def undelivered(self) -> tuple[int, str | None]:
        """How many messages wait, and the last error any of them had."""
        count = self.db.one("SELECT COUNT(*) FROM deliveries WHERE sent_at IS NULL")
        last = self.db.one(
            "SELECT last_error FROM deliveries WHERE sent_at IS NULL AND last_error IS NOT NULL ORDER BY next_at DESC LIMIT 1"
        )
        return int(count[0]) if count else 0, last[0] if last else None

    def open_counts(self) -> dict[str, int]:
        return {
            r[0]: int(r[1]) for r in self.db.rows("SELECT kind, COUNT(*) FROM incidents WHERE resolved_at IS NULL GROUP BY kind")
        }
