"""The decision loop's writes, made beside it, so that a door never waits for the disk.

A badge is decided and its lock moved at once; what it leaves behind (its event, the
entry it counts) goes into a batch that this writer commits in order, one transaction
a batch, through its own connection. When storage is slow, locked by another process,
full, read-only or failing, the batches wait in memory and are tried again; they are
written, in order, when storage comes back, with the ``storage.fault`` event that says
what happened and for how long first among them. The memory is bounded: past
:data:`CAPACITY` waiting events, the oldest door movements go first, as in the outbox.

The loop hears of each commit by a :class:`Stored` message on its own queue, and only
then reports the events (listeners, command results): an event is in the database
before its effect is reported.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haldor.access.damage import damaged
from haldor.errors import StoreError
from haldor.protocol import DOOR_MOVEMENTS, Event
from haldor.records import record

from . import recovery, reserve
from .database import Store

log = logging.getLogger(__name__)

#: waiting events held in memory while storage fails (about 300 bytes each)
CAPACITY = 20_000
#: the first retry after a failure; doubled up to RETRY_MAX_S
RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0
#: dropped first when the memory is full (PROTOCOL's outbox rule)
DROPPABLE = DOOR_MOVEMENTS


@dataclass(eq=False)
class Batch:
    """What one input leaves behind, committed whole."""

    events: list[dict[str, Any]] = field(default_factory=list)
    #: other changes committed with the events, each called with the writer's store
    writes: list[Callable[[Store], Any]] = field(default_factory=list)
    #: carried back to the loop with :class:`Stored` (what to report once committed)
    after: list[Any] = field(default_factory=list)


@record
class Stored:
    """A message to the loop: ``batch`` is committed; ``events`` as published."""

    batch: Batch
    events: list[dict[str, Any]]


@record
class StorageChanged:
    """A message to the loop: storage failed or came back (see :meth:`Journal.health`);
    ``damage``: the failure says the database is damaged (:mod:`.damage`), no passing fault."""

    damage: str | None = None


@dataclass(slots=True)
class _Fault:
    reason: str
    since: float
    attempts: int = 1


class Journal:
    def __init__(
        self, store: Store, post: Callable[[Any], None], *, capacity: int = CAPACITY, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store  # its own connection, used by the writer thread only
        self._post = post
        self._capacity = capacity
        self._clock = clock
        self._queue: deque[Batch] = deque()
        self._cond = threading.Condition()
        self._fault: _Fault | None = None
        self._dropped = 0  # since the fault began
        self._waiting = 0  # events in the queue
        self._droppable = dict.fromkeys(DROPPABLE, 0)  # of which door movements
        self._closing = False
        self._seq_fd: int | None = None
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)

    # -- for the loop ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue ``batch`` behind every earlier one; never blocks on storage."""
        with self._cond:
            self._queue.append(batch)
            for event in batch.events:
                self._count(event, +1)
            self._bound()
            self._cond.notify_all()

    def health(self) -> dict[str, Any]:
        """``{"ok", "fault", "since", "waiting", "dropped"}`` for the status and the screen."""
        with self._cond:
            fault = self._fault
            return {
                "ok": fault is None,
                "fault": fault and fault.reason,
                "since": fault and fault.since,
                "waiting": self._waiting,
                "dropped": self._dropped,
            }

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted is committed; False if storage did not allow it in time."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what waits (for at most ``timeout`` seconds), then stop; what could not be
        written is named in the log."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():  # inside SQLite's busy wait: cut it short
            self._store.db.conn.interrupt()
            self._thread.join(1.0)
        with self._cond:
            lost = self._waiting
            self._queue.clear()
            self._waiting = 0
            self._droppable = dict.fromkeys(DROPPABLE, 0)
        if lost:
            log.error("storage: %d event(s) could not be written before stopping and are lost", lost)
        if self._thread.is_alive():
            # closing the connection under the thread that is inside it would crash the process:
            # it goes with the process
            log.error("storage: the journal's writer is still waiting on the database; left to the process's end")
            return
        if self._seq_fd is not None:
            os.close(self._seq_fd)
        try:
            self._store.close()
        except sqlite3.Error as exc:  # stopping goes on: the broker and the worker still need closing
            log.error("storage: closing the journal's connection: %s", exc)

    # -- the writer ------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                batch = self._queue[0]
                events = list(batch.events)
                fault = self._fault
            try:
                if fault is not None:  # what happened, first among what waited for it
                    events.insert(0, self._fault_event(fault))
                with self._store.write():
                    for write in batch.writes:
                        write(self._store)
                    stored = self._store.outbox.append(events, self._clock())
            except (sqlite3.Error, StoreError, OSError) as exc:
                if "full" in _reason(exc) and self._store.data_dir is not None and reserve.release(self._store.data_dir):
                    self._post(StorageChanged())  # the loop says the disk is almost full
                    continue  # at once, into the room just made
                if self._failed(exc):
                    self._post(StorageChanged(damaged(exc)))
                with self._cond:
                    if self._closing:
                        return
                    self._cond.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except Exception:  # a bug in one write must not hold back every later one
                log.exception("storage: a batch could not be written and is dropped")
                stored = []
            delay = RETRY_MIN_S
            with self._cond:
                self._fault = None
                if fault is not None:
                    self._dropped = 0
            if fault is not None:
                log.warning(
                    "storage works again after %.0f s; the events made meanwhile are written", self._clock() - fault.since
                )
                self._post(StorageChanged())
            if stored:
                self._mark(stored[-1]["seq"])
            self._post(Stored(batch, stored))
            with self._cond:  # only now: whoever waited in flush() finds the Stored message queued
                if self._queue and self._queue[0] is batch:  # close() may have given up on it meanwhile
                    self._queue.popleft()
                    for event in batch.events:
                        self._count(event, -1)
                self._cond.notify_all()

    def _mark(self, seq: int) -> None:
        """The last ``seq`` written, beside the database: a corrupt database replaced by its
        copy continues after it (:mod:`recovery`). Not synced: a hint, cheap on every commit."""
        try:
            if self._seq_fd is None and self._store.data_dir is not None:
                self._seq_fd = os.open(self._store.data_dir / recovery.SEQ_MARK, os.O_WRONLY | os.O_CREAT, 0o600)
            if self._seq_fd is not None:
                os.pwrite(self._seq_fd, b"%020d\n" % seq, 0)
        except OSError as exc:
            log.debug("seq mark not written: %s", exc)

    def _failed(self, exc: BaseException) -> bool:
        """Note a failed write; True when it begins a fault."""
        reason = _reason(exc)
        with self._cond:
            if self._fault is not None:
                self._fault.attempts += 1
                if self._fault.reason == reason:
                    return False
                self._fault.reason = reason
            else:
                self._fault = _Fault(reason, self._clock())
            waiting = self._waiting
        log.error("storage: cannot write (%s); %d event(s) wait in memory, decisions go on", reason, waiting)
        return True

    def _fault_event(self, fault: _Fault) -> dict[str, Any]:
        now = self._clock()
        return {
            "type": Event.STORAGE_FAULT,
            "reason": fault.reason,
            "at_ts": fault.since,
            "extra": {
                "storage": {
                    "since": self._store.iso(fault.since),
                    "until": self._store.iso(now),
                    "duration_s": round(now - fault.since, 1),
                    "attempts": fault.attempts,
                    "dropped": self._dropped,
                }
            },
        }

    def _bound(self) -> None:
        """Past the capacity, drop the oldest door movements, then the oldest events; a batch
        left with nothing to write or report goes too. The head is being written: left alone.
        Cheap per call: the oldest are dropped first, so the walk stops near the front."""
        excess = self._waiting - self._capacity
        if excess <= 0:
            return
        for droppable in (DROPPABLE, None):
            if droppable is not None and not any(self._droppable.values()):
                continue
            emptied = []
            for batch in itertools.islice(self._queue, 1, None):
                if excess <= 0:
                    break
                kept = []
                for event in batch.events:
                    if excess > 0 and (droppable is None or event["type"] in droppable):
                        excess -= 1
                        self._count(event, -1)
                        self._dropped += 1
                    else:
                        kept.append(event)
                batch.events[:] = kept
                if not (batch.events or batch.writes or batch.after):
                    emptied.append(batch)
            for batch in emptied:
                self._queue.remove(batch)  # near the front: found at once
            if excess <= 0:
                return

    def _count(self, event: dict[str, Any], sign: int) -> None:
        self._waiting += sign
        if event["type"] in DROPPABLE:
            self._droppable[event["type"]] += sign


def _reason(exc: BaseException) -> str:
    """A short, stable reason: SQLite's own words ("database or disk is full")."""
    text = str(exc.__cause__ or exc) if isinstance(exc, StoreError) else str(exc)
    return text.strip() or type(exc).__name__
