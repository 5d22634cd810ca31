"""The shipped broker configuration (config/mosquitto/haldor.conf and haldor.acl) against
a real Mosquitto: one site's box can neither read another site's credentials nor publish
schedules, nor take over another site's session; the queues hold a week."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from haldor.mqtt import make_client

from .broker import Broker
from .helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
USERS = {"valby-skole": "a-pass", "other-site": "b-pass", "booking-system": "bs-pass", "fleet": "f-pass"}
CONF = ROOT / "config/mosquitto/haldor.conf"
BOX_ID = "haldor-valby-skole"  # the client id the agent sends (haldor/agent/link.py)
CMD = "haldor/v1/valby-skole/cmd"
# file paths and TLS of the shipped configuration: the test broker has its own
MACHINE_SPECIFIC = {
    "listener",
    "protocol",
    "cafile",
    "certfile",
    "keyfile",
    "tls_version",
    "password_file",
    "acl_file",
    "persistence_location",
}


def shipped_conf() -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The shipped haldor.conf as (option, value) pairs: the general ones, and those of
    each listener (Mosquitto applies listener options to the listener above them)."""
    general: list[tuple[str, str]] = []
    listeners: list[list[tuple[str, str]]] = []
    for line in CONF.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key == "listener":
            listeners.append([])
        (listeners[-1] if listeners else general).append((key, value.strip()))
    return general, listeners


@pytest.fixture
def acl_broker(tmp_path):
    """Mosquitto on loopback with the shipped acl, the shipped general options and the
    options of the shipped TLS listener (its files and certificates left out)."""
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), user, password], check=True)
    general, listeners = shipped_conf()
    broker = Broker(tmp_path / "broker", audit=False)  # no anonymous client may listen here
    listener = f"listener {broker.port} 127.0.0.1\n"
    text = broker.config().replace("allow_anonymous true\n", "").replace("max_queued_messages 0\n", "")
    assert listener in text
    # each shipped option where the shipped file has it: above the listener, or in its block
    above = [
        f"password_file {passwd}",
        f"acl_file {ROOT / 'config/mosquitto/haldor.acl'}",
        *(f"{k} {v}" for k, v in general if k not in MACHINE_SPECIFIC),
    ]
    below = [f"{k} {v}" for k, v in listeners[0] if k not in MACHINE_SPECIFIC]
    broker.config_text = text.replace(listener, "\n".join([*above, listener.strip(), *below, ""]))
    broker.config = lambda: broker.config_text  # type: ignore[method-assign]
    broker.start()
    yield broker
    broker.stop()


class Client:
    """A client of the test broker. With ``session`` (seconds) it resumes or keeps a
    persistent session, as the agent and the fleet do."""

    def __init__(self, port: int, user: str, *, client_id: str | None = None, session: int = 0, manual_ack: bool = False) -> None:
        self.c = make_client(client_id or f"{user}-test")
        self.c.manual_ack_set(manual_ack)
        self.c.username_pw_set(user, USERS[user])
        self.subacks: dict[int, list] = {}
        self.pubacks: dict[int, object] = {}
        self.got: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.connacks: list[tuple[bool, object]] = []  # (session present, reason)
        self.disconnects: list[object] = []
        self._lock = threading.Lock()
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.__setitem__(mid, codes)
        self.c.on_publish = lambda c, u, mid, code, props: self.pubacks.__setitem__(mid, code)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.append((flags.session_present, rc))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.append(rc)
        props = None
        if session:
            props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = session
        self.c.connect("127.0.0.1", port, clean_start=not session, properties=props)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))
            self.got.append(msg.topic)

    def connected(self) -> tuple[bool, object]:
        return wait_for(lambda: self.connacks, what="connack")[0]

    def subscribe(self, topic: str):
        _, mid = self.c.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), what=f"suback {topic}")[0]

    def publish(self, topic: str, retain: bool = False, payload: bytes = b"{}"):
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        return wait_for(lambda: self.pubacks.get(info.mid), what=f"puback {topic}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _refused(port: int, user: str, topic: str) -> bool:
    """Publish once from a fresh client (Mosquitto 2.0 drops the connection after a
    refused publish) and say whether the broker refused it."""
    client = Client(port, user)
    try:
        return client.publish(topic).is_failure
    finally:
        client.close()


def test_a_site_reads_only_its_own_schedule_and_publishes_only_its_reports(acl_broker):
    port = acl_broker.port
    box, booking = Client(port, "valby-skole"), Client(port, "booking-system")
    try:
        assert not booking.publish("haldor/v1/other-site/schedule", retain=True).is_failure
        assert not booking.publish("haldor/v1/other-site/cmd").is_failure
        # Mosquitto grants the subscription and filters each message by the read ACL
        box.subscribe("haldor/v1/#")
        booking.publish("haldor/v1/other-site/schedule/delta")
        booking.publish("haldor/v1/valby-skole/schedule")  # the last, in order: a barrier
        wait_for(lambda: "haldor/v1/valby-skole/schedule" in box.got, what="own schedule")
        assert box.got == ["haldor/v1/valby-skole/schedule"]  # nothing of the other site came first
        assert not box.publish("haldor/v1/valby-skole/events").is_failure
        assert not box.publish("haldor/v1/valby-skole/status").is_failure
        assert not box.publish("haldor/v1/valby-skole/sync/request").is_failure
        assert not box.publish("haldor/v1/valby-skole/cmd/result").is_failure
        assert not box.publish("haldor/v1/valby-skole/events/resent").is_failure
    finally:
        box.close()
        booking.close()
    for topic in (
        "valby-skole/schedule",
        "valby-skole/schedule/delta",
        "valby-skole/cmd",
        "other-site/events",
        "other-site/status",
        "other-site/events/resent",
        "valby-skole/events/resend",
        "other-site/events/resend",
    ):
        assert _refused(port, "valby-skole", f"haldor/v1/{topic}"), topic


def test_the_fleet_monitor_listens_and_only_asks_for_lost_events(acl_broker):
    port = acl_broker.port
    fleet, booking, box = Client(port, "fleet"), Client(port, "booking-system"), Client(port, "valby-skole")
    try:
        fleet.subscribe("haldor/v1/#")
        box.subscribe("haldor/v1/valby-skole/events/resend")
        booking.publish("haldor/v1/valby-skole/schedule", retain=True)
        box.publish("haldor/v1/valby-skole/events")
        box.publish("haldor/v1/valby-skole/events/resent")
        wait_for(lambda: "haldor/v1/valby-skole/events/resent" in fleet.got, what="events reach the fleet")
        assert fleet.got == ["haldor/v1/valby-skole/events", "haldor/v1/valby-skole/events/resent"]  # never a schedule
        assert not fleet.publish("haldor/v1/valby-skole/events/resend").is_failure
        wait_for(lambda: "haldor/v1/valby-skole/events/resend" in box.got, what="the box hears the request")
    finally:
        for c in (fleet, booking, box):
            c.close()
    assert _refused(port, "fleet", "haldor/v1/valby-skole/cmd")
    assert _refused(port, "fleet", "haldor/v1/valby-skole/schedule")


# --- client ids are tied to user names (issue 10) -----------------------------------


def _barrier(impostor: Client, booking: Client) -> None:
    """Everything the broker had queued for the impostor's session is sent right after
    its CONNACK; a message to its own commands, sent after that, arrives after it."""
    impostor.subscribe("haldor/v1/other-site/cmd")
    booking.publish("haldor/v1/other-site/cmd", payload=b"barrier")
    wait_for(lambda: ("haldor/v1/other-site/cmd", b"barrier") in impostor.messages, what="the impostor's barrier")


def test_another_sites_login_with_the_boxs_client_id_neither_disconnects_the_box_nor_gets_its_commands(acl_broker):
    port = acl_broker.port
    booking = Client(port, "booking-system")
    # the agent acknowledges a command only after applying it: one stays in flight
    box = Client(port, "valby-skole", client_id=BOX_ID, session=3600, manual_ack=True)
    impostor = None
    try:
        box.subscribe(CMD)
        booking.publish(CMD, payload=b"cmd-1")
        wait_for(lambda: (CMD, b"cmd-1") in box.messages, what="the box's first command")

        impostor = Client(port, "other-site", client_id=BOX_ID, session=3600)
        assert impostor.connected() == (False, 0)  # no session of the box's handed over
        _barrier(impostor, booking)
        booking.publish(CMD, payload=b"cmd-2")
        wait_for(lambda: (CMD, b"cmd-2") in box.messages, what="the box's second command")

        assert box.disconnects == []  # the box was never thrown out (and never reconnected)
        assert box.connacks == [(False, 0)]
        assert impostor.messages == [("haldor/v1/other-site/cmd", b"barrier")]  # nothing of the box's
    finally:
        for c in (booking, box, impostor):
            if c is not None:
                c.close()


def test_commands_queued_for_an_absent_box_all_reach_it_after_an_impostor_tried_its_client_id(acl_broker):
    port = acl_broker.port
    booking = Client(port, "booking-system")
    box = Client(port, "valby-skole", client_id=BOX_ID, session=3600)
    box.subscribe(CMD)
    box.close()  # away, its session kept
    commands = [f"cmd-{i}".encode() for i in range(5)]
    try:
        for payload in commands:
            assert not booking.publish(CMD, payload=payload).is_failure
        # one impostor starts clean (that would end the box's session), one asks to resume it
        for session in (0, 3600):
            impostor = Client(port, "other-site", client_id=BOX_ID, session=session)
            try:
                impostor.connected()
                _barrier(impostor, booking)
                assert impostor.messages == [("haldor/v1/other-site/cmd", b"barrier")]
            finally:
                impostor.close()
        box = Client(port, "valby-skole", client_id=BOX_ID, session=3600)
        assert box.connected() == (True, 0)
        wait_for(lambda: len(box.messages) >= len(commands), what="the queued commands")
        assert box.messages == [(CMD, p) for p in commands]
    finally:
        booking.close()
        box.close()


def test_every_listener_of_the_shipped_conf_ties_the_client_id_to_the_user_name():
    # use_username_as_clientid is a listener option in Mosquitto 2, whatever
    # per_listener_settings says: set above the first listener, it would bind neither
    general, listeners = shipped_conf()
    assert ("per_listener_settings", "false") in general
    assert len(listeners) == 2
    for options in listeners:
        assert ("use_username_as_clientid", "true") in options, options[0]
    assert "clientid_prefixes" not in dict(general)  # not to be combined with the above


def test_the_shipped_queues_are_the_ones_the_readme_gives():
    general, _ = shipped_conf()
    conf = dict(general)
    readme = (ROOT / "README.md").read_text()
    week = int(re.search(r"a week of a site's events \(about ([\d,]+)\)", readme).group(1).replace(",", ""))
    messages, size = int(conf["max_queued_messages"]), int(conf["max_queued_bytes"])
    assert f"`max_queued_messages {messages}`" in readme
    assert f"`max_queued_bytes {size}`" in readme
    sites = int(re.search(r"a week of (\d+) sites' events", readme).group(1))
    statuses = 7 * 24 * 60  # a status a minute
    assert f"statuses ({statuses:,} a site)" in readme
    # a week of every site's events and statuses: what the fleet and the booking system queue
    assert messages == sites * (week + statuses)
    assert size > int(conf["message_size_limit"])  # a snapshot always fits in a box's queue
    assert conf["persistence"] == "true"


def test_the_fleet_gets_every_event_sent_while_it_was_away_beyond_the_old_limit(acl_broker):
    """The old configuration kept at most 10,000 messages per client: for the fleet, less
    than half an hour of 100 sites' events and statuses; the rest dropped without a word."""
    port = acl_broker.port
    fleet = Client(port, "fleet", client_id="haldor-fleet", session=3600)
    fleet.subscribe("haldor/v1/+/events")
    fleet.close()
    box = Client(port, "valby-skole", client_id=BOX_ID)
    n = 10_050
    try:
        infos = [box.c.publish("haldor/v1/valby-skole/events", str(i).encode(), qos=1) for i in range(n)]
        wait_for(lambda: all(i.is_published() for i in infos), timeout=60, what="the events at the broker")
    finally:
        box.close()
    fleet = Client(port, "fleet", client_id="haldor-fleet", session=3600)
    box = Client(port, "valby-skole", client_id=BOX_ID)
    try:
        fleet.connected()  # the queue follows the CONNACK; an event sent now comes after it
        box.publish("haldor/v1/valby-skole/events", payload=b"last")
        wait_for(lambda: ("haldor/v1/valby-skole/events", b"last") in fleet.messages, timeout=60, what="the last event")
        assert [p for _, p in fleet.messages] == [str(i).encode() for i in range(n)] + [b"last"]
    finally:
        fleet.close()
        box.close()


def test_a_command_the_broker_refuses_is_written_as_not_sent(acl_broker, tmp_path):
    """The shipped ACL lets the fleet only listen: a command from its page is refused by
    the broker, and the audit log says so (not "no answer: the box was offline")."""
    from haldor.fleet.commands import AuditLog, Commander
    from haldor.fleet.ingest import FleetConsumer
    from haldor.fleet.operators import Operator
    from haldor.fleet.store import FleetStore
    from haldor.integrator import documents
    from haldor.mqtt import BrokerOptions

    (tmp_path / "fleet.pw").write_text(USERS["fleet"])
    opts = BrokerOptions("127.0.0.1", acl_broker.port, username="fleet", password_file=str(tmp_path / "fleet.pw"))
    store = FleetStore(tmp_path / "fleet.db")
    consumer = FleetConsumer(opts, store, client_id="fleet")
    key, _, _ = documents.keygen("fleet-commands", tmp_path / "keys")
    audit = AuditLog(store.db)
    consumer.start()
    try:
        wait_for(consumer.connected.is_set, what="the fleet connected")
        Commander(consumer.client, opts, str(key), "fleet-commands", audit).send(
            Operator("pedel-anna", "operator"), "valby-skole", "unlock", "main", 5, "", time.time()
        )
        (row,) = audit.rows()
        assert row["ok"] == 0 and row["error"].startswith("not sent:") and row["answered_at"] is not None
    finally:
        consumer.stop()
