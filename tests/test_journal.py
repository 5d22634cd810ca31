"""The journal: the loop's writes beside it, through storage that fails and comes back.
SQLite's own "database or disk is full" is made by capping the writer's file size
(PRAGMA max_page_count): the same error a full disk gives, on any machine."""

from __future__ import annotations

import queue
import time

from haldor.access.model import Policy
from haldor.store import Store
from haldor.store.journal import Batch, Journal, StorageChanged, Stored

from .helpers import SITE, wait_for


def _journal(tmp_path, capacity: int = 100) -> tuple[Journal, queue.Queue, Store]:
    posted: queue.Queue = queue.Queue()
    writer = Store.open(tmp_path / "data", SITE, "Europe/Copenhagen", Policy())
    journal = Journal(writer, posted.put, capacity=capacity)
    journal.start()
    return journal, posted, writer


def _messages(posted: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(posted.get_nowait())
        except queue.Empty:
            return out


def _full(writer: Store) -> None:
    pages = writer.db.execute("PRAGMA page_count").fetchone()[0]
    writer.db.execute(f"PRAGMA max_page_count = {pages}")


def _event(kind: str, n: int) -> dict:
    return {"type": kind, "door": "main", "reason": str(n), "at_ts": time.time()}


def test_writes_wait_through_a_full_store_and_arrive_in_order_with_the_fault_first(tmp_path, store):
    journal, posted, writer = _journal(tmp_path)
    try:
        journal.submit(Batch(events=[_event("access.granted", 0)]))
        assert journal.flush(5)
        _full(writer)
        # enough events to need new pages
        for n in range(1, 41):
            journal.submit(Batch(events=[_event("access.granted", n)], writes=[lambda s, n=n: s.set_meta(f"k{n}", "x" * 200)]))
        wait_for(lambda: not journal.health()["ok"], what="fault noticed")
        health = journal.health()
        assert health["fault"] == "database or disk is full" and health["waiting"] > 0
        assert not journal.flush(0.2)
        writer.db.execute("PRAGMA max_page_count = 1073741823")  # room again
        assert journal.flush(10)
        assert journal.health()["ok"]
    finally:
        journal.close()
    events = store.outbox.events(limit=1000)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    granted = [int(e["reason"]) for e in events if e["type"] == "access.granted"]
    assert granted == list(range(41))  # every one, in order
    (fault,) = [e for e in events if e["type"] == "storage.fault"]
    assert fault["reason"] == "database or disk is full" and fault["storage"]["duration_s"] >= 0
    assert events.index(fault) < [e["reason"] for e in events].index(str(granted[-1]))
    assert store.meta("k40") == "x" * 200  # the other writes came with them
    messages = _messages(posted)
    assert sum(isinstance(m, StorageChanged) for m in messages) == 2  # failed, then works again
    reported = [e["reason"] for m in messages if isinstance(m, Stored) for e in m.events if e["type"] == "access.granted"]
    assert reported == [str(n) for n in range(41)]


def test_memory_is_bounded_and_door_movements_go_first(tmp_path, store):
    journal, posted, writer = _journal(tmp_path, capacity=10)
    _full(writer)
    try:
        journal.submit(Batch(events=[_event("access.granted", 0)], writes=[lambda s: s.set_meta("big", "x" * 100_000)]))
        wait_for(lambda: not journal.health()["ok"], what="fault noticed")
        for n in range(1, 8):
            journal.submit(Batch(events=[_event("door.opened", n), _event("door.closed", n)]))
        journal.submit(Batch(events=[_event("door.forced", 99)]))
        health = journal.health()
        assert health["waiting"] == 10 and health["dropped"] == 6
        writer.db.execute("PRAGMA max_page_count = 1073741823")
        assert journal.flush(10)
    finally:
        journal.close()
    kept = [(e["type"], e["reason"]) for e in store.outbox.events(limit=100) if e["type"] != "storage.fault"]
    assert kept[0] == ("access.granted", "0") and kept[-1] == ("door.forced", "99")  # never dropped
    assert [r for t, r in kept if t.startswith("door.") and t != "door.forced"] == ["4", "4", "5", "5", "6", "6", "7", "7"]
    (fault,) = [e for e in store.outbox.events(limit=100) if e["type"] == "storage.fault"]
    assert fault["storage"]["dropped"] == 6


def test_a_long_fault_keeps_memory_bounded_in_batches_too(tmp_path, store):
    """30,000 door movements while nothing can be written: the batches they came in go
    with their events, so memory and the cost of each submit stay flat."""
    journal, posted, writer = _journal(tmp_path, capacity=100)
    _full(writer)
    try:
        journal.submit(Batch(events=[_event("access.granted", 0)], writes=[lambda s: s.set_meta("big", "x" * 100_000)]))
        wait_for(lambda: not journal.health()["ok"], what="fault noticed")
        for n in range(30_000):
            journal.submit(Batch(events=[_event("door.opened" if n % 2 else "door.closed", n)]))
        assert journal.health()["waiting"] == 100
        assert len(journal._queue) <= 101  # the head being written, and one batch an event
        writer.db.execute("PRAGMA max_page_count = 1073741823")
        assert journal.flush(10)
    finally:
        journal.close()
    assert len([e for e in store.outbox.events(limit=1000) if e["type"].startswith("door.")]) == 99
