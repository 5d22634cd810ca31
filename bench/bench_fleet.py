"""Fleet load test (issue 5): N simulated sites (MQTT clients in this process) on one
Mosquitto, with `haldor fleet` consuming in its own process.

Prints: snapshot fan-out time (one snapshot per site published until every site
holds its own), events per second absorbed by the fleet, broker and fleet memory.

    python bench/bench_fleet.py --sites 100 --events 50
    python bench/bench_fleet.py --sites 1000 --events 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.bench_access import report  # noqa: E402
from haldor.fleet.store import FleetStore  # noqa: E402
from haldor.mqtt import make_client  # noqa: E402
from tests.broker import Broker, free_port  # noqa: E402
from tests.postgres import Postgres  # noqa: E402

P = "haldor/v1"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_us(db: str, total: int) -> float:
    """The batched floor: the same number of events stored straight into the fleet's
    store, 300 a transaction, in this process (no broker, no parsing)."""
    store = FleetStore(db)
    events = [
        {"id": str(uuid.uuid4()), "site": f"site-{i % 100}", "seq": i, "at": "2026-11-25T17:00:00+01:00", "type": "door.opened"}
        for i in range(total)
    ]
    t0 = time.process_time()
    for i in range(0, total, 300):
        store.store((), events[i : i + 300])
    spent = time.process_time() - t0
    store.close()
    return spent / total * 1e6


PER_PROCESS = 250  # paho's select() loop cannot watch sockets numbered beyond 1024 in one process


def _site_worker(port: int, names: list[str], events: int, orders, replies) -> None:
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
                    "id": str(uuid.uuid4()),
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

    def __init__(self, port: int, n: int, events: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.replies = ctx.Queue()
        self.orders = []
        self.procs = []
        names = [f"site-{i:04d}" for i in range(n)]
        self.names = names
        for i in range(0, n, PER_PROCESS):
            orders = ctx.Queue()
            proc = ctx.Process(
                target=_site_worker, args=(port, names[i : i + PER_PROCESS], events, orders, self.replies), daemon=True
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=100)
    p.add_argument("--events", type=int, default=50, help="events per site")
    p.add_argument("--snapshot-kb", type=int, default=20, help="size of each site's snapshot")
    p.add_argument("--postgres", action="store_true", help="the fleet's store in a PostgreSQL started here (else SQLite)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results: dict = {"sites": args.sites, "events_per_site": args.events, "store": "postgresql" if args.postgres else "sqlite"}
    server = Postgres().start() if args.postgres else None
    with tempfile.TemporaryDirectory(prefix="haldor-bench-fleet-") as tmp:
        tmp_path = Path(tmp)
        db = server.database() if server is not None else str(tmp_path / "fleet.db")
        broker = Broker(tmp_path / "broker", extra="max_connections -1\n", audit=False).start()
        web_port = free_port()
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "haldor",
                "fleet",
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--db",
                db,
                "--listen",
                f"127.0.0.1:{web_port}",
            ],
            stderr=subprocess.DEVNULL,
        )
        sites = None
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{web_port}/api/summary", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("fleet did not start") from None
                    threading.Event().wait(0.1)
            t0 = time.perf_counter()
            sites = Sites(broker.port, args.sites, args.events)
            results["connect_s"] = round(time.perf_counter() - t0, 2)

            booking_system = make_client("bench-booking-system")
            booking_system.connect("127.0.0.1", broker.port)
            booking_system.loop_start()
            filler = "x" * (args.snapshot_kb * 1024)
            t0 = time.perf_counter()
            for site in sites.names:
                doc = json.dumps({"schema": "haldor.schedule/1", "site": site, "version": 1, "filler": filler})
                booking_system.publish(f"{P}/{site}/schedule", doc, qos=1, retain=True)
            sites.expect("snapshot", args.sites)
            results["snapshot_fanout_s"] = round(time.perf_counter() - t0, 2)

            total = args.sites * args.events
            cpu_before = cpu_s(fleet.pid)
            t0 = time.perf_counter()
            sites.order("events")
            deadline = time.monotonic() + 600
            counter = FleetStore(db)  # read straight from the store: the page's work is not the consumer's
            while True:
                stored = counter.counts()["events"]
                if stored >= total:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fleet stored only {stored} of {total}")
                threading.Event().wait(0.2)
            elapsed = time.perf_counter() - t0
            results["fleet_events_per_s"] = round(total / elapsed)
            results["consumer_cpu_us_per_event"] = round((cpu_s(fleet.pid) - cpu_before) / total * 1e6, 1)
            results["floor_us_per_event"] = round(floor_us(server.database() if server else str(tmp_path / "floor.db"), total), 1)
            results["broker_rss_mb"] = round(rss_mb(broker.proc.pid), 1)
            results["fleet_rss_mb"] = round(rss_mb(fleet.pid), 1)
            booking_system.disconnect()
            booking_system.loop_stop()
        finally:
            if sites is not None:
                sites.close()
            fleet.send_signal(signal.SIGTERM)
            fleet.wait(20)
            broker.stop()
            if server is not None:
                server.stop()
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
