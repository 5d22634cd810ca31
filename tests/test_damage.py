"""Damage while the agent runs: a store broken under it, a snapshot refused for space.
`haldor run` as a child process, a real Mosquitto, real SQLite files, a real full disk
(tmpfs); the test restarts the agent where systemd would."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from haldor.agent.run import EXIT_DAMAGED

from .broker import Publisher, Watcher
from .helpers import CARD, CARETAKER_CARD, wait_for, with_members
from .rig import AgentProcess, around_now, public_key
from .test_faults import KID, _doors_work, _fill

GARBAGE = bytes((i * 7 + 3) % 251 for i in range(1 << 20))


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
