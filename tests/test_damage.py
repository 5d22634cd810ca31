"""Damage while the agent runs: a store broken under it, a snapshot refused for space.
`haldor run` as a child process, a real Mosquitto, real SQLite files, a real full disk
(tmpfs); the test restarts the agent where systemd would."""

from __future__ import annotations

import queue
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from haldor.access.damage import WORDS, damaged
from haldor.access.model import Policy
from haldor.agent import refused
from haldor.agent.messages import Command
from haldor.agent.run import EXIT_DAMAGED
from haldor.drivers.base import CardRead
from haldor.errors import StoreError
from haldor.protocol import Event
from haldor.store import Store, recovery
from haldor.store.journal import Batch, Journal, StorageChanged

from .broker import Publisher, Watcher
from .helpers import CARD, wait_for, with_members
from .rig import AgentProcess, Rig, around_now, public_key, running
from .test_faults import KID, _doors_work, _fill

GARBAGE = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
MiB = 1024 * 1024


def _sqlite_error(code: int, text: str) -> sqlite3.DatabaseError:
    exc = sqlite3.DatabaseError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    "exc, said",
    [
        (_sqlite_error(11, "database disk image is malformed"), "database disk image is malformed"),
        (_sqlite_error(26, "file is not a database"), "file is not a database"),
        (_sqlite_error(779, "index corrupt"), "index corrupt"),  # SQLITE_CORRUPT_INDEX: an extended code
        (
            StoreError("data: cannot open the store: file is not a database"),
            "data: cannot open the store: file is not a database",
        ),
        (sqlite3.OperationalError("database is locked"), None),
        (sqlite3.OperationalError("database or disk is full"), None),
        (sqlite3.OperationalError("disk I/O error"), None),
        (OSError(28, "No space left on device"), None),
    ],
)
def test_damage_is_told_from_a_passing_fault(exc, said):
    assert damaged(exc) == said


def test_damage_wrapped_in_a_store_error_is_found_by_its_code():
    try:
        try:
            raise _sqlite_error(11, "malformed")
        except sqlite3.DatabaseError as inner:
            raise StoreError("data: cannot read") from inner
    except StoreError as exc:
        assert damaged(exc) == "malformed"


DOC, OTHER = b"snapshot 43", b"snapshot 44"
KEPT = refused.Kept(DOC, failed_at=100.0, free_then=0)


@pytest.mark.parametrize(
    "kept, document, status, retry, expected",
    [
        (None, DOC, "failed", True, refused.Kept(DOC, 200.0, 5)),  # the store could not take it: kept
        (KEPT, DOC, "failed", True, refused.Kept(DOC, 200.0, 5, attempts=2)),  # once more: counted
        (KEPT, OTHER, "failed", True, refused.Kept(OTHER, 200.0, 5)),  # the latest only
        (KEPT, OTHER, "applied", False, None),  # anything applied supersedes it
        (KEPT, DOC, "stale", False, None),  # its own end
        (KEPT, DOC, "rejected", False, None),
        (KEPT, OTHER, "rejected", False, KEPT),  # another's end leaves it be
        (None, DOC, "failed", False, None),  # failed for another reason (the worker died): asked for again instead
    ],
)
def test_what_is_kept_after_an_outcome(kept, document, status, retry, expected):
    assert refused.after(kept, document, status=status, retry=retry, now=200.0, free=5) == expected


@pytest.mark.parametrize(
    "kept, now, free, disk_low, due",
    [
        (KEPT, 101.0, (101.0, 2 * MiB), False, True),  # the disk has room again
        (KEPT, 101.0, (101.0, 2 * MiB), True, False),  # not while the disk is almost full
        (KEPT, 101.0, (100.0, 2 * MiB), False, False),  # a look from before the failure tells nothing
        (KEPT, 101.0, (101.0, MiB // 2), False, False),  # too little freed
        (KEPT, 129.0, None, False, False),
        (KEPT, 130.0, None, False, True),  # the backoff is over
        (refused.Kept(DOC, 100.0, 0, attempts=3), 219.0, None, False, False),  # 30 s doubled twice
        (refused.Kept(DOC, 100.0, 0, attempts=3), 220.0, None, False, True),
        (refused.Kept(DOC, 100.0, 0, attempts=20), 400.0, None, False, True),  # at most 5 min
        (refused.trying(KEPT), 1000.0, (1000.0, 10 * MiB), False, False),  # with the worker already
        (None, 1000.0, None, False, False),
    ],
)
def test_when_a_kept_document_is_tried_again(kept, now, free, disk_low, due):
    assert refused.due(kept, now, free=free, disk_low=disk_low) is due


def test_a_mark_left_by_the_agent_sets_a_sound_looking_database_aside(tmp_path):
    """SQLite drops a -wal it cannot read: the file then looks sound, and what the -wal held
    is gone. The mark says it was damaged; the copy takes its place, and the mark goes."""
    db = tmp_path / "haldor.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT)")
        conn.execute("INSERT INTO meta VALUES ('schedule_version', '41')")
    conn.close()
    shutil.copy(db, recovery.good_copy(db))
    recovery.mark_damaged(db, "file is not a database")
    message = recovery.check(db)
    assert message is not None and message.startswith("database damaged while the agent ran (file is not a database)")
    assert len(list(tmp_path.glob("haldor.db.corrupt-*"))) == 1
    assert not (tmp_path / recovery.DAMAGED_MARK).exists()
    assert recovery.check(db) is None  # the next start is an ordinary one


def test_a_damaged_copy_is_set_aside_too_and_the_start_goes_on_empty(tmp_path):
    """Restoring a damaged copy failed at every start: systemd gave up, every door shut."""
    db = tmp_path / "haldor.db"
    db.write_bytes(GARBAGE[:8192])
    recovery.good_copy(db).write_bytes(b"SQLite format 3\x00" + GARBAGE[:8192])
    message = recovery.check(db)
    assert message is not None and "no good copy (it is damaged too" in message and "starting empty" in message
    assert not db.exists() and not recovery.good_copy(db).exists()
    assert len(list(tmp_path.glob("haldor.good.db.corrupt-*"))) == 1


def test_a_damaged_store_stops_the_loop_with_every_lock_safe(tmp_path):
    """The loop on mock pins, its store on disk: a door held open and a magnet energised
    when the -wal is overwritten. The read that finds it refuses the card, the loop stops,
    every lock goes to its safe state and the mark for the next start is left."""
    rig = Rig(tmp_path)
    try:
        agent = rig.agent()
        thread = running(agent)
        agent.post(Command("hold_open", "main"))
        agent.post(Command("lock", "gym-a"))
        wait_for(lambda: rig.pin(17).state and not rig.pin(18).state, what="main unlocked, gym-a magnet on")
        db = Path(rig.cfg.data_dir) / "haldor.db"
        wait_for(lambda: agent.journal.flush(5) and Path(f"{db}-wal").stat().st_size > 0, what="the modes stored")
        _overwrite_wal(db)
        agent.post(CardRead("main-in", "uid:0BADCAFE"))
        thread.join(10)
        assert not thread.is_alive() and thread.errors == []  # type: ignore[attr-defined]
        assert agent.storage.damage in WORDS  # which, depends on the page the read meets first
        assert not rig.pin(17).state  # strike unpowered: locked
        assert rig.pin(18).state  # active-low magnet output high: released
        assert (Path(rig.cfg.data_dir) / recovery.DAMAGED_MARK).read_text().strip() == agent.storage.damage
    finally:
        rig.close()


def test_a_write_that_finds_the_store_damaged_tells_the_loop(tmp_path):
    """The journal's writes waited and retried as for a locked database: now the loop hears
    that no waiting helps (StorageChanged.damage)."""
    loop_store = Store.open(tmp_path, "s", "Europe/Copenhagen", Policy())
    inbox: queue.Queue = queue.Queue()
    journal = Journal(Store.open(tmp_path, "s", "Europe/Copenhagen", Policy()), inbox.put)
    journal.start()
    try:
        journal.submit(Batch(events=[{"type": Event.AGENT_STARTED}]))
        assert journal.flush(5)
        loop_store.set_meta("x", 1)  # another connection's commit: the journal reads afresh
        _overwrite_wal(tmp_path / "haldor.db")
        journal.submit(Batch(events=[{"type": Event.AGENT_STARTED}]))
        seen: list = []
        wait_for(lambda: seen.append(inbox.get(timeout=1)) or isinstance(seen[-1], StorageChanged), what="StorageChanged")
        assert seen[-1].damage in WORDS
    finally:
        journal.close(0)
        loop_store.close()


@pytest.fixture
def site(tmp_path, broker, signing_key):
    """A running agent with a snapshot holding a booking on now, and its good copy made."""
    agent = AgentProcess(tmp_path, port=broker.port, keys={KID: public_key(signing_key)})
    watcher = Watcher(broker.port)
    publisher = Publisher(broker.port, signing_key)
    agent.start()
    wait_for(lambda: any(s["online"] for s in watcher.docs("status")), timeout=20, what="agent online")
    publisher.send("schedule", around_now(42), retain=True)
    wait_for(lambda: watcher.events("sync.applied"), timeout=10, what="schedule applied")
    wait_for((agent.data_dir / "haldor.good.db").exists, what="the good copy")
    yield agent, watcher, publisher
    publisher.close()
    watcher.close()
    agent.close()


def _overwrite_wal(db: Path) -> None:
    """Garbage over the whole -wal, in place (the same file, as `dd conv=notrunc` does)."""
    wal = Path(f"{db}-wal")
    size = wal.stat().st_size
    assert size > 0
    with open(wal, "r+b") as f:
        f.write((GARBAGE * (size // len(GARBAGE) + 1))[:size])


def _corrupt_credentials_page(db: Path) -> None:
    """Garbage over the page that holds the credentials (the table and its indexes are one
    page each here), after the -wal was checkpointed into the main file: a bad sector."""
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'credentials'")]
    conn.close()
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(GARBAGE[:page_size])


def _badge_until_it_stops(agent: AgentProcess) -> int:
    """Unknown cards, one every 0.2 s (each a read of the store), until the agent exits."""
    assert agent.proc is not None
    last = [0.0]

    def stopped() -> bool:
        if time.monotonic() - last[0] >= 0.2:
            agent.badge()
            last[0] = time.monotonic()
        return agent.proc.poll() is not None

    wait_for(stopped, timeout=15, what="the agent stops on its damaged store")
    return agent.proc.returncode


@pytest.mark.parametrize("damage", ["wal overwritten", "page corrupt"])
def test_a_store_damaged_while_running_is_recovered_within_seconds(site, damage):
    """Every card was refused until someone restarted the agent, and the process lived on
    feeding the watchdog. Now it stops at once with EXIT_DAMAGED, locks safe, and the start
    after it puts the good copy in place: caretakers and the current booking work again."""
    agent, watcher, publisher = site
    _doors_work(agent, watcher)
    last_seq = max(e["seq"] for e in watcher.events())
    db = agent.data_dir / "haldor.db"
    began = time.monotonic()
    _overwrite_wal(db) if damage == "wal overwritten" else _corrupt_credentials_page(db)
    assert _badge_until_it_stops(agent) == EXIT_DAMAGED
    assert "damaged" in agent.log.read_text()
    faults = len(watcher.events("storage.fault"))
    granted = len(watcher.events("access.granted"))
    agent.start()  # systemd does this (Restart=always, RestartSec=1)
    _doors_work(agent, watcher)
    took = time.monotonic() - began
    agent.badge(card=CARD)  # a member of the booking on now
    wait_for(
        lambda: [e for e in watcher.events("access.granted")[granted:] if e["booking"] == "b881"],
        timeout=10,
        what="the member of the current booking let in",
    )
    print(f"{damage}: a caretaker let in again {took:.1f} s after the damage")
    assert took < 15
    fault = wait_for(lambda: watcher.events("storage.fault")[faults:], timeout=10, what="storage.fault")[0]
    assert "damaged while the agent ran" in fault["reason"] and "restored from the copy" in fault["reason"]
    assert fault["seq"] > last_seq  # seq goes on
    status = wait_for(
        lambda: [s for s in watcher.docs("status") if s["online"] and s["storage"].get("recovered")],
        timeout=10,
        what="the status says the store was recovered",
    )[-1]
    assert "damaged while the agent ran" in status["storage"]["recovered"]
    assert status["schedule_version"] == 42
    assert list(agent.data_dir.glob("haldor.db.corrupt-*"))  # kept for inspection
    assert not (agent.data_dir / "damaged").exists()  # the next start is an ordinary one


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs for the data folder, to fill up; skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_snapshot_refused_for_space_is_applied_once_space_is_back(tmp_path, broker, signing_key, small_disk):
    """It waited for the next publication (or a sync request answered minutes later); now
    the box keeps the document and applies it when the storage watch sees room again."""
    data = small_disk / "data"
    agent = AgentProcess(tmp_path, port=broker.port, keys={KID: public_key(signing_key)}, data_dir=data)
    watcher = Watcher(broker.port)
    publisher = Publisher(broker.port, signing_key)
    try:
        agent.start()
        publisher.send("schedule", around_now(42), retain=True)
        wait_for(lambda: watcher.events("sync.applied"), timeout=20, what="schedule applied")
        _fill(small_disk / "filler")
        publisher.send("schedule", with_members(43, 40_000), retain=True)
        refused = wait_for(lambda: watcher.events("sync.rejected"), timeout=60, what="the snapshot refused")
        assert "full" in refused[0]["reason"]
        requests = len(watcher.docs("sync/request"))
        (small_disk / "filler").unlink()
        began = time.monotonic()
        wait_for(
            lambda: [e for e in watcher.events("sync.applied") if e["reason"] == "snapshot 43"],
            timeout=60,
            what="the same snapshot applied once space is back",
        )
        print(f"applied {time.monotonic() - began:.1f} s after the space came back")
        assert time.monotonic() - began < 30
        assert len(watcher.docs("sync/request")) == requests  # not asked for: it was kept
        assert len(watcher.events("sync.rejected")) == 1  # and not tried on the full disk again
        _doors_work(agent, watcher)
    finally:
        publisher.close()
        watcher.close()
        agent.close()


def _corrupt_table(db: Path, table: str) -> None:
    """Garbage over the root page of ``table`` and its indexes, after a checkpoint: a bad
    sector where no read of the start or of a decision goes."""
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = ?", [table])]
    conn.close()
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(GARBAGE[:page_size])


def test_the_start_leaves_the_whole_check_for_later_and_it_says_what_the_start_would_have(tmp_path):
    """`haldor run` opens its store without reading all of it (quick_check took 1.8 s cold at
    300,000 credentials before the doors answered); the check it runs later names the damage
    as the start did, and the start after it sets the file aside and restores the copy."""
    store = Store.open(tmp_path, "s", "Europe/Copenhagen", Policy())
    store.set_meta("schedule_version", 41)
    recovery.save_good_copy(store.db.conn, tmp_path / "haldor.db")
    store.close()
    db = tmp_path / "haldor.db"
    _corrupt_table(db, "commands_seen")
    assert recovery.check(db, integrity=False) is None  # nothing read that is damaged: the doors may start
    assert not list(tmp_path.glob("haldor.db.corrupt-*"))
    why = recovery.integrity(db)
    assert why is not None and why.startswith("database corrupt (")
    recovery.mark_damaged(db, why)  # what the running agent does with it (StorageWatch.found_damage)
    message = recovery.check(db, integrity=False)
    assert message is not None and message.startswith(why) and "restored from the copy" in message
    assert len(list(tmp_path.glob("haldor.db.corrupt-*[0-9]"))) == 1  # the file (its -wal, -shm beside it)
    assert recovery.integrity(db) is None
    assert recovery.check(db) is None


def test_a_store_damaged_where_the_doors_do_not_read_is_found_after_they_answer(site):
    """The doors answer before the whole file is checked; the check then finds the damage,
    the agent stops with EXIT_DAMAGED (locks safe), and the start after it recovers with
    the words and the steps of a start that found it itself."""
    agent, watcher, publisher = site
    _doors_work(agent, watcher)
    assert agent.stop() == 0
    db = agent.data_dir / "haldor.db"
    _corrupt_table(db, "commands_seen")
    faults = len(watcher.events("storage.fault"))
    agent.start()
    agent.badge()
    assert agent.proc is not None and agent.proc.wait(20) == EXIT_DAMAGED
    log = agent.log.read_text()
    last_run = log[log.rindex("reader main-in: port ") :]
    assert "card at main-in: " in last_run  # the doors answered
    assert "the database is damaged (database corrupt (" in last_run
    agent.start()  # systemd does this (Restart=always)
    fault = wait_for(lambda: watcher.events("storage.fault")[faults:], timeout=20, what="storage.fault")[0]
    assert fault["reason"].startswith("database corrupt (") and "restored from the copy" in fault["reason"]
    _doors_work(agent, watcher)
    assert list(agent.data_dir.glob("haldor.db.corrupt-*"))
