"""The fleet's MQTT consumer: a persistent session on `P/+/status` and `P/+/events`;
messages are written a batch at a time (up to ``BATCH`` or ``BATCH_S``, whichever
first) in one transaction, and each is acknowledged to the broker only after its
batch committed, so a crash of the fleet (or of its database) loses nothing.

It uses paho-mqtt's public interface only (``on_message``, ``ack``): a national load
(a few hundred events a second at peak) is well within one consumer, and more is
met by more consumers in a shared group (``--shared-group``), never by reaching
into paho's private receive path, which no release promises to keep."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from haldor.errors import HaldorError
from haldor.integrator.broker_client import acked_publish
from haldor.mqtt import BrokerOptions, configure_client, set_nodelay
from haldor.protocol import Leaf

from .store import FleetStore

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
BATCH = 300
BATCH_S = 0.05
#: a database that fails: the batch is tried again after this, unacknowledged meanwhile
RETRY_S = 2.0
#: how often each site's seq is checked for gaps (:mod:`.sequences`)
GAP_CHECK_S = 10.0
#: MQTT 5's DISCONNECT reason when another client connected with the same client id
SESSION_TAKEN_OVER = 0x8E
#: a connection dropped this soon after it was made, three times in a row: taken over
SHORT_LIVED_S = 30.0
#: after the broker is heard (again), a site not heard since is unknown this long: the boxes
#: reconnect with a backoff of up to a minute, and a broker that lost its retained statuses has none
HEARD_AGAIN_GRACE_S = 90.0
#: a broker going down speaks every box's Last Will as it goes: what arrived this soon after
#: the loss (the writer may store it a moment later) says nothing of the boxes either
LOSS_MARGIN_S = 30.0
#: one received message: topic, payload, mid, QoS
Incoming = tuple[str | bytes, bytes, int, int]


def make_fleet_client(opts: BrokerOptions, client_id: str) -> mqtt.Client:
    """The consumer's client, configured as :meth:`BrokerOptions.client` does (TLS,
    credentials, websockets, no Nagle), acknowledging by hand."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, transport=opts.transport)
    configure_client(client, opts, "--broker")
    client.on_socket_open = lambda c, userdata, sock: set_nodelay(sock)
    client.manual_ack_set(True)
    return client


class FleetConsumer:
    def __init__(
        self,
        opts: BrokerOptions,
        store: FleetStore,
        *,
        client_id: str = "haldor-fleet",
        shared_group: str | None = None,
        command_results: bool = False,
    ) -> None:
        self.opts = opts
        #: hear the boxes' answers to commands (for the audit log): never shared, each consumer hears them all
        self.command_results = command_results
        self.store = store
        self.connected = threading.Event()
        self.received = 0
        self.duplicates = 0
        self.batches = 0
        self.acked = 0  # messages whose acknowledgement went to paho
        self.dropped = 0  # messages the database refused alone (logged)
        #: events stored, by type (duplicates included), and the last batch's delay from happening to stored: /metrics
        self.by_type: Counter[str] = Counter()
        self.lag_s: float | None = None
        self._lock = threading.Lock()
        self._inbox: collections.deque[Incoming] = collections.deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_batches, name="fleet-writer", daemon=True)
        self._chaser = threading.Thread(target=self._chase_gaps, name="fleet-gaps", daemon=True)
        self.gap_check_s = GAP_CHECK_S
        #: requests to send events again that the broker took, and that it refused or never acknowledged
        self.resend_requests: Counter[str] = Counter()
        client = make_fleet_client(opts, client_id)  # a fixed id: the broker keeps this consumer's session
        #: since when this consumer has not heard the broker (None: connected); states are as of then
        self.blind_since: float | None = time.time()
        self._ever_connected = False
        self._connected_at = 0.0
        self.heard_since: float | None = None
        #: connections the broker dropped soon after it took them (monotonic times)
        self._short_lived: collections.deque[float] = collections.deque(maxlen=3)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        # several fleet consumers can share the load on a clustered broker ($share/<group>/...)
        self._prefix = f"$share/{shared_group}/" if shared_group else ""

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._writer.start()
        self._chaser.start()
        self.client.connect_async(self.opts.host, self.opts.port, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        """The batch being written is finished and acknowledged first (what has not been
        written stays unacknowledged: the broker keeps it for the next start)."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._writer.is_alive():
            self._writer.join(5)
        if self._chaser.is_alive():
            self._chaser.join(5)
        self.client.disconnect()
        self.client.loop_stop()
        log.info(
            "fleet consumer stopped: %d messages received (%d events already stored), %d batches, %d acknowledged",
            self.received,
            self.duplicates,
            self.batches,
            self.acked,
        )

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%s refused the fleet: %s", self.opts.host, self.opts.port, reason_code)
            return
        options = SubscribeOptions(qos=1)
        p = self.opts.prefix
        topics = [
            (f"{self._prefix}{p}/+/status", options),
            (f"{self._prefix}{p}/+/events", options),
            (f"{self._prefix}{p}/+/{Leaf.RESENT}", options),
        ]
        if self.command_results:
            topics.append((f"{p}/+/cmd/result", options))
        client.subscribe(topics)
        self.connected.set()
        self._connected_at = time.monotonic()
        if self._ever_connected and self.blind_since is not None:
            log.warning("broker %s:%s heard again after %.0f s", self.opts.host, self.opts.port, time.time() - self.blind_since)
        self._ever_connected = True
        self.blind_since = None
        self.heard_since = time.time()

    def unsure_before(self, now: float) -> float | None:
        """Statuses heard before this say nothing about now: while blind, since the loss;
        for a while after the broker is heard again, from that moment."""
        if self.blind_since is not None:
            return self.blind_since + LOSS_MARGIN_S
        if self.heard_since is not None and now - self.heard_since < HEARD_AGAIN_GRACE_S:
            return self.heard_since
        return None

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        """Losing the broker is said, never taken for every box going offline."""
        self.connected.clear()
        if self._stop.is_set():
            return
        if self.blind_since is None:
            self.blind_since = time.time()
        mono = time.monotonic()
        if mono - self._connected_at < SHORT_LIVED_S:
            self._short_lived.append(mono)
        # a newer Mosquitto says so (MQTT 5 reason 0x8E); an older one only drops the connection each time
        flapping = len(self._short_lived) == self._short_lived.maxlen and mono - self._short_lived[0] < 2 * SHORT_LIVED_S
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER or flapping:
            self._short_lived.clear()
            log.error(
                "broker %s:%s: another client with this fleet's client id took its session over (%s); give each fleet "
                "process its own login (and --client-id): two with one id throw each other off",
                self.opts.host,
                self.opts.port,
                reason_code if not flapping else "probably: the broker dropped three connections in a row soon after taking them",
            )
        else:
            log.error("lost the broker %s:%s: %s; the sites' states are as of now", self.opts.host, self.opts.port, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            topic: bytes | str = msg.topic
        except UnicodeDecodeError:
            topic = b"\xff"  # dropped by the writer, and acknowledged after its batch
        self._deliver([(topic, msg.payload, msg.mid, msg.qos)])  # written, then acknowledged, by the writer

    def _deliver(self, messages: list[Incoming]) -> None:
        with self._ready:
            self._inbox.extend(messages)
            self._ready.notify()

    def _chase_gaps(self) -> None:
        """Every few seconds: a site whose seq has a gap that stays is asked for the rest."""
        while not self._stop.wait(self.gap_check_s):
            if not self.connected.is_set():
                continue  # blind: what is missing may only be on its way
            try:
                requests = self.store.sequences.check(time.time())
            except Exception:  # the database: the next round tries again
                log.exception("checking the sites' seq for gaps failed")
                continue
            for request in requests:
                topic = f"{self.opts.prefix}/{request['site']}/{Leaf.RESEND}"
                try:
                    acked_publish(self.client, self.opts, topic, json.dumps(request).encode(), timeout=10.0)
                except HaldorError as exc:
                    log.error("events missing at site %s not asked for: %s", request["site"], exc)
                    self.resend_requests["failed"] += 1
                else:
                    self.resend_requests["sent"] += 1

    def _next_batch(self) -> list[Incoming] | None:
        """Up to BATCH messages, waiting BATCH_S at most after the first for more; None
        when stopping."""
        inbox = self._inbox
        with self._ready:
            while not inbox:
                if self._stop.is_set():
                    return None
                self._ready.wait(0.2)
            deadline = time.monotonic() + BATCH_S
            while len(inbox) < BATCH and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            return [inbox.popleft() for _ in range(min(BATCH, len(inbox)))]

    def _write_batches(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            while not self._stop.is_set():
                try:
                    self.handle_batch([(m[0], m[1]) for m in batch], time.time())
                    break
                except Exception:  # the database, or one message it will never take
                    log.exception("a batch of %d messages not stored", len(batch))
                    if self._one_by_one(batch):
                        break
                    self._stop.wait(RETRY_S)  # the database: nothing acknowledged, the same batch again
            else:
                return  # stopping: unacknowledged, the broker keeps them for the next start
            acks = [(m[2], m[3]) for m in batch]
            for mid, qos in acks:
                self.client.ack(mid, qos)
            with self._lock:
                self.acked += len(acks)

    def _one_by_one(self, batch: list) -> bool:
        """After a failed batch: each message alone. When the database answers, one that
        still fails would fail for ever: it is dropped (logged, counted), so one odd
        message never stops every site's events behind it. False: the database itself
        is away, and the batch waits, unacknowledged."""
        if not self.store.writable():
            return False
        for m in batch:
            try:
                self.handle_batch([(m[0], m[1])], time.time())
            except Exception as exc:
                if not self.store.writable():
                    return False  # the database went away meanwhile: what is stored is stored once, by id
                log.error("message on %r dropped: the database refuses it: %s", m[0], exc)
                with self._lock:
                    self.dropped += 1
        return True

    def handle_batch(self, messages: Sequence[tuple[bytes | str, bytes]], now: float) -> None:
        """Parse and store one batch; an unreadable message is dropped with a line in the
        log (it would never read better)."""
        statuses: list[tuple[str, dict[str, Any], float]] = []
        events: list[dict[str, Any]] = []
        results: list[tuple[str, dict[str, Any]]] = []
        answers: list[tuple[str, dict[str, Any]]] = []
        loads = json.loads
        for topic, payload in messages:
            if not payload:
                continue  # a cleared retained status
            try:
                if isinstance(topic, bytes):
                    topic = topic.decode()
                _, site, leaf = topic.rsplit("/", 2)
                doc: Any = loads(payload, parse_constant=_no_constant)
                if not isinstance(doc, dict) or (leaf == "events" and not isinstance(doc.get("id"), str)):
                    raise ValueError("not an event or status")
                if leaf == "events" and doc.setdefault("site", site) != site:
                    raise ValueError(f"an event of site {str(doc['site'])[:64]!r} on {site}'s topic")  # the ACL is per topic
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
                log.warning("message on %r dropped: %s", topic, exc)
                continue
            if leaf == "events":
                if not isinstance(doc.get("type"), str):
                    doc["type"] = "?"
                events.append(doc)
            elif leaf == "status":
                statuses.append((site, doc, now))
            elif leaf == "result" and site == "cmd":
                results.append((topic.split("/")[-3], doc))  # the site whose topic it came on
            elif leaf == "resent" and site == "events":
                answers.append((topic.split("/")[-3], doc))
        new = self.store.store(statuses, events)
        for site, answer in answers:
            self._resent(site, answer, now)
        if results:
            self.store.command_results(results, now)
        newest = _instant(events[-1].get("at")) if events else None  # the last to arrive: enough for a lag
        with self._lock:
            self.received += len(statuses) + len(events)
            self.duplicates += len(events) - new
            self.batches += 1
            self.by_type.update(str(e["type"])[:64] for e in events)
            if newest is not None:
                self.lag_s = max(0.0, time.time() - newest)

    def _resent(self, site: str, answer: dict[str, Any], now: float) -> None:
        """A box's answer to a request for events: what it no longer holds is lost for good."""
        if answer.get("error"):
            log.error("site %s refused a request for events: %s", site, str(answer["error"])[:200])
            return
        self.store.sequences.answered(site, answer.get("last_seq"))
        if isinstance(answer.get("gone"), list):
            self.store.sequences.gone(site, answer["gone"], now)

    def handle(self, topic: str, payload: bytes, now: float) -> None:
        self.handle_batch([(topic, payload)], now)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a box sends")


def _instant(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None
    except ValueError:
        return None
