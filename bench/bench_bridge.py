"""Bridge load test (issue 14): N sites, two rooms each, weekly series over a season, a
credentials sheet for the whole municipality; `haldor bridge --once` in its own process
against a real Mosquitto, with every schedule sealed to its site's key.

Prints: the first run (every site a snapshot): wall time, peak memory, bytes published;
``--rounds`` runs with nothing changed (the median and each), each beside a run of its
floor (FLOOR_RUN: the same sheets read, the feeds whose bytes changed parsed, and each
site compared with the last run's, in a plain script without the bridge's code),
interleaved; then a run after 10 single
bookings moved: wall time, how many sites got a delta, bytes published.

    python bench/bench_bridge.py --sites 100 --bookings 50000 --credentials 100000
    python bench/bench_bridge.py --sites 1000 --bookings 80000 --credentials 100000   # target: unchanged under 5 s
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import icalendar  # noqa: E402
from nacl.public import PrivateKey  # noqa: E402

from bench.bench_access import report  # noqa: E402
from haldor.access import sealing  # noqa: E402
from haldor.integrator.documents import keygen  # noqa: E402
from haldor.mqtt import make_client  # noqa: E402
from tests.broker import Broker  # noqa: E402

CPH = ZoneInfo("Europe/Copenhagen")
ROOMS_PER_SITE = 2
WEEKS = 40  # a season: week 33 to week 26, less the holidays


class Counter:
    """Bytes and messages the broker delivers on the schedule topics."""

    def __init__(self, port: int) -> None:
        self.bytes = self.messages = 0
        self.lock = threading.Lock()
        self.client = make_client("bench-counter")
        self.client.manual_ack_set(False)
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [("haldor/v1/+/schedule", 0), ("haldor/v1/+/schedule/delta", 0)]
        )
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.bytes += len(msg.payload)
            self.messages += 1

    def take(self, expected: int, timeout: float = 60) -> tuple[int, int]:
        """Wait until ``expected`` messages came (retained ones at subscription count too)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.messages >= expected:
                    got = self.bytes, self.messages
                    self.bytes = self.messages = 0
                    return got
            time.sleep(0.05)
        raise TimeoutError(f"{self.messages} of {expected} schedule messages")


def write_inputs(root: Path, sites: int, bookings: int, credentials: int, port: int) -> tuple[Path, dict[str, list]]:
    keygen("bookings", root)
    associations = max(10, sites * 5)
    (root / "associations.csv").write_text(
        "id;name\n" + "".join(f"a{i};Forening {i}\n" for i in range(associations)), encoding="utf-8"
    )
    lines = ["id;association;card;pin;role;sites"]
    for i in range(credentials):
        lines.append(f"c{i};a{i % associations};uid:{0x04000000 + i:08X};;member;")
    (root / "credentials.csv").write_text("\n".join(lines) + "\n")
    rooms = ["site;id;name;doors"]
    series_per_room = max(1, bookings // (sites * ROOMS_PER_SITE * WEEKS))
    start = datetime.now(CPH).replace(hour=17, minute=0, second=0, microsecond=0) + timedelta(days=1)
    config = [
        '[bridge]\nkey = "bookings.key"\nstate = "state.db"\ndelta_max = 500\n',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntls = false\n',
        '[sheets]\nassociations = "associations.csv"\ncredentials = "credentials.csv"\nrooms = "rooms.csv"\n',
    ]
    calendars: dict[str, list] = {}
    for s in range(sites):
        site = f"skole-{s:04d}"
        public = sealing.public_text(PrivateKey.generate())
        config.append(f'[[sites]]\nid = "{site}"\npublic_key = "{public}"\n')
        for r in range(ROOMS_PER_SITE):
            room = f"sal-{r}"
            rooms.append(f"{site};{room};Sal {r};main")
            events = []
            for k in range(series_per_room):
                e = icalendar.Event()
                e.add("uid", f"{site}-{room}-{k}@bench")
                e.add("summary", f"Træning {k}")
                first = start + timedelta(days=k % 7, hours=(k // 7) % 4)
                e.add("dtstart", first)
                e.add("dtend", first + timedelta(hours=1))
                e.add("rrule", {"freq": "weekly", "count": WEEKS})
                e.add("categories", [f"a{(s * 7 + r * 3 + k) % associations}"])
                events.append(e)
            name = f"{site}-{room}.ics"
            calendars[name] = events
            write_calendar(root / name, events)
            config.append(f'[[feeds]]\nsite = "{site}"\nroom = "{room}"\nsource = "{name}"\n')
    (root / "rooms.csv").write_text("\n".join(rooms) + "\n")
    (root / "bridge.toml").write_text("".join(config))
    return root / "bridge.toml", calendars


def write_calendar(path: Path, events: list) -> None:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Haldor bench//")
    cal.add("version", "2.0")
    for e in events:
        cal.add_component(e)
    path.write_bytes(cal.to_ical())


#: the floor of a run with nothing changed, written without the bridge's code: the same
#: sheets (csv) and feeds (icalendar, recurring_ical_events: one query per feed over the
#: horizon, from local midnight a day back), a feed parsed only when its bytes or the
#: window changed since the floor's last run (its bookings kept as JSON in SQLite under
#: that hash, as the bridge does), each site's snapshot put together from dictionaries
#: keyed by site and association, compared as JSON text with what the floor's own last
#: run stored (SQLite), nothing published. No limits, no worker process, no checks of
#: what a box would refuse.
FLOOR_RUN = r"""
import csv, hashlib, json, sqlite3, sys
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
import icalendar, recurring_ical_events
root, manifest = sys.argv[1], json.load(open(sys.argv[2]))
tz = ZoneInfo("Europe/Copenhagen")
def rows(name):
    with open(f"{root}/{name}", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=";"))
associations = {a["id"]: a for a in rows("associations.csv")}
members = defaultdict(list)
for c in rows("credentials.csv"):
    members[c["association"]].append(c)
rooms = defaultdict(list)
for r in rows("rooms.csv"):
    rooms[r["site"]].append(r)
start = datetime.combine(datetime.now(tz).date() - timedelta(days=1), datetime.min.time(), tz)
end = start + timedelta(days=365)
db = sqlite3.connect(f"{root}/floor-state.db")
db.execute("CREATE TABLE IF NOT EXISTS published(site TEXT PRIMARY KEY, doc TEXT)")
db.execute("CREATE TABLE IF NOT EXISTS parsed(feed TEXT PRIMARY KEY, key TEXT, bookings TEXT)")
changed = 0
for site, feeds in manifest.items():
    bookings = []
    for room, name in feeds:
        with open(f"{root}/{name}", "rb") as f:
            data = f.read()
        key = hashlib.sha256(data + start.isoformat().encode()).hexdigest()
        row = db.execute("SELECT bookings FROM parsed WHERE feed = ? AND key = ?", [name, key]).fetchone()
        if row is not None:
            bookings += json.loads(row[0])
            continue
        got = []
        for e in recurring_ical_events.of(icalendar.Calendar.from_ical(data)).between(start, end):
            first = e["dtstart"].dt
            got.append({"id": f"{e['uid']}|{first.isoformat()}", "room": room, "association": str(e["categories"].cats[0]),
                        "start": first.isoformat(), "end": e["dtend"].dt.isoformat()})
        with db:
            db.execute("INSERT OR REPLACE INTO parsed VALUES (?, ?, ?)", [name, key, json.dumps(got)])
        bookings += got
    booked = sorted({b["association"] for b in bookings})
    doc = json.dumps({"rooms": rooms[site], "associations": [associations[a] for a in booked],
                      "credentials": [c for a in booked for c in members[a]], "bookings": bookings}, sort_keys=True)
    row = db.execute("SELECT doc FROM published WHERE site = ?", [site]).fetchone()
    if row is None or row[0] != doc:
        changed += 1
        with db:
            db.execute("INSERT OR REPLACE INTO published VALUES (?, ?)", [site, doc])
print(changed)
"""


def floor_run(root: Path) -> tuple[float, str]:
    started = time.perf_counter()
    cmd = [sys.executable, str(root / "floor_run.py"), str(root), str(root / "manifest.json")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - started, done.stdout.strip()


def unchanged_rounds(config: Path, root: Path, calendars: dict[str, list], rounds: int) -> dict:
    """Runs with nothing changed since the last, interleaved with the floor's: the floor's
    first run stores its snapshots, then floor round, bridge round, floor round ..."""
    manifest: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(calendars):
        site, room = name.removesuffix(".ics").rsplit("-sal-", 1)
        manifest.setdefault(site, []).append((f"sal-{room}", name))
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "floor_run.py").write_text(FLOOR_RUN)
    floor_run(root)
    runs: dict[str, list[float]] = {"bridge": [], "floor": []}
    for _ in range(rounds):
        seconds, changed = floor_run(root)
        if changed != "0":
            raise RuntimeError(f"the floor found {changed} sites changed")
        runs["floor"].append(seconds)
        seconds, out = run(config)
        if " to haldor/v1/" in out:
            raise RuntimeError(f"an unchanged run published: {out[-500:]}")
        runs["bridge"].append(seconds)
    bridge, floor = statistics.median(runs["bridge"]), statistics.median(runs["floor"])
    return {
        "unchanged_run_s": round(bridge, 2),
        "unchanged_run_s_all": [round(x, 2) for x in runs["bridge"]],
        "floor_unchanged_run_s": round(floor, 2),
        "floor_unchanged_run_s_all": [round(x, 2) for x in runs["floor"]],
        "unchanged_ratio": round(bridge / floor, 2),
    }


def run(config: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "haldor", "bridge", "--config", str(config), "--once"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return time.perf_counter() - started, done.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=100)
    p.add_argument("--bookings", type=int, default=50_000, help="season bookings across all sites")
    p.add_argument("--credentials", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3, help="runs with nothing changed, each beside a floor run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results: dict = {"sites": args.sites}
    with tempfile.TemporaryDirectory(prefix="haldor-bench-bridge-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker", extra="message_size_limit 0\n", audit=False).start()
        try:
            config, calendars = write_inputs(root, args.sites, args.bookings, args.credentials, broker.port)
            counter = Counter(broker.port)
            seconds, out = run(config)
            results["bookings"] = sum(len(events) for events in calendars.values()) * WEEKS
            results["first_run_s"] = round(seconds, 2)
            results["first_run_peak_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
            first_bytes, _ = counter.take(args.sites)
            results["first_run_published_mb"] = round(first_bytes / 2**20, 2)
            results.update(unchanged_rounds(config, root, calendars, args.rounds))
            moved = sorted(calendars)[:10]  # one booking moved an hour in each of ten rooms
            for name in moved:
                master = calendars[name][0]
                instance = master["dtstart"].dt + timedelta(weeks=2)
                e = icalendar.Event()
                e.add("uid", str(master["uid"]))
                e.add("recurrence-id", instance)
                e.add("dtstart", instance + timedelta(hours=1))
                e.add("dtend", instance + timedelta(hours=2))
                write_calendar(root / name, [*calendars[name], e])
            seconds, out = run(config)
            changed_sites = len({name.rsplit("-sal", 1)[0] for name in moved})
            delta_bytes, messages = counter.take(changed_sites)
            results["ten_moved_run_s"] = round(seconds, 2)
            results["ten_moved_deltas"] = out.count("haldor.delta/1")
            results["ten_moved_published_kb"] = round(delta_bytes / 1024, 1)
            counter.client.disconnect()
        finally:
            broker.stop()
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
