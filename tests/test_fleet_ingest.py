"""The fleet consumer's receive path against a real Mosquitto: a flood acknowledged a
batch at a time is stored once and never delivered again; a batch that never
committed is; messages that paho reads itself keep their place; a broker restart
midway loses nothing; over TLS and websockets too. paho's public interface only."""

from __future__ import annotations

import json
import uuid

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from haldor.fleet.ingest import FleetConsumer
from haldor.fleet.store import FleetStore
from haldor.mqtt import BrokerOptions, make_client

from .broker import Broker, free_port
from .certs import make_pki
from .helpers import wait_for

P = "haldor/v1"


def event(site: str, seq: int) -> dict:
    return {
        "schema": "haldor.event/1",
        "id": str(uuid.uuid4()),
        "site": site,
        "seq": seq,
        "at": "2026-11-25T17:00:00+01:00",
        "type": "access.granted",
        "door": "main",
    }


class Sites:
    """One client publishing for several sites, QoS 1, each publish waited for."""

    def __init__(self, port: int) -> None:
        self.client = make_client(f"sites-{uuid.uuid4().hex[:8]}")
        self.client.manual_ack_set(False)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, docs: list[dict], qos: int = 1, properties: Properties | None = None) -> None:
        infos = [self.client.publish(f"{P}/{d['site']}/events", json.dumps(d), qos=qos, properties=properties) for d in docs]
        for info in infos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class FailingStore(FleetStore):
    """A database that is down: nothing is ever committed."""

    def __init__(self, target) -> None:
        super().__init__(target)
        self.tries = 0
        self.db.conn.close()  # every query fails, as with a server that is gone

    def store(self, statuses, events) -> int:
        self.tries += 1
        raise RuntimeError("the database is down")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker", audit=False).start()
    yield b
    b.stop()


def consumer(broker: Broker, store: FleetStore) -> FleetConsumer:
    c = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), store, client_id="fleet-under-test")
    c.start()
    wait_for(c.connected.is_set, what="consumer connected")
    return c


def restart_and_count(broker: Broker, target: str, sites: Sites) -> FleetConsumer:
    """Start the consumer's session again, send one marker event: what arrives before the
    marker was delivered again."""
    again = consumer(broker, FleetStore(target))
    sites.send([event("marker", 1)])
    wait_for(lambda: again.received >= 1, what="the marker")
    return again


def test_a_flood_acknowledged_a_batch_at_a_time_is_stored_once_and_never_delivered_again(broker, tmp_path):
    target = str(tmp_path / "fleet.db")
    c = consumer(broker, FleetStore(target))
    sites = Sites(broker.port)
    try:
        sent = [event(f"site-{i % 7}", i) for i in range(2000)]
        sites.send(sent)
        wait_for(lambda: c.acked >= len(sent), timeout=30, what="every event acknowledged")
        assert c.received == len(sent) and c.duplicates == 0
        assert c.batches < len(sent) / 5  # written in batches, not one by one
        c.stop()
        again = restart_and_count(broker, target, sites)
        assert again.received == 1  # only the marker: nothing came again
        again.stop()
        assert FleetStore(target).counts()["events"] == len(sent) + 1
    finally:
        sites.close()


def test_a_batch_that_never_committed_is_delivered_again(broker, tmp_path):
    target = str(tmp_path / "fleet.db")
    down = FailingStore(target)
    c = consumer(broker, down)
    sites = Sites(broker.port)
    try:
        sent = [event("valby", i) for i in range(300)]
        sites.send(sent)
        wait_for(lambda: down.tries >= 1, what="a batch tried")
        c.stop()  # or a crash: nothing was acknowledged, the session keeps all
        assert c.acked == 0
        again = consumer(broker, FleetStore(target))
        wait_for(lambda: again.received >= len(sent), timeout=20, what="every event delivered again")
        again.stop()
        assert FleetStore(target).counts()["events"] == len(sent)
    finally:
        sites.close()


def test_messages_with_properties_and_qos_0_are_stored_and_acknowledged_in_order(broker, tmp_path):
    """A message with MQTT 5 properties, and QoS 0, among plain ones: all are stored, and
    the acknowledgements (in order) leave nothing behind."""
    target = str(tmp_path / "fleet.db")
    c = consumer(broker, FleetStore(target))
    sites = Sites(broker.port)
    typed = Properties(PacketTypes.PUBLISH)
    typed.ContentType = "application/json"
    try:
        sent = []
        for n in range(20):
            plain, with_properties, qos0 = event("valby", 3 * n), event("valby", 3 * n + 1), event("valby", 3 * n + 2)
            sites.send([plain])
            sites.send([with_properties], properties=typed)
            sites.send([qos0], qos=0)
            sent += [plain, with_properties, qos0]
        wait_for(lambda: c.received >= len(sent), timeout=20, what="all received")
        wait_for(lambda: c.acked >= len(sent), what="all acknowledged")
        c.stop()
        again = restart_and_count(broker, target, sites)
        assert again.received == 1
        again.stop()
        stored = FleetStore(target).db.rows("SELECT id FROM events WHERE site = 'valby'")
        assert {r[0] for r in stored} == {e["id"] for e in sent}
    finally:
        sites.close()


def test_a_broker_restart_midway_loses_nothing(broker, tmp_path):
    target = str(tmp_path / "fleet.db")
    c = consumer(broker, FleetStore(target))
    first = [event("valby", i) for i in range(500)]
    sites = Sites(broker.port)
    sites.send(first)
    sites.close()
    broker.restart()  # the port is kept; the consumer reconnects by itself
    wait_for(c.connected.is_set, timeout=20, what="consumer back")
    sites = Sites(broker.port)
    try:
        second = [event("vanlose", i) for i in range(500)]
        sites.send(second)
        store = FleetStore(target)
        wait_for(lambda: store.counts()["events"] >= 1000, timeout=30, what="both halves stored")
        assert store.counts()["events"] == 1000
        c.stop()
    finally:
        sites.close()


@pytest.fixture
def secure_broker(tmp_path):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    tls_port, ws_port = free_port(), free_port()
    extra = f"""
listener {tls_port} 127.0.0.1
cafile {pki["ca"]}
certfile {pki["server"]}
keyfile {pki["server_key"]}
require_certificate true
listener {ws_port} 127.0.0.1
protocol websockets
socket_domain ipv4
"""
    b = Broker(tmp_path / "broker", extra=extra, audit=False).start()
    b.opts = {
        "tls": BrokerOptions(
            "127.0.0.1", tls_port, tls=True, ca_file=str(pki["ca"]), cert_file=str(pki["client"]), key_file=str(pki["client_key"])
        ),
        "websockets": BrokerOptions("127.0.0.1", ws_port, transport="websockets"),
    }
    yield b
    b.stop()


@pytest.mark.parametrize("transport", ["tls", "websockets"])
def test_a_flood_over_tls_and_websockets(secure_broker, tmp_path, transport):
    """Either way every event is stored and acknowledged, and nothing comes again."""
    target = str(tmp_path / "fleet.db")
    opts = secure_broker.opts[transport]
    c = FleetConsumer(opts, FleetStore(target), client_id="fleet-under-test")
    c.start()
    wait_for(c.connected.is_set, what=f"consumer connected over {transport}")
    sites = Sites(secure_broker.port)
    try:
        sent = [event(f"site-{i % 5}", i) for i in range(1500)]
        sites.send(sent)
        wait_for(lambda: c.acked >= len(sent), timeout=30, what="every event acknowledged")
        c.stop()
        again = FleetConsumer(opts, FleetStore(target), client_id="fleet-under-test")
        again.start()
        wait_for(again.connected.is_set, what="consumer back")
        sites.send([event("marker", 1)])
        wait_for(lambda: again.received >= 1, what="the marker")
        assert again.received == 1
        again.stop()
        assert FleetStore(target).counts()["events"] == len(sent) + 1
    finally:
        sites.close()
