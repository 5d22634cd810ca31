"""The fleet's MQTT consumer: a persistent session on `P/+/status` and `P/+/events`;
messages are written a batch at a time (up to ``BATCH`` or ``BATCH_S``, whichever
first) in one transaction, and each is acknowledged to the broker only after its
batch committed, so a crash of the fleet (or of its database) loses nothing.

At a national fleet's rate most of the consumer's time went to paho's receive path,
not to the database (bench/bench_fleet.py): a ``Properties`` object built per message
(a few dozen dictionary entries each), three or four ``recv()`` calls and a
``select()`` per packet, a wake-up and a ``send()`` per acknowledgement. With the
paho-mqtt this was measured on (``FAST_PAHO``) the consumer's client
(:class:`FleetClient`) reads ahead (one ``recv()`` for whatever the kernel holds),
takes a plain QoS 1 PUBLISH apart itself and hands the messages of one read to the
writer together, and acknowledges a batch in one write. Anything else (another paho,
a message with MQTT 5 properties, QoS 0 or 2, websockets) goes paho's own way, and
the guarantees are the same either way: QoS 1 on a persistent session, each message
acknowledged, in the order received, only after its batch committed."""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from haldor.broker_tools import acked_publish
from haldor.errors import HaldorError
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
#: bytes asked of the kernel per read (a few hundred of the boxes' messages)
READ_AHEAD = 65536
#: the paho-mqtt releases whose private receive path FleetClient was written and tested
#: against; with any other the consumer uses paho as it comes
FAST_PAHO = ("2.2.",)

#: one received message: topic (bytes as it came, or str from paho), payload, mid, QoS
Incoming = tuple[bytes | str, bytes, int, int]

_H = struct.Struct("!H")
_PUBACK = struct.Struct("!BBH")
PUBACK = mqtt.PUBACK


def fast_paho() -> bool:
    """Whether this paho is one FleetClient was written for (and has what it overrides)."""
    used = ("_create_socket", "_handle_publish", "_packet_queue", "loop_read", "ack")
    return paho.mqtt.__version__.startswith(FAST_PAHO) and all(callable(getattr(mqtt.Client, n, None)) for n in used)


class ReadAhead:
    """A socket whose ``recv(n)`` is served from one large read: paho asks for a packet
    a byte or two at a time. ``pending()`` (which paho asks of TLS sockets) tells paho
    that bytes are waiting here though ``select()`` would not say so."""

    __slots__ = ("_sock", "_buf", "_pos", "_tls")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._tls = hasattr(sock, "pending")

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._sock.recv(READ_AHEAD)  # BlockingIOError, SSLWantReadError: paho's to handle
            if not buf:
                return buf  # closed
            self._buf, pos = buf, 0
        self._pos = pos + n
        return buf[pos : pos + n]

    def pending(self) -> int:
        waiting = max(0, len(self._buf) - self._pos)
        return waiting + self._sock.pending() if self._tls else waiting

    def send(self, data: bytes | bytearray) -> int:
        return self._sock.send(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # setsockopt, getpeercert, ...
        return getattr(self._sock, name)


class FleetClient(mqtt.Client):
    """paho's client with a lean path for the fleet's flood of small QoS 1 messages
    (see the module's text). ``sink`` receives the messages of one socket read, in
    order; paho's ``on_message`` still gets what takes paho's own way, in order too."""

    sink: Callable[[list[Incoming]], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._incoming: list[Incoming] = []

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return sock if self._transport == "websockets" else ReadAhead(sock)

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # paho reads one packet per select(): go on while the read-ahead holds more
        # (each round takes at least one byte of it, and the rounds are bounded)
        rc = super().loop_read(max_packets)
        for _ in range(10_000):
            sock = self._sock
            if rc != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, ReadAhead) or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        self._flush()
        return rc

    def _flush(self) -> None:
        if self._incoming and self.sink is not None:
            got, self._incoming = self._incoming, []
            self.sink(got)

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        packet = self._in_packet
        header = packet["command"]
        data = packet["packet"]
        if self.sink is None or (header & 0x06) != 0x02 or self._protocol != mqtt.MQTTv5:
            return self._paho_publish()  # QoS 0 or 2, or not MQTT 5
        try:
            end = 2 + _H.unpack_from(data, 0)[0]
            (mid,) = _H.unpack_from(data, end)
            has_properties = data[end + 2] != 0  # their length, a variable byte integer: 0 is one byte
        except (struct.error, IndexError) as exc:
            raise MalformedPacket(f"PUBLISH: {exc}") from None
        if has_properties or end == 2 or mid == 0:
            return self._paho_publish()  # a topic alias, a content type, ...: paho reads those
        self._incoming.append((bytes(data[2:end]), bytes(data[end + 3 :]), mid, 1))
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _paho_publish(self) -> mqtt.MQTTErrorCode:
        self._flush()  # what came before goes first: acknowledgements keep the order of arrival
        return super()._handle_publish()

    def ack_many(self, acks: Sequence[tuple[int, int]]) -> None:
        """Acknowledge (mid, qos) pairs, in order, in one write to the broker."""
        if not self._manual_ack:
            return
        if any(qos == 2 for _, qos in acks):
            for mid, qos in acks:
                self.ack(mid, qos)
            return
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid, qos in acks if qos == 1])
        if packet:
            self._packet_queue(PUBACK, packet, 0, 1)


def make_fleet_client(opts: BrokerOptions, client_id: str, fast: bool | None = None) -> mqtt.Client:
    """The consumer's client, configured as :meth:`BrokerOptions.client` does (TLS,
    credentials, websockets, no Nagle); a :class:`FleetClient` where ``fast`` (by default
    where this paho is one of ``FAST_PAHO``)."""
    fast = fast_paho() if fast is None else fast
    cls = FleetClient if fast else mqtt.Client
    client = cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, transport=opts.transport)
    configure_client(client, dataclasses.asdict(opts), "--broker")
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
        fast: bool | None = None,
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
        client = make_fleet_client(opts, client_id, fast)  # a fixed id: the broker keeps this consumer's session
        #: since when this consumer has not heard the broker (None: connected); states are as of then
        self.blind_since: float | None = time.time()
        self._ever_connected = False
        self._connected_at = 0.0
        #: connections the broker dropped soon after it took them (monotonic times)
        self._short_lived: collections.deque[float] = collections.deque(maxlen=3)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        if isinstance(client, FleetClient):
            client.sink = self._deliver
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
            if isinstance(self.client, FleetClient):
                self.client.ack_many(acks)
            else:
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
        self.store.sequences.note_last(site, answer.get("last_seq"))
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
