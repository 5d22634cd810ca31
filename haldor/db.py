"""SQLite as Haldor keeps it (the agent's store and the fleet's database): one migration
runner, so that each schema grows the same way."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Bring the database to the last of ``migrations``, append only: ``PRAGMA user_version``
    counts the ones done, and each commits with its number, so a power cut leaves the
    schema before or after a migration, never inside one."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current >= len(migrations):
        return
    # only a database made or upgraded pays for sqlite-utils (10 MB: not at every start of
    # the agent on a small Pi), so it is imported here and not at the top
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for number, migration in enumerate(migrations[current:], start=current + 1):
        with db.atomic():
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
