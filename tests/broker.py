"""A real Mosquitto on a free loopback port, for the tests (and the benchmarks)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor import schemas
from haldor.access.envelope import seal
from haldor.mqtt import make_client
from haldor.protocol import Leaf

from .helpers import SITE, wait_for

PREFIX = "haldor/v1"
T = f"{PREFIX}/{SITE}"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: what the agent publishes, by the last part of the topic (the prefix may vary)
OUTGOING = (Leaf.EVENTS, Leaf.STATUS, Leaf.CMD_RESULT, Leaf.SYNC_REQUEST, Leaf.RESENT)


#: what tells an event from the next of the same kind (test_sync's 10,000 doors opened):
#: a message that differs from one already checked only in these is not checked whole again
VARYING = ("id", "seq")


def _shape(leaf: str, doc: Any) -> str | None:
    """The message with its id and seq left out, when both are of their kinds (a string, a
    whole number); None for any other message, which is checked whole."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or type(doc.get("seq")) is not int:
        return None
    return leaf + json.dumps({k: v for k, v in doc.items() if k not in VARYING}, sort_keys=True)


class Auditor:
    """Every message an agent (or a test standing in for one) publishes on this broker,
    checked against the protocol's JSON Schemas when the broker stops: what the boxes
    say must be what docs/protocol.md says they say. Messages alike but for their id and
    seq are checked whole once (jsonschema took 20 s for 10,000 of them)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = make_client(f"auditor-{uuid.uuid4().hex[:8]}")
        self.client.manual_ack_set(False)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", 0)
        self.client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(subscribed.is_set, what="auditor subscribed")

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith(tuple(f"/{leaf}" for leaf in OUTGOING)):  # any prefix
            with self._lock:
                self.seen.append((msg.topic, msg.payload))

    def close(self) -> list[str]:
        """Stop listening; every violation, one line each."""
        self.client.disconnect()
        self.client.loop_stop()
        faults = []
        checked: set[str] = set()
        with self._lock:
            seen = list(self.seen)
        for topic, payload in seen:
            if not payload:  # a retained message cleared
                continue
            leaf = next(leaf for leaf in OUTGOING if topic.endswith(f"/{leaf}"))
            try:
                doc = json.loads(payload)
            except ValueError as exc:
                faults.append(f"{topic}: not JSON ({exc}): {payload[:80]!r}")
                continue
            shape = _shape(leaf, doc)
            if shape is not None and shape in checked:
                continue
            if shape is not None:
                checked.add(shape)
            faults += [f"{topic}: {error}: {payload[:300]!r}" for error in schemas.errors(schemas.name_for_leaf(leaf), doc)]
        return faults


class Broker:
    """Mosquitto with persistence, so that a restart keeps sessions and retained messages.
    With ``audit`` (the tests' default) every message published on an agent's topics is
    checked against its JSON Schema, and stop() fails on the first that does not fit."""

    def __init__(self, workdir: Path, *, extra: str = "", audit: bool = True) -> None:
        self.audit = audit
        self.auditor: Auditor | None = None
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        self.port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    def config(self) -> str:
        # as root, mosquitto would drop to its own user, who cannot enter pytest's folders
        return f"""
user {"root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")}
per_listener_settings false
allow_anonymous true
persistence true
persistence_location {self.dir / "data"}/
autosave_interval 1
set_tcp_nodelay true
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
log_type notice
listener {self.port} 127.0.0.1
{self.extra}
"""

    def start(self) -> Broker:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=10, what="mosquitto listening")
        if self.audit:
            self.auditor = Auditor(self.port)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        faults = self.auditor.close() if self.auditor is not None else []
        self.auditor = None
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        if not kill:
            self._wake()
        self.proc.wait(10)
        self.proc = None
        assert not faults, "published against the protocol's JSON Schemas:\n" + "\n".join(faults[:20])

    def _wake(self) -> None:
        """Mosquitto takes a signal only between two waits on its sockets (up to 100 ms
        each, the signal blocked meanwhile): a connection ends the wait it is in."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            pass  # already gone: nothing to wake

    def restart(self) -> None:
        self.stop()
        self.start()


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


class Watcher:
    """A monitoring client: every message on the site's topics, in arrival order."""

    def __init__(self, port: int, topics: str = f"{T}/#", client_id: str | None = None) -> None:
        self.messages: list[tuple[str, dict | None, bool]] = []
        self._lock = threading.Lock()
        self.client = make_client(client_id or f"watcher-{uuid.uuid4().hex[:8]}")
        self.client.manual_ack_set(False)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topics, qos=1), self.connected.set())
        self.client.on_message = self._on_message
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, clean_start=False, properties=props)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.loop_start()
        wait_for(self.connected.is_set, what="watcher connected")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload) if msg.payload else None  # parsed once, as it arrives
        except (ValueError, RecursionError):
            doc = None  # the garbage a test sends on purpose
        with self._lock:
            self.messages.append((msg.topic, doc, msg.retain))

    def docs(self, leaf: str) -> list[dict]:
        topic = f"{T}/{leaf}"
        with self._lock:
            return [d for t, d, _ in self.messages if t == topic and d is not None]

    def events(self, kind: str | None = None) -> list[dict]:
        return [e for e in self.docs("events") if kind is None or e["type"] == kind]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """The booking system and the operator: signed documents to the site's topics."""

    def __init__(self, port: int, key: Ed25519PrivateKey, kid: str = "bookings-2026") -> None:
        self.key, self.kid = key, kid
        self.client = make_client(f"publisher-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(
        self, leaf: str, doc, *, retain: bool = False, key: Ed25519PrivateKey | None = None, raw: bytes | None = None
    ) -> None:
        payload = raw if raw is not None else json.dumps(seal(doc, self.kid, key or self.key)).encode()
        self.client.publish(f"{T}/{leaf}", payload, qos=1, retain=retain).wait_for_publish(5)

    def command(self, action: str, **fields) -> str:
        now = datetime.now(UTC)
        doc = {
            "schema": "haldor.command/1",
            "id": fields.pop("id", str(uuid.uuid4())),
            "site": SITE,
            "action": action,
            "issued_at": iso(now),
            "expires_at": iso(now + timedelta(minutes=5)),
            "by": "operator-12",
            **fields,
        }
        self.send("cmd", doc)
        return doc["id"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
#: the role every anonymous client of the test broker holds (the fleet, watchers, the auditor)
EVERYTHING = [
    {"acltype": kind, "topic": "#", "allow": True}
    for kind in ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")
]


class DynsecBroker(Broker):
    """Mosquitto with the dynamic security plugin, as a municipality enrolling boxes runs
    it: its ``dynamic-security.json`` made by ``mosquitto_ctrl dynsec init`` with an admin
    (``admin``, password in ``admin_password_file``). Anonymous clients (the tests' fleet,
    watchers and auditor) may do everything; a client with a user name only what its roles allow."""

    def __init__(self, workdir: Path, **kwargs) -> None:
        super().__init__(workdir, **kwargs)
        self.dynsec = self.dir / "dynamic-security.json"
        self.admin_password_file = self.dir / "admin.password"
        if not self.dynsec.exists():
            password = uuid.uuid4().hex
            self.admin_password_file.write_text(password + "\n")
            subprocess.run(
                ["mosquitto_ctrl", "dynsec", "init", str(self.dynsec), "admin", password],
                check=True,
                capture_output=True,
            )
            made = json.loads(self.dynsec.read_text())
            made["roles"].append({"rolename": "everything", "acls": EVERYTHING})
            made["groups"] = [*made.get("groups", []), {"groupname": "anonymous", "roles": [{"rolename": "everything"}]}]
            made["anonymousGroup"] = "anonymous"
            self.dynsec.write_text(json.dumps(made, indent=1))

    def config(self) -> str:
        return super().config() + f"\nplugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {self.dynsec}\n"

    def admin_options(self, prefix: str = PREFIX):
        from haldor.mqtt import BrokerOptions

        return BrokerOptions(
            host="127.0.0.1", port=self.port, username="admin", password_file=str(self.admin_password_file), prefix=prefix
        )
