"""The broker connection (PROTOCOL 1, 4, 5, 6): paho-mqtt 2.x, MQTT 5, persistent session.

paho's network thread only moves bytes: incoming documents become messages on the
agent's queue (acknowledged to the broker only after the agent has applied them),
and the outbox pump publishes stored events in ``seq`` order with QoS 1, marking
each delivered only when its PUBACK arrives. paho's own in-memory queue is never
relied on: the database is the outbox, and after any reconnect the pump starts
again from the oldest undelivered event (delivery is at least once).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from haldor.access.resend import ResendRequest
from haldor.config import Config
from haldor.mqtt import configure_client, make_client, set_nodelay
from haldor.protocol import Leaf, Schema
from haldor.records import record
from haldor.store import Store

from .resender import Resender

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # deltas and commands wait a week for a box that was away
WINDOW = 100  # events in flight at once (paho's max_inflight is set to the same)
KEEPALIVE_S = 30


@record
class Topics:
    prefix: str
    site: str

    def _t(self, leaf: str) -> str:
        return f"{self.prefix}/{self.site}/{leaf}"

    @property
    def schedule(self) -> str:
        return self._t(Leaf.SCHEDULE)

    @property
    def delta(self) -> str:
        return self._t(Leaf.DELTA)

    @property
    def cmd(self) -> str:
        return self._t(Leaf.CMD)

    @property
    def cmd_result(self) -> str:
        return self._t(Leaf.CMD_RESULT)

    @property
    def sync_request(self) -> str:
        return self._t(Leaf.SYNC_REQUEST)

    @property
    def events(self) -> str:
        return self._t(Leaf.EVENTS)

    @property
    def status(self) -> str:
        return self._t(Leaf.STATUS)

    @property
    def resend(self) -> str:
        return self._t(Leaf.RESEND)

    @property
    def resent(self) -> str:
        return self._t(Leaf.RESENT)


# --- messages to the agent ---------------------------------------------------------------


@record
class Received:
    """A document from the broker; ``ack`` it once it has been handled."""

    topic: str
    payload: bytes
    mid: int
    qos: int


@record
class Connected:
    pass


@record
class Disconnected:
    reason: str


def offline_status(site: str, version: str) -> dict[str, Any]:
    """The Last Will: what the broker says for us when we vanish."""
    return {"schema": Schema.STATUS, "site": site, "online": False, "at": None, "agent_version": version}


class MqttLink:
    """One site's connection to the broker, with the outbox pump."""

    def __init__(self, cfg: Config, outbox: Store, post: Callable[[Any], None], *, version: str) -> None:
        m = cfg.mqtt
        self.topics = Topics(m.topic_prefix, cfg.site_id)
        self.host, self.port = m.host, m.port
        self._outbox = outbox.outbox  # its own connection: the pump runs beside the decision loop
        self.resender = Resender(outbox)  # events the fleet asks for again, sent by the pump
        # A delivery mark lost in a power cut only means the event is sent again (consumers
        # drop duplicates by id), so these commits need not wait for the disk.
        outbox.db.execute("PRAGMA synchronous=NORMAL")
        self._post = post
        self.connected = threading.Event()
        #: the broker confirmed this connection's subscriptions (SUBACK): what is sent now reaches the box
        self.subscribed = threading.Event()
        self._generation = 0  # one per connection, so a late PUBACK cannot mark the wrong event
        self._acks: queue.SimpleQueue = queue.SimpleQueue()
        self._kick = threading.Event()
        self._stop = threading.Event()
        client = make_client(m.client_id or f"haldor-{cfg.site_id}", transport=m.transport)
        configure_client(client, m, str(cfg.path))
        client.will_set(self.topics.status, json.dumps(offline_status(cfg.site_id, version)), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_socket_open = lambda c, userdata, sock: set_nodelay(sock)
        self.client = client
        self._pump_thread = threading.Thread(target=self._pump, name="outbox", daemon=True)

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S, clean_start=False, properties=props)
        self.client.loop_start()
        self._pump_thread.start()

    def stop(self, final_status: dict[str, Any] | None = None) -> None:
        """Say goodbye (a clean disconnect sends no Last Will), then close."""
        self._stop.set()
        self._kick.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join(5)
        if final_status is not None and self.connected.is_set():
            info = self.client.publish(self.topics.status, json.dumps(final_status), qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread): hand over, never block -------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        self._generation += 1
        options = SubscribeOptions(qos=1)
        client.subscribe(
            [
                (self.topics.schedule, options),
                (self.topics.delta, options),
                (self.topics.cmd, options),
                (self.topics.resend, options),
            ]
        )
        self.connected.set()
        log.info("connected to broker %s:%s (session present: %s)", self.host, self.port, flags.session_present)
        self._post(Connected())
        self._kick.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self._generation += 1
        if not self._stop.is_set():
            log.warning("disconnected from broker: %s", reason_code)
            self._post(Disconnected(str(reason_code)))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        self._post(Received(message.topic, message.payload, message.mid, message.qos))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # called under paho's own lock: only queue it
        self._acks.put((self._generation, mid, reason_code.is_failure, str(reason_code)))
        self._kick.set()

    # -- for the agent -----------------------------------------------------------------

    def ack(self, message: Received) -> None:
        """The document was handled (applied, refused or ignored): the broker may forget it."""
        self.client.ack(message.mid, message.qos)

    def kick(self) -> None:
        """New events are in the outbox."""
        self._kick.set()

    def resend(self, request: ResendRequest) -> None:
        """The fleet asks for events again: answered and sent by the pump, beside the loop."""
        self.resender.ask(request)
        self._kick.set()

    def publish(self, topic: str, doc: Any, *, retain: bool = False) -> bool:
        """A direct publish (results, requests, status): only while connected."""
        if not self.connected.is_set():
            return False
        return self.client.publish(topic, json.dumps(doc), qos=1, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def publish_status(self, doc: dict[str, Any]) -> bool:
        return self.publish(self.topics.status, doc, retain=True)

    # -- the outbox pump ----------------------------------------------------------------

    def _pump(self) -> None:
        inflight: dict[int, int] = {}  # mid -> seq, this connection only
        generation = -1
        cursor = 0  # highest seq published on this connection
        wait_s = 1.0
        while not self._stop.is_set():
            self._kick.wait(wait_s)
            self._kick.clear()
            wait_s = 1.0
            try:
                if generation != self._generation:
                    generation, inflight, cursor = self._generation, {}, 0  # start again from the oldest
                delivered = []
                while True:
                    try:
                        gen, mid, failed, why = self._acks.get_nowait()
                    except queue.Empty:
                        break
                    seq = inflight.pop(mid, None) if gen == generation else None
                    if seq is None or seq < 0:  # not ours, or sent again (delivered before)
                        continue
                    if failed:
                        log.warning("broker refused event %d: %s; it stays in the outbox", seq, why)
                    else:
                        delivered.append(seq)
                if delivered:
                    self._outbox.mark_delivered(delivered, time.time())
                if not self.connected.is_set() or len(inflight) >= WINDOW:
                    continue
                for event in self._outbox.events(undelivered=True, after_seq=cursor, limit=WINDOW - len(inflight)):
                    if generation != self._generation or not self.connected.is_set():
                        break
                    info = self.client.publish(self.topics.events, json.dumps(event), qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        break
                    inflight[info.mid] = event["seq"]
                    cursor = event["seq"]
                if len(inflight) < WINDOW and cursor and self._outbox_has_more(cursor):
                    self._kick.set()
                wait_s = min(wait_s, self._resend(inflight, generation))
            except Exception:  # the pump must outlive a bad moment (a locked database, a closing socket)
                log.exception("outbox pump")
                self._stop.wait(1.0)

    def _resend(self, inflight: dict[int, int], generation: int) -> float:
        """Answer a new request, and send again what the rate and the window allow; how
        long the pump may sleep before more is due."""
        answer = self.resender.take_request(self.topics.site, time.time())
        if answer is not None:
            self.publish(self.topics.resent, answer)
            log.info(
                "events asked for again: %d to send, %d pending, gone %s", answer["resending"], answer["pending"], answer["gone"]
            )
        if not self.connected.is_set():
            return 1.0
        for event in self.resender.next_events(WINDOW - len(inflight)):
            if generation != self._generation:
                break
            info = self.client.publish(self.topics.events, json.dumps(event), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            inflight[info.mid] = -event["seq"]  # in the window, but its PUBACK marks nothing: delivered before
        wait = self.resender.wait_s()
        return 1.0 if wait is None else max(wait, 0.002)

    def _outbox_has_more(self, cursor: int) -> bool:
        return bool(self._outbox.events(undelivered=True, after_seq=cursor, limit=1))
