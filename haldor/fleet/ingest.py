"""The fleet's MQTT consumer: a persistent session on `P/+/status` and `P/+/events`;
messages are written a batch at a time (up to ``BATCH`` or ``BATCH_S``, whichever
first) in one transaction, and each is acknowledged to the broker only after its
batch committed, so a crash of the fleet (or of its database) loses nothing."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from haldor.mqtt import BrokerOptions

from .store import FleetStore

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
BATCH = 300
BATCH_S = 0.05
#: a database that fails: the batch is tried again after this, unacknowledged meanwhile
RETRY_S = 2.0


class FleetConsumer:
    def __init__(
        self, opts: BrokerOptions, store: FleetStore, *, client_id: str = "haldor-fleet", shared_group: str | None = None
    ) -> None:
        self.opts = opts
        self.store = store
        self.connected = threading.Event()
        self.received = 0
        self.duplicates = 0
        self._lock = threading.Lock()
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_batches, name="fleet-writer", daemon=True)
        client = opts.client("fleet", client_id)  # a fixed id: the broker keeps this consumer's session
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        # several fleet consumers can share the load on a clustered broker ($share/<group>/...)
        self._prefix = f"$share/{shared_group}/" if shared_group else ""

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._writer.start()
        self.client.connect_async(self.opts.host, self.opts.port, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._stop.set()
        self._writer.join(5)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the fleet: %s", reason_code)
            return
        options = SubscribeOptions(qos=1)
        p = self.opts.prefix
        client.subscribe([(f"{self._prefix}{p}/+/status", options), (f"{self._prefix}{p}/+/events", options)])
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        self._inbox.put(msg)  # written, then acknowledged, by the writer

    def _write_batches(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch, deadline = [first], time.monotonic() + BATCH_S
            while len(batch) < BATCH:
                try:
                    batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            while not self._stop.is_set():
                try:
                    self.handle_batch([(m.topic, m.payload) for m in batch], time.time())
                    break
                except Exception:  # the database: nothing acknowledged, the same batch again
                    log.exception("a batch of %d messages not stored; trying again", len(batch))
                    self._stop.wait(RETRY_S)
            else:
                return  # stopping: unacknowledged, the broker keeps them for the next start
            for m in batch:
                self.client.ack(m.mid, m.qos)

    def handle_batch(self, messages: list[tuple[str, bytes]], now: float) -> None:
        """Parse and store one batch; an unreadable message is dropped with a line in the
        log (it would never read better)."""
        statuses: list[tuple[str, dict[str, Any], float]] = []
        events: list[dict[str, Any]] = []
        for topic, payload in messages:
            parts = topic.split("/")
            site, leaf = parts[-2], parts[-1]
            if not payload:
                continue  # a cleared retained status
            try:
                doc: Any = json.loads(payload)
                if not isinstance(doc, dict) or (leaf == "events" and not isinstance(doc.get("id"), str)):
                    raise ValueError("not an event or status")
            except (ValueError, RecursionError) as exc:
                log.warning("message on %s dropped: %s", topic, exc)
                continue
            if leaf == "status":
                statuses.append((site, doc, now))
            elif leaf == "events":
                doc.setdefault("site", site)
                doc.setdefault("type", "?")
                events.append(doc)
        new = self.store.store(statuses, events)
        with self._lock:
            self.received += len(statuses) + len(events)
            self.duplicates += len(events) - new

    def handle(self, topic: str, payload: bytes, now: float) -> None:
        self.handle_batch([(topic, payload)], now)
