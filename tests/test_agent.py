"""The agent wired to real parts: mock GPIO pins, a serial reader on a pty, SQLite on disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlite_utils

from haldor.agent.loop import Agent
from haldor.agent.messages import Command, ContactChanged, ExitPressed, FireChanged, Stop, Tick
from haldor.agent.site import open_store
from haldor.clock import FakeClock
from haldor.drivers.base import CardRead, PinRead

from .helpers import CARD, CARETAKER_CARD, CPH, dump, wait_for, write_config
from .rig import DOORS, Rig, around_now, running, step


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def _states(pin) -> list[bool]:
    return [bool(s.state) for s in pin.states]


# --- end to end through the reader -------------------------------------------------------


def test_a_card_on_the_serial_reader_opens_the_door_and_is_recorded(rig):
    agent = rig.agent()
    thread = running(agent)
    try:
        wait_for(agent.hw.readers[0].ready.is_set, what="port open")
        os.write(rig.master, b"04A1B2C3D4E5F6\r\n")
        wait_for(lambda: rig.pin(17).state, what="lock pin active")
        granted = wait_for(lambda: rig.events("access.granted"), what="granted event")
        assert granted[0]["credential"] == "c1001" and granted[0]["booking"] == "b881"
        assert granted[0]["reader"] == "main-in" and granted[0]["door"] == "main"
        wait_for(lambda: not rig.pin(17).state, timeout=6, what="re-lock after unlock_s")
        os.write(rig.master, b"uid:DEADBEEF\r\n")
        denied = wait_for(lambda: rig.events("access.denied"), what="denied event")
        assert denied[0]["reason"] == "unknown_card" and denied[0]["credential"] is None
    finally:
        agent.post(Stop())
        thread.join(5)
    assert not thread.is_alive() and not thread.errors
    assert _states(rig.pin(17)) == [False, True, False]  # one pulse, no more


def test_the_lock_never_pulses_while_the_agent_starts_or_restarts(rig):
    for _ in range(3):
        agent = rig.agent()
        thread = running(agent)
        agent.post(Stop())
        thread.join(5)
        assert not thread.errors
    assert all(not s for s in _states(rig.pin(17)))  # fail-secure strike, active high: never energised
    # a fail-safe magnet (active low) is released while no agent runs, and locked by each start
    assert _states(rig.pin(18)) == [True] + [False, True] * 3
    assert [e["type"] for e in rig.events()].count("agent.started") == 3


def test_sigterm_and_stop_leave_every_lock_in_its_safe_state(rig):
    agent = rig.agent()
    thread = running(agent)
    agent.post(Command("hold_open", "main"))
    agent.post(Command("lock", "gym-a"))  # a fail-safe magnet, energised to lock
    wait_for(lambda: rig.pin(17).state and not rig.pin(18).state, what="main unlocked, gym-a magnet on")
    agent.post(Stop())
    thread.join(5)
    assert not rig.pin(17).state  # strike unpowered: locked
    assert rig.pin(18).state  # active-low magnet output high: unpowered, released


class _Jammed:
    """A lock driver that raises: the relay board has gone from the bus."""

    def __init__(self, lock) -> None:
        self.lock = lock

    def set_unlocked(self, unlocked: bool) -> None:
        raise RuntimeError("relay board gone")

    def close(self) -> None:
        self.lock.close()


def test_an_unhandled_error_puts_the_locks_in_their_safe_state(rig):
    agent = rig.agent()
    thread = running(agent)
    agent.post(Command("unlock", "main", 60))
    wait_for(lambda: rig.pin(17).state, what="unlocked")
    agent.hw.locks["gym-a"] = _Jammed(agent.hw.locks["gym-a"])
    agent.post(Command("unlock", "gym-a", 60))
    thread.join(5)
    assert not thread.is_alive() and thread.errors
    assert not rig.pin(17).state


def test_a_store_that_cannot_be_read_drops_the_input_but_never_ends_the_agent(rig):
    agent = rig.agent()
    thread = running(agent)
    try:
        # the database goes away under the agent: both its connections swapped for closed ones
        # (closing one while its thread may be inside it would be a crash of the test's own making)
        gone = sqlite_utils.Database(sqlite3.connect(":memory:", check_same_thread=False))
        gone.conn.close()
        agent.journal._store.db = rig.store.db = gone
        agent.post(CardRead("main-in", CARD))
        wait_for(lambda: not agent.storage.status()["ok"], what="storage fault in the status")
        assert thread.is_alive() and not rig.pin(17).state  # nothing decided, nothing opened
        agent.post(Command("unlock", "main", 1))  # the doors still obey
        wait_for(lambda: rig.pin(17).state, what="unlocked by command")
    finally:
        agent.post(Stop())
        thread.join(5)
    assert not thread.is_alive() and not thread.errors
    assert not rig.pin(17).state


def test_an_unlock_lasts_unlock_s_while_another_process_holds_the_write_lock(rig):
    agent = rig.agent()
    thread = running(agent)
    blocker = sqlite3.connect(Path(rig.cfg.data_dir) / "haldor.db", timeout=5)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # nothing can be written meanwhile
        agent.post(CardRead("main-in", CARD))
        wait_for(lambda: rig.pin(17).state, what="unlocked at once")
        wait_for(lambda: not rig.pin(17).state, timeout=6, what="locked again")
        opened, closed = [s.timestamp for s in rig.pin(17).states[-2:]]
        assert 2.9 <= closed - opened <= 3.5  # the door's unlock_s, not the storage's pace
        assert not rig.events("access.granted")  # its event waits for the lock
    finally:
        blocker.rollback()
        blocker.close()
    wait_for(lambda: rig.events("access.granted"), what="the event written once the lock is gone")
    agent.post(Stop())
    thread.join(5)
    assert not thread.errors


def test_a_stop_while_another_process_holds_the_write_lock_is_quick_and_clean(rig):
    """The journal's writer is inside SQLite's busy wait when the agent stops: the stop does
    not wait the busy timeout out, and nothing is closed under the writer (that would crash)."""
    agent = rig.agent()
    thread = running(agent)
    blocker = sqlite3.connect(Path(rig.cfg.data_dir) / "haldor.db", timeout=5, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        agent.post(CardRead("main-in", CARD))
        wait_for(lambda: rig.pin(17).state, what="unlocked at once")
        began = time.monotonic()
        agent.post(Stop())
        thread.join(10)
        assert not thread.is_alive() and not thread.errors
        assert time.monotonic() - began < 8  # FLUSH_ON_STOP_S and a moment, not the 10 s busy wait and more
        assert not rig.pin(17).state
    finally:
        blocker.rollback()
        blocker.close()
    wait_for(lambda: not agent.journal._thread.is_alive(), timeout=15, what="the writer gone without a crash")


# --- step by step with a fake clock ----------------------------------------------------


def _stepped(rig, at=None) -> tuple[Agent, FakeClock]:
    now = datetime.now(CPH).timestamp() if at is None else at
    clock = FakeClock(now)
    agent = rig.agent(clock)
    agent.start()
    agent.settle()
    return agent, clock


def test_forced_open_but_not_after_the_exit_button(rig):
    agent, clock = _stepped(rig)
    step(agent, ContactChanged("main", True))
    assert [e["type"] for e in rig.events()][-2:] == ["door.opened", "door.forced"]
    step(agent, ContactChanged("main", False))
    step(agent, ExitPressed("main"))
    step(agent, ContactChanged("main", True))
    assert [e["type"] for e in rig.events()][-2:] == ["door.closed", "door.opened"]
    assert not rig.pin(17).state  # the exit button never moves the lock
    agent.hw.close()


def test_held_open_alarm_after_held_open_s(rig):
    agent, clock = _stepped(rig)
    step(agent, CardRead("main-in", CARD))
    step(agent, ContactChanged("main", True))
    clock.advance(59)
    step(agent, Tick())
    assert not rig.events("door.held_open")
    clock.advance(2)
    step(agent, Tick())
    assert rig.events("door.held_open")[0]["door"] == "main"
    agent.hw.close()


def test_door_contacts_and_buttons_on_gpio_reach_the_loop(rig):
    agent = rig.agent()
    thread = running(agent)
    try:
        rig.pin(27).drive_high()  # door opened while locked
        wait_for(lambda: rig.events("door.forced"), what="forced alarm")
        rig.pin(27).drive_low()
        wait_for(lambda: rig.events("door.closed"), what="closed")
        rig.pin(22).drive_low()  # exit button pressed, then the door opens: no alarm
        # the two inputs debounce on their own timers: the press must have reached the loop first
        wait_for(lambda: agent.controller.doors["main"].exit_until, what="exit request handled")
        rig.pin(27).drive_high()
        wait_for(lambda: len(rig.events("door.opened")) == 2, what="opened again")
        assert len(rig.events("door.forced")) == 1
        rig.pin(22).drive_high()
        rig.pin(25).drive_low()  # fire alarm contact closes
        wait_for(lambda: rig.pin(18).state, what="fail-safe door released by the fire input")
    finally:
        agent.post(Stop())
        thread.join(5)


def test_fire_alarm_releases_a_fail_safe_door_and_holds_it(rig):
    agent, clock = _stepped(rig)
    step(agent, Command("lock", "gym-a"))
    assert not rig.pin(18).state  # magnet on
    step(agent, FireChanged("gym-a", True))
    assert rig.pin(18).state
    step(agent, Command("lock", "gym-a"))
    assert rig.pin(18).state  # nothing locks it while the alarm is on
    step(agent, FireChanged("gym-a", False))
    agent.hw.close()


def test_a_fire_alarm_already_on_at_start_releases_the_fail_safe_door(rig):
    """The alarm sends no edge when it was on before the agent started (a restart during a
    fire, a power cut that brought the box back up during the alarm)."""
    agent = rig.agent(FakeClock(datetime.now(CPH).timestamp()))
    # the fire panel's contact is closed before the agent runs (the mock pin's pull-up
    # would undo a level set earlier): the edge is taken out, as if it came before start
    rig.pin(25).drive_low()
    wait_for(lambda: agent.hw.fires["gym-a"].active, what="fire input settled")
    edges = [agent.inbox.get(timeout=1) for _ in range(agent.inbox.qsize())]
    assert any(isinstance(m, FireChanged) for m in edges)
    for message in edges:
        if not isinstance(message, FireChanged):
            agent.inbox.put(message)
    agent.start()
    agent.settle()
    assert rig.pin(18).state  # the magnet of gym-a is off: the door opens
    assert agent.controller.status()["gym-a"]["mode"] == "fire"
    assert [e["door"] for e in rig.events("door.mode") if e["reason"] == "fire"] == ["gym-a"]
    step(agent, Command("lock", "gym-a"))
    assert rig.pin(18).state  # nothing locks it while the alarm is on
    rig.pin(25).drive_high()  # the alarm is reset: the input reports it, the magnet holds again
    step(agent, wait_for(lambda: next((m for m in list(agent.inbox.queue) if isinstance(m, FireChanged)), None), what="edge"))
    assert not rig.pin(18).state
    agent.hw.close()


def test_stopping_makes_the_locks_safe_before_anything_else_closes(rig):
    """systemd kills a stop that takes too long; a reader can take seconds to close."""
    agent, clock = _stepped(rig)
    step(agent, Command("unlock", "main", 60))
    assert rig.pin(17).state
    order = []
    reader = agent.hw.readers[0]
    close = reader.close
    reader.close = lambda: (order.append(("reader", rig.pin(17).state)), close())
    agent.hw.close()
    assert order == [("reader", False)]  # the strike was locked before the reader closed


def test_lockdown_survives_a_restart_and_admits_only_caretakers(rig):
    agent, clock = _stepped(rig)
    step(agent, Command("lockdown"))
    agent.hw.close()
    agent, clock = _stepped(rig)
    step(agent, CardRead("main-in", CARD))
    assert rig.events("access.denied")[-1]["reason"] == "lockdown"
    step(agent, CardRead("main-in", CARETAKER_CARD))
    assert rig.events("access.granted")[-1]["credential"] == "c9000"
    assert rig.pin(17).state
    agent.hw.close()


def test_untrusted_clock_refuses_bookings_until_time_sync(rig):
    now = datetime.now(CPH).timestamp()
    rig.store.set_meta("last_seen", now + 3600)  # the clock went back after a power cut
    clock = FakeClock(now, synchronized=False)
    agent = rig.agent(clock)
    agent.start()
    agent.settle()
    assert rig.events("clock.untrusted")
    step(agent, PinRead("main-in", "4821"))
    assert rig.events("access.denied")[-1]["reason"] == "clock_untrusted"
    step(agent, CardRead("main-in", CARETAKER_CARD))
    assert rig.events("access.granted")[-1]["credential"] == "c9000"
    clock.is_synchronized = True
    step(agent, CardRead("main-in", CARD))
    assert rig.events("clock.trusted")
    assert rig.events("access.granted")[-1]["credential"] == "c1001"
    agent.hw.close()


def test_a_grant_between_wrong_pins_clears_nothing_and_guessing_is_reported_and_survives_a_restart(rig):
    """The walk-around of issue 23: four wrong PINs, the member's own card, and again."""
    agent, clock = _stepped(rig)
    guesses = iter(f"{n:06d}" for n in range(100))  # the caretaker's is 909090
    for _ in range(2):
        for _ in range(4):
            step(agent, PinRead("main-in", next(guesses)))
            clock.advance(1)
        step(agent, CardRead("main-in", CARD))
        assert rig.events("access.granted")[-1]["credential"] == "c1001"  # cards keep working
    reasons = [e["reason"] for e in rig.events("access.denied")]
    assert reasons == ["wrong_pin"] * 5 + ["rate_limited"] * 3
    (guessing,) = rig.events("access.guessing")
    assert guessing["reader"] == "main-in" and guessing["door"] == "main" and guessing["reason"] == "wrong_pin"
    assert (guessing["kind"], guessing["attempts"], guessing["lockout_s"], guessing["lockouts"]) == ("pin", 5, 60, 1)
    step(agent, PinRead("main-in", "909090"))  # the caretaker's PIN too: it is what a guesser is after
    assert rig.events("access.denied")[-1]["reason"] == "rate_limited"
    clock.advance(60)
    for _ in range(5):
        step(agent, PinRead("main-in", next(guesses)))
    second = rig.events("access.guessing")[-1]
    assert (second["lockout_s"], second["lockouts"]) == (120, 2)  # each lockout within a day doubles
    agent.hw.close()
    agent, clock = _stepped(rig, at=clock.now() + 5)  # a restart keeps the lockout
    step(agent, PinRead("main-in", "909090"))
    assert rig.events("access.denied")[-1]["reason"] == "rate_limited"
    clock.advance(120)
    step(agent, PinRead("main-in", "909090"))
    assert rig.events("access.granted")[-1]["credential"] == "c9000"
    agent.hw.close()


def test_an_event_is_committed_before_the_listeners_hear_of_it(rig):
    agent, clock = _stepped(rig)
    seen: list[tuple[int, bool]] = []
    other = open_store(rig.cfg)  # another connection: sees only what was committed
    try:
        agent.subscribe(
            lambda events: seen.extend(
                (e["seq"], any(x["id"] == e["id"] for x in other.outbox.events(limit=10_000))) for e in events
            )
        )
        step(agent, CardRead("main-in", CARD))
    finally:
        other.close()
    assert seen and all(committed for _, committed in seen)
    agent.hw.close()


def test_a_reader_whose_port_is_missing_is_reported(tmp_path):
    r = Rig(
        tmp_path,
        reader=False,
        readers="""
[[readers]]
id = "ghost"
type = "rdm6300"
door = "main"
port = "/dev/does-not-exist"
""",
    )
    try:
        agent = r.agent()
        thread = running(agent)
        try:
            fault = wait_for(lambda: r.events("reader.fault"), what="reader fault")
            assert fault[0]["reader"] == "ghost" and "does-not-exist" in fault[0]["reason"]
            assert agent.net.status.readers()["ghost"]["ok"] is False
        finally:
            agent.post(Stop())
            thread.join(5)
    finally:
        r.close()


def test_a_reader_whose_port_comes_back_is_ok_again_in_the_status(tmp_path):
    link = tmp_path / "ttyREADER"
    r = Rig(
        tmp_path,
        reader=False,
        readers=f"""
[[readers]]
id = "late"
type = "serial-line"
door = "main"
port = "{link}"
""",
    )
    master, slave = os.openpty()
    try:
        agent = r.agent()
        agent.hw.readers[0].retry_s = 0.1
        thread = running(agent)
        try:
            wait_for(lambda: r.events("reader.fault"), what="reader fault")
            link.symlink_to(os.ttyname(slave))  # the USB reader is plugged in
            wait_for(lambda: agent.net.status.readers()["late"] == {"ok": True, "fault": None}, what="reader ok again")
            assert len(r.events("reader.fault")) == 1
        finally:
            agent.post(Stop())
            thread.join(5)
    finally:
        os.close(master)
        os.close(slave)
        r.close()


# --- the command line --------------------------------------------------------------------


def test_haldor_run_exits_0_on_sigterm(tmp_path):
    path = write_config(tmp_path / "haldor.toml", tmp_path / "data", doors=DOORS)
    doc = dump(tmp_path / "s.json", around_now())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    assert (
        subprocess.run([sys.executable, "-m", "haldor", "schedule", "load", "--config", str(path), str(doc)], env=env).returncode
        == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "haldor", "run", "--config", str(path)], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("agent started" in line for line in lines), timeout=15, what="agent started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert any("locks in their safe state" in line for line in lines)
