"""Fleet load test (issues 5 and 15): N simulated sites (MQTT clients in worker
processes) on one Mosquitto, with `haldor fleet` consumers in processes of their own.

Prints: snapshot fan-out time (one snapshot per site published until every site
holds its own); then per consumer: events per second absorbed, the consumer's CPU
microseconds per message against the batched floor of its backend (``floor_us``: the
same number of events parsed and stored 300 a transaction with plain sqlite3 or psycopg,
no broker; one round before the consumers run and one after, the median) and the ratio,
its memory; and per database whether every published event is stored, once.

    python bench/bench_fleet.py --sites 100 --events 50             # one consumer, SQLite
    python bench/bench_fleet.py --sites 100 --events 50 --postgres  # one consumer, PostgreSQL
    python bench/bench_fleet.py --sites 1000 --events 100 --national
        # issue 15: two `--shared-group` consumers on one PostgreSQL, one on SQLite, at once
    python bench/bench_fleet.py --sites 1000 --events 100 --national --backlog
        # the same, the consumers paused until every event is published (at the sites'
        # pace the sites' own processes, not the consumers, set the events per second)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.bench_access import report  # noqa: E402
from haldor.fleet.store import FleetStore  # noqa: E402
from haldor.mqtt import make_client  # noqa: E402
from tests.broker import Broker, free_port  # noqa: E402
from tests.postgres import Postgres  # noqa: E402

P = "haldor/v1"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS), or at its highest (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used: its threads' schedstat, to the
    nanosecond (a small run is a few clock ticks of /proc/PID/stat), else stat."""
    try:
        return sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOOR_SCHEMA = (
    "CREATE TABLE events (id TEXT PRIMARY KEY, site TEXT, seq BIGINT, at TEXT, at_ts DOUBLE PRECISION, type TEXT, "
    "door TEXT, reader TEXT, booking TEXT, reason TEXT, usage TEXT, credential TEXT)",
    "CREATE INDEX e_site_type ON events (site, type, at_ts)",
    "CREATE INDEX e_type ON events (type, at_ts)",
    "CREATE INDEX e_site_at ON events (site, at_ts)",
    "CREATE INDEX e_site_seq ON events (site, seq)",
    "CREATE TABLE sites (site TEXT PRIMARY KEY, event_at DOUBLE PRECISION)",
    "CREATE TABLE sequences (site TEXT PRIMARY KEY, last_seq BIGINT)",
)


def floor_us(db: str, total: int) -> float:
    """The batched floor, written plainly with sqlite3 or psycopg (none of the fleet's code):
    as many events as the sites publish, of the same shape, each parsed from its JSON and
    stored 300 a transaction, once by id, with the fleet's four event indexes, each site's
    last event time and its highest seq. In this process: no broker. CPU us per event."""
    payloads = [
        json.dumps(
            {
                "schema": "haldor.event/1",
                "id": str(uuid.uuid4()),
                "site": f"site-{i % 1000:04d}",
                "seq": i,
                "at": "2026-11-25T17:00:00+01:00",
                "type": "access.granted",
                "door": "main",
            }
        )
        for i in range(total)
    ]
    if db.startswith("postgresql"):
        import psycopg

        conn: Any = psycopg.connect(db)
        mark = "%s"
    else:
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        mark = "?"
    for statement in FLOOR_SCHEMA:
        conn.execute(statement)
    conn.commit()
    cur = conn.cursor()
    insert = f"INSERT INTO events VALUES ({', '.join([mark] * 12)}) ON CONFLICT (id) DO NOTHING"
    site_at = f"INSERT INTO sites VALUES ({mark}, {mark}) ON CONFLICT (site) DO UPDATE SET event_at = excluded.event_at"
    seqs = (
        f"INSERT INTO sequences VALUES ({mark}, {mark}) "
        "ON CONFLICT (site) DO UPDATE SET last_seq = GREATEST(sequences.last_seq, excluded.last_seq)"
    )
    if mark == "?":
        seqs = seqs.replace("GREATEST", "MAX")
    t0 = time.process_time()
    for i in range(0, total, 300):
        docs = [json.loads(p) for p in payloads[i : i + 300]]
        rows = [
            (d["id"], d["site"], d["seq"], d["at"], datetime.fromisoformat(d["at"]).timestamp(), d["type"], d.get("door"))
            + (None,) * 5
            for d in docs
        ]
        cur.executemany(insert, rows)
        last: dict[str, int] = {}
        for d in docs:
            last[d["site"]] = max(last.get(d["site"], 0), d["seq"])
        cur.executemany(site_at, [(site, time.time()) for site in sorted(last)])
        cur.executemany(seqs, sorted(last.items()))
        conn.commit()
    spent = time.process_time() - t0
    conn.close()
    return spent / total * 1e6


PER_PROCESS = 250  # paho's select() loop cannot watch sockets numbered beyond 1024 in one process


def event_id(run: str, site: str, seq: int) -> str:
    """Each published event's id, known to the bench without asking the sites."""
    return str(uuid.uuid5(uuid.UUID(run), f"{site}/{seq}"))


def _site_worker(port: int, names: list[str], events: int, run: str, orders, replies) -> None:
    """One process with a share of the sites: connect, count snapshots, publish events on order."""
    clients = []

    def on_message(client, userdata, msg) -> None:
        replies.put(("snapshot", msg.topic))

    for site in names:
        c = make_client(f"haldor-{site}")
        c.manual_ack_set(False)
        c.will_set(f"{P}/{site}/status", json.dumps({"site": site, "online": False, "at": None}), qos=1, retain=True)
        c.on_message = on_message
        c.connect("127.0.0.1", port, keepalive=120)
        c.subscribe(f"{P}/{site}/schedule", qos=1)
        c.loop_start()
        clients.append((site, c))
    replies.put(("ready", len(clients)))
    while orders.get() != "stop":
        infos = []
        for seq in range(1, events + 1):
            for site, c in clients:
                event = {
                    "schema": "haldor.event/1",
                    "id": event_id(run, site, seq),
                    "site": site,
                    "seq": seq,
                    "at": "2026-11-25T17:00:00+01:00",
                    "type": "access.granted",
                    "door": "main",
                }
                infos.append(c.publish(f"{P}/{site}/events", json.dumps(event), qos=1))
        for info in infos:
            info.wait_for_publish(60)
        replies.put(("sent", len(infos)))
    for _, c in clients:
        c.disconnect()
        c.loop_stop()


class Sites:
    """N site clients in worker processes of PER_PROCESS each."""

    def __init__(self, port: int, n: int, events: int, run: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.replies = ctx.Queue()
        self.orders = []
        self.procs = []
        names = [f"site-{i:04d}" for i in range(n)]
        self.names = names
        for i in range(0, n, PER_PROCESS):
            orders = ctx.Queue()
            proc = ctx.Process(
                target=_site_worker, args=(port, names[i : i + PER_PROCESS], events, run, orders, self.replies), daemon=True
            )
            proc.start()
            self.orders.append(orders)
            self.procs.append(proc)
        self.expect("ready", n)

    def expect(self, kind: str, total: int, timeout: float = 300) -> None:
        got = 0
        deadline = time.monotonic() + timeout
        while got < total:
            what, value = self.replies.get(timeout=max(0.1, deadline - time.monotonic()))
            if what == kind:
                got += value if isinstance(value, int) else 1

    def order(self, what: str) -> None:
        for q in self.orders:
            q.put(what)

    def close(self) -> None:
        self.order("stop")
        for proc in self.procs:
            proc.join(30)


class Consumer:
    """One `haldor fleet` process; its log tells what it received when it stops."""

    STOPPED = re.compile(r"fleet consumer stopped: (\d+) messages received \((\d+) events already stored\), (\d+) batches")

    def __init__(self, name: str, backend: str, db: str, port: int, tmp: Path, shared_group: str | None) -> None:
        self.name, self.backend, self.db, self.shared_group = name, backend, db, shared_group
        self.web_port = free_port()
        self.log = tmp / f"fleet-{name}.log"
        command = [sys.executable, "-m", "haldor", "fleet", "--broker", f"127.0.0.1:{port}", "--db", db]
        command += ["--listen", f"127.0.0.1:{self.web_port}", "--client-id", f"bench-fleet-{name}"]
        if shared_group:
            command += ["--shared-group", shared_group]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stderr=log)
        self.cpu_before = 0.0
        self.result: dict = {"consumer": name, "store": backend, "shared_group": shared_group}

    def wait_started(self, deadline: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fleet {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{self.web_port}/api/summary", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fleet {self.name} did not start") from None
                threading.Event().wait(0.1)

    def stop(self) -> None:
        """SIGTERM; what its log says it received."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        found = self.STOPPED.search(self.log.read_text())
        if found:
            self.result["messages"], self.result["duplicates"], self.result["batches"] = map(int, found.groups())


def raise_open_files(wanted: int) -> None:
    """Mosquitto (started from here) needs a descriptor per site: the soft limit up to
    the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=100)
    p.add_argument("--events", type=int, default=50, help="events per site")
    p.add_argument("--snapshot-kb", type=int, default=20, help="size of each site's snapshot")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--postgres", action="store_true", help="the fleet's store in a PostgreSQL started here (else SQLite)")
    layout.add_argument(
        "--national",
        action="store_true",
        help="issue 15: two --shared-group consumers on one PostgreSQL and one on SQLite, all at once",
    )
    p.add_argument(
        "--backlog",
        action="store_true",
        help="the consumers paused (SIGSTOP) while every event is published, then let go: what they absorb "
        "when the sites are not the limit",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    total = args.sites * args.events
    run = str(uuid.uuid4())
    results: dict = {
        "sites": args.sites,
        "events_per_site": args.events,
        "events": total,
        "layout": "national" if args.national else "postgresql" if args.postgres else "sqlite",
        "backlog": args.backlog,
    }
    raise_open_files(args.sites + 4096)
    server = Postgres().start() if args.postgres or args.national else None
    consumers: list[Consumer] = []
    sites = None
    broker = None
    with tempfile.TemporaryDirectory(prefix="haldor-bench-fleet-") as tmp:
        tmp_path = Path(tmp)
        try:
            broker = Broker(tmp_path / "broker", extra="max_connections -1\n", audit=False).start()
            if args.national:
                assert server is not None
                pg = server.database()
                # the schema made once before the two start: two migrating a fresh database at
                # the same moment can collide in PostgreSQL's catalogue (CREATE TABLE IF NOT
                # EXISTS is not safe against itself), and one of them exits
                FleetStore(pg).close()
                plan = [("pg-a", "postgresql", pg, "fleet"), ("pg-b", "postgresql", pg, "fleet")]
                plan.append(("sqlite", "sqlite", str(tmp_path / "fleet.db"), None))
            elif server is not None:
                plan = [("pg", "postgresql", server.database(), None)]
            else:
                plan = [("sqlite", "sqlite", str(tmp_path / "fleet.db"), None)]
            rounds = iter(range(1 << 30))

            def floor_target(backend: str) -> str:
                if backend == "postgresql" and server is not None:
                    return server.database()
                return str(tmp_path / f"floor-{next(rounds)}.db")

            # floor round, the consumers' run, floor round
            first_floors = {backend: floor_us(floor_target(backend), total) for backend in sorted({p[1] for p in plan})}
            consumers = [Consumer(name, backend, db, broker.port, tmp_path, group) for name, backend, db, group in plan]
            deadline = time.monotonic() + 30
            for c in consumers:
                c.wait_started(deadline)
            stores = {c.db: FleetStore(c.db) for c in consumers}  # read straight from the stores

            booking_system = make_client("bench-booking-system")
            booking_system.connect("127.0.0.1", broker.port)
            booking_system.loop_start()
            # every consumer subscribed before a site speaks: a status probe until each store has it
            probe = json.dumps({"site": "bench-probe", "online": True, "at": "2026-11-25T17:00:00+01:00"})
            while not all(s.db.one("SELECT 1 FROM sites WHERE site = 'bench-probe'") for s in stores.values()):
                booking_system.publish(f"{P}/bench-probe/status", probe, qos=1).wait_for_publish(5)
                if time.monotonic() > deadline:
                    raise RuntimeError("the fleet consumers did not subscribe")
                threading.Event().wait(0.2)

            t0 = time.perf_counter()
            sites = Sites(broker.port, args.sites, args.events, run)
            results["connect_s"] = round(time.perf_counter() - t0, 2)
            filler = "x" * (args.snapshot_kb * 1024)
            t0 = time.perf_counter()
            for site in sites.names:
                doc = json.dumps({"schema": "haldor.schedule/1", "site": site, "version": 1, "filler": filler})
                booking_system.publish(f"{P}/{site}/schedule", doc, qos=1, retain=True)
            sites.expect("snapshot", args.sites)
            results["snapshot_fanout_s"] = round(time.perf_counter() - t0, 2)

            if args.backlog:  # the consumers paused while the sites publish: then they drain what waits
                for c in consumers:
                    c.proc.send_signal(signal.SIGSTOP)
                t0 = time.perf_counter()
                sites.order("events")
                sites.expect("sent", total, timeout=1200)
                results["published_s"] = round(time.perf_counter() - t0, 2)
            for c in consumers:
                c.cpu_before = cpu_s(c.proc.pid)
            t0 = time.perf_counter()
            if args.backlog:
                for c in consumers:
                    c.proc.send_signal(signal.SIGCONT)
            else:
                sites.order("events")
            deadline = time.monotonic() + 1800
            absorbed: dict[str, float] = {}
            while len(absorbed) < len(stores):
                for db, store in stores.items():
                    if db not in absorbed and store.counts()["events"] >= total:
                        absorbed[db] = time.perf_counter() - t0
                        for c in consumers:
                            if c.db == db:  # its CPU and memory the moment its store holds every event
                                c.result["cpu_s"] = cpu_s(c.proc.pid) - c.cpu_before
                                c.result["elapsed_s"] = round(absorbed[db], 2)
                                c.result["rss_mb"] = round(rss_mb(c.proc.pid), 1)
                                c.result["peak_rss_mb"] = round(rss_mb(c.proc.pid, "VmHWM"), 1)
                if time.monotonic() > deadline:
                    counts = {db: s.counts()["events"] for db, s in stores.items()}
                    raise RuntimeError(f"of {total} events the stores hold only {counts}")
                threading.Event().wait(0.25)
            results["all_absorbed_s"] = round(max(absorbed.values()), 2)
            results["broker_rss_mb"] = round(rss_mb(broker.proc.pid), 1)
            results["broker_peak_rss_mb"] = round(rss_mb(broker.proc.pid, "VmHWM"), 1)

            # nothing lost: every published id in every store, and nothing else
            expected = {event_id(run, site, seq) for site in sites.names for seq in range(1, args.events + 1)}
            for c in consumers:
                c.stop()  # before the sites leave: their Last Wills are no part of the load
            booking_system.disconnect()
            booking_system.loop_stop()
            databases = []
            for db, store in stores.items():
                stored = {r[0] for r in store.db.rows("SELECT id FROM events")}
                databases.append(
                    {
                        "store": store.db.kind,
                        "consumers": [c.name for c in consumers if c.db == db],
                        "absorbed_s": round(absorbed[db], 2),
                        "events_per_s": round(total / absorbed[db]),
                        "stored": len(stored),
                        "lost": len(expected - stored),
                        "unexpected": len(stored - expected),
                    }
                )
                store.close()
            results["nothing_lost"] = all(d["lost"] == 0 and d["unexpected"] == 0 for d in databases)

            floors = {}
            for backend in sorted({c.backend for c in consumers}):  # its second round: the first came before
                floors[backend] = statistics.median([first_floors[backend], floor_us(floor_target(backend), total)])
            for c in consumers:
                r = c.result
                members = sum(1 for o in consumers if o.db == c.db)
                messages = r.get("messages") or total // members  # its log, else an even share
                r["messages"] = messages
                r["events_per_s"] = round(messages / absorbed[c.db])
                r["cpu_us_per_message"] = round(r.pop("cpu_s") / messages * 1e6, 1)
                r["floor_us_per_event"] = round(floors[c.backend], 1)
                r["ratio_to_floor"] = round(r["cpu_us_per_message"] / floors[c.backend], 2)
            results["consumers"] = [c.result for c in consumers]
            results["databases"] = databases
        finally:
            for c in consumers:
                if c.proc.poll() is None:
                    c.proc.send_signal(signal.SIGTERM)
                    c.proc.wait(30)
            if sites is not None:
                sites.close()
            if broker is not None:
                broker.stop()
            if server is not None:
                server.stop()
    show(results, args.json)
    return 0 if results.get("nothing_lost") else 1


def show(results: dict, json_path: Path | None) -> None:
    """The plain numbers a line each, then a table per consumer and per database."""
    report({k: v for k, v in results.items() if not isinstance(v, list)}, None)
    columns = [
        ("consumer", "consumer"),
        ("store", "store"),
        ("messages", "messages"),
        ("events_per_s", "events/s"),
        ("cpu_us_per_message", "CPU us/msg"),
        ("floor_us_per_event", "floor us"),
        ("ratio_to_floor", "ratio"),
        ("duplicates", "dups"),
        ("batches", "batches"),
        ("peak_rss_mb", "peak MB"),
    ]
    rows = [[str(r.get(key, "")) for key, _ in columns] for r in results.get("consumers", [])]
    widths = [max(len(title), *(len(row[i]) for row in rows)) for i, (_, title) in enumerate(columns)]
    print("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for d in results.get("databases", []):
        print(
            f"{d['store']} ({', '.join(d['consumers'])}): every event in {d['absorbed_s']} s ({d['events_per_s']}/s); "
            f"{d['stored']} stored, {d['lost']} lost, {d['unexpected']} unexpected"
        )
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
