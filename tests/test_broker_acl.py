"""The shipped broker ACL (config/mosquitto/haldor.acl) against a real Mosquitto: one
site's box can neither read another site's credentials nor publish schedules."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from haldor.access.sync import make_client

from .broker import Broker
from .helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
USERS = {"valby-skole": "a-pass", "other-site": "b-pass", "booking-system": "bs-pass", "fleet": "f-pass"}


@pytest.fixture
def acl_broker(tmp_path):
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), user, password], check=True)
    broker = Broker(tmp_path / "broker", extra=f"password_file {passwd}\nacl_file {ROOT / 'config/mosquitto/haldor.acl'}\n")
    broker.config_text = broker.config().replace("allow_anonymous true", "allow_anonymous false")
    broker.config = lambda: broker.config_text  # type: ignore[method-assign]
    broker.start()
    yield broker
    broker.stop()


class Client:
    def __init__(self, port: int, user: str) -> None:
        self.c = make_client(f"{user}-test")
        self.c.manual_ack_set(False)
        self.c.username_pw_set(user, USERS[user])
        self.subacks: dict[int, list] = {}
        self.pubacks: dict[int, object] = {}
        self.got: list[str] = []
        self._lock = threading.Lock()
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.__setitem__(mid, codes)
        self.c.on_publish = lambda c, u, mid, code, props: self.pubacks.__setitem__(mid, code)
        self.c.on_message = lambda c, u, msg: self.got.append(msg.topic)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def subscribe(self, topic: str):
        _, mid = self.c.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), what=f"suback {topic}")[0]

    def publish(self, topic: str, retain: bool = False):
        info = self.c.publish(topic, b"{}", qos=1, retain=retain)
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
    finally:
        box.close()
        booking.close()
    for topic in ("valby-skole/schedule", "valby-skole/schedule/delta", "valby-skole/cmd", "other-site/events",
                  "other-site/status"):
        assert _refused(port, "valby-skole", f"haldor/v1/{topic}"), topic


def test_the_fleet_monitor_only_listens(acl_broker):
    port = acl_broker.port
    fleet, booking, box = Client(port, "fleet"), Client(port, "booking-system"), Client(port, "valby-skole")
    try:
        fleet.subscribe("haldor/v1/#")
        booking.publish("haldor/v1/valby-skole/schedule", retain=True)
        box.publish("haldor/v1/valby-skole/events")
        wait_for(lambda: "haldor/v1/valby-skole/events" in fleet.got, what="events reach the fleet")
        assert fleet.got == ["haldor/v1/valby-skole/events"]  # never a schedule
    finally:
        for c in (fleet, booking, box):
            c.close()
    assert _refused(port, "fleet", "haldor/v1/valby-skole/cmd")
    assert _refused(port, "fleet", "haldor/v1/valby-skole/schedule")
