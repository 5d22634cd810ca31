"""The fleet's MQTT consumer: a persistent session on `P/+/status` and `P/+/events`;
each message is acknowledged to the broker only after it is in the database, so a
crash of the fleet loses nothing either."""

from __future__ import annotations

import json
import logging
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
        self.client.connect_async(self.opts.host, self.opts.port, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the fleet: %s", reason_code)
            return
        options = SubscribeOptions(qos=1)
        p = self.opts.prefix
        client.subscribe([(f"{self._prefix}{p}/+/status", options), (f"{self._prefix}{p}/+/events", options)])
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self.handle(msg.topic, msg.payload, time.time())
        except Exception:  # a bad message must not stop the fleet; it is dropped with a line in the log
            log.exception("message on %s dropped", msg.topic)
        client.ack(msg.mid, msg.qos)

    def handle(self, topic: str, payload: bytes, now: float) -> None:
        parts = topic.split("/")
        site, leaf = parts[-2], parts[-1]
        if not payload:
            return  # a cleared retained status
        doc: Any = json.loads(payload)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        with self._lock:
            self.received += 1
            if leaf == "status":
                self.store.set_status(site, doc, now)
            elif leaf == "events":
                doc.setdefault("site", site)
                if not self.store.add_event(doc):
                    self.duplicates += 1
