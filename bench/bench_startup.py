"""Start-up benchmark: how soon after a power cut the doors answer.

`haldor run` is spawned on a real configuration (gpiozero's mock pins as the tests use,
a serial-line reader on a pty, a Mosquitto on loopback, a store holding a snapshot of
``--credentials``) and timed from the spawn to its first access decision. The card is
presented the way a member at the door would: the benchmark writes a member's card line
to the reader's pty every millisecond from the spawn on, so the first line the agent can
hear is read as soon as its port is open (the port drops what came before it was opened,
as a real reader's does). The decision is seen in the line the loop logs for it
("card at main-in: granted ..."), written right after the decision and before anything is
stored: the figure includes neither a guess of when the agent is ready nor a sleep.

Its floor, interleaved in the same run (floor round, product round, floor round ...), is
a script written here without any of Haldor's code: Python importing gpiozero, paho and
sqlite3, the database open, the pty opened and flushed, the card's HMAC and one indexed
query, the lock pin driven, the same kind of line logged. Each is started the same way
and timed by the same loop. It prints the median and the spread of N rounds of each and
their ratio; it asserts nothing about speed (the target, within 1.3 times the floor, is
in the README).

    python bench/bench_startup.py                                   # 300,000 credentials
    python bench/bench_startup.py --credentials 2000 --rounds 5     # CI
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import termios
import time
import tty
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_access import TZ, card_of, make_snapshot  # noqa: E402
from tests.broker import Broker  # noqa: E402

SITE = "bench-hal"

CONFIG = """
[site]
id = "{site}"
data_dir = "{data}"

[mqtt]
host = "127.0.0.1"
port = {port}
tls = false

[trust]
require_signature = false

[gpio]
pin_factory = "mock"

[[doors]]
id = "main"
lock_pin = 17
unlock_s = 5

[[doors]]
id = "gym-0"
lock_pin = 18

[[readers]]
id = "main-in"
type = "serial-line"
door = "main"
port = "{tty}"
"""

#: the floor: what a first decision cannot do without, written plainly (no Haldor code)
FLOOR = r"""
import hashlib, hmac, os, sqlite3, sys, termios, time
import gpiozero, paho.mqtt.client
from gpiozero.pins.mock import MockFactory
db_path, secret_path, port = sys.argv[1:4]
lock = gpiozero.DigitalOutputDevice(17, pin_factory=MockFactory())
conn = sqlite3.connect(db_path)
conn.execute("SELECT value FROM meta WHERE key = 'schedule_version'").fetchone()
mac = hmac.new(open(secret_path, "rb").read(), b"card\x00", hashlib.sha256)
fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
termios.tcflush(fd, termios.TCIFLUSH)  # what came before the port was opened is not heard
line = b""
while b"\n" not in line:
    line += os.read(fd, 64)
card = line.split(b"\n")[-2].strip().decode()
m = mac.copy()
m.update(card.encode())
now = time.time()
rows = conn.execute(
    "SELECT c.id, b.id FROM credentials c LEFT JOIN bookings b INDEXED BY bookings_by_association"
    " ON b.association = c.association AND b.start > ? AND b.start < ? AND b.end > ? AND b.status = 'approved'"
    " WHERE c.card_hash = ?",
    [now - 40 * 3600, now + 14 * 3600, now - 14 * 3600, m.hexdigest()],
).fetchall()
lock.on()
print(f"card at main-in: {'granted' if rows else 'denied'} (floor)", file=sys.stderr, flush=True)
time.sleep(30)  # held like the agent until the benchmark ends it
"""

MARKER = b"card at main-in: "

#: as on a box, where pip compiled the modules when it installed them: a child may write the
#: bytecode it compiles (the first, warm-up, start does) instead of compiling every module at
#: every start, as PYTHONDONTWRITEBYTECODE in this environment would have it
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def first_decision(argv: list[str], master: int, slave: int, credentials: int) -> float:
    """Seconds from spawning ``argv`` to the first decision line on its stderr, a member's
    card written to the reader's pty every millisecond meanwhile. The child is ended after."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV)
    assert proc.stderr is not None
    err = proc.stderr.fileno()
    os.set_blocking(err, False)
    said = b""
    n = 0
    try:
        while True:
            ready, _, _ = select.select([err], [], [], 0.001)
            if ready:
                chunk = os.read(err, 65536)
                if not chunk:
                    raise RuntimeError(f"{argv[-3:]} ended before a decision: {said.decode(errors='replace')[-2000:]}")
                said += chunk
                if MARKER in said:
                    return time.perf_counter() - started
                continue
            try:
                os.write(master, f"{card_of(n % credentials)}\r\n".encode())
            except BlockingIOError:  # the pty's buffer is full: no one reads it yet
                pass
            n += 1
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"no decision within 60 s: {said.decode(errors='replace')[-2000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        termios.tcflush(slave, termios.TCIFLUSH)  # lines never read are not left for the next round


def _load(cfg_path: Path, doc: dict, tmp: Path) -> None:
    """The snapshot applied as `haldor schedule load` does, before the rounds."""
    doc_path = tmp / "snapshot.json"
    doc_path.write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "haldor", "schedule", "load", "--config", str(cfg_path), str(doc_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=CHILD_ENV)
    if done.returncode != 0:
        raise RuntimeError(f"schedule load failed: {done.stderr}")
    doc_path.unlink()


def spread(values: list[float]) -> dict:
    ms = sorted(v * 1e3 for v in values)
    return {
        "median": round(statistics.median(ms), 1),
        "min": round(ms[0], 1),
        "max": round(ms[-1], 1),
        "stdev": round(statistics.stdev(ms), 1) if len(ms) > 1 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--credentials", type=int, default=300_000)
    p.add_argument("--bookings", type=int, help="default: half the credentials (at least 500)")
    p.add_argument("--rounds", type=int, default=15, help="starts of each, interleaved")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    bookings = max(500, args.bookings or args.credentials // 2)
    with tempfile.TemporaryDirectory(prefix="haldor-bench-startup-") as tmp:
        tmp_path = Path(tmp)
        broker = Broker(tmp_path / "broker", audit=False).start()
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        data = tmp_path / "data"
        cfg_path = tmp_path / "haldor.toml"
        cfg_path.write_text(CONFIG.format(site=SITE, data=data, port=broker.port, tty=os.ttyname(slave)))
        doc = make_snapshot(args.credentials, bookings, datetime.now(TZ))
        doc["site"], doc["version"] = SITE, 1
        _load(cfg_path, doc, tmp_path)
        floor_script = tmp_path / "floor_startup.py"
        floor_script.write_text(FLOOR)
        product = [sys.executable, "-m", "haldor", "run", "--config", str(cfg_path)]
        floor = [sys.executable, str(floor_script), str(data / "haldor.db"), str(data / "device.secret"), os.ttyname(slave)]
        first_decision(product, master, slave, args.credentials)  # warm-up: the page cache, the first start's setup
        first_decision(floor, master, slave, args.credentials)
        runs: dict[str, list[float]] = {"floor": [], "haldor run": []}
        try:
            for _ in range(args.rounds):
                runs["floor"].append(first_decision(floor, master, slave, args.credentials))
                runs["haldor run"].append(first_decision(product, master, slave, args.credentials))
        finally:
            broker.stop()
            os.close(master)
            os.close(slave)
    now, base = spread(runs["haldor run"]), spread(runs["floor"])
    ratio = round(now["median"] / base["median"], 2)
    print(f"spawn to first decision, {args.credentials} credentials, {args.rounds} rounds each (ms)")
    print(f"{'':<12} {'median':>8} {'min':>8} {'max':>8} {'stdev':>8}")
    for name, figures in (("haldor run", now), ("floor", base)):
        print(f"{name:<12} {figures['median']:>8} {figures['min']:>8} {figures['max']:>8} {figures['stdev']:>8}")
    print(f"ratio (median): {ratio}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"credentials": args.credentials, "rounds": args.rounds, "first_decision_ms": now, "floor_ms": base}
        args.json.write_text(json.dumps({**results, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
