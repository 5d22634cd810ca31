"""What the agent knows about its storage, and what it does about it: the disk's room
and the reserve, the store's files under its feet, a store that cannot be read or is
damaged, and a device secret that no longer matches. One place, so that the status,
the screen and the events all say the same."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haldor.access.controller import Emit
from haldor.errors import StoreError
from haldor.protocol import Event
from haldor.store import DB_NAME, Store, recovery, reserve
from haldor.store.journal import Journal, StorageChanged

from .messages import Stop
from .periodic import Every

log = logging.getLogger(__name__)

#: a look is a few stat calls: often enough that a deleted file or a full disk is seen within seconds
DISK_CHECK_EVERY_S = 2.0
SECRET_REPLACED = "device secret replaced: cards and PINs are unknown until the snapshot is hashed anew"


class StorageWatch:
    def __init__(self, data_dir: str | Path, store: Store, journal: Journal, post: Callable[[Any], None]) -> None:
        self.data_dir = Path(data_dir)
        self.store = store
        self.journal = journal
        self._post = post
        self.checks = Every(DISK_CHECK_EVERY_S)
        #: the disk is (almost) full: why, while it lasts
        self.disk_low: str | None = None
        self._reserving = threading.Event()  # the reserve file is being written
        #: why the store could not be read, while that lasts
        self.read_fault: str | None = None
        #: the device secret changed: the schedule's hashes wait for a snapshot (Store.rehash_needed)
        self.rehash_needed = store.rehash_needed
        self._db_path = Path(store.data_dir or data_dir) / DB_NAME
        self._wal_path = self._db_path.with_name(DB_NAME + "-wal")
        #: the files as the agent opened them: another file in their place is not the agent's store
        self._known = {path: _file_id(path) for path in (self.data_dir, self._db_path, self._wal_path)}
        #: why the agent stopped to be started again (`haldor run` exits 75), or None
        self.restart_for: str | None = None
        #: the database is damaged (SQLite's words): the agent stops for the start to recover (exit 74)
        self.damage: str | None = None
        #: what the start recovered from (recovery.check), until a snapshot is applied
        self.recovered: str | None = None
        #: when the disk was last looked at, and its free bytes then (None: not yet, or it failed)
        self.free: tuple[float, int] | None = None

    def start(self) -> list:
        """At start: a replaced secret is said once (the store noted it when it opened)."""
        if not self.rehash_needed:
            return []
        log.error("device secret replaced: the stored card and PIN hashes no longer match; a snapshot is requested")
        return [Emit(Event.STORAGE_FAULT, reason=SECRET_REPLACED)]

    def check(self, now: float, *, changed: bool = False) -> list:
        """Every few seconds, and at once when the journal says storage changed."""
        if not (self.checks.due(now) or changed):
            return []
        self.checks.next_at = now + DISK_CHECK_EVERY_S
        return self._check_disk(now) + self.check_files()

    def _check_disk(self, now: float) -> list:
        """Keep the reserve while the disk has room; say so once when it has not. Only
        looks here (two stat calls); the reserve is written by a thread of its own, since
        writing and syncing megabytes on an SD card is no work for the decision loop."""
        data_dir = self.data_dir
        self.free = None
        try:
            free = reserve.free_bytes(data_dir)
            self.free = (now, free)
            if reserve.present(data_dir) or free >= 2 * reserve.SIZE:
                if not reserve.present(data_dir):
                    if not self._reserving.is_set():
                        self._reserving.set()
                        threading.Thread(target=self._keep_reserve, name="reserve", daemon=True).start()
                    if self.disk_low is not None:  # room again is said once the reserve is back, not before
                        return []
                if self.disk_low is not None:
                    log.warning("disk has room again")
                self.disk_low = None
                return []
        except OSError as exc:
            free, why = 0, f"disk cannot be checked: {exc}"
        else:
            why = f"disk almost full: {free // 1024} kB free"
        first = self.disk_low is None
        self.disk_low = why
        return [Emit(Event.STORAGE_FAULT, reason=why, extra={"storage": {"free_bytes": free}})] if first else []

    def free_now(self) -> int | None:
        """The disk's free bytes now (one stat call); None when it cannot be told."""
        try:
            return reserve.free_bytes(self.data_dir)
        except OSError:
            return None

    def _keep_reserve(self) -> None:
        try:
            kept = reserve.keep(self.data_dir)
        finally:
            self._reserving.clear()
        if kept:
            self._post(StorageChanged())  # looked at again at once: the disk's room is told with the reserve back

    def check_files(self) -> list:
        """The store's files are the agent's alone; a person or a script deleting them while
        it runs is put right: a deleted device secret is written back (the hashes were made
        with it), a deleted or replaced database makes the agent stop to be started again
        (systemd), after saving what it still has open in the deleted one's place."""
        try:
            moved = self._moved()
            if moved is not None:
                if self.restart_for is None:
                    self.restart_for = moved
                    self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # for what is saved on the way out
                    log.error("%s: the agent stops to be started again (what it has open is saved)", moved)
                    self._post(Stop())
                self.store.keep_secret()
                return []
            if self.store.keep_secret():
                why = "device secret was deleted while the agent ran: written back"
                log.error(why)
                return [Emit(Event.STORAGE_FAULT, reason=why)]
        except (OSError, StoreError) as exc:
            log.error("data folder cannot be checked: %s", exc)
        return []

    def _moved(self) -> str | None:
        """Why the store the agent has open is no longer the one on disk, or None."""
        for path, known in self._known.items():
            now = _file_id(path)
            if known is None:  # the -wal appears with the first write
                self._known[path] = now
            elif now != known:
                what = "the data folder" if path == self.data_dir else path.name
                return f"{what} was {'deleted' if now is None else 'replaced'} while the agent ran"
        return None

    def found_damage(self, why: str | None) -> list:
        """A read or write found the database damaged: no waiting helps, so the agent stops
        at once (every lock to its safe state) and says so to the next start, which sets the
        file aside and puts the good copy in its place (:mod:`haldor.store.recovery`).
        No effects: nothing can be stored."""
        if why is not None and self.damage is None:
            self.damage = why
            log.error("storage: the database is damaged (%s); the agent stops, the next start puts the good copy in place", why)
            recovery.mark_damaged(self._db_path, why)
            self._post(Stop())
        return []

    def read_failed(self, exc: Exception, what: str) -> None:
        if self.read_fault is None:
            log.error("storage: cannot read (%s); %s dropped", exc, what)
        self.read_fault = str(exc)

    def read_worked(self) -> None:
        if self.read_fault is not None:
            log.warning("storage can be read again")
            self.read_fault = None

    def status(self) -> dict[str, Any]:
        """Whether the store takes writes and can be read; what waits in memory meanwhile.
        ``since`` is an instant (seconds); the status document gives it as RFC 3339."""
        health = self.journal.health()
        if self.read_fault is not None:
            health.update(ok=False, fault=health["fault"] or f"cannot read: {self.read_fault}")
        if self.disk_low is not None:
            health.update(ok=False, fault=health["fault"] or self.disk_low)
        if self.rehash_needed:
            health.update(ok=False, fault=health["fault"] or SECRET_REPLACED)
        health["cards_work"] = not self.rehash_needed
        health["recovered"] = self.recovered
        return health


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
