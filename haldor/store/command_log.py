"""Commands seen (PROTOCOL 4): a replay is refused across restarts, and the same message
delivered again is answered with its first result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Store


class CommandLog:
    def __init__(self, store: Store) -> None:
        self._s = store

    def seen(self, command_id: str) -> bool:
        return self._s.db.execute("SELECT 1 FROM commands_seen WHERE id = ?", [command_id]).fetchone() is not None

    def result(self, command_id: str) -> dict[str, Any] | None:
        """What a command was answered with (the agent's ``remember_command(result=...)``), if known."""
        row = self._s.db.execute("SELECT result FROM commands_seen WHERE id = ?", [command_id]).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def remember(self, command_id: str, expires_at: float, now: float, result: dict[str, Any] | None = None) -> None:
        """Kept until a day after it expired: by then an expired replay is refused as expired."""
        with self._s.write():
            self._s.db.execute(
                "INSERT OR IGNORE INTO commands_seen(id, expires_at, result) VALUES (?, ?, ?)",
                [command_id, expires_at, None if result is None else json.dumps(result)],
            )
            self._s.db.execute("DELETE FROM commands_seen WHERE expires_at < ?", [now - 86400])
