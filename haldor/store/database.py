"""The local SQLite store: the schedule cache, booking activity, the event outbox and
the command log, each a part of its own over the one connection (``store.schedule``,
``store.activity``, ``store.outbox``, ``store.commands``).

A thin repository over one SQLite connection (:mod:`.connection`). Applying a document is one transaction, so a
crash (even kill -9) leaves the previous schedule or the new one, never a mix.
Cards and PINs are kept only as HMAC-SHA256 under a per-device secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from haldor import clock
from haldor.access.model import Policy
from haldor.errors import StoreError
from haldor.migrations import migrate

from . import migrations, reserve
from .activity import Activity
from .command_log import CommandLog
from .connection import Connection
from .outbox import Outbox
from .schedule_tables import ScheduleTables
from .secret import SECRET_NAME, device_secret, fingerprint, write_secret

log = logging.getLogger(__name__)

DB_NAME = "haldor.db"
#: the policy in force until a schedule brings its own, when the configuration names none
DEFAULT_POLICY = Policy()


class Store:
    """One device's database. Open it with :meth:`open`; close it with :meth:`close`."""

    def __init__(self, db: Connection, secret: bytes, site: str, timezone: str, default_policy: Policy) -> None:
        self.db = db
        self._secret = secret
        self._card_mac = hmac.new(secret, b"card\x00", hashlib.sha256)
        self._pin_mac = hmac.new(secret, b"pin\x00", hashlib.sha256)
        self.site = site
        self.default_timezone = timezone
        self.default_policy = default_policy
        self.data_dir: Path | None = None
        self.schedule = ScheduleTables(self)
        self.activity = Activity(self)
        self.outbox = Outbox(self)
        self.commands = CommandLog(self)

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        site: str,
        timezone: str = "Europe/Copenhagen",
        default_policy: Policy = DEFAULT_POLICY,
        *,
        existing: str | None = None,
    ) -> Store:
        """``existing``: the fingerprint of the device secret the agent started with. Then the
        store must be there as it was: no secret and no database is made (a process beside
        the agent making them would leave the agent and its own store at odds)."""
        path = Path(data_dir)
        db_path = path / DB_NAME
        try:
            if existing is None:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if reserve.free_bytes(path) < reserve.LOW_WATER:  # SQLite needs room even to read
                reserve.release(path)
            secret = device_secret(path / SECRET_NAME, create=existing is None)
            if existing is None:
                db_path.touch(mode=0o600, exist_ok=True)  # hashes only, but nobody else's business
                conn = sqlite3.connect(db_path, timeout=10, check_same_thread=False)
            else:
                if fingerprint(secret) != existing:
                    raise StoreError(f"{path / SECRET_NAME}: the device secret changed since the agent started")
                conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=10, check_same_thread=False)
            db = Connection(conn)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed event survives a power cut, not only a crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=OFF")
            # a store made before haldor_schema counted its version counted it in SQLite's header
            before = conn.execute("PRAGMA user_version").fetchone()[0]
            migrate(conn, "sqlite", migrations.NAME, migrations.MIGRATIONS, counted_before=before)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        store = cls(db, secret, site, timezone, default_policy)
        store.data_dir = path
        store._check_secret()
        return store

    def _check_secret(self) -> None:
        """A device secret that is not the one the hashes were made with (lost, restored from
        another box, replaced) makes every card unknown: note it, so that the agent says so,
        asks for a snapshot and takes the same version again to hash anew."""
        mine = self.secret_fingerprint
        stored = self.meta("secret_fingerprint")
        if stored == mine:
            return
        try:
            with self.write():
                if stored is not None and self.meta("schedule_version") is not None:
                    self.put_meta("rehash_needed", True)
                self.put_meta("secret_fingerprint", mine)
        except sqlite3.Error as exc:  # a full disk: said again at the next start
            log.error("device secret fingerprint not stored: %s", exc)

    @property
    def secret_fingerprint(self) -> str:
        return fingerprint(self._secret)

    def keep_secret(self) -> bool:
        """Write the device secret back if its file is gone (deleted while the agent ran):
        the hashes in the store were made with it. True when it was written."""
        if self.data_dir is None or (self.data_dir / SECRET_NAME).exists():
            return False
        return write_secret(self.data_dir / SECRET_NAME, self._secret)

    @property
    def rehash_needed(self) -> bool:
        """The device secret changed since the schedule was hashed: the same version is taken again."""
        return bool(self.meta("rehash_needed"))

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction that takes the write lock at once (BEGIN IMMEDIATE).

        The outbox pump writes through its own connection. A deferred transaction that
        read first and then wants to write would fail at once with "database is
        locked" when the other connection committed in between; an immediate one
        waits for the lock instead. Nested blocks become savepoints.
        """
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.conn.rollback()
            raise
        else:
            self.db.conn.execute("COMMIT")

    def card_hash(self, card: str) -> str:
        return self._keyed(self._card_mac, card)

    def pin_hash(self, pin: str) -> str:
        return self._keyed(self._pin_mac, pin)

    @staticmethod
    def _keyed(prefix: hmac.HMAC, text: str) -> str:
        mac = prefix.copy()  # the keyed state is computed once, not per card of a snapshot
        mac.update(text.encode())
        return mac.hexdigest()

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.write():
            self.put_meta(key, value)

    def put_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, json.dumps(value)])

    @property
    def version(self) -> int | None:
        version: int | None = self.meta("schedule_version")
        return version

    @property
    def timezone(self) -> str:
        return self.meta("timezone") or self.default_timezone

    @property
    def policy(self) -> Policy:
        stored = self.meta("policy")
        return self.default_policy if stored is None else Policy(**stored)

    def local_day(self, now: float) -> tuple[float, float]:
        """The local calendar day of ``now`` at the site as instants (23 or 25 hours on DST days)."""
        return clock.local_day(now, self.timezone)

    def iso(self, ts: float) -> str:
        """An instant as RFC 3339 in the site's local time (what people at the site read)."""
        return datetime.fromtimestamp(ts, ZoneInfo(self.timezone)).isoformat(timespec="milliseconds")

    def iter_table(self, table: str) -> Iterator[dict[str, Any]]:
        return self.db.rows(table)

    def names(self, table: str) -> dict[str, str]:
        """Id -> display name of the schedule's ``rooms`` or ``associations``: the fleet
        shows names, and has them only from what the box sends."""
        if table not in ("rooms", "associations"):
            raise ValueError(table)
        return {r[0]: r[1] or r[0] for r in self.db.execute(f"SELECT id, name FROM {table}")}
