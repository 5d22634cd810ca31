"""SQLite as Haldor keeps it (the agent's store and the fleet's database): one migration
runner, so that each schema grows the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration]) -> None:
    """Bring ``db`` to the last of ``migrations``, append only: ``PRAGMA user_version``
    counts the ones done, and each commits with its number, so a power cut leaves the
    schema before or after a migration, never inside one."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(migrations[current:], start=current + 1):
        with db.atomic():
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
