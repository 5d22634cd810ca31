"""The store's SQLite connection with the few verbs the store uses.

sqlite-utils had these; it also brings click, dateutil and pluggy, 10 MB of a small Pi's
memory at every start of the agent, for a handful of verbs. The schema grows by SQL steps
(:mod:`haldor.store.migrations`), so the box needs no more than the standard library.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

#: statements that open or end a transaction themselves: never committed behind them
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


class Connection:
    """One sqlite3 connection. A write outside a transaction is committed at once (as
    sqlite-utils did), so a statement never leaves an implicit transaction open."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> sqlite3.Cursor:
        was_in_transaction = self.conn.in_transaction
        try:
            cursor = self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)
        except Exception:
            if not was_in_transaction and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")  # the failed statement's implicit transaction
            raise
        if (
            not was_in_transaction
            and self.conn.in_transaction
            and cursor.description is None
            and _first_keyword(sql) not in _TRANSACTION_CONTROL
        ):
            self.conn.execute("COMMIT")
        return cursor

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Connection]:
        """A transaction; nested in one, a savepoint."""
        if self.conn.in_transaction:
            savepoint = f"haldor_{secrets.token_hex(8)}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:  # an error may have ended the whole transaction
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            return
        self.conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.execute("COMMIT")

    def rows(self, table: str, where: str | None = None, parameters: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """The rows of ``table`` (optionally ``where``) as dictionaries, in rowid order."""
        sql = f'SELECT * FROM "{table}"' + (f" WHERE {where}" if where else "")
        cursor = self.conn.execute(sql, parameters)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def close(self) -> None:
        self.conn.close()


def _first_keyword(sql: str) -> str:
    for line in sql.lstrip().splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line.split(None, 1)[0].rstrip(";").upper()
    return ""
