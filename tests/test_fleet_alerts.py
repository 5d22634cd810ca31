"""The fleet's alerts: the rules against plain rows, and delivery for real: a local
HTTP receiver, a local SMTP server with STARTTLS (aiosmtpd), a receiver that is down
and comes back; a forced door arriving over a real Mosquitto."""

from __future__ import annotations

import email
import email.policy
import json
import queue
import ssl
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from haldor import schemas
from haldor.errors import ConfigError
from haldor.fleet import settings as fleet_settings
from haldor.fleet.alerting import AlertWorker
from haldor.fleet.alerts import DoorState, conditions
from haldor.fleet.ingest import FleetConsumer
from haldor.fleet.serving import FleetServer
from haldor.fleet.settings import AlertRules
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.mqtt import BrokerOptions

from .broker import Broker, free_port
from .certs import make_pki
from .helpers import wait_for
from .test_fleet import SimulatedSite, access

NOW = 1_800_000_000.0


def test_the_rules_against_plain_rows():
    rules = AlertRules(door_held_open_min=10, offline_min=15, outbox_backlog=100)
    sites = [
        {"site": "a", "online": 0, "since": NOW - 20 * 60, "seen_at": NOW - 20 * 60},  # offline 20 min
        {"site": "b", "online": 0, "since": NOW - 5 * 60, "seen_at": NOW - 5 * 60},  # only 5
        {
            "site": "c",
            "online": 1,
            "since": 0.0,
            "seen_at": NOW,
            "outbox_pending": 150,
            "readers": json.dumps({"main-in": {"ok": False, "fault": "no answer"}}),
            "storage": json.dumps({"ok": False, "fault": "disk full"}),
        },
    ]
    doors = [
        DoorState("c", "main", forced_at=NOW - 60, closed_at=NOW - 3600),  # forced, not closed since
        DoorState("c", "gym", forced_at=NOW - 600, closed_at=NOW - 500),  # forced and closed again
        DoorState("c", "back", held_at=NOW - 500, opened_at=NOW - 11 * 60, closed_at=NOW - 3600),  # open 11 min
        DoorState("c", "side", held_at=NOW - 100, opened_at=NOW - 160),  # open under 3 min
    ]
    found = conditions(sites, doors, NOW, rules)
    assert sorted(found) == [
        "door.forced:c:main",
        "door.held_open:c:back",
        "offline:a",
        "outbox.backlog:c",
        "reader.fault:c:main-in",
        "storage.fault:c",
    ]
    assert found["reader.fault:c:main-in"].detail == "no answer" and found["door.held_open:c:back"].since == NOW - 11 * 60
    off = AlertRules(
        door_forced=False, door_held_open_min=0, reader_fault=False, storage_fault=False, offline_min=0, outbox_backlog=0
    )
    assert conditions(sites, doors, NOW, off) == {}


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: what it got, in order."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        self.got: queue.Queue = queue.Queue()
        self.tokens: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.tokens.append(self.headers.get("Authorization"))
                receiver.got.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def next(self, timeout: float = 10.0) -> dict:
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def smtp(tmp_path):
    """An SMTP server on loopback that insists on STARTTLS, with a certificate of a test CA."""
    from aiosmtpd.controller import Controller

    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server"], pki["server_key"])
    mails: queue.Queue = queue.Queue()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            mails.put((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace"), session.ssl is not None))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True)
    controller.start()
    controller.mails, controller.ca = mails, pki["ca"]
    yield controller
    controller.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """/metrics read with prometheus-client's own parser: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def subject(mail: str) -> str:
    return str(email.message_from_string(mail, policy=email.policy.default)["Subject"])


def fleet_toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(body)
    return path


def test_a_forced_door_reaches_the_webhook_and_the_mailbox_then_resolved(tmp_path, smtp):
    """Over a real broker: the box reports a forced door; within seconds the webhook and
    the e-mail say so, once; the door closes, and both say resolved."""
    broker = Broker(tmp_path / "broker").start()
    receiver = Receiver()
    db = str(tmp_path / "fleet.db")
    (tmp_path / "hook.token").write_text("s3cret-hook\n")
    settings = fleet_settings.load(
        fleet_toml(
            tmp_path,
            f"""
[alerts]
every_s = 1

[[webhooks]]
url = "{receiver.url}"
token_file = "hook.token"

[email]
host = "127.0.0.1"
port = {smtp.port}
ca_file = "{smtp.ca}"
sender = "haldor@kommune.example"
to = ["vagt@kommune.example"]
""",
        )
    )
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db))
    worker = AlertWorker(settings, FleetStore(db))
    web = FleetWeb(FleetStore(db))
    web.consumer, web.alerting = consumer, worker
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    consumer.start()
    worker.start()
    site = SimulatedSite(broker.port, "valby")
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        site.status(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
        at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        site.send("events", access("valby", "door.forced", at, 1, reader=None))
        alert = receiver.next()
        assert schemas.errors("alert", alert) == []
        assert (alert["state"], alert["kind"], alert["site_name"], alert["subject_name"]) == (
            "open",
            "door.forced",
            "Valby",
            "Hovedindgang",
        )
        assert alert["text"] == "Valby: Hovedindgang: døren blev åbnet uden tilladelse"
        metrics = scrape(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        assert metrics[("haldor_fleet_open_alarms", (("kind", "door.forced"),))] == 1
        assert metrics[("haldor_fleet_sites", (("state", "online"),))] == 1
        assert metrics[("haldor_fleet_events_ingested_total", (("type", "door.forced"),))] == 1
        assert metrics[("haldor_site_online", (("site", "valby"),))] == 1
        assert ("haldor_fleet_ingest_lag_seconds", ()) in metrics
        rcpt, mail, encrypted = smtp.mails.get(timeout=10)
        assert rcpt == ["vagt@kommune.example"] and encrypted
        assert subject(mail) == "[Haldor] ALARM: Valby: Hovedindgang: døren blev åbnet uden tilladelse"
        site.send(
            "events", access("valby", "door.closed", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), 2, reader=None)
        )
        resolved = receiver.next()
        assert schemas.errors("alert", resolved) == []
        assert (resolved["state"], resolved["incident"]) == ("resolved", alert["incident"])
        assert subject(smtp.mails.get(timeout=10)[1]).startswith("[Haldor] Løst: Valby: Hovedindgang")
        assert receiver.got.empty()  # once each
        assert receiver.tokens == ["Bearer s3cret-hook"] * 2
        delivered = wait_for(
            lambda: (
                scrape(f"http://127.0.0.1:{server.server_address[1]}/metrics").get(
                    ("haldor_fleet_alert_deliveries_total", (("channel", "email"), ("outcome", "sent")))
                )
                == 2
            ),
            what="two e-mails counted",
        )
        assert delivered
    finally:
        server.shutdown()
        site.client.disconnect()
        worker.stop()
        consumer.stop()
        receiver.close()
        broker.stop()


def test_a_receiver_that_is_down_gets_the_alert_once_it_is_back(tmp_path):
    port = free_port()
    settings = fleet_settings.parse({"webhooks": [{"url": f"http://127.0.0.1:{port}/hook"}]}, str(tmp_path / "fleet.toml"))
    store = FleetStore(tmp_path / "fleet.db")
    store.store([("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00"}, NOW)], [])
    store.add_event(access("valby", "door.forced", "2026-11-25T23:00:00+01:00", 1, reader=None))
    worker = AlertWorker(settings, store)
    worker.book.first_retry_s = 1.0
    forced_at = store.door_states(0)[0].forced_at
    worker.run_once(forced_at + 1)  # nobody listens
    waiting, error = worker.book.undelivered()
    assert waiting == 1 and "ConnectError" in error
    worker.run_once(forced_at + 1.5)  # not due again yet
    assert worker.deliveries[("webhook", "failed")] == 1
    receiver = Receiver(port)
    try:
        worker.run_once(forced_at + 3)
        assert receiver.next(timeout=1)["state"] == "open"
        assert worker.book.undelivered() == (0, None)
        worker.run_once(forced_at + 60)  # nothing new: nothing sent again
        assert receiver.got.empty()
        restarted = AlertWorker(settings, FleetStore(tmp_path / "fleet.db"))  # a restart sends nothing twice
        restarted.run_once(forced_at + 120)
        assert receiver.got.empty()
    finally:
        receiver.close()
        worker.stop()


def test_guessing_at_a_reader_is_an_alarm_and_one_alert_until_an_hour_after_the_last_lockout(tmp_path):
    receiver = Receiver()
    settings = fleet_settings.parse(
        {"webhooks": [{"url": receiver.url}], "alerts": {"access_guessing_min": 60}}, str(tmp_path / "fleet.toml")
    )
    store = FleetStore(tmp_path / "fleet.db")
    store.store([("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00", "names": {"site": "Valby"}}, NOW)], [])
    guess = {"reason": "wrong_pin", "kind": "pin", "attempts": 5, "window_s": 600, "lockout_s": 60, "lockouts": 1}
    store.add_event(access("valby", "access.guessing", "2026-11-25T23:00:00+01:00", 1, **guess))
    store.add_event(access("valby", "access.guessing", "2026-11-25T23:02:00+01:00", 2, **{**guess, "lockouts": 2}))
    alarm = store.alarms()[0]
    assert (alarm["type"], alarm["reader"], alarm["reason"]) == ("access.guessing", "main-in", "wrong_pin")
    last = datetime.fromisoformat("2026-11-25T23:02:00+01:00").timestamp()
    worker = AlertWorker(settings, store)
    try:
        worker.run_once(last + 10)
        alert = receiver.next()
        assert schemas.errors("alert", alert) == []
        assert (alert["state"], alert["kind"], alert["subject"], alert["detail"]) == (
            "open",
            "access.guessing",
            "main-in",
            "wrong_pin",
        )
        assert alert["text"] == "Valby: main-in: nogen prøver mange forkerte PIN-koder; tastaturet er spærret en tid"
        worker.run_once(last + 59 * 60)
        assert receiver.got.empty()  # two lockouts, one incident
        worker.run_once(last + 61 * 60)
        assert receiver.next()["state"] == "resolved"
    finally:
        receiver.close()
        worker.stop()


def test_a_fleet_that_lost_its_broker_says_so_and_calls_no_box_offline(tmp_path, caplog):
    """Issue 24: with the broker gone the page called every box offline and the log said nothing."""
    broker = Broker(tmp_path / "broker").start()
    receiver = Receiver()
    db = str(tmp_path / "fleet.db")
    settings = fleet_settings.parse({"webhooks": [{"url": receiver.url}]}, str(tmp_path / "fleet.toml"))
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db))
    worker = AlertWorker(settings, FleetStore(db))
    worker.blind, worker.unsure = (lambda: consumer.blind_since), consumer.unsure_before
    web = FleetWeb(FleetStore(db), live_poll_s=0.1)
    web.consumer, web.alerting = consumer, worker
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    consumer.start()
    site = SimulatedSite(broker.port, "valby")
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        assert consumer.blind_since is None and "Ingen forbindelse" not in httpx.get(url).text
        site.status(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
        wait_for(lambda: consumer.store.sites(), what="the site's status stored")
        broker.stop()
        lost = wait_for(lambda: consumer.blind_since, what="the fleet knows it is blind")
        assert "lost the broker" in caplog.text
        page = httpx.get(url).text
        assert "Ingen forbindelse til brokeren siden" in page and "Ukendt" in page
        metrics = scrape(url + "metrics")
        assert metrics[("haldor_fleet_broker_connected", ())] == 0
        assert metrics[("haldor_fleet_sites", (("state", "unknown"),))] == 1
        assert metrics[("haldor_fleet_sites", (("state", "offline"),))] == 0
        worker.run_once(lost + 20 * 60)  # far past offline_min: still nobody is called offline
        alert = receiver.next()
        assert (alert["kind"], alert["site"], alert["state"]) == ("broker", None, "open")
        assert schemas.errors("alert", alert) == []
        assert receiver.got.empty()  # the broker's alert alone
        broker.start()
        wait_for(lambda: consumer.blind_since is None, timeout=15, what="the broker heard again")
        assert "heard again" in caplog.text
        worker.run_once(time.time())
        assert (receiver.next()["kind"], receiver.got.empty()) == ("broker", True)  # resolved, and nothing else
    finally:
        site.client.disconnect()
        site.client.loop_stop()
        server.shutdown()
        worker.stop()
        consumer.stop()
        receiver.close()
        broker.stop()


def test_a_fleet_that_hears_the_broker_again_calls_no_box_offline_until_the_boxes_had_time_to_come_back(tmp_path):
    """Review of issue 24: a broker that lost its retained statuses gave 20 offline alerts
    (and 20 resolved) in the second after the fleet reconnected."""
    broker = Broker(tmp_path / "broker").start()
    receiver = Receiver()
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    long_ago = time.time() - 20 * 60
    for n in range(3):  # heard last before the outage
        store.set_status(f"site-{n}", {"online": True, "at": None}, long_ago)
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db))
    worker = AlertWorker(fleet_settings.parse({"webhooks": [{"url": receiver.url}]}, str(tmp_path / "f.toml")), FleetStore(db))
    worker.blind, worker.unsure = (lambda: consumer.blind_since), consumer.unsure_before
    consumer.start()
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        worker.run_once(time.time())
        assert receiver.got.empty()  # the boxes have their minute to reconnect
        worker.run_once(time.time() + 100)  # still not heard: now they are offline
        alerts = [receiver.next() for _ in range(3)]
        assert sorted((a["kind"], a["site"]) for a in alerts) == [("offline", f"site-{n}") for n in range(3)]
    finally:
        worker.stop()
        consumer.stop()
        receiver.close()
        broker.stop()


def test_a_second_fleet_with_the_same_client_id_is_named_in_the_log(tmp_path, caplog):
    broker = Broker(tmp_path / "broker").start()
    one = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(tmp_path / "fleet.db"))
    two = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(tmp_path / "fleet.db"))
    try:
        one.start()
        wait_for(one.connected.is_set, what="first fleet connected")
        two.start()
        wait_for(lambda: "took its session over" in caplog.text, what="the takeover in the log")
    finally:
        one.stop()
        two.stop()
        broker.stop()


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"alerts": {"offline_min": -1}}, "alerts.offline_min"),
        ({"alerts": {"door_forced": "yes"}}, "alerts.door_forced"),
        ({"alerts": {"sms": True}}, "alerts.sms: unknown key"),
        ({"webhooks": [{"url": "ftp://x"}]}, "webhooks[0].url"),
        ({"webhooks": [{"url": "https://x", "token_file": "/nonexistent/hook.token"}]}, "webhooks[0].token_file: cannot read"),
        ({"email": {"host": "smtp.example", "sender": "a@b", "to": "c@d"}}, "email.to"),
        ({"email": {"host": "smtp.example", "sender": "a@b", "to": ["c@d"], "username": "u"}}, "email.password_file"),
        ({"pager": {}}, "pager: unknown section"),
    ],
)
def test_a_bad_fleet_configuration_names_the_key(raw, key):
    with pytest.raises(ConfigError) as info:
        fleet_settings.parse(raw, "/etc/haldor/fleet.toml")
    assert str(info.value).startswith("/etc/haldor/fleet.toml: ") and key in str(info.value)


def test_the_sample_fleet_configuration_reads():
    root = Path(__file__).resolve().parent.parent
    settings = fleet_settings.load(root / "config" / "fleet.toml")
    assert settings.alerting and settings.alerts.offline_min == 15 and settings.email is not None


def test_haldor_fleet_stops_at_start_with_one_line_for_a_bad_fleet_configuration(tmp_path):
    import subprocess
    import sys

    bad = fleet_toml(tmp_path, '[alerts]\noffline_min = "soon"\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "haldor",
            "fleet",
            "--broker",
            "127.0.0.1:1",
            "--db",
            str(tmp_path / "f.db"),
            "--fleet-config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "alerts.offline_min: expected int" in done.stderr


def test_two_fleet_processes_with_alerts_send_each_alert_once(tmp_path):
    receiver = Receiver()
    settings = fleet_settings.parse({"webhooks": [{"url": receiver.url}]}, str(tmp_path / "fleet.toml"))
    store = FleetStore(tmp_path / "fleet.db")
    store.store([("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00"}, NOW)], [])
    store.add_event(access("valby", "door.forced", "2026-11-25T23:00:00+01:00", 1, reader=None))
    forced_at = store.door_states(0)[0].forced_at
    one, two = AlertWorker(settings, store), AlertWorker(settings, FleetStore(tmp_path / "fleet.db"))
    try:
        found = conditions(store.sites(), store.door_states(0), forced_at + 1, settings.alerts)
        one.book.update(found, one.channels, forced_at + 1)
        (due,) = one.book.due(forced_at + 1)
        assert two.book.due(forced_at + 1) == [due]  # both see it due ...
        assert one.book.claim(due, forced_at + 1) and not two.book.claim(due, forced_at + 1)  # ... one takes it
        two.run_once(forced_at + 2)
        assert receiver.got.empty()  # the other does not send it
        one.run_once(forced_at + 61)  # taken and not sent (the process died): due again after a minute
        assert receiver.next(timeout=1)["state"] == "open"
        assert receiver.got.empty()
    finally:
        receiver.close()
        one.stop()
        two.stop()


def test_door_states_read_the_movements_of_doors_with_an_alarm_only(tmp_path):
    store = FleetStore(tmp_path / "fleet.db")
    t = "2026-11-25T23:{:02d}:00+01:00"
    store.store(
        (),
        [
            access("valby", "door.opened", t.format(0), 1, reader=None, door="gym"),
            access("valby", "door.held_open", t.format(1), 2, reader=None, door="gym"),
            access("valby", "door.forced", t.format(2), 3, reader=None),
            access("valby", "door.closed", t.format(3), 4, reader=None),
            access("valby", "door.opened", t.format(4), 5, reader=None, door="side"),  # no alarm: not read
        ],
    )
    states = {d.door: d for d in store.door_states(0)}
    assert sorted(states) == ["gym", "main"]
    at = {m: datetime.fromisoformat(t.format(m)).timestamp() for m in range(5)}
    assert (states["gym"].opened_at, states["gym"].held_at, states["gym"].closed_at) == (at[0], at[1], None)
    assert (states["main"].forced_at, states["main"].closed_at) == (at[2], at[3])


def test_the_alert_schema_names_every_kind_the_rules_make():
    from haldor.fleet.alerts import KINDS

    assert schemas.load("alert")["properties"]["kind"]["enum"] == list(KINDS)
