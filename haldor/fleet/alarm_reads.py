"""The fleet's reads of what is wrong: the alarms the page lists, and what the alert
rules are checked against (the doors' last alarms and movements, the last lockout for
guessing, refused schedules and commands). A part of :class:`FleetStore`."""

from __future__ import annotations

from typing import Any

from haldor.protocol import Event
from haldor.sql import Database

from .alerts import DoorState, Notice
from .rows import where

#: the events the fleet lists as alarms (and the commands a box refused)
ALARMS = (Event.DOOR_FORCED, Event.DOOR_HELD_OPEN, Event.READER_FAULT, Event.ACCESS_GUESSING, Event.SYNC_REJECTED)
#: how long before a door's alarm its openings and closings are read (a held-open comes after its opening)
DOOR_MOVES_BEFORE_S = 24 * 3600


class AlarmReads:
    db: Database

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
