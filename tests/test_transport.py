"""The ways a school network lets the box out: TLS with a client certificate, a
password file, MQTT over websockets; each against a real Mosquitto."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor import config
from haldor.agent.link import MqttLink
from haldor.agent.site import open_store
from haldor.errors import ConfigError

from .broker import Broker, Publisher, free_port
from .certs import make_pki
from .helpers import snapshot, wait_for
from .rig import Rig, public_key
from .test_sync import sync_site


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return make_pki(d)


@pytest.fixture
def secure_broker(tmp_path, pki):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "valby-skole", "s3cret"], check=True)
    tls_port, ws_port = free_port(), free_port()
    broker = Broker(
        tmp_path / "broker",
        extra=f"""
password_file {passwords}
listener {tls_port} 127.0.0.1
cafile {pki["ca"]}
certfile {pki["server"]}
keyfile {pki["server_key"]}
require_certificate true
listener {ws_port} 127.0.0.1
protocol websockets
socket_domain ipv4
""",
    )
    broker.tls_port, broker.ws_port = tls_port, ws_port
    broker.start()
    yield broker
    broker.stop()


def _through(tmp_path, broker, mqtt: str) -> Rig:
    key = Ed25519PrivateKey.generate()
    site = sync_site(tmp_path, broker, public_key(key), mqtt=mqtt).start()
    publisher = Publisher(broker.port, key)
    try:
        publisher.send("schedule", snapshot(42))
        wait_for(lambda: site.version() == 42, what="snapshot over this transport")
    finally:
        publisher.close()
    return site


def test_tls_with_a_client_certificate(tmp_path, secure_broker, pki):
    site = _through(
        tmp_path,
        secure_broker,
        f"""port = {secure_broker.tls_port}
tls = true
ca_file = "{pki["ca"]}"
cert_file = "{pki["client"]}"
key_file = "{pki["client_key"]}"
""",
    )
    site.close()


def test_a_broker_with_a_certificate_from_another_ca_is_not_trusted(tmp_path, secure_broker):
    other = tmp_path / "other"
    other.mkdir()
    foreign = make_pki(other, "Someone else's CA")
    key = Ed25519PrivateKey.generate()
    site = sync_site(
        tmp_path,
        secure_broker,
        public_key(key),
        mqtt=f"""port = {secure_broker.tls_port}
tls = true
ca_file = "{foreign["ca"]}"
cert_file = "{foreign["client"]}"
key_file = "{foreign["client_key"]}"
""",
    )
    site.start(connected=False)
    try:
        assert not site.link.connected.wait(2)  # the TLS handshake fails: never connected
        assert site.thread.is_alive() and site.running_agent.running.is_set()  # and the doors work on
    finally:
        site.close()


def test_username_and_password_file(tmp_path, secure_broker):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    site = _through(
        tmp_path,
        secure_broker,
        f"""port = {secure_broker.port}
tls = false
username = "valby-skole"
password_file = "{secret}"
""",
    )
    site.close()


def test_a_missing_password_file_names_the_key(tmp_path, secure_broker):
    key = Ed25519PrivateKey.generate()
    site = sync_site(
        tmp_path,
        secure_broker,
        public_key(key),
        mqtt=f"""port = {secure_broker.port}
tls = false
username = "valby-skole"
password_file = "{tmp_path / "nowhere"}"
""",
    )
    outbox = open_store(site.cfg)
    try:
        with pytest.raises(ConfigError, match="mqtt.password_file"):
            MqttLink(site.cfg, outbox, lambda m: None, version="x")
    finally:
        outbox.close()


def test_mqtt_over_websockets(tmp_path, secure_broker):
    site = _through(
        tmp_path,
        secure_broker,
        f"""port = {secure_broker.ws_port}
tls = false
transport = "websockets"
""",
    )
    site.close()


def test_config_refuses_an_unknown_transport(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[site]\nid = "x"\n[mqtt]\ntransport = "carrier-pigeon"\n')
    with pytest.raises(ConfigError, match="mqtt.transport"):
        config.load(path)
