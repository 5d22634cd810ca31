"""The people who use the fleet's page: local users with argon2 password hashes, a
role each (a viewer reads, an operator acts), and a lockout after repeated wrong
passwords that a stranger cannot turn against a user (see :meth:`Operators.check`).
Kept in the fleet's database, so every fleet process knows them."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from haldor.errors import HaldorError
from haldor.records import record
from haldor.sql import Database

from .login_limits import SourceLimits

#: a viewer reads, an operator acts on doors, a registrar also enrols and revokes boxes (keeps the register)
ROLES = ("viewer", "operator", "registrar")
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
#: wrong passwords in a row before a user is locked out, and for how long
MAX_FAILURES, LOCKOUT_S = 5, 15 * 60
#: an address the user logged in from within this long is one of the user's own
KNOWN_S = 90 * 86400.0
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
    # the addresses a user logged in from, each with its own count of wrong passwords;
    # operators.failures and locked_until now count those from every other address
    """
    CREATE TABLE operator_sources (
        name TEXT NOT NULL, source TEXT NOT NULL, last_ok {float} NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
        locked_until {float}, PRIMARY KEY (name, source))
    """,
]


@record
class Operator:
    name: str
    role: str
    #: a session made before this changed is over
    generation: str = ""

    @property
    def acts(self) -> bool:
        return self.role in ("operator", "registrar")

    @property
    def enrols(self) -> bool:
        return self.role == "registrar"


class OperatorError(HaldorError):
    pass


#: an operators row's "locked now", from anywhere or from one of its own addresses (two parameters: now)
_LOCKED = (
    "(locked_until IS NOT NULL AND locked_until > ?) OR EXISTS (SELECT 1 FROM operator_sources o "
    "WHERE o.name = operators.name AND o.locked_until IS NOT NULL AND o.locked_until > ?)"
)


def _hasher():
    from argon2 import PasswordHasher  # the fleet's extra: never on a box

    return PasswordHasher()


class Operators:
    def __init__(self, db: Database, clock=time.time, hasher: Any = None) -> None:
        """``hasher``: argon2's ``PasswordHasher`` that makes new hashes (its defaults when
        None; a test counting lockouts takes argon2's cheapest profile). A hash is always
        verified at the cost written in it."""
        self.db = db
        self.clock = clock
        self.hasher = hasher
        db.migrate("operators", MIGRATIONS)
        self.sources = SourceLimits(db)
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
            self.db.execute("DELETE FROM operator_sources WHERE name = ?", [name])  # another person's addresses
            self.db.execute(
                "INSERT INTO operators(name, hash, role, failures, created_at, generation) VALUES (?, ?, ?, 0, ?, ?)",
                [name, (self.hasher or _hasher()).hash(password), role, self.clock(), secrets.token_hex(8)],
            )

    def remove(self, name: str) -> bool:
        with self.db.transaction():
            found = self.db.one("SELECT 1 FROM operators WHERE name = ?", [name])
            self.db.execute("DELETE FROM operators WHERE name = ?", [name])
            self.db.execute("DELETE FROM operator_sources WHERE name = ?", [name])
        return found is not None

    def list(self) -> list[tuple[str, str, bool]]:
        """(name, role, locked now: from anywhere or from one of its own addresses)."""
        now = self.clock()
        return [
            (r[0], r[1], bool(r[2]))
            for r in self.db.rows(f"SELECT name, role, {_LOCKED} FROM operators ORDER BY name", [now, now])
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
        """Every lock of the user ends, and its own addresses are no longer refused."""
        with self.db.transaction():
            found = self.db.one("SELECT 1 FROM operators WHERE name = ?", [name])
            self.db.execute("UPDATE operators SET failures = 0, locked_until = NULL WHERE name = ?", [name])
            self.db.execute("UPDATE operator_sources SET failures = 0, locked_until = NULL WHERE name = ?", [name])
            own = [r[0] for r in self.db.rows("SELECT source FROM operator_sources WHERE name = ?", [name])]
        self.sources.lift(own)
        return found is not None

    def check(self, name: str, password: str, source: str = "127.0.0.1") -> tuple[Operator | None, str]:
        """(the operator, "") or (None, why: "unknown", "wrong", "locked", "locked now", or
        "blocked": the source failed too often, :class:`SourceLimits`).

        Wrong passwords count apart by where they come from, so a stranger who knows a name
        cannot lock its user out. From one of the user's own addresses (a login from it in
        the last 90 days) five in a row lock that address for that user; from all other
        addresses together, five in a row lock the user for every address but its own. A
        guesser with many addresses gets five tries a quarter of an hour; the user logs in where
        it always does, as a bank or a mail service lets a known device in during an attack.
        Every answer costs one argon2 verification, so the time tells nothing; a lockout
        stops new logins only (the user's open sessions go on)."""
        now = self.clock()
        row = self.db.one("SELECT name, hash, role, failures, locked_until, generation FROM operators WHERE name = ?", [name])
        own = self._own(name, source, now) if row else None
        lock = (own[1] if own else row[4]) if row else None
        why = "blocked" if self.sources.blocked(source, now) else "unknown" if row is None else ""
        if why or (lock is not None and lock > now):
            self._dummy = self._dummy or (self.hasher or _hasher()).hash(secrets.token_hex(16))
            _verified(self._dummy, password)
            if why != "blocked":  # a refusal runs out on time: guessing on meanwhile does not make it longer
                self.sources.failed(source, now)
            return None, why or "locked"
        assert row is not None
        if not _verified(row[1], password):
            self.sources.failed(source, now)
            return None, self._failed(name, source if own else None, now)
        with self.db.transaction():
            self.db.execute("UPDATE operators SET failures = 0 WHERE name = ?", [name])  # a lock from elsewhere stays
            self.db.execute(
                "INSERT INTO operator_sources(name, source, last_ok, failures) VALUES (?, ?, ?, 0) "
                "ON CONFLICT (name, source) DO UPDATE SET last_ok = excluded.last_ok, failures = 0, locked_until = NULL",
                [name, source, now],
            )
            self.db.execute("DELETE FROM operator_sources WHERE name = ? AND last_ok < ?", [name, now - KNOWN_S])
        self.sources.succeeded(source)
        return Operator(row[0], row[2], row[5] or ""), ""

    def _own(self, name: str, source: str, now: float) -> tuple | None:
        """(failures, locked_until) from ``source`` when it is one of the user's own addresses."""
        return self.db.one(
            "SELECT failures, locked_until FROM operator_sources WHERE name = ? AND source = ? AND last_ok >= ?",
            [name, source, now - KNOWN_S],
        )

    def _failed(self, name: str, own: str | None, now: float) -> str:
        """Count a wrong password: against the user's own address ``own``, or else against
        every other one; "locked now" when it is the fifth in a row."""
        table, where, keys = (
            ("operator_sources", "name = ? AND source = ?", [name, own]) if own else ("operators", "name = ?", [name])
        )
        with self.db.transaction():
            lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""  # another fleet process counts too
            row = self.db.one(f"SELECT failures FROM {table} WHERE {where}{lock}", keys)
            failures = (int(row[0]) if row else 0) + 1
            locked = now + LOCKOUT_S if failures >= MAX_FAILURES else None
            self.db.execute(
                f"UPDATE {table} SET failures = ?, locked_until = ? WHERE {where}", [0 if locked else failures, locked, *keys]
            )
        return "locked now" if locked else "wrong"

    def locked(self, name: str) -> bool:
        """Locked from anywhere, or from one of its own addresses."""
        now = self.clock()
        row = self.db.one(f"SELECT {_LOCKED} FROM operators WHERE name = ?", [now, now, name])
        return bool(row and row[0])

    def secret(self, name: str) -> bytes:
        """A random secret made once and shared by every fleet process (the session key)."""
        self.db.executemany(
            "INSERT INTO fleet_secrets(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [[name, secrets.token_hex(32)]]
        )
        row = self.db.one("SELECT value FROM fleet_secrets WHERE name = ?", [name])
        assert row is not None
        return bytes.fromhex(row[0])


def _verified(hashed: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(hashed, password))
    except (VerificationError, InvalidHashError):
        return False
