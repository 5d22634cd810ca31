"""Every database Haldor owns grows one way: numbered SQL steps, append only, counted per
schema in the table ``haldor_schema``. Each step commits with its number, so a power cut
leaves a schema before or after a step, never inside one; on PostgreSQL an advisory lock
makes two services starting at once on a new database take turns.

Used by the box's store (SQLite, one schema) and by the municipality's services (SQLite or
PostgreSQL, several schemas in one database): plain DB-API connections, no library, so the
agent pays nothing at a start with nothing to do (one read)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

#: column types that differ between the two; a step writes ``{blob}``, ``{float}``, ``{bigint}``
TYPES = {
    "sqlite": {"blob": "BLOB", "float": "REAL", "bigint": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "float": "DOUBLE PRECISION", "bigint": "BIGINT"},
}

_TABLE = "CREATE TABLE IF NOT EXISTS haldor_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"


def migrate(conn: Any, kind: str, name: str, steps: Sequence[str], *, counted_before: int = 0) -> int:
    """Bring schema ``name`` to the last of ``steps``; the version it is at. ``conn`` is a
    sqlite3 connection or a psycopg one in autocommit mode (``kind`` says which).
    ``counted_before``: the version a database reached before ``haldor_schema`` counted it
    (the box's store counted in SQLite's ``user_version``)."""
    done = version(conn, kind, name)
    if done is not None and done >= len(steps):
        return done
    while True:
        with _transaction(conn, kind):
            if kind == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('haldor_schema'))")
            conn.execute(_TABLE)
            row = conn.execute(_param(kind, "SELECT version FROM haldor_schema WHERE name = ?"), (name,)).fetchone()
            current = row[0] if row else counted_before
            if current >= len(steps):
                return current
            for statement in statements(steps[current], kind):
                conn.execute(statement)
            conn.execute(
                _param(
                    kind,
                    "INSERT INTO haldor_schema (name, version) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                ),
                (name, current + 1),
            )


def version(conn: Any, kind: str, name: str) -> int | None:
    """The version ``haldor_schema`` counts for ``name``; None when it counts nothing yet."""
    if kind == "postgresql":
        exists = conn.execute("SELECT to_regclass('haldor_schema') IS NOT NULL").fetchone()[0]
    else:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'haldor_schema'").fetchone()
    if not exists:
        return None
    row = conn.execute(_param(kind, "SELECT version FROM haldor_schema WHERE name = ?"), (name,)).fetchone()
    return None if row is None else int(row[0])


def statements(step: str, kind: str) -> list[str]:
    """A step's statements (split at ``;``), with the column types of ``kind``."""
    return [s.strip() for s in step.format(**TYPES[kind]).split(";") if s.strip()]


def _param(kind: str, sql: str) -> str:
    return sql.replace("?", "%s") if kind == "postgresql" else sql


@contextlib.contextmanager
def _transaction(conn: Any, kind: str) -> Iterator[None]:
    if kind == "postgresql":
        with conn.transaction():
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
