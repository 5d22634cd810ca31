"""Enrolment and revocation (issue 27): the broker identity of a box made and ended in
Mosquitto's dynamic security plugin, each step confirmed by the broker, nothing left
half-made; against a real Mosquitto with the plugin."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from haldor.errors import HaldorError
from haldor.fleet.dynsec import SITE_TOPICS, Dynsec, DynsecError, role_name
from haldor.integrator.broker_client import acked_publish, connect
from haldor.mqtt import BrokerOptions

from .helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "haldor/v1"


def test_the_role_of_a_site_allows_what_haldor_acl_allows_a_box():
    patterns = []
    for line in (ROOT / "config/mosquitto/haldor.acl").read_text().splitlines():
        if line.startswith("pattern "):
            _, access, topic = line.split()
            patterns.append((access, topic.removeprefix(f"{PREFIX}/%u/")))
    assert patterns == list(SITE_TOPICS)


def box_options(broker, site: str, password: str, tmp_path: Path) -> BrokerOptions:
    secret = tmp_path / f"{site}.password"
    secret.write_text(password)
    return BrokerOptions(host="127.0.0.1", port=broker.port, username=site, password_file=str(secret))


def published(opts: BrokerOptions, topic: str) -> bool:
    """Whether the broker took a publication on ``topic`` from this login (Mosquitto 2.0.11
    answers a refused one with "not authorized" or by dropping the connection)."""
    client = opts.client("probe")
    connect(client, opts)
    try:
        acked_publish(client, opts, topic, b"", timeout=5)
        return True
    except HaldorError as exc:
        assert "refused to publish" in str(exc) or "not connected" in str(exc) or "no acknowledgement" in str(exc), exc
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_site_login_is_made_confirmed_confined_and_ended(dynsec_broker, tmp_path):
    dynsec = Dynsec(dynsec_broker.admin_options())
    dynsec.create_site_login("valby-skole", "hemmeligt-1")
    opts = box_options(dynsec_broker, "valby-skole", "hemmeligt-1", tmp_path)
    client = opts.client("box", client_id="haldor-valby-skole")
    dropped = threading.Event()
    client.on_disconnect = lambda c, u, flags, reason, p: dropped.set()
    connect(client, opts)
    acked_publish(client, opts, f"{PREFIX}/valby-skole/status", b"")
    for topic in (f"{PREFIX}/other-skole/status", f"{PREFIX}/valby-skole/schedule"):
        assert not published(opts, topic)
    dynsec.delete_site_login("valby-skole")
    wait_for(dropped.is_set, timeout=5, what="the box's connection dropped")
    client.loop_stop()
    again = opts.client("box-again")
    with pytest.raises(HaldorError, match="refused"):
        connect(again, opts)
    assert dynsec.run([{"command": "getRole", "rolename": role_name("valby-skole")}])[0].error


def test_a_refused_login_leaves_nothing_behind(dynsec_broker):
    dynsec = Dynsec(dynsec_broker.admin_options())
    assert dynsec.run([{"command": "createClient", "username": "valby-skole", "password": "x"}])[0].error is None
    with pytest.raises(DynsecError, match="createClient valby-skole: Client already exists"):
        dynsec.create_site_login("valby-skole", "hemmeligt-1")
    assert dynsec.run([{"command": "getRole", "rolename": role_name("valby-skole")}])[0].error  # the role made first is gone


def test_an_admin_the_broker_does_not_know_is_said_in_one_line(dynsec_broker, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    opts = dynsec_broker.admin_options()
    opts.password_file = str(wrong)
    with pytest.raises(DynsecError, match=r"^dynamic security: broker 127.0.0.1:\d+ refused: Not authorized$"):
        Dynsec(opts).create_site_login("valby-skole", "x")
