"""Reader benchmark (issue 6): card-to-decision latency through the whole agent for each
kind of reader, side by side, until the lock pin is driven (the decision carried out):

- serial-line: a line written to the reader's pty;
- wiegand: the last of 26 bits pulsed on gpiozero's mock pins (the frame ends after a
  25 ms quiet gap, as on the wire);
- osdp: a card presented to a reader simulated by libosdp's peripheral side on a pty,
  with Secure Channel; the control panel polls it every 50 ms or so.

A pty has no baud rate: on a real RS-485 line at 9600 baud the poll and the encrypted
card reply add about 40 ms of transmission on top of the OSDP number.

    python bench/bench_readers.py                 # 300 reads per reader
    python bench/bench_readers.py --samples 30    # CI

Beside each figure its floor (``FloorDoor``: the same read, HMAC,
one query and a lock pin, written plainly), one floor read after each of the agent's, in
the same run; OSDP's floor is libosdp's own control panel with Secure Channel on a bus of
its own, refreshed every 5 ms as the agent's bus is (``OsdpFloor``).

It prints numbers; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import queue
import random
import sqlite3
import sys
import tempfile
import threading
import time
import tty
from datetime import datetime
from pathlib import Path

import osdp_sys
import serial
from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

sys.path.insert(0, str(Path(__file__).parent))
from bench_access import (  # noqa: E402
    ASSOCIATIONS,
    FLOOR_SQL,
    SITE,
    TZ,
    _Watched,
    card_of,
    make_snapshot,
    percentiles,
    report,
)

from haldor import config  # noqa: E402
from haldor.access.schedule import parse_document  # noqa: E402
from haldor.agent.hardware import build_hardware  # noqa: E402
from haldor.agent.loop import Agent  # noqa: E402
from haldor.agent.messages import Command, Stop  # noqa: E402
from haldor.agent.site import open_store  # noqa: E402
from haldor.drivers.osdp_sim import SimulatedBus, SimulatedReader  # noqa: E402
from haldor.drivers.wiegand import encode_card  # noqa: E402

KEY = bytes(range(16))
CONFIG = """
[site]
id = "{site}"
data_dir = "{data}"

[trust]
require_signature = false

[gpio]
pin_factory = "mock"

[[doors]]
id = "main"
lock_pin = 17
unlock_s = 5

[[readers]]
id = "serial"
type = "serial-line"
door = "main"
port = "{serial_port}"

[[readers]]
id = "wiegand"
type = "wiegand"
door = "main"
d0_pin = 5
d1_pin = 6

[[readers]]
id = "osdp"
type = "osdp"
door = "main"
port = "{osdp_port}"
baudrate = 115200
address = 1
scbk_file = "{key_file}"
"""


def wiegand_value(i: int) -> int:
    return 100_000 + i


class FloorDoor:
    """The floor of a read, written plainly here without Haldor's code: the card string's
    HMAC and one indexed query (as bench_access's decision floor), then a mock lock pin
    driven. Its readers: a thread reading a pty of its own line by line, and two mock
    input pins collecting Wiegand bits until a 25 ms quiet gap (a timer), as the wire says."""

    FRAME_GAP_S = 0.025

    def __init__(self, db_path: Path, secret: bytes, serial_fd: int) -> None:
        self.factory = MockFactory()
        self.lock = DigitalOutputDevice(23, pin_factory=self.factory)
        self.moved = threading.Event()
        self.conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
        self.mac = hmac.new(secret, b"card\x00", hashlib.sha256)
        self.serial_fd = serial_fd
        self.bits: list[int] = []
        self.timer: threading.Timer | None = None
        self.d0 = DigitalInputDevice(12, pull_up=True, pin_factory=self.factory)
        self.d1 = DigitalInputDevice(13, pull_up=True, pin_factory=self.factory)
        self.d0.when_activated = lambda: self._bit(0)
        self.d1.when_activated = lambda: self._bit(1)
        threading.Thread(target=self._serial, daemon=True).start()

    def decide(self, card: str) -> None:
        m = self.mac.copy()
        m.update(card.encode())
        now = time.time()
        self.conn.execute(FLOOR_SQL, [now - 40 * 3600, now + 14 * 3600, now - 14 * 3600, m.hexdigest()]).fetchall()
        self.lock.on()
        self.moved.set()

    def _serial(self) -> None:
        pending = b""
        while True:
            try:
                pending += os.read(self.serial_fd, 256)
            except OSError:  # closed at the end of the run
                return
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    self.decide(line.strip().decode())

    def _bit(self, bit: int) -> None:
        self.bits.append(bit)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = threading.Timer(self.FRAME_GAP_S, self._frame)
        self.timer.start()

    def _frame(self) -> None:
        bits, self.bits = self.bits, []
        if len(bits) == 26:
            self.decide(f"wg26:{int(''.join(map(str, bits[1:25])), 2)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--credentials", type=int, default=2000)
    p.add_argument("--samples", type=int, default=300, help="reads per reader")
    p.add_argument("--gap-ms", type=float, default=250, help="between one card and the next")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="haldor-bench-") as tmp,
        SimulatedBus([SimulatedReader(1, KEY)]) as sim,
        SimulatedBus([SimulatedReader(1, KEY)]) as floor_sim,
    ):
        tmp_path = Path(tmp)
        master, slave = os.openpty()
        tty.setraw(slave)
        key_file = tmp_path / "osdp.key"
        key_file.write_text(KEY.hex())
        key_file.chmod(0o600)
        cfg_path = tmp_path / "haldor.toml"
        cfg_path.write_text(
            CONFIG.format(site=SITE, data=tmp_path / "data", serial_port=os.ttyname(slave), osdp_port=sim.port, key_file=key_file)
        )
        cfg = config.load(cfg_path)
        doc = make_snapshot(args.credentials, max(ASSOCIATIONS, 1000), datetime.now(TZ))
        # every other credential carries a 26-bit Wiegand card instead of a UID
        wiegand = [i for i in range(args.credentials) if i % 2]
        for i in wiegand:
            doc["credentials"][i]["card"] = f"wg26:{wiegand_value(i)}"
        uids = [i for i in range(args.credentials) if not i % 2]
        store = open_store(cfg)
        store.schedule.apply(parse_document(doc), time.time())
        store.close()

        factory = MockFactory()
        inbox: queue.Queue = queue.Queue()
        store = open_store(cfg)
        hw = build_hardware(cfg, inbox.put, factory)
        moved = threading.Event()
        hw.locks["main"] = _Watched(hw.locks["main"], moved)
        agent = Agent(cfg, store, hw, inbox=inbox)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        floor_master, floor_slave = os.openpty()
        tty.setraw(floor_slave)
        floor = FloorDoor(tmp_path / "data" / "haldor.db", store._secret, floor_slave)
        floor_present = {
            "serial": lambda i: _timed(os.write, floor_master, card_of(i).encode() + b"\r\n"),
            "wiegand": lambda i: _pulse(floor.factory, encode_card(26, wiegand_value(i)), d0=12, d1=13),
            "osdp": lambda i: _timed(floor_sim.reader(1).present_uid, card_of(i).removeprefix("uid:")),
        }
        osdp_floor = OsdpFloor(floor_sim.port, floor)
        bus = next(r for r in hw.readers if getattr(r, "id", "").startswith("osdp:"))
        serial_reader = next(r for r in hw.readers if getattr(r, "id", "") == "serial")
        rnd = random.Random(3)
        results: dict = {"samples_per_reader": args.samples}
        try:
            if not serial_reader.ready.wait(5) or not bus.all_secure.wait(10) or not osdp_floor.secure.wait(10):
                raise RuntimeError("readers did not come up")
            # each returns when the card counts as presented
            present = {
                "serial": lambda i: _timed(os.write, master, card_of(i).encode() + b"\r\n"),
                "wiegand": lambda i: _pulse(factory, encode_card(26, wiegand_value(i))),
                "osdp": lambda i: _timed(sim.reader(1).present_uid, card_of(i).removeprefix("uid:")),
            }
            wiegand_reader = next(r for r in hw.readers if getattr(r, "id", "") == "wiegand")
            split = 0
            floors: dict[str, list[float]] = {}
            for kind, send in present.items():
                pool = wiegand if kind == "wiegand" else uids
                times = []
                last = None
                while len(times) < args.samples:
                    i = rnd.choice(pool)
                    while i == last:  # the same card twice at once is one presentation
                        i = rnd.choice(pool)
                    last = i
                    moved.clear()
                    garbled = wiegand_reader.stats.garbled
                    t0 = send(i)
                    if not moved.wait(5):
                        if kind == "wiegand" and wiegand_reader.stats.garbled > garbled and split < args.samples // 10 + 3:
                            # the pulsing thread was held up for longer than the 25 ms that end a frame (a
                            # busy CI machine): the frame arrived in pieces and was dropped. Counted, tried again.
                            split += 1
                            continue
                        raise RuntimeError(f"{kind}: card {i} did not open the lock")
                    times.append(time.perf_counter() - t0)
                    moved.clear()
                    agent.post(Command("lock", "main"))
                    if not moved.wait(5):
                        raise RuntimeError("lock did not close")
                    if kind in floor_present:  # its floor's round, interleaved
                        floors.setdefault(kind, []).append(_floor_sample(floor, floor_present[kind], i))
                    # not synchronisation: the next person comes after the beep, at no fixed phase to the OSDP poll
                    time.sleep(args.gap_ms / 1e3 + rnd.uniform(0, 0.05))
                p50, p99 = percentiles(times)
                results[f"{kind}_p50_ms"] = round(p50 * 1e3, 2)
                results[f"{kind}_p99_ms"] = round(p99 * 1e3, 2)
                if kind in floors:
                    f50, f99 = percentiles(floors[kind])
                    results[f"floor_{kind}_p50_ms"] = round(f50 * 1e3, 2)
                    results[f"floor_{kind}_p99_ms"] = round(f99 * 1e3, 2)
                    results[f"{kind}_p50_ratio"] = round(p50 / f50, 2)
            results["wiegand_frames_split_by_the_bench"] = split
            results["osdp_secure_channel"] = bool(sim.reader(1).secure)
        finally:
            osdp_floor.stop.set()
            agent.post(Stop())
            thread.join(5)
            store.close()
            factory.reset()
            os.close(master)
            os.close(slave)
            os.close(floor_master)
            os.close(floor_slave)
    report(results, args.json)
    return 0


def _timed(action, *args) -> float:
    t0 = time.perf_counter()
    action(*args)
    return t0


class _PlainChannel:
    """The bus for libosdp, plainly over pyserial."""

    id = 1

    def __init__(self, port: str) -> None:
        self.serial = serial.serial_for_url(port, baudrate=115200, timeout=0)

    def read(self, max_bytes: int) -> bytes:
        return self.serial.read(max_bytes)

    def write(self, buf: bytes) -> int:
        return self.serial.write(bytes(buf)) or 0

    def flush(self) -> None:
        self.serial.reset_input_buffer()


class OsdpFloor:
    """The floor of an OSDP read: libosdp's control panel with Secure Channel on a bus of
    its own (a second simulated reader), refreshed every 5 ms by a thread; a card read
    event goes to :meth:`FloorDoor.decide`."""

    def __init__(self, port: str, door: FloorDoor) -> None:
        self.door = door
        self.secure = threading.Event()
        self.channel = _PlainChannel(port)
        info = {"name": "floor", "address": 1, "flags": osdp_sys.FLAG_ENFORCE_SECURE, "scbk": KEY, "channel": self.channel}
        self.cp = osdp_sys.ControlPanel([info])
        self.cp.set_event_callback(self._event)
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.cp.refresh()
            if not self.secure.is_set() and self.cp.sc_status() & 1:
                self.secure.set()
            self.stop.wait(0.005)

    def _event(self, index: int, event: dict) -> int:
        if event.get("event") == osdp_sys.EVENT_CARDREAD:
            self.door.decide("uid:" + bytes(event["data"]).hex().upper())
        return 0


def _floor_sample(floor: FloorDoor, send, i: int) -> float:
    floor.moved.clear()
    t0 = send(i)
    if not floor.moved.wait(5):
        raise RuntimeError(f"floor: card {i} did not drive its lock")
    took = time.perf_counter() - t0
    floor.lock.off()
    return took


def _pulse(factory: MockFactory, bits: list[int], d0: int = 5, d1: int = 6) -> float:
    """Pulse the frame on D0/D1; the time the last bit was on the wire."""
    for b in bits:
        pin = factory.pin(d1 if b else d0)
        pin.drive_low()
        pin.drive_high()
    return time.perf_counter()


if __name__ == "__main__":
    sys.exit(main())
