"""Sync benchmark (issue 3), against a real Mosquitto on loopback:

- a snapshot of N bookings from publish to applied (the sync.applied event seen by a subscriber),
- outbox replay rate: E events queued while the broker is down, delivered after it returns,
- card-to-event-on-the-broker latency: a frame written to the reader's pty until a
  subscriber holds the access event,
- decisions while the fleet has R events sent again (events/resend): a frame written to
  the reader's pty until the loop moves the lock, beside the same without a resend
  (the floor), interleaved in one run.

The first three are printed beside their floors (bench/sync_floors.py: the same work in
plain paho, sqlite3 and hmac), run in the same run: a floor snapshot before and after the
agent's, a floor card after each of the agent's, a floor replay before and after.

    python bench/bench_sync.py                                   # full size
    python bench/bench_sync.py --bookings 1000 --credentials 2000 --events 2000 --samples 50 --resend 2000
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import tty
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from bench.bench_access import TZ, make_snapshot, percentiles, report  # noqa: E402
from bench.sync_floors import CardFloor, replay_floor, snapshot_floor  # noqa: E402
from haldor import __version__, config  # noqa: E402
from haldor.access.envelope import seal  # noqa: E402
from haldor.agent.hardware import build_hardware  # noqa: E402
from haldor.agent.link import MqttLink  # noqa: E402
from haldor.agent.loop import Agent  # noqa: E402
from haldor.agent.messages import Stop  # noqa: E402
from haldor.agent.site import open_store  # noqa: E402
from haldor.mqtt import make_client  # noqa: E402
from tests.broker import Broker  # noqa: E402
from tests.helpers import SITE, site_config  # noqa: E402
from tests.rig import public_key  # noqa: E402

PREFIX = f"haldor/v1/{SITE}"


class Subscriber:
    """Events of the site as they arrive, with their arrival time."""

    def __init__(self, port: int) -> None:
        self.arrived: queue.SimpleQueue = queue.SimpleQueue()
        self.ids: set[str] = set()
        self.target = 1 << 62
        self.quiet = False  # during the replay only the count matters
        self.count = threading.Condition()
        self.client = make_client(f"bench-sub-{os.getpid()}")
        self.client.manual_ack_set(False)
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(f"{PREFIX}/events", qos=1), ready.set())
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, clean_start=False, properties=props)
        self.client.reconnect_delay_set(1, 1)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("subscriber did not connect")

    def _on_message(self, client, userdata, msg) -> None:
        event = json.loads(msg.payload)
        with self.count:
            self.ids.add(event["id"])
            if len(self.ids) >= self.target:  # wake the waiter once, not per message
                self.count.notify_all()
        if not self.quiet:
            self.arrived.put((time.perf_counter(), event))

    def wait_count(self, n: int, timeout: float) -> bool:
        with self.count:
            self.target = n
            return self.count.wait_for(lambda: len(self.ids) >= n, timeout)

    def next_event(self, kind: str, timeout: float = 10) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while True:
            at, event = self.arrived.get(timeout=max(0.01, deadline - time.monotonic()))
            if event["type"] == kind:
                return at, event

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--credentials", type=int, default=100_000)
    p.add_argument("--bookings", type=int, default=50_000)
    p.add_argument("--events", type=int, default=100_000, help="events queued for the replay")
    p.add_argument("--samples", type=int, default=300, help="card-to-broker samples")
    p.add_argument("--resend", type=int, default=10_000, help="events the fleet asks for again (at most --events)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    results: dict = {"credentials": args.credentials, "bookings": args.bookings, "events": args.events}

    with tempfile.TemporaryDirectory(prefix="haldor-bench-sync-") as tmp:
        tmp_path = Path(tmp)
        broker = Broker(tmp_path / "broker", extra="message_size_limit 0\n", audit=False).start()
        master, slave = os.openpty()
        tty.setraw(slave)
        cfg_path = site_config(
            tmp_path / "haldor.toml",
            tmp_path / "data",
            port=broker.port,
            keys={"k": public_key(key)},
            doors='[[doors]]\nid = "main"\nlock_pin = 17\nunlock_s = 0.01\n',  # locked again before the next sample
            extra=f"""
[policy]
max_denials = 100000000
max_unknown_cards = 100000000
[[readers]]
id = "main-in"
type = "serial-line"
door = "main"
port = "{os.ttyname(slave)}"
""",
        )
        cfg = config.load(cfg_path)
        sub = Subscriber(broker.port)
        factory = MockFactory()
        inbox: queue.Queue = queue.Queue()
        store, outbox = open_store(cfg), open_store(cfg)
        link = MqttLink(cfg, outbox, inbox.put, version=__version__)
        agent = Agent(cfg, store, build_hardware(cfg, inbox.put, factory), inbox=inbox, link=link)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        try:
            if not link.connected.wait(10):
                raise RuntimeError("agent did not connect")
            publisher = make_client("bench-pub")
            publisher.connect("127.0.0.1", broker.port)
            publisher.loop_start()

            # 1. a big snapshot from publish to applied
            doc = make_snapshot(args.credentials, args.bookings, datetime.now(TZ))
            doc["site"] = SITE
            payload = json.dumps(seal(doc, "k", key)).encode()
            results["snapshot_mb"] = round(len(payload) / 1e6, 1)
            floors = [snapshot_floor(broker.port, doc, tmp_path)]  # floor round, the agent's, floor round
            t0 = time.perf_counter()
            publisher.publish(f"{PREFIX}/schedule", payload, qos=1, retain=True)
            at, event = sub.next_event("sync.applied", timeout=120)
            results["snapshot_publish_to_applied_s"] = round(at - t0, 2)
            floors.append(snapshot_floor(broker.port, doc, tmp_path))
            results["floor_snapshot_publish_to_applied_s"] = round(statistics.median(floors), 2)

            # 2. card to event on the broker
            hw_reader = agent.hw.readers[0]
            if not hw_reader.ready.wait(5):
                raise RuntimeError("reader port did not open")
            latencies, floor_latencies = [], []
            card_floor = CardFloor(broker.port, tmp_path, doc)
            try:
                for n in range(args.samples):  # each card to the agent, then the same to its floor
                    t0 = time.perf_counter()
                    os.write(master, f"uid:04{n:012X}\r\n".encode())
                    at, event = sub.next_event("access.granted", timeout=10)
                    latencies.append(at - t0)
                    floor_latencies.append(card_floor.sample(f"uid:04{n:012X}"))
            finally:
                card_floor.close()
            p50, p99 = percentiles(latencies)
            results["card_to_broker_p50_ms"] = round(p50 * 1e3, 2)
            results["card_to_broker_p99_ms"] = round(p99 * 1e3, 2)
            f50, f99 = percentiles(floor_latencies)
            results["floor_card_to_broker_p50_ms"] = round(f50 * 1e3, 2)
            results["floor_card_to_broker_p99_ms"] = round(f99 * 1e3, 2)

            # 3. outbox replay after the broker comes back, between two rounds of its floor
            queued = (args.events // 1000) * 1000
            replay_floors = [replay_floor(broker.port, queued, tmp_path)]
            broker.stop()
            link.connected.clear()
            deadline = time.monotonic() + 10
            while link.client.is_connected() and time.monotonic() < deadline:
                threading.Event().wait(0.05)
            already = len(sub.ids)
            sub.quiet = True
            writer = open_store(cfg)
            batch = [{"type": "door.opened", "door": "main"}] * 1000
            for _ in range(args.events // 1000):
                writer.outbox.append(batch, time.time())
            writer.close()
            broker.start()
            if not link.connected.wait(30):
                raise RuntimeError("agent did not reconnect")
            t0 = time.perf_counter()
            if not sub.wait_count(already + queued, timeout=600):
                raise RuntimeError(f"only {len(sub.ids) - already} of {queued} events arrived")
            elapsed = time.perf_counter() - t0
            results["replay_events_per_s"] = round(queued / elapsed)
            replay_floors.append(replay_floor(broker.port, queued, tmp_path))
            results["floor_replay_events_per_s"] = round(statistics.median(replay_floors))

            # 4. decisions while the fleet has events sent again
            results.update(_decisions_while_resending(agent, link, publisher, master, min(args.resend, queued)))
            publisher.disconnect()
            publisher.loop_stop()
        finally:
            agent.post(Stop())
            thread.join(10)
            store.close()
            outbox.close()
            sub.close()
            broker.stop()
            os.close(master)
            os.close(slave)

    report(results, args.json)
    return 0


def _decisions_while_resending(agent: Agent, link: MqttLink, publisher, master: int, count: int) -> dict:
    """Card to lock, alternately without and with a resend of ``count`` events running."""
    moved, locked = threading.Event(), threading.Event()
    lock = agent.hw.locks["main"]
    set_unlocked = lock.set_unlocked

    def timed(unlocked: bool) -> None:  # when the loop asks the lock to open: the decision is made
        set_unlocked(unlocked)
        (moved if unlocked else locked).set()

    lock.set_unlocked = timed
    first = link.resender._store.outbox.last_seq() - count + 1
    request = {
        "schema": "haldor.resend/1",
        "id": "bench",
        "site": SITE,
        "ranges": [[first + i, min(first + i + 99_999, first + count - 1)] for i in range(0, count, 100_000)],
    }
    floor: list[float] = []
    during: list[float] = []

    def sample(into: list[float], n: int) -> None:
        moved.clear()
        locked.clear()
        t0 = time.perf_counter()
        os.write(master, f"uid:04{n:012X}\r\n".encode())
        if not moved.wait(10):
            raise RuntimeError("no decision")
        into.append(time.perf_counter() - t0)
        if not locked.wait(10):  # unlock_s 0.01: locked again before the next one
            raise RuntimeError("not locked again")
        time.sleep(0.005)

    for n in range(100):
        sample(floor, n)
    t0 = time.perf_counter()
    publisher.publish(f"{PREFIX}/events/resend", json.dumps(request), qos=1).wait_for_publish(5)
    while not link.resender.busy:
        time.sleep(0.001)
    n = 0
    while link.resender.busy:
        sample(during, n)
        n += 1
    elapsed = time.perf_counter() - t0
    lock.set_unlocked = set_unlocked
    f50, f99 = percentiles(floor)
    d50, d99 = percentiles(during)
    return {
        "resend_events": count,
        "resend_events_per_s": round(count / elapsed),
        "decision_floor_p50_ms": round(f50 * 1e3, 2),
        "decision_floor_p99_ms": round(f99 * 1e3, 2),
        "decision_resending_p50_ms": round(d50 * 1e3, 2),
        "decision_resending_p99_ms": round(d99 * 1e3, 2),
        "decision_resending_samples": len(during),
    }


if __name__ == "__main__":
    sys.exit(main())
