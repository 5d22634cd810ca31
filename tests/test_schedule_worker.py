"""The schedule worker's child process: what its death and a changed data folder do."""

from __future__ import annotations

import glob
import json
import multiprocessing
import queue
import time
from pathlib import Path

from haldor.access.model import Policy
from haldor.agent.schedule_worker import ScheduleWorker, StoreOpening, handover_prefix

from .helpers import SITE, snapshot, wait_for, with_members


def _big(version: int) -> bytes:
    return json.dumps(with_members(version)).encode()


def _site(store) -> StoreOpening:
    return StoreOpening(str(store.data_dir), SITE, "Europe/Copenhagen", Policy(), {}, False, secret=store.secret_fingerprint)


def test_a_child_killed_once_asks_for_the_document_again_and_twice_rejects_it(store):
    worker = ScheduleWorker(_site(store), time.time)
    outcomes: queue.Queue = queue.Queue()
    try:
        payload = _big(43)
        for expected in ("failed", "rejected"):
            worker.submit(payload, outcomes.put)
            (child,) = wait_for(multiprocessing.active_children, timeout=20, what="the worker child")
            child.kill()
            outcome = outcomes.get(timeout=30)
            assert outcome.status == expected, outcome
            assert outcome.again == (expected == "failed")  # asked for again at once, the first time
        assert store.version is None  # nothing half-applied
        worker.submit(json.dumps(snapshot(44)).encode(), outcomes.put)  # the next one is applied
        assert outcomes.get(timeout=30).status == "applied"
    finally:
        worker.close()  # hung for ever in Debian 12's Python when a document went through the pool's queue
    assert glob.glob(handover_prefix(str(store.data_dir)) + "*") == []  # each handed-over document removed


def test_a_document_left_by_a_killed_agent_is_removed_by_the_next_worker(store):
    """Kept in memory (/dev/shm) for the child, it would stay there until the next boot."""
    left = Path(handover_prefix(str(store.data_dir)) + "x1")
    other = Path(handover_prefix(str(store.data_dir / "elsewhere")) + "x1")  # another agent's: not touched
    left.write_bytes(b"{}")
    other.write_bytes(b"{}")
    try:
        ScheduleWorker(_site(store), time.time).close()
        assert not left.exists() and other.exists()
    finally:
        left.unlink(missing_ok=True)
        other.unlink(missing_ok=True)


def test_the_child_makes_no_device_secret_and_no_database(store):
    """Deleted under a running agent, they are not made anew beside it (the loop's secret
    and open database would no longer be the ones on disk)."""
    worker = ScheduleWorker(_site(store), time.time)
    outcomes: queue.Queue = queue.Queue()
    try:
        for name in ("device.secret", "haldor.db"):
            target = store.data_dir / name
            kept = target.read_bytes()
            target.unlink()
            worker.submit(json.dumps(snapshot(43)).encode(), outcomes.put)
            outcome = outcomes.get(timeout=30)
            assert outcome.status == "failed" and "storage" in outcome.message, outcome
            assert not target.exists()
            target.write_bytes(kept)
    finally:
        worker.close()
