"""A box on mock pins for trials and tests (issue 27): its doors start shut, and a card
or PIN badged with `haldor badge` takes the real reader's path through `haldor run`."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys

from gpiozero.pins.mock import MockFactory

from haldor import config
from haldor.agent.hardware import build_hardware
from haldor.drivers.base import CardRead, PinRead
from haldor.drivers.gpio import DebouncedInput
from haldor.drivers.simulated import SimulatedReaders, fifo_path

from .broker import Watcher
from .helpers import SITE, site_config, wait_for
from .rig import ENV, AgentProcess

#: the main door with its contact and exit button; held open for a second is an alarm
WATCHED_DOOR = """
[[doors]]
id = "main"
lock_pin = 17
contact_pin = 27
exit_pin = 22
unlock_s = 2
held_open_s = 1
"""
ALLOWED = "uid:04A1B2C3D4E5F6"  # the sample's member of a17, whose booking is on now
NOT_NOW = "em:0A0B0C0D0E"  # the sample's member of a18, booked later today
DOOR_ALARMS = ("door.opened", "door.forced", "door.held_open")


def haldor(*args: str, config_path=None) -> subprocess.CompletedProcess:
    where = ["--config", str(config_path)] if config_path else []
    return subprocess.run([sys.executable, "-m", "haldor", *where, *args], env=ENV, capture_output=True, text=True, timeout=60)


def trial(tmp_path, port: int) -> AgentProcess:
    """`haldor run` on mock pins with the bundled sample schedule, as the README's trial does it."""
    agent = AgentProcess(tmp_path, port=port, doors=WATCHED_DOOR)
    sample = haldor("schedule", "sample", "--site", SITE)
    (tmp_path / "sample.json").write_text(sample.stdout)
    loaded = haldor("schedule", "load", str(tmp_path / "sample.json"), config_path=agent.path)
    assert loaded.returncode == 0, loaded.stderr
    agent.start()
    return agent


def statuses(watcher: Watcher) -> list[dict]:
    return [s for s in watcher.docs("status") if s.get("online")]


def test_haldor_run_on_mock_pins_starts_with_its_doors_shut_and_raises_no_door_alarm(tmp_path, broker):
    watcher = Watcher(broker.port)
    agent = trial(tmp_path, broker.port)
    try:
        wait_for(lambda: statuses(watcher), timeout=10, what="the agent's status")
        assert statuses(watcher)[0]["doors"]["main"] == {"locked": True, "open": False, "mode": "normal"}
        # the while: a grant unlocks for unlock_s (2 s), longer than held_open_s (1 s) after
        # the start; the lock moving back is the agent's own timer, so by then a door left
        # open at the start would have raised its alarm
        assert haldor("badge", ALLOWED, config_path=agent.path).returncode == 0
        wait_for(lambda: any(not s["doors"]["main"]["locked"] for s in statuses(watcher)), what="the lock opened")
        wait_for(lambda: statuses(watcher)[-1]["doors"]["main"]["locked"], timeout=10, what="the lock closed again")
        assert agent.stop() == 0
        assert all(s["doors"]["main"]["open"] is False for s in statuses(watcher))
        assert [e["type"] for e in agent.stored() if e["type"] in DOOR_ALARMS] == []
    finally:
        agent.close()
        watcher.close()


def test_a_badge_at_the_simulated_reader_is_decided_by_the_running_agent_and_stored(tmp_path, broker):
    watcher = Watcher(broker.port)
    agent = trial(tmp_path, broker.port)
    try:
        granted = haldor("badge", ALLOWED, config_path=agent.path)
        assert granted.returncode == 0, granted.stderr
        answer = json.loads(granted.stdout)
        assert (answer["type"], answer["door"], answer["reader"], answer["booking"]) == (
            "access.granted",
            "main",
            "main-in",
            "b881",
        )
        wait_for(lambda: any(not s["doors"]["main"]["locked"] for s in statuses(watcher)), what="the lock pin driven open")

        denied = haldor("badge", NOT_NOW, config_path=agent.path)
        assert denied.returncode == 1
        assert (json.loads(denied.stdout)["type"], json.loads(denied.stdout)["reason"]) == ("access.denied", "outside_window")

        garbled = haldor("badge", "not-a-card", "--wait", "0.5", config_path=agent.path)
        assert garbled.returncode == 3 and "no answer" in garbled.stderr
        pin = haldor("badge", "--pin", "4821", config_path=agent.path)  # the reader still reads after the garbled line
        assert json.loads(pin.stdout)["type"] == "access.granted"

        assert agent.stop() == 0
        stored = [(e["type"], e["reader"], e["reason"]) for e in agent.stored() if e["type"].startswith("access.")]
        assert stored == [
            ("access.granted", "main-in", None),
            ("access.denied", "main-in", "outside_window"),
            ("access.granted", "main-in", None),
        ]
        assert "reader main-in: garbled line dropped" in agent.log.read_text()
        assert not fifo_path(agent.data_dir, "main-in").exists()  # the stopped agent took its reader away
    finally:
        agent.close()
        watcher.close()


def test_haldor_badge_without_a_running_agent_says_so_in_one_line(tmp_path):
    path = site_config(
        tmp_path / "haldor.toml", tmp_path / "data", extra='[[readers]]\nid = "main-in"\ndoor = "main"\nport = "/dev/null"\n'
    )
    out = haldor("badge", ALLOWED, config_path=path)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "no simulated reader" in out.stderr
    unknown = haldor("badge", "--reader", "gym-a-in", ALLOWED, config_path=path)
    assert unknown.returncode == 2 and "--reader: no reader 'gym-a-in'" in unknown.stderr


def test_a_simulated_reader_reads_lines_as_the_serial_line_reader_does_and_counts_garbled_ones(tmp_path):
    reads: queue.Queue = queue.Queue()
    sim = SimulatedReaders(tmp_path / "data", ["main-in", "kiosk"], reads.put)
    sim.start()
    path = fifo_path(tmp_path / "data", "main-in")
    try:
        assert stat.S_ISFIFO(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
        with open(path, "wb", buffering=0) as fifo:
            fifo.write(b"uid:04a1b2c3\n\xff\xfe garbage\npin:12ab\npin:4821\n")
        assert reads.get(timeout=5) == CardRead("main-in", "uid:04A1B2C3")
        assert reads.get(timeout=5) == PinRead("main-in", "4821")
        assert sim.parsers["main-in"].stats.garbled == 2
        with open(fifo_path(tmp_path / "data", "kiosk"), "wb", buffering=0) as fifo:
            fifo.write(b"uid:04A1B2C3\n")  # another reader: its own repeat filter
        assert reads.get(timeout=5) == CardRead("kiosk", "uid:04A1B2C3")
    finally:
        sim.close()
    assert not path.exists()
    assert os.listdir(tmp_path / "data" / "simulated") == []


def test_a_simulated_reader_left_behind_is_replaced_and_only_its_own_fifo_is_removed(tmp_path):
    reads: queue.Queue = queue.Queue()
    first = SimulatedReaders(tmp_path, ["main-in"], reads.put)
    second = SimulatedReaders(tmp_path, ["main-in"], reads.put)  # an agent started over a killed one's FIFO
    second.start()
    try:
        first.close()
        with open(fifo_path(tmp_path, "main-in"), "wb", buffering=0) as fifo:
            fifo.write(b"pin:4821\n")
        assert reads.get(timeout=5) == PinRead("main-in", "4821")
    finally:
        second.close()
    assert not fifo_path(tmp_path, "main-in").exists()


def test_on_mock_pins_a_door_contact_starts_shut_and_buttons_unpressed(tmp_path):
    cfg = config.load(site_config(tmp_path / "haldor.toml", tmp_path / "data", doors=WATCHED_DOOR))
    factory = MockFactory()
    try:
        hw = build_hardware(cfg, lambda message: None, factory)
        try:
            assert hw.contacts["main"].active  # closed to ground: the door is shut
            assert [i.active for i in hw.inputs] == [True, False]  # the exit button is not pressed
            assert hw.simulated is None  # no reader configured, none simulated
        finally:
            hw.close()
        plain = DebouncedInput(5, lambda level: None, factory=factory)
        assert not plain.active  # without rests_active: the pull-up's level, as before
        plain.close()
    finally:
        factory.reset()
