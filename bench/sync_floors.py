"""The floors of bench_sync.py, written plainly here without Haldor's code (paho, sqlite3,
hmac and json only), each run beside its figure in the same run:

- a snapshot from publish to applied: a subscriber that takes the document, parses it
  whole, hashes and inserts it into the store's tables and indexes in one transaction,
  and publishes that it did (no signature, no sealing, no validation);
- card to event on the broker: a thread reading a pty of its own, the card's HMAC and one
  indexed query, the event committed to SQLite (WAL, synchronous FULL, as the agent's
  outbox) and published with QoS 1;
- the outbox replay: undelivered rows published in order with QoS 1, at most 100 in
  flight, each marked delivered when its PUBACK comes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import sqlite3
import threading
import time
import tty
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5

SCHEMA = """
CREATE TABLE rooms(id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE room_doors(room TEXT, door TEXT, PRIMARY KEY(room, door));
CREATE INDEX rd_door ON room_doors(door);
CREATE TABLE associations(id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE credentials(id TEXT PRIMARY KEY, card_hash TEXT, pin_hash TEXT, association TEXT, role TEXT,
    valid_from REAL, valid_until REAL);
CREATE INDEX c_card ON credentials(card_hash);
CREATE INDEX c_pin ON credentials(pin_hash);
CREATE TABLE bookings(id TEXT PRIMARY KEY, room TEXT, association TEXT, title TEXT, start REAL, end REAL,
    status TEXT, pin_hash TEXT, unlocked_during INT);
CREATE INDEX b_room ON bookings(room, start);
CREATE INDEX b_pin ON bookings(pin_hash);
CREATE INDEX b_start ON bookings(start);
CREATE INDEX b_assoc ON bookings(association, start);
CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, body TEXT, delivered INT DEFAULT 0);
"""

QUERY = """
    SELECT c.id, b.id FROM credentials c LEFT JOIN bookings b INDEXED BY b_assoc
      ON b.association = c.association AND b.start > ? AND b.start < ? AND b.end > ? AND b.status = 'approved'
    WHERE c.card_hash = ?"""


def _client(port: int, name: str, inflight: int = 20) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _subscribe(client: Client, topic: str) -> None:
    """Subscribed, the broker's SUBACK heard, before anything is timed."""
    done = threading.Event()
    client.on_subscribe = lambda c, u, mid, codes, p: done.set()
    client.subscribe(topic, qos=1)
    if not done.wait(10):
        raise RuntimeError(f"no SUBACK for {topic}")


def _stamp(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


class FloorStore:
    """A plain SQLite store with the agent's tables and indexes, its own secret."""

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.mac = hmac.new(b"k" * 32, b"card\x00", hashlib.sha256)

    def hashed(self, text: str | None) -> str | None:
        if text is None:
            return None
        m = self.mac.copy()
        m.update(text.encode())
        return m.hexdigest()

    def apply(self, doc: dict[str, Any]) -> None:
        """The whole schedule replaced in one transaction."""
        h, t = self.hashed, _stamp
        with self.db:
            for table in ("rooms", "room_doors", "associations", "credentials", "bookings"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.executemany("INSERT INTO rooms VALUES (?, ?)", [(r["id"], r["name"]) for r in doc["rooms"]])
            self.db.executemany("INSERT INTO room_doors VALUES (?, ?)", [(r["id"], d) for r in doc["rooms"] for d in r["doors"]])
            self.db.executemany("INSERT INTO associations VALUES (?, ?)", [(a["id"], a["name"]) for a in doc["associations"]])
            self.db.executemany(
                "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (c["id"], h(c["card"]), h(c["pin"]), c["association"], c["role"], t(c["valid_from"]), t(c["valid_until"]))
                    for c in doc["credentials"]
                ],
            )
            self.db.executemany(
                "INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (b["id"], b["room"], b["association"], b["title"], t(b["start"]), t(b["end"]), b["status"], h(b["pin"]), 0)
                    for b in doc["bookings"]
                ],
            )

    def decide_and_store(self, card: str) -> dict[str, Any]:
        """One read: the query, then its event committed; the event as published."""
        now = time.time()
        found = self.db.execute(QUERY, [now - 40 * 3600, now + 14 * 3600, now - 14 * 3600, self.hashed(card)]).fetchall()
        event = {"id": str(uuid.uuid4()), "type": "floor.access", "granted": bool(found), "at": now}
        with self.db:
            self.db.execute("INSERT INTO events(id, body) VALUES (?, ?)", [event["id"], json.dumps(event)])
        return event


def snapshot_floor(port: int, doc: dict[str, Any], tmp: Path) -> float:
    """Seconds from publishing ``doc`` until the floor says it applied it."""
    store = FloorStore(tmp / "floor-snapshot.db")
    applied: queue.SimpleQueue = queue.SimpleQueue()
    topic = f"floor/{uuid.uuid4().hex}"
    listener = _client(port, "floor-applier")
    listener.on_message = lambda c, u, msg: (store.apply(json.loads(msg.payload)), c.publish(f"{topic}/applied", b"1", qos=1))
    _subscribe(listener, f"{topic}/schedule")
    waiter = _client(port, "floor-waiter")
    waiter.on_message = lambda c, u, msg: applied.put(time.perf_counter())
    _subscribe(waiter, f"{topic}/applied")
    payload = json.dumps(doc).encode()
    t0 = time.perf_counter()
    listener.publish(f"{topic}/schedule", payload, qos=1)
    done = applied.get(timeout=300)
    for client in (listener, waiter):
        client.disconnect()
        client.loop_stop()
    store.db.close()
    return done - t0


class CardFloor:
    """Card to event on the broker, plainly: a pty of its own, read by a thread."""

    def __init__(self, port: int, tmp: Path, doc: dict[str, Any]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.store = FloorStore(tmp / "floor-cards.db")
        self.store.apply(doc)
        self.topic = f"floor/{uuid.uuid4().hex}/events"
        self.heard: queue.SimpleQueue = queue.SimpleQueue()
        self.publisher = _client(port, "floor-box")
        self.listener = _client(port, "floor-listener")
        self.listener.on_message = lambda c, u, msg: self.heard.put(time.perf_counter())
        _subscribe(self.listener, self.topic)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                pending += os.read(self.slave, 256)
            except OSError:
                return
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    event = self.store.decide_and_store(line.strip().decode())
                    self.publisher.publish(self.topic, json.dumps(event), qos=1)

    def sample(self, card: str) -> float:
        t0 = time.perf_counter()
        os.write(self.master, f"{card}\r\n".encode())
        return self.heard.get(timeout=10) - t0

    def close(self) -> None:
        for client in (self.publisher, self.listener):
            client.disconnect()
            client.loop_stop()
        os.close(self.master)
        os.close(self.slave)


def replay_floor(port: int, events: int, tmp: Path) -> float:
    """Events per second: ``events`` undelivered rows published in seq order, at most 100
    in flight, each marked delivered on its PUBACK; timed until a subscriber holds them all."""
    store = FloorStore(tmp / "floor-replay.db")
    body = json.dumps({"type": "door.opened", "door": "main"})
    with store.db:
        store.db.executemany("INSERT INTO events(id, body) VALUES (?, ?)", [(str(i), body) for i in range(events)])
    topic = f"floor/{uuid.uuid4().hex}/events"
    got = threading.Semaphore(0)
    listener = _client(port, "floor-replay-listener")
    listener.on_message = lambda c, u, msg: got.release()
    _subscribe(listener, topic)
    window = threading.Semaphore(100)
    acked: queue.SimpleQueue = queue.SimpleQueue()
    pump = _client(port, "floor-pump", inflight=100)
    pump.on_publish = lambda c, u, mid, rc, p: (acked.put(mid), window.release())
    t0 = time.perf_counter()
    sent: dict[int, int] = {}
    for seq, payload in store.db.execute("SELECT seq, body FROM events WHERE delivered = 0 ORDER BY seq").fetchall():
        window.acquire()
        sent[pump.publish(topic, payload, qos=1).mid] = seq
        _mark(store, acked, sent)
    for _ in range(events):
        if not got.acquire(timeout=60):
            raise RuntimeError("the floor's replay stopped")
    elapsed = time.perf_counter() - t0
    for client in (pump, listener):
        client.disconnect()
        client.loop_stop()
    _mark(store, acked, sent)
    store.db.close()
    return events / elapsed


def _mark(store: FloorStore, acked: queue.SimpleQueue, sent: dict[int, int]) -> None:
    """What the broker acknowledged is marked delivered, in one transaction."""
    seqs = []
    while True:
        try:
            seqs.append(sent.pop(acked.get_nowait(), None))
        except queue.Empty:
            break
    if seqs:
        with store.db:
            store.db.executemany("UPDATE events SET delivered = 1 WHERE seq = ?", [(s,) for s in seqs if s is not None])
