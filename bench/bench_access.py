"""Access benchmark (issues 2 and 12): decision latency, card-to-lock latency, snapshot
apply time and memory, the agent's idle memory and import time, at 10,000, 100,000 and
300,000 credentials; and decision and card-to-lock latency while the agent applies a
snapshot of that size beside its loop (idle beside it, for comparison).

Each figure is printed beside its floor, the simplest code that does the same work,
implemented here (``floor_*``), and their ratio. Run by hand at full size:

    python bench/bench_access.py

and in CI with small sizes (`--credentials 2000 --bookings 1000 --samples 100`).
It prints numbers; it asserts nothing about speed (the targets are in the README).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import queue
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gpiozero.pins.mock import MockFactory

from haldor import config
from haldor.access import policy
from haldor.access.model import Conditions
from haldor.agent.hardware import build_hardware
from haldor.agent.http_fallback import HttpSchedule
from haldor.agent.loop import Agent
from haldor.agent.messages import Command, ScheduleDone, Stop
from haldor.agent.site import open_store
from haldor.drivers.base import CardRead
from haldor.store import intake

TZ = ZoneInfo("Europe/Copenhagen")
SITE = "bench-hal"
ROOMS = 20
ASSOCIATIONS = 500

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

[[doors]]
id = "gym-0"
lock_pin = 18

[[readers]]
id = "main-in"
type = "serial-line"
door = "main"
port = "{port}"
"""


def card_of(i: int) -> str:
    return f"uid:04{i:012X}"


def make_snapshot(credentials: int, bookings: int, now: datetime, seed: int = 7) -> dict:
    """Bookings of two hours spread over 180 days around ``now``, and one booking on
    now for every association, so most cards have something to match."""
    rnd = random.Random(seed)
    rooms = [{"id": f"gym-{r}", "name": f"Sal {r}", "doors": ["main", f"gym-{r}"]} for r in range(ROOMS)]
    associations = [{"id": f"a{a}", "name": f"Forening {a}"} for a in range(ASSOCIATIONS)]
    creds = [
        {
            "id": f"c{i}",
            "card": card_of(i),
            "pin": f"{rnd.randrange(10**6):06d}" if i % 10 == 0 else None,
            "association": f"a{i % ASSOCIATIONS}",
            "role": "leader" if i % 25 == 0 else "member",
            "valid_from": None,
            "valid_until": None,
        }
        for i in range(credentials)
    ]
    start0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=90)
    items = []
    for b in range(bookings):
        if b < ASSOCIATIONS:
            start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        else:
            start = start0 + timedelta(hours=rnd.randrange(180 * 24))
        items.append(
            {
                "id": f"b{b}",
                "room": f"gym-{b % ROOMS}",
                "association": f"a{b % ASSOCIATIONS}",
                "title": "Træning",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=2)).isoformat(),
                "status": "approved",
                "pin": None,
                "unlocked_during": False,
            }
        )
    return {
        "schema": "haldor.schedule/1",
        "site": SITE,
        "version": 1,
        "generated_at": now.isoformat(),
        "timezone": "Europe/Copenhagen",
        "policy": {"grace_before_min": 15, "grace_after_min": 15, "no_show_after_min": 20, "leader_first": False},
        "rooms": rooms,
        "associations": associations,
        "credentials": creds,
        "bookings": items,
        "closures": [],
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return qs[49], qs[98]


#: runs a module or a script as __main__ and says, at exit, its own peak resident memory
#: (VmHWM: since its exec, unlike ru_maxrss, which keeps the forking parent's)
PEAK_WRAPPER = """
import atexit, os, runpy, sys
def said():
    status = open("/proc/self/status").read()
    peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    os.write(2, f"\\nVMHWM {peak}\\n".encode())
atexit.register(said)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def timed_child(argv: list[str]) -> tuple[float, float, int]:
    """A module or script (``argv[0]``) in a child process: its wall time, its own peak
    resident memory (MiB) and its exit status (0 or 2)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{argv[:4]} failed: {proc.stderr}")
    peak_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("VMHWM "))
    return elapsed, peak_kb / 1024, proc.returncode


def bench_apply(cfg_path: Path, doc_path: Path) -> tuple[float, float] | None:
    """`haldor schedule load` in a child process: wall time and the child's peak RSS (MiB);
    None when it refused the document (too large)."""
    elapsed, peak, code = timed_child(["haldor", "schedule", "load", "--config", str(cfg_path), str(doc_path)])
    return None if code else (elapsed, peak)


FLOOR_APPLY = r"""
import hashlib, hmac, json, sqlite3, sys
from datetime import datetime
doc_path, db_path = sys.argv[1], sys.argv[2]
mac = hmac.new(b"k" * 32, b"card\x00", hashlib.sha256)
def h(text):
    if text is None:
        return None
    m = mac.copy(); m.update(text.encode()); return m.hexdigest()
def t(text):
    return None if text is None else datetime.fromisoformat(text).timestamp()
with open(doc_path, "rb") as f:
    doc = json.load(f)
db = sqlite3.connect(db_path)
db.executescript(
    "CREATE TABLE rooms(id TEXT PRIMARY KEY, name TEXT);"
    "CREATE TABLE room_doors(room TEXT, door TEXT, PRIMARY KEY(room, door));"
    "CREATE INDEX rd_door ON room_doors(door);"
    "CREATE TABLE associations(id TEXT PRIMARY KEY, name TEXT);"
    "CREATE TABLE credentials(id TEXT PRIMARY KEY, card_hash TEXT, pin_hash TEXT, association TEXT, role TEXT, valid_from REAL, valid_until REAL);"
    "CREATE INDEX c_card ON credentials(card_hash);"
    "CREATE INDEX c_pin ON credentials(pin_hash);"
    "CREATE TABLE bookings(id TEXT PRIMARY KEY, room TEXT, association TEXT, title TEXT, start REAL, end REAL, status TEXT, pin_hash TEXT, unlocked_during INT);"
    "CREATE INDEX b_room ON bookings(room, start);"
    "CREATE INDEX b_pin ON bookings(pin_hash);"
    "CREATE INDEX b_start ON bookings(start);"
    "CREATE INDEX b_assoc ON bookings(association, start);"
    "CREATE TABLE closures(room TEXT, start REAL, end REAL, reason TEXT);"
)
with db:
    db.executemany("INSERT INTO rooms VALUES (?, ?)", [(r["id"], r["name"]) for r in doc["rooms"]])
    db.executemany("INSERT INTO room_doors VALUES (?, ?)", [(r["id"], d) for r in doc["rooms"] for d in r["doors"]])
    db.executemany("INSERT INTO associations VALUES (?, ?)", [(a["id"], a["name"]) for a in doc["associations"]])
    db.executemany("INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (c["id"], h(c["card"]), h(c["pin"]), c["association"], c["role"], t(c["valid_from"]), t(c["valid_until"]))
        for c in doc["credentials"]])
    db.executemany("INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (b["id"], b["room"], b["association"], b["title"], t(b["start"]), t(b["end"]), b["status"], h(b["pin"]), int(b["unlocked_during"]))
        for b in doc["bookings"]])
    db.executemany("INSERT INTO closures VALUES (?, ?, ?, ?)", [
        (c.get("room"), t(c["start"]), t(c["end"]), c.get("reason")) for c in doc.get("closures", [])])
"""


def floor_apply(doc_path: Path, tmp: Path) -> tuple[float, float]:
    """The whole-file floor of an apply: json.load, hash, insert in one transaction into
    the store's tables with the same seven indexes (no validation at all) in a child
    process; wall time and peak RSS (MiB)."""
    db = tmp / "floor.db"
    db.unlink(missing_ok=True)
    script = tmp / "floor_apply.py"
    script.write_text(FLOOR_APPLY)
    elapsed, peak, _ = timed_child([str(script), str(doc_path), str(db)])
    db.unlink(missing_ok=True)
    return elapsed, peak


#: the floor of a decision: the card's HMAC and one indexed query for its credentials and
#: their associations' bookings near now (no policy, no standing facts, no closures),
#: written here without the store: the secret read from its file, its own connection
FLOOR_SQL = """
    SELECT c.id, c.association, c.role, c.valid_from, c.valid_until, b.id, b.room, b.start, b.end
    FROM credentials c LEFT JOIN bookings b INDEXED BY bookings_by_association
      ON b.association = c.association AND b.start > ? AND b.start < ? AND b.end > ? AND b.status = 'approved'
    WHERE c.card_hash = ?"""


def bench_decisions(cfg: config.Config, credentials: int, samples: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """store.facts + policy.decide, as the agent does per read (known and unknown cards),
    interleaved with its floor on the same card: (p50, p99) of each. Alternating which goes
    first, neither gets the other's warm cache more often."""
    data = Path(cfg.data_dir)
    mac = hmac.new((data / "device.secret").read_bytes(), b"card\x00", hashlib.sha256)
    conn = sqlite3.connect(f"file:{data / 'haldor.db'}?mode=ro", uri=True)
    store = open_store(cfg)
    rnd = random.Random(1)
    now = time.time()
    low, high, lowest = now - 14 * 3600, now + 14 * 3600, now - 40 * 3600
    times: list[float] = []
    floors: list[float] = []

    def product(card: str, door: str) -> None:
        t0 = time.perf_counter()
        facts = store.schedule.facts(door, now, card=card)
        policy.decide(now, facts, Conditions(), pin=False)
        times.append(time.perf_counter() - t0)

    def floor(card: str) -> None:
        t0 = time.perf_counter()
        m = mac.copy()
        m.update(card.encode())
        conn.execute(FLOOR_SQL, [lowest, high, low, m.hexdigest()]).fetchall()
        floors.append(time.perf_counter() - t0)

    try:
        for n in range(samples):
            card = card_of(rnd.randrange(credentials)) if n % 5 else f"uid:FF{n:012X}"
            door = "main" if n % 2 else "gym-0"
            if n % 2:
                product(card, door)
                floor(card)
            else:
                floor(card)
                product(card, door)
    finally:
        store.close()
        conn.close()
    return percentiles(times), percentiles(floors)


def bench_card_to_lock(cfg: config.Config, master: int, credentials: int, samples: int) -> tuple[float, float, int]:
    """A frame written to the pty until the lock pin goes active, through the whole agent."""
    factory = MockFactory()
    inbox: queue.Queue = queue.Queue()
    store = open_store(cfg)
    hw = build_hardware(cfg, inbox.put, factory)
    moved = threading.Event()
    hw.locks["main"] = _Watched(hw.locks["main"], moved)
    agent = Agent(cfg, store, hw, inbox=inbox)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    pin = factory.pin(17)
    times = []
    granted = 0
    try:
        if not hw.readers[0].ready.wait(5):
            raise RuntimeError("reader port did not open")
        rnd = random.Random(2)
        # the first ASSOCIATIONS bookings are on now: credential i belongs to association i % ASSOCIATIONS
        for _ in range(samples):
            i = rnd.randrange(credentials)
            moved.clear()
            t0 = time.perf_counter()
            os.write(master, card_of(i).encode() + b"\r\n")
            if not moved.wait(5) or not pin.state:  # waiting on an event, not spinning: the agent needs the GIL
                raise RuntimeError(f"card {i} did not open the lock")
            times.append(time.perf_counter() - t0)
            granted += 1
            moved.clear()
            agent.post(Command("lock", "main"))
            if not moved.wait(5) or pin.state:
                raise RuntimeError("lock did not close")
    finally:
        agent.post(Stop())
        thread.join(5)
        store.close()
        factory.reset()
    p50, p99 = percentiles(times)
    return p50, p99, granted


class _Watched:
    """The real lock driver, telling the benchmark when it has been driven (and when:
    ``at``, taken on the loop's thread right after the pin moved)."""

    def __init__(self, lock, moved: threading.Event) -> None:
        self._lock = lock
        self._moved = moved
        self.at = 0.0

    @property
    def unlocked(self) -> bool:
        return self._lock.unlocked

    def set_unlocked(self, unlocked: bool) -> None:
        self._lock.set_unlocked(unlocked)  # the pin is driven before the benchmark hears of it
        self.at = time.perf_counter()
        self._moved.set()

    def close(self) -> None:
        self._lock.close()


def spread(samples: list[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max; with fewer than two samples, what there is."""
    if not samples:
        return None, None, None
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    p50, p99 = percentiles(samples)
    return p50, p99, max(samples)


def _ms(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value * 1e3, digits)


def bench_during_apply(
    cfg: config.Config, doc: dict, credentials: int, applies: int, idle_samples: int, interval_s: float
) -> dict:
    """Cards granted while the agent applies a full snapshot beside its loop, and the same
    with nothing applied ("idle"). Each card is a ``CardRead`` posted on the agent's queue
    every ``interval_s`` (the reader's own latency is in ``card_to_lock_*``), timed:

    - card-to-lock: from the post until the lock's mock pin is driven active (a timestamp
      taken on the loop's thread right after the pin moved);
    - decision: the loop's card handler (``Agent.handlers[CardRead]``: store.facts, the leaders still on their way to
      the store, controller.present with policy.decide, its log line), timed on the loop's
      thread; the rest of card-to-lock is the queue hand-off and driving the pin;
    - event lag: from the pin until the loop hears that the access.granted event is
      committed (the journal waits for the apply's write lock).

    Between cards the door is locked again by a command, so every card sees it go from
    locked to unlocked. The snapshot (version + 1 each time) goes in as ``HttpSchedule``,
    the path the broker's snapshots take too (the schedule worker); a card counts as
    during the apply when it was posted after the document and before the worker was done.
    """
    base = doc["version"]
    payloads = []
    for k in range(applies):
        doc["version"] = base + 1 + k
        payloads.append(json.dumps(doc).encode())
    doc["version"] = base

    factory = MockFactory()
    inbox: queue.Queue = queue.Queue()
    store = open_store(cfg)
    hw = build_hardware(cfg, inbox.put, factory)
    moved = threading.Event()
    watched = hw.locks["main"] = _Watched(hw.locks["main"], moved)
    agent = Agent(cfg, store, hw, inbox=inbox)

    decided: list[tuple[float, float]] = []  # on the loop's thread
    presented = agent.handlers[CardRead]

    def timed_presented(read, now):
        t = time.perf_counter()
        try:
            return presented(read, now)
        finally:
            decided.append((t, time.perf_counter()))

    agent.handlers[CardRead] = timed_presented
    committed: list[float] = []  # one per access.granted event, when the loop hears it is stored
    agent.subscribe(lambda events: committed.extend(time.perf_counter() for e in events if e["type"] == "access.granted"))

    done = threading.Event()
    outcomes: list = []
    schedule_done = agent.handlers[ScheduleDone]

    def noted_done(message, now):
        outcomes.append((time.perf_counter(), message.outcome))
        done.set()
        return schedule_done(message, now)

    agent.handlers[ScheduleDone] = noted_done

    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    pin = factory.pin(17)
    rnd = random.Random(3)
    samples: list[tuple[float, float, float, float]] = []  # posted, decision start, decision end, pin moved

    def present() -> tuple[float, float, float, float]:
        card = card_of(rnd.randrange(credentials))
        moved.clear()
        seen = len(decided)
        t0 = time.perf_counter()
        agent.post(CardRead("main-in", card))
        if not moved.wait(30) or not pin.state:  # waiting on an event, not spinning: the agent needs the GIL
            raise RuntimeError(f"{card} did not open the lock")
        sample = (t0, *decided[seen], watched.at)
        moved.clear()
        agent.post(Command("lock", "main"))
        if not moved.wait(30) or pin.state:
            raise RuntimeError("lock did not close")
        samples.append(sample)
        pause = t0 + interval_s - time.perf_counter()
        if pause > 0:
            threading.Event().wait(pause)  # the pace of the cards, not a synchronisation
        return sample

    windows: list[tuple[float, float]] = []
    try:
        if not agent.running.wait(10):
            raise RuntimeError("agent did not start")
        for _ in range(idle_samples):
            present()
        idle = len(samples)
        for payload in payloads:
            agent.journal.flush(30)  # each apply starts with nothing waiting to be written
            done.clear()
            posted = time.perf_counter()
            agent.post(HttpSchedule(payload, "bench"))
            while not done.is_set():
                present()
            windows.append((posted, outcomes[-1][0]))
            if outcomes[-1][1].status != "applied":
                raise RuntimeError(f"snapshot not applied: {outcomes[-1][1].message}")
            present()  # after the apply, so that the last card inside it is followed by one
        if not agent.journal.flush(60):
            raise RuntimeError("events not written")
        deadline = time.monotonic() + 10
        while len(committed) < len(samples) and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        version = store.version
    finally:
        agent.post(Stop())
        thread.join(30)
        store.close()
        factory.reset()
    if version != base + applies:
        raise RuntimeError(f"schedule version {version}, expected {base + applies}")

    def figures(chosen: list[int]) -> dict:
        to_lock = [samples[i][3] - samples[i][0] for i in chosen]
        decision = [samples[i][2] - samples[i][1] for i in chosen]
        lag = [committed[i] - samples[i][3] for i in chosen if i < len(committed)]
        (c50, c99, cmax), (d50, d99, dmax), (_, _, lmax) = spread(to_lock), spread(decision), spread(lag)
        return {
            "card_to_lock_p50_ms": _ms(c50),
            "card_to_lock_p99_ms": _ms(c99),
            "card_to_lock_max_ms": _ms(cmax),
            "decision_p50_ms": _ms(d50, 3),
            "decision_p99_ms": _ms(d99, 3),
            "decision_max_ms": _ms(dmax, 3),
            "event_lag_max_ms": _ms(lmax, 1),
        }

    inside = [i for i in range(idle, len(samples)) if any(a <= samples[i][0] < b for a, b in windows)]
    # the write lock is held in the schedule worker's own process: read from the events' lag,
    # a card decided while it was held has its event written only after it
    locked = [i for i in inside if i < len(committed) and committed[i] - samples[i][3] > 0.1]
    results = {f"idle_{k}": v for k, v in figures(list(range(idle))).items()}
    results.update({f"during_apply_{k}": v for k, v in figures(inside).items()})
    results.update(
        {
            "idle_samples": idle,
            "during_apply_samples": len(inside),
            "during_write_lock_samples": len(locked),
            "during_write_lock_card_to_lock_max_ms": _ms(spread([samples[i][3] - samples[i][0] for i in locked])[2]),
            "live_applies": applies,
            "live_apply_s": [round(b - a, 2) for a, b in windows],
            "events_committed": f"{len(committed)}/{len(samples)}",
        }
    )
    return results


def agent_rss(cfg_path: Path) -> float:
    """Resident memory (MB) of `haldor run` once it has started on the full store, its network
    part attached (door-first: the doors answer before it is loaded)."""
    proc = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(cfg_path)], stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "network part attached" in line:
                break
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return rss_kb / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


FLOOR_IDLE = """
import sqlite3, sys
import gpiozero, paho.mqtt.client
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM meta").fetchone()
status = open("/proc/self/status").read()
print(next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")))
"""


def floor_rss(db_path: Path) -> float:
    """The floor of the agent's idle memory (MB): Python, sqlite3, gpiozero, paho, the database open."""
    out = subprocess.run([sys.executable, "-c", FLOOR_IDLE, str(db_path)], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def import_ms(modules: tuple[str, ...], runs: int = 5) -> list[float]:
    """Each of ``modules`` imported in a fresh interpreter, interleaved round by round (a
    bare start among them): the best of ``runs`` each, less the bare start's (ms)."""
    codes = ["pass", *(f"import {m}" for m in modules)]
    times: list[list[float]] = [[] for _ in codes]
    for _ in range(runs):
        for i, code in enumerate(codes):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[i].append(time.perf_counter() - t0)
    bare = min(times[0])
    return [(min(t) - bare) * 1e3 for t in times[1:]]


#: the agent's entry (what `haldor run` imports) and its floor (the libraries it cannot do without)
AGENT_ENTRY = "haldor.agent.run"
FLOOR_IMPORTS = "sqlite3, gpiozero, paho.mqtt.client"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,300000", help="credential counts, comma-separated (bookings: half)")
    p.add_argument("--credentials", type=int, help="one size only (instead of --sizes)")
    p.add_argument("--bookings", type=int, help="bookings (default: half the credentials)")
    p.add_argument("--samples", type=int, default=2000, help="decisions to time (card-to-lock: a fifth of these)")
    p.add_argument("--repeat", type=int, default=3, help="snapshot applies (the median is printed)")
    p.add_argument("--live-applies", type=int, default=3, help="snapshots applied by a running agent while cards are presented")
    p.add_argument("--idle-samples", type=int, default=100, help="cards presented to the running agent before any apply")
    p.add_argument("--interval-ms", type=float, default=75, help="between cards presented to the running agent")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    sizes = [args.credentials] if args.credentials else [int(x) for x in args.sizes.split(",")]
    runs = []
    for credentials in sizes:
        bookings = args.bookings or credentials // 2
        if bookings < ASSOCIATIONS:
            p.error(f"bookings must be at least {ASSOCIATIONS}")
        runs.append(bench_size(credentials, bookings, args))
    agent_ms, floor_ms = import_ms((AGENT_ENTRY, FLOOR_IMPORTS))
    common = {"agent_import_ms": round(agent_ms, 1), "floor_agent_import_ms": round(floor_ms, 1)}
    report_table(runs, common)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        flat = runs[0] if len(runs) == 1 else {}
        args.json.write_text(json.dumps({**flat, **common, "sizes": runs}, indent=2) + "\n")
    return 0


def bench_size(credentials: int, bookings: int, args: argparse.Namespace) -> dict:
    """Every figure at one size, each beside its floor."""
    with tempfile.TemporaryDirectory(prefix="haldor-bench-") as tmp:
        tmp_path = Path(tmp)
        master, slave = os.openpty()
        tty.setraw(slave)
        cfg_path = tmp_path / "haldor.toml"
        cfg_path.write_text(CONFIG.format(site=SITE, data=tmp_path / "data", port=os.ttyname(slave)))
        cfg = config.load(cfg_path)
        doc = make_snapshot(credentials, bookings, datetime.now(TZ))
        applies: list[float] = []
        apply_rss = 0.0
        floors: list[tuple[float, float]] = []
        for version in range(1, args.repeat + 1):  # each a new version, replacing the whole schedule
            doc["version"] = version
            doc_path = tmp_path / f"snapshot-{version}.json"
            doc_path.write_text(json.dumps(doc))
            size_mb = doc_path.stat().st_size / 1e6
            floors.append(floor_apply(doc_path, tmp_path))
            measured = bench_apply(cfg_path, doc_path)
            if measured is None:  # refused (too large): applied in-process past the limit, for the decisions
                _load_anyway(cfg, doc_path)
            else:
                applies.append(measured[0])
                apply_rss = max(apply_rss, measured[1])
            doc_path.unlink()
        (d50, d99), (f50, f99) = bench_decisions(cfg, credentials, args.samples)
        c50, c99, granted = bench_card_to_lock(cfg, master, credentials, max(20, args.samples // 5))
        doc["version"] = args.repeat
        live = {}
        if applies and args.live_applies:
            live = bench_during_apply(cfg, doc, credentials, args.live_applies, args.idle_samples, args.interval_ms / 1e3)
        rss = agent_rss(_without_reader(cfg_path))
        rss_floor = floor_rss(tmp_path / "data" / "haldor.db")
        os.close(master)
        os.close(slave)

    return {
        "credentials": credentials,
        "bookings": bookings,
        "snapshot_mb": round(size_mb, 1),
        "apply_s_median": round(statistics.median(applies), 2) if applies else None,
        "apply_s_all": [round(a, 2) for a in applies],
        "apply_peak_rss_mb": round(apply_rss, 1) if applies else None,
        "floor_apply_s": round(statistics.median(f[0] for f in floors), 2),
        "floor_apply_peak_rss_mb": round(max(f[1] for f in floors), 1),
        "decision_p50_ms": round(d50 * 1e3, 3),
        "decision_p99_ms": round(d99 * 1e3, 3),
        "floor_decision_p50_ms": round(f50 * 1e3, 3),
        "floor_decision_p99_ms": round(f99 * 1e3, 3),
        "card_to_lock_p50_ms": round(c50 * 1e3, 2),
        "card_to_lock_p99_ms": round(c99 * 1e3, 2),
        "card_to_lock_samples": granted,
        "agent_rss_mb": round(rss, 1),
        "floor_agent_rss_mb": round(rss_floor, 1),
        **live,
    }


#: what the table prints: (figure, its key, its floor's key)
FIGURES: tuple[tuple[str, str, str | None], ...] = (
    ("decision p50 (ms)", "decision_p50_ms", "floor_decision_p50_ms"),
    ("decision p99 (ms)", "decision_p99_ms", "floor_decision_p99_ms"),
    ("schedule load wall (s)", "apply_s_median", "floor_apply_s"),
    ("schedule load peak (MiB)", "apply_peak_rss_mb", "floor_apply_peak_rss_mb"),
    ("haldor run idle RSS (MB)", "agent_rss_mb", "floor_agent_rss_mb"),
    ("card-to-lock p50 (ms)", "card_to_lock_p50_ms", None),
    ("card-to-lock p99 (ms)", "card_to_lock_p99_ms", None),
)


def report_table(runs: list[dict], common: dict) -> None:
    """Each figure beside its floor and their ratio, one line per figure and size; then
    the rest of each size's numbers."""
    print(f"{'figure':<26} {'credentials':>11} {'now':>9} {'floor':>9} {'ratio':>7}")
    for name, key, floor_key in FIGURES:
        for run in runs:
            now = run.get(key)
            floor = run.get(floor_key) if floor_key else None
            ratio = f"{now / floor:.2f}" if now is not None and floor else "-"
            shown = "refused" if now is None else now
            print(f"{name:<26} {run['credentials']:>11} {shown!s:>9} {'-' if floor is None else floor!s:>9} {ratio:>7}")
    now, floor = common["agent_import_ms"], common["floor_agent_import_ms"]
    ratio = f"{now / floor:.2f}" if floor > 0 else "-"
    print(f"{'import agent entry (ms)':<26} {'-':>11} {now!s:>9} {floor!s:>9} {ratio:>7}")
    shown = {f[1] for f in FIGURES} | {f[2] for f in FIGURES if f[2]}
    for run in runs:
        print(f"-- {run['credentials']} credentials: " + ", ".join(f"{k}={v}" for k, v in run.items() if k not in shown))


def _load_anyway(cfg: config.Config, doc_path: Path) -> None:
    """A document over the size limit, applied in-process past it (the decisions need a store)."""
    store = open_store(cfg)
    try:
        outcome = intake.process(
            store, doc_path.read_bytes(), keys={}, require_signature=False, now=time.time(), max_bytes=1 << 40
        )
        if outcome.status != "applied":
            raise RuntimeError(f"not applied: {outcome.message}")
    finally:
        store.close()


def report(results: dict, json_path: Path | None) -> None:
    """One aligned line per number, and the same as JSON when asked."""
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")


def _without_reader(cfg_path: Path) -> Path:
    """The same site for `haldor run`, without the pty reader the benchmark itself holds."""
    text = cfg_path.read_text()
    path = cfg_path.with_name("run.toml")
    path.write_text(text[: text.index("[[readers]]")])
    return path


if __name__ == "__main__":
    sys.exit(main())
