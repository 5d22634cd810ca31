"""Commands from the page: an operator unlocks a door for a locked-out club, holds it
open, releases it, starts or lifts a lockdown, or asks a site to resync. Each is a
signed command (PROTOCOL 4) made with the fleet's own command key (the boxes trust it
in ``[trust] command_keys``, never for schedules), published on the consumer's own
connection, and written in the audit log before it goes out; the box's answer lands on
the same row when it comes back (:meth:`FleetStore.command_results`)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from haldor.errors import DocumentError, HaldorError
from haldor.integrator import documents
from haldor.integrator.broker_client import acked_publish
from haldor.mqtt import BrokerOptions
from haldor.protocol import Action
from haldor.sql import Database

from .operators import Operator
from .rows import where

log = logging.getLogger(__name__)

#: what the page offers, per door and for the site
DOOR_ACTIONS = (Action.UNLOCK, Action.HOLD_OPEN, Action.RELEASE)
SITE_ACTIONS = (Action.LOCKDOWN, Action.LIFT_LOCKDOWN, Action.RESYNC)
#: a command the box gets later than this (it was offline) is refused by the box
VALID_S = 120
#: the broker's yes to a command, waited for at most this long
PUBACK_S = 5.0
AUDIT_COLUMNS = (
    "id",
    "at",
    "who",
    "role",
    "site",
    "action",
    "door",
    "detail",
    "command",
    "expires_at",
    "ok",
    "error",
    "answered_at",
)


class AuditLog:
    """Append-only from the page: a row per action, its answer added once."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        at: float,
        operator: Operator,
        action: str,
        *,
        site: str | None = None,
        door: str | None = None,
        detail: str = "",
        command: str | None = None,
        expires_at: float | None = None,
    ) -> str:
        row_id = str(uuid.uuid4())
        self.db.execute(
            f"INSERT INTO audit({', '.join(AUDIT_COLUMNS[:10])}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row_id, at, operator.name, operator.role, site, action, door, detail[:500], command, expires_at],
        )
        return row_id

    def answer(self, row_id: str, *, ok: bool, error: str | None, at: float) -> None:
        """The one change a row gets: its answer (from the box, or "not sent")."""
        self.db.execute(
            "UPDATE audit SET ok = ?, error = ?, answered_at = ? WHERE id = ? AND answered_at IS NULL",
            [int(ok), error, at, row_id],
        )

    def rows(
        self, site: str | None = None, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        clause, params = where(site, since, until, "at")
        sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE 1 = 1{clause} ORDER BY at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [dict(zip(AUDIT_COLUMNS, r, strict=True)) for r in self.db.rows(sql, params)]


class Commander:
    def __init__(self, client: Any, opts: BrokerOptions, key: str, kid: str, audit: AuditLog) -> None:
        documents.load_private_key(key)  # a missing or wrong key is found at start
        self.client, self.opts, self.key, self.kid, self.audit = client, opts, key, kid, audit

    def send(
        self, operator: Operator, site: str, action: str, door: str | None, minutes: float | None, reason: str, now: float
    ) -> str:
        """Sign, write in the audit log, publish and wait for the broker's yes; the audit
        row's id. A viewer, a bad action or an unknown door is refused here with a
        DocumentError; a broker that refuses (its ACL) or cannot be reached is written on
        the row, never left to look like a box that did not answer."""
        if not operator.acts:
            raise DocumentError(f"{operator.name} is a viewer: only operators act")
        if action not in DOOR_ACTIONS + SITE_ACTIONS:
            raise DocumentError(f"unknown action {action!r}")
        duration = None
        if action == Action.UNLOCK:
            if minutes is None or not 0 < minutes <= 24 * 60:
                raise DocumentError("unlock: 1 minute to a day")
            duration = minutes * 60
        doc = documents.new_command(
            site,
            action,
            door=door if action in DOOR_ACTIONS else None,
            duration_s=duration,
            reason=reason or None,
            by=operator.name,
            valid_s=VALID_S,
            now=datetime.fromtimestamp(now).astimezone(),
        )
        detail = reason + (f" ({minutes:g} min)" if duration else "")
        return self._send(operator, doc, detail, now)

    def send_update(self, operator: Operator, site: str, fields: dict[str, Any], version: str, now: float) -> str:
        """The signed ``update`` command of a rollout (``fields``: the signed manifest and
        the wheel's URL), written and sent as :meth:`send`; the command's id, whose answer
        lands on its audit row."""
        reason = f"rollout of {version}"
        doc = documents.new_command(
            site, Action.UPDATE, reason=reason, by=operator.name, valid_s=VALID_S, now=datetime.fromtimestamp(now).astimezone()
        )
        doc |= fields
        self._send(operator, doc, reason, now)
        return str(doc["id"])

    def _send(self, operator: Operator, doc: dict[str, Any], detail: str, now: float) -> str:
        _, payload = documents.outgoing(doc, key=self.key, kid=self.kid)
        site, action = doc["site"], doc["action"]
        expires = datetime.fromisoformat(doc["expires_at"]).timestamp()
        row = self.audit.record(
            now, operator, action, site=site, door=doc.get("door"), detail=detail, command=doc["id"], expires_at=expires
        )
        try:
            acked_publish(self.client, self.opts, f"{self.opts.prefix}/{site}/cmd", payload, timeout=PUBACK_S)
        except HaldorError as exc:
            log.warning("command %s %s not sent: %s", action, site, exc)
            self.audit.answer(row, ok=False, error=f"not sent: {exc}", at=now)
            return row
        log.info("command %s %s %s by %s (%s)", action, site, doc.get("door") or "", operator.name, doc["id"])
        return row
