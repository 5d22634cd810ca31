"""The people who use the fleet's page: local users with argon2 password hashes, a
role each (a viewer reads, an operator acts), and a lockout after repeated wrong
passwords. Kept in the fleet's database, so every fleet process knows them."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from haldor.errors import HaldorError
from haldor.sql import Database

ROLES = ("viewer", "operator")
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
#: wrong passwords in a row before a user is locked out, and for how long
MAX_FAILURES, LOCKOUT_S = 5, 15 * 60
MIN_PASSWORD = 12

MIGRATIONS = [
    """
    CREATE TABLE operators (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
        locked_until {float}, created_at {float} NOT NULL);
    CREATE TABLE fleet_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # sessions end when this changes: at a logout, a remove, an add (a name used again), an unlock
    """
    ALTER TABLE operators ADD COLUMN generation TEXT
    """,
]


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: str
    #: a session made before this changed is over
    generation: str = ""

    @property
    def acts(self) -> bool:
        return self.role == "operator"


class OperatorError(HaldorError):
    pass


def _hasher():
    from argon2 import PasswordHasher  # the fleet's extra: never on a box

    return PasswordHasher()


class Operators:
    def __init__(self, db: Database, clock=time.time) -> None:
        self.db = db
        self.clock = clock
        db.migrate("operators", MIGRATIONS)
        self._dummy: str | None = None

    def add(self, name: str, password: str, role: str) -> None:
        if not NAME.fullmatch(name):
            raise OperatorError(f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise OperatorError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise OperatorError(f"the password must have at least {MIN_PASSWORD} characters")
        with self.db.transaction():
            if self.db.one("SELECT 1 FROM operators WHERE name = ?", [name]):
                raise OperatorError(f"user {name!r} exists already (remove it first)")
            self.db.execute(
                "INSERT INTO operators(name, hash, role, failures, created_at, generation) VALUES (?, ?, ?, 0, ?, ?)",
                [name, _hasher().hash(password), role, self.clock(), secrets.token_hex(8)],
            )

    def remove(self, name: str) -> bool:
        with self.db.transaction():
            found = self.db.one("SELECT 1 FROM operators WHERE name = ?", [name])
            self.db.execute("DELETE FROM operators WHERE name = ?", [name])
        return found is not None

    def list(self) -> list[tuple[str, str, bool]]:
        """(name, role, locked now)."""
        now = self.clock()
        return [
            (r[0], r[1], r[2] is not None and r[2] > now)
            for r in self.db.rows("SELECT name, role, locked_until FROM operators ORDER BY name")
        ]

    def any(self) -> bool:
        return self.db.one("SELECT 1 FROM operators LIMIT 1") is not None

    def get(self, name: str) -> Operator | None:
        row = self.db.one("SELECT name, role, generation FROM operators WHERE name = ?", [name])
        return Operator(row[0], row[1], row[2] or "") if row else None

    def end_sessions(self, name: str) -> None:
        """Every session of ``name`` ends (a logout ends them all: a copied cookie too)."""
        self.db.execute("UPDATE operators SET generation = ? WHERE name = ?", [secrets.token_hex(8), name])

    def unlock(self, name: str) -> bool:
        with self.db.transaction():
            found = self.db.one("SELECT 1 FROM operators WHERE name = ?", [name])
            self.db.execute("UPDATE operators SET failures = 0, locked_until = NULL WHERE name = ?", [name])
        return found is not None

    def check(self, name: str, password: str) -> tuple[Operator | None, str]:
        """(the operator, "") or (None, why: "unknown", "wrong", "locked" or "locked now").
        Every answer costs one argon2 verification, so the time tells nothing; a lockout
        stops new logins only (the user's open sessions go on)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = _hasher()
        now = self.clock()
        row = self.db.one("SELECT name, hash, role, failures, locked_until, generation FROM operators WHERE name = ?", [name])
        if row is None or (row[4] is not None and row[4] > now):
            self._dummy = self._dummy or hasher.hash(secrets.token_hex(16))
            try:
                hasher.verify(self._dummy, password)
            except (VerificationError, InvalidHashError):
                pass
            return None, "unknown" if row is None else "locked"
        try:
            hasher.verify(row[1], password)
        except (VerificationError, InvalidHashError):
            failures = int(row[3]) + 1
            locked = now + LOCKOUT_S if failures >= MAX_FAILURES else None
            self.db.execute(
                "UPDATE operators SET failures = ?, locked_until = ? WHERE name = ?", [0 if locked else failures, locked, name]
            )
            return None, "locked now" if locked else "wrong"
        self.db.execute("UPDATE operators SET failures = 0, locked_until = NULL WHERE name = ?", [name])
        return Operator(row[0], row[2], row[5] or ""), ""

    def locked(self, name: str) -> bool:
        row = self.db.one("SELECT locked_until FROM operators WHERE name = ?", [name])
        return bool(row and row[0] is not None and row[0] > self.clock())

    def secret(self, name: str) -> bytes:
        """A random secret made once and shared by every fleet process (the session key)."""
        self.db.executemany(
            "INSERT INTO fleet_secrets(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [[name, secrets.token_hex(32)]]
        )
        row = self.db.one("SELECT value FROM fleet_secrets WHERE name = ?", [name])
        assert row is not None
        return bytes.fromhex(row[0])
