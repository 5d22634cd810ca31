"""The municipality's services keep their state in SQLite (a file: the default, nothing to
run) or PostgreSQL (a ``postgresql://`` URL: several machines, one database), behind one
small interface with one schema and one migration runner for both.

Never used by the agent: a box has its own store (:mod:`haldor.store`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from haldor import migrations as steps
from haldor.errors import HaldorError


class Database:
    """One connection, used from one thread at a time (a lock makes sure)."""

    def __init__(self, kind: str, conn: Any, where: str) -> None:
        self.kind, self.conn, self.where = kind, conn, where
        self._lock = threading.RLock()

    @classmethod
    def open(cls, target: str) -> Database:
        if target.startswith(("postgresql://", "postgres://")):
            import psycopg  # only a service given a PostgreSQL URL pays for it

            try:
                pg = psycopg.connect(target, autocommit=True)
            except psycopg.Error as exc:
                raise HaldorError(f"{_safe(target)}: cannot connect: {' '.join(str(exc).split())}") from None
            return cls("postgresql", pg, _safe(target))
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        lite = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("PRAGMA busy_timeout=10000")
        return cls("sqlite", lite, target)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for many rows; the rows it changed (an insert that met a conflict
        and did nothing changed none)."""
        with self._lock:
            if self.kind == "postgresql":
                with self.conn.cursor() as cursor:
                    cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
                    return int(cursor.rowcount)
            return int(self.conn.executemany(sql, [tuple(r) for r in rows]).rowcount)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return list(self.conn.execute(self._sql(sql), tuple(params)).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self.kind == "postgresql":
                with self.conn.transaction():
                    yield
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def migrate(self, name: str, migrations: Sequence[str]) -> None:
        """Bring the schema ``name`` to the last of ``migrations`` (see :mod:`haldor.migrations`)."""
        with self._lock:
            steps.migrate(self.conn, self.kind, name, migrations)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _safe(url: str) -> str:
    """A URL fit for a log line: without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
