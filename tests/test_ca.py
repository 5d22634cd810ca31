"""`haldor ca`: the municipality's CA, and a real Mosquitto run on the certificates it made
with the shipped configuration: a client known by its certificate's CN, a stranger's
certificate refused, the broker's names checked by a real TLS handshake."""

from __future__ import annotations

import datetime
import ipaddress
import json
import queue
import socket
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from haldor import cli
from haldor.access.envelope import seal
from haldor.mqtt import BrokerOptions

from .broker import Broker, free_port
from .helpers import SITE, snapshot, wait_for
from .rig import public_key
from .test_broker_acl import CONF, MACHINE_SPECIFIC, ROOT, shipped_conf
from .test_sync import sync_site

#: the [mqtt] keys `haldor ca client-cert` prints, in order
MQTT_KEYS = ("tls", "ca_file", "cert_file", "key_file")


def haldor(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def days(c: x509.Certificate) -> float:
    return (c.not_valid_after_utc - c.not_valid_before_utc) / datetime.timedelta(days=1)


def test_init_makes_a_p256_ca_for_ten_years_with_its_key_0600(tmp_path, capsys):
    code, out, _ = haldor(capsys, "ca", "init", "--dir", str(tmp_path / "pki"), "--name", "Valby Kommune")
    assert code == 0
    ca = cert(tmp_path / "pki/ca.pem")
    assert mode(tmp_path / "pki/ca.key") == 0o600
    assert ca.subject.rfc4514_string() == "O=Valby Kommune,CN=Valby Kommune Haldor CA" and ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert 3650 <= days(ca) <= 3654
    key = serialization.load_pem_private_key((tmp_path / "pki/ca.key").read_bytes(), None)
    assert key.public_key() == ca.public_key()
    assert "ca.key" in out and "ca.pem" in out


@pytest.mark.parametrize("present", ["ca.key", "ca.pem"])
def test_init_never_overwrites_a_ca(tmp_path, capsys, present):
    assert haldor(capsys, "ca", "init", "--dir", str(tmp_path))[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / ({"ca.key", "ca.pem"} - {present}).pop()).unlink()  # even half a CA is kept
    code, out, err = haldor(capsys, "ca", "init", "--dir", str(tmp_path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and f"{tmp_path / present}: a CA is here already; not overwritten" in err
    assert (tmp_path / present).read_bytes() == before[present]
    assert sorted(p.name for p in tmp_path.iterdir()) == [present]


def test_the_broker_and_client_certificates_are_signed_for_their_use(tmp_path, capsys):
    pki = str(tmp_path)
    assert haldor(capsys, "ca", "init", "--dir", pki)[0] == 0
    code, out, _ = haldor(capsys, "ca", "broker-cert", "broker.example.org", "--ip", "10.0.0.5", "--ip", "::1", "--dir", pki)
    assert code == 0
    assert "cafile /etc/mosquitto/certs/ca.pem\ncertfile /etc/mosquitto/certs/broker.pem\n" in out
    assert "keyfile /etc/mosquitto/certs/broker.key\n" in out
    broker = cert(tmp_path / "broker.pem")
    sans = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example.org"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("::1")]
    assert list(broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    code, out, _ = haldor(capsys, "ca", "client-cert", "valby-skole", "--dir", pki)
    assert code == 0
    assert 'ca_file = "/etc/haldor/ca.pem"\ncert_file = "/etc/haldor/valby-skole.pem"\n' in out
    assert 'key_file = "/etc/haldor/valby-skole.key"\n' in out
    client = cert(tmp_path / "valby-skole.pem")
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "valby-skole"
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = cert(tmp_path / "ca.pem")
    for leaf, key in ((broker, "broker.key"), (client, "valby-skole.key")):
        ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        assert leaf.issuer == ca.subject and not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert 2 * 365 <= days(leaf) <= 3 * 366 and leaf.public_key().curve.name == "secp256r1"
        assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert mode(tmp_path / key) == 0o600 and mode(tmp_path / key.replace(".key", ".pem")) == 0o644
    assert len({c.serial_number for c in (ca, broker, client)}) == 3 and min(ca.serial_number, client.serial_number) > 2**64
    before = (tmp_path / "valby-skole.key").read_bytes()
    code, _, err = haldor(capsys, "ca", "client-cert", "valby-skole", "--dir", pki)
    assert code == 1 and "valby-skole.key: exists; not overwritten" in err and err.count("\n") == 1
    assert (tmp_path / "valby-skole.key").read_bytes() == before


def test_a_box_s_key_is_made_on_the_box_and_only_its_request_travels(tmp_path, capsys):
    ca_dir, box = tmp_path / "ca", tmp_path / "box"
    assert haldor(capsys, "ca", "init", "--dir", str(ca_dir))[0] == 0
    code, out, _ = haldor(capsys, "ca", "request", "valby-skole", "--dir", str(box))
    assert code == 0 and "haldor ca client-cert valby-skole --csr valby-skole.csr" in out
    assert mode(box / "valby-skole.key") == 0o600
    code, out, _ = haldor(capsys, "ca", "client-cert", "valby-skole", "--csr", str(box / "valby-skole.csr"), "--dir", str(ca_dir))
    assert code == 0 and not (ca_dir / "valby-skole.key").exists()
    key = serialization.load_pem_private_key((box / "valby-skole.key").read_bytes(), None)
    assert cert(ca_dir / "valby-skole.pem").public_key() == key.public_key()
    # a request for another login is not signed under this one; nor is a file that is no request
    code, _, err = haldor(capsys, "ca", "client-cert", "other-site", "--csr", str(box / "valby-skole.csr"), "--dir", str(ca_dir))
    assert code == 2 and "made for valby-skole, not other-site" in err and not (ca_dir / "other-site.pem").exists()
    code, _, err = haldor(capsys, "ca", "client-cert", "x", "--csr", str(box / "valby-skole.key"), "--dir", str(ca_dir))
    assert code == 2 and "not a PEM certificate request" in err


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["broker-cert", "bad host!"], 2, "HOST: 'bad host!' is neither a DNS name nor an IP address"),
        (["broker-cert", "broker.example.org", "--ip", "broker"], 2, "--ip: 'broker' is not an IP address"),
        (["client-cert", "valby/skole"], 2, "NAME: 'valby/skole' is not an MQTT user name"),
        (["init", "--dir", "other", "--name", " Valby"], 2, "--name: ' Valby': at most 54 characters, no spaces around"),
        (["client-cert", "valby-skole", "--dir", "nowhere"], 1, "nowhere/ca.key: no CA here (haldor ca init --dir nowhere"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, code, words):
    monkeypatch.chdir(tmp_path)
    assert haldor(capsys, "ca", "init")[0] == 0
    got, out, err = haldor(capsys, "ca", *argv)
    assert (got, out) == (code, "") and words in err and err.count("\n") == 1


# --- a real Mosquitto on what the commands made ---------------------------------------


def _shipped_tls_listener(port: int, printed: str, pki: Path) -> str:
    """The shipped 8883 listener on ``port``, with the cafile/certfile/keyfile lines
    `haldor ca broker-cert` printed (their files taken from ``pki``) and the shipped
    client-certificate lines uncommented."""
    _, listeners = shipped_conf()
    lines = [f"listener {port} 127.0.0.1"]
    lines += [f"{k} {v}" for k, v in listeners[0] if k not in MACHINE_SPECIFIC or k == "tls_version"]
    for line in printed.splitlines():
        option, _, path = line.partition(" ")
        if option in ("cafile", "certfile", "keyfile"):
            lines.append(f"{option} {pki / Path(path).name}")
    assert [line.split()[0] for line in lines[-3:]] == ["cafile", "certfile", "keyfile"], printed
    shipped = CONF.read_text()
    for option in ("require_certificate true", "use_identity_as_username true"):
        assert f"\n#{option}\n" in shipped, option
        lines.append(option)
    return "\n".join(lines) + "\n"


@pytest.fixture
def pki(tmp_path, capsys):
    d = tmp_path / "pki"
    assert haldor(capsys, "ca", "init", "--dir", str(d), "--name", "Valby Kommune")[0] == 0
    code, printed, _ = haldor(capsys, "ca", "broker-cert", "localhost", "--ip", "127.0.0.1", "--dir", str(d))
    assert code == 0
    (tmp_path / "broker-lines.txt").write_text(printed)  # what the broker's administrator is told
    for name in ("valby-skole", "booking-system"):
        code, printed, _ = haldor(capsys, "ca", "client-cert", name, "--dir", str(d))
        assert code == 0
        (tmp_path / f"{name}-lines.txt").write_text(printed)  # what is put in its [mqtt]
    return d


@pytest.fixture
def cert_broker(tmp_path, pki):
    """Mosquitto with the shipped acl and options, its TLS listener on the CA's files."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "fleet", "f-pass"], check=True)
    general, _ = shipped_conf()
    tls_port = free_port()
    broker = Broker(
        tmp_path / "broker", audit=False, extra=_shipped_tls_listener(tls_port, (tmp_path / "broker-lines.txt").read_text(), pki)
    )
    text = broker.config().replace("allow_anonymous true\n", "").replace("max_queued_messages 0\n", "")
    above = [f"password_file {passwd}", f"acl_file {ROOT / 'config/mosquitto/haldor.acl'}"]
    above += [f"{k} {v}" for k, v in general if k not in MACHINE_SPECIFIC]
    first = f"listener {broker.port} 127.0.0.1\n"
    broker.config_text = text.replace(first, "\n".join([*above, first]))
    broker.config = lambda: broker.config_text  # type: ignore[method-assign]
    broker.tls_port = tls_port
    broker.start()
    yield broker
    broker.stop()


def _client(pki: Path, name: str, port: int, host: str = "localhost") -> tuple[mqtt.Client, bool]:
    """Connect as the [mqtt] keys `haldor ca client-cert` printed would; whether the broker took it."""
    opts = BrokerOptions(
        host, port, tls=True, ca_file=str(pki / "ca.pem"), cert_file=str(pki / f"{name}.pem"), key_file=str(pki / f"{name}.key")
    )
    client = opts.client(name)
    outcome: queue.Queue[bool] = queue.Queue()
    client.on_connect = lambda c, u, flags, rc, props: outcome.put(not rc.is_failure)
    client.on_disconnect = lambda c, u, flags, rc, props: outcome.put(False)
    client.on_connect_fail = lambda c, u: outcome.put(False)
    try:
        client.connect(host, port)
    except (OSError, ssl.SSLError):
        return client, False
    client.loop_start()
    return client, outcome.get(timeout=10)


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _publish(client: mqtt.Client, topic: str, payload: bytes = b"{}") -> bool:
    """Publish at QoS 1; whether the broker took it (its PUBACK's reason)."""
    acks: queue.Queue[bool] = queue.Queue()
    client.on_publish = lambda c, u, mid, code, props: acks.put(not code.is_failure)
    client.publish(topic, payload, qos=1)
    return acks.get(timeout=5)


def test_a_client_certificate_logs_in_as_its_cn(cert_broker, pki):
    """The shipped acl lets valby-skole write only its own reports, and booking-system
    read them: what is refused and what arrives show the broker took each CN as the user."""
    booking, booking_ok = _client(pki, "booking-system", cert_broker.tls_port)
    try:
        assert booking_ok
        got: list[str] = []
        subscribed: queue.Queue[list] = queue.Queue()
        booking.on_message = lambda c, u, msg: got.append(msg.topic)
        booking.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(codes)
        booking.subscribe("haldor/v1/+/status", qos=1)
        assert not subscribed.get(timeout=5)[0].is_failure
        for topic, taken in (("haldor/v1/other-site/status", False), ("haldor/v1/valby-skole/status", True)):
            box, box_ok = _client(pki, "valby-skole", cert_broker.tls_port)  # Mosquitto drops a refused publisher
            try:
                assert box_ok and _publish(box, topic) is taken, topic
            finally:
                _close(box)
        wait_for(lambda: got, what="the box's status at the booking system")
        assert got == ["haldor/v1/valby-skole/status"]
        assert not _publish(booking, "haldor/v1/valby-skole/status")  # and booking-system may not write it
    finally:
        _close(booking)


def test_a_certificate_of_another_ca_or_none_is_refused(cert_broker, pki, tmp_path, capsys):
    other = tmp_path / "other"
    assert haldor(capsys, "ca", "init", "--dir", str(other), "--name", "Valby Kommune")[0] == 0  # same name, other key
    assert haldor(capsys, "ca", "client-cert", "valby-skole", "--dir", str(other))[0] == 0
    (other / "ca.pem").write_bytes((pki / "ca.pem").read_bytes())  # it trusts the broker: only its own cert is foreign
    client, ok = _client(other, "valby-skole", cert_broker.tls_port)
    _close(client)
    assert not ok
    with socket.create_connection(("127.0.0.1", cert_broker.tls_port)) as raw:  # no certificate at all
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"\x10\x00")  # TLS 1.3: the refusal comes with the first read
                assert tls.recv(1) == b""
    client, ok = _client(pki, "valby-skole", cert_broker.tls_port)
    _close(client)
    assert ok  # the broker itself is fine


@pytest.mark.parametrize("name, ok", [("localhost", True), ("127.0.0.1", True), ("broker.example.org", False)])
def test_the_broker_certificate_names_are_checked_in_a_handshake(cert_broker, pki, name, ok):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(pki / "valby-skole.pem", pki / "valby-skole.key")
    with socket.create_connection(("127.0.0.1", cert_broker.tls_port)) as raw:
        if ok:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        else:
            with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
                context.wrap_socket(raw, server_hostname=name)


def test_a_box_runs_on_the_mqtt_keys_client_cert_printed(tmp_path, cert_broker, pki):
    """The agent itself, with no user name or password: its schedule comes from the booking
    system and its status reaches it, each known to the shipped acl by its certificate."""
    keys = [line for line in (tmp_path / f"{SITE}-lines.txt").read_text().splitlines() if line.split(" = ")[0] in MQTT_KEYS]
    assert [line.split(" = ")[0] for line in keys] == list(MQTT_KEYS)
    mqtt_section = f"port = {cert_broker.tls_port}\n" + "\n".join(keys).replace("/etc/haldor/", f"{pki}/") + "\n"
    signing = Ed25519PrivateKey.generate()
    site = sync_site(tmp_path, cert_broker, public_key(signing), mqtt=mqtt_section)
    booking, ok = _client(pki, "booking-system", cert_broker.tls_port, host="127.0.0.1")
    try:
        assert ok
        statuses: list[bytes] = []
        booking.on_message = lambda c, u, msg: statuses.append(msg.payload)
        booking.subscribe(f"haldor/v1/{SITE}/status", qos=1)
        site.start()
        wait_for(lambda: any(b'"online": true' in p or b'"online":true' in p for p in statuses), what="the box's status")
        assert _publish(booking, f"haldor/v1/{SITE}/schedule", json.dumps(seal(snapshot(42), "bookings-2026", signing)).encode())
        wait_for(lambda: site.version() == 42, what="the schedule from the booking system applied")
    finally:
        site.close()
        _close(booking)
