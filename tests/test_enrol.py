"""Enrolment and revocation (issue 27): the broker identity of a box made and ended in
Mosquitto's dynamic security plugin, each step confirmed by the broker, nothing left
half-made; against a real Mosquitto with the plugin."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from haldor import config
from haldor.access.sealing import public_text
from haldor.errors import HaldorError
from haldor.fleet.commands import AuditLog
from haldor.fleet.dynsec import SITE_TOPICS, Dynsec, DynsecError, role_name
from haldor.fleet.enrolment import Enroller, Enrolment
from haldor.fleet.operators import Operators
from haldor.fleet.register import Refused, Register, normal
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.integrator.broker_client import acked_publish, connect
from haldor.mqtt import BrokerOptions
from haldor.sql import Database
from haldor.store.secret import site_key

from .broker import Watcher, free_port
from .helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "haldor/v1"
T0 = 1_800_000_000.0
PASSWORD = "korrekt hest batteri"
BOOKING_KEY = "PzRZsUWtq1YoUwkw+//zbXRk0zBlF+4OOk/RLPaPqGg="
ENROLMENT = Enrolment(
    broker_host="127.0.0.1", broker_port=1, tls=False, admin_username="admin", admin_password_file="/nonexistent",
    schedule_keys={"bookings-2026": BOOKING_KEY},
)  # fmt: skip


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


# -- the register: sites, codes, the page -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_db(request, tmp_path):
    return str(tmp_path / "fleet.db") if request.param == "sqlite" else request.getfixturevalue("postgres").database()


def test_a_code_enrols_once_within_a_day_and_is_stored_only_as_a_keyed_hash(fleet_db):
    store = FleetStore(fleet_db)
    register = Register(store.db)
    code = register.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "admin-ida", T0)
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){5}", code)
    stored = [str(v) for row in store.db.rows("SELECT * FROM enrol_codes") for v in row]
    assert not any(normal(code) in v or code in v for v in stored)
    with pytest.raises(Refused) as unknown:
        register.take("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", T0)
    assert unknown.value.reason == "code_unknown"
    with pytest.raises(Refused) as expired:
        register.take(code, T0 + 24 * 3600)
    assert expired.value.reason == "code_expired"
    assert register.take(code.lower().replace("-", " "), T0 + 60).site == "valby-skole"  # as typed
    with pytest.raises(Refused) as used:
        register.take(code, T0 + 61)
    assert used.value.reason == "code_used"
    second = register.new_code("valby-skole", T0 + 62)  # the box not enrolled yet: a second code may be made
    register.enrolled("valby-skole", "k" * 44, T0 + 63)
    with pytest.raises(Refused) as enrolled:
        register.take(second, T0 + 64)
    assert enrolled.value.reason == "site_enrolled"
    with pytest.raises(Refused, match="revoke it first"):
        register.new_code("valby-skole", T0 + 65)
    register.revoked("valby-skole", "admin-ida", T0 + 66)
    assert register.get("valby-skole").state == "revoked"
    assert register.take(register.new_code("valby-skole", T0 + 67), T0 + 68).site == "valby-skole"  # a replaced box


def test_another_fleets_code_is_unknown_here(tmp_path):
    ours, theirs = Register(FleetStore(tmp_path / "a.db").db), Register(FleetStore(tmp_path / "b.db").db)
    ours.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "ida", T0)
    code = theirs.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "ida", T0)
    with pytest.raises(Refused) as refused:
        ours.take(code, T0)
    assert refused.value.reason == "code_unknown"


@pytest.fixture
def register_page(tmp_path):
    """The fleet's page with a registrar, an operator and enrolment on (its broker never asked here)."""
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    users = Operators(Database.open(db))
    users.add("admin-ida", PASSWORD, "registrar")
    users.add("pedel-anna", PASSWORD, "operator")
    web = FleetWeb(store)
    web.auth = Sessions(users, secure=False)
    web.enroller = Enroller(web.register, Dynsec(BrokerOptions("127.0.0.1", 1)), ENROLMENT, PREFIX)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    yield web, server
    server.shutdown()


def login(url: str, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url)
    assert client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"}).status_code == 303
    page = client.get("/register")
    assert page.status_code == 200
    return client, page.text.split("name='csrf' value='")[1].split("'")[0]


def test_a_registrar_creates_a_site_on_the_page_and_sees_its_code_once(register_page):
    web, server = register_page
    client, csrf = login(server.url, "admin-ida")
    made = client.post(
        "/register",
        data={"csrf": csrf, "action": "add", "site": "valby-skole", "name": "Valby Skole", "zone": "Europe/Copenhagen",
              "profile": "main-strike-wiegand"},
    )  # fmt: skip
    assert made.status_code == 200
    code = re.search(r"<code>([A-Z2-7-]+)</code>", made.text).group(1)
    assert web.register.take(code, time.time()).site == "valby-skole"
    again = client.get("/register").text
    assert code not in again and "Valby Skole" in again and "venter på boksen" in again
    assert client.post("/register", data={"action": "add", "site": "x", "name": "x", "zone": "UTC"}).status_code == 403  # no CSRF
    refused = client.post(
        "/register", data={"csrf": csrf, "action": "add", "site": "valby-skole", "name": "Igen", "zone": "UTC",
                           "profile": "main-strike-wiegand"})  # fmt: skip
    assert refused.status_code == 400 and "already in the register" in refused.text
    rows = web.audit.rows("valby-skole")
    assert [(r["who"], r["action"]) for r in rows][::-1] == [("admin-ida", "site_added"), ("admin-ida", "refused")]


def test_an_enrolment_is_shown_done_only_once_its_box_is_heard(register_page):
    """The fleet answers a box and marks it enrolled; if that answer is lost, the box never
    comes. The register says it sent the answer until the box is heard after it."""
    web, server = register_page
    code = web.register.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "admin-ida", time.time())
    web.register.take(code, time.time())
    web.register.enrolled("valby-skole", "k" * 44, time.time())
    client, _ = login(server.url, "admin-ida")
    assert "intet hørt fra den endnu" in client.get("/register").text
    web.store.set_status("valby-skole", {"online": True, "at": datetime.now(UTC).isoformat()}, time.time() + 1)
    page = client.get("/register").text
    assert "intet hørt fra den endnu" not in page and ">tilmeldt<" in page


def test_an_operator_who_is_no_registrar_creates_no_site(register_page):
    web, server = register_page
    client, csrf = login(server.url, "pedel-anna")
    answer = client.post(
        "/register", data={"csrf": csrf, "action": "add", "site": "valby-skole", "name": "Valby Skole",
                           "zone": "Europe/Copenhagen", "profile": "main-strike-wiegand"})  # fmt: skip
    assert answer.status_code == 403 and "registrator" in answer.text
    assert web.register.sites() == []
    assert web.audit.rows("valby-skole")[0]["action"] == "refused"


# -- a box enrolled against a running fleet and broker, end to end ---------------------------


class RunningFleet:
    """``haldor fleet`` as a child process, with enrolment on against ``broker`` and a registrar."""

    def __init__(self, tmp_path: Path, broker, schedule_key: str = BOOKING_KEY, token_file: Path | None = None) -> None:
        self.db = str(tmp_path / "fleet.db")
        toml = tmp_path / "fleet.toml"
        toml.write_text(
            f"""[enrolment]
broker_host = "127.0.0.1"
broker_port = {broker.port}
tls = false
admin_username = "admin"
admin_password_file = "{broker.admin_password_file}"
schedule_keys = {{ "bookings-2026" = "{schedule_key}" }}
"""
            + (f'register_token_file = "{token_file}"\n' if token_file else "")
        )
        add = subprocess.run(
            [sys.executable, "-m", "haldor", "fleet", "--db", self.db, "user", "add", "registrar-ida", "--role", "registrar",
             "--password-stdin"],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert add.returncode == 0, add.stderr
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "fleet.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haldor", "fleet", "--broker", f"127.0.0.1:{broker.port}", "--db", self.db,
             "--listen", f"127.0.0.1:{self.port}", "--fleet-config", str(toml)],
            stderr=open(self.log, "ab"),
        )  # fmt: skip
        wait_for(self._up, timeout=30, what="the fleet's page up")
        self.client, self.csrf = login(self.url, "registrar-ida")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(self.url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def add_site(self, site: str, name: str) -> str:
        made = self.client.post(
            "/register",
            data={"csrf": self.csrf, "action": "add", "site": site, "name": name, "zone": "Europe/Copenhagen",
                  "profile": "main-strike-wiegand"},
        )  # fmt: skip
        assert made.status_code == 200, made.text
        return re.search(r"<code>([A-Z2-7-]+)</code>", made.text).group(1)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture
def running_fleet(tmp_path, dynsec_broker):
    fleet = RunningFleet(tmp_path, dynsec_broker)
    yield fleet
    fleet.stop()


def enrol(url: str, code: str, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "haldor", "enrol", url, code, "--data", str(data)], capture_output=True, text=True, timeout=120
    )


def test_a_fresh_box_enrols_in_one_step_runs_under_its_own_login_and_is_cut_off_when_revoked(
    tmp_path, dynsec_broker, running_fleet
):
    fleet = running_fleet
    code = fleet.add_site("valby-skole", "Valby Skole")
    watcher = Watcher(dynsec_broker.port)
    data = tmp_path / "box"
    started = time.monotonic()
    done = enrol(fleet.url, code, data)
    assert done.returncode == 0, done.stderr
    enrolled_after = time.monotonic() - started
    cfg = config.load(data / "haldor.toml")
    assert (cfg.site_id, cfg.site.name, cfg.mqtt.username) == ("valby-skole", "Valby Skole", "valby-skole")
    assert [d.id for d in cfg.doors] == ["main"] and [r.type for r in cfg.readers] == ["wiegand"]
    for secret in ("mqtt-password", "site.key", "device.secret", "haldor.toml"):
        assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600, secret
    pinned = Register(Database.open(fleet.db)).get("valby-skole")
    assert pinned.state == "enrolled" and pinned.sealing_key == public_text(site_key(data))
    agent = subprocess.Popen(
        [sys.executable, "-m", "haldor", "run", "--config", str(data / "haldor.toml")],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}, stderr=open(tmp_path / "agent.log", "ab"),
    )  # fmt: skip
    try:
        wait_for(lambda: any(s["online"] for s in watcher.docs("status")), timeout=30, what="the box's first status")
        code_to_status = time.monotonic() - started
        print(f"\ncode to first status: {code_to_status:.2f} s (haldor enrol {enrolled_after:.2f} s of it)")
        log = dynsec_broker.log.read_text()
        assert "as haldor-valby-skole (p5, c0, k60, u'valby-skole')" in log or "u'valby-skole'" in log

        def named() -> bool:
            sites = fleet.client.get("/api/summary").json()["sites"]
            return any(s["site"] == "valby-skole" and s["name"] == "Valby Skole" for s in sites)

        wait_for(named, timeout=30, what="the fleet showing the site by name")
        assert "tilmeldt" in fleet.client.get("/register").text
        refused_before = dynsec_broker.log.read_text().count("not authorised")
        revoked = fleet.client.post("/register", data={"csrf": fleet.csrf, "action": "revoke", "site": "valby-skole"})
        assert revoked.status_code == 303
        wait_for(lambda: "Client haldor-valby-skole been disconnected by administrative action" in dynsec_broker.log.read_text()
                 or watcher.docs("status")[-1]["online"] is False, timeout=10, what="the box cut off")  # fmt: skip
        wait_for(
            lambda: dynsec_broker.log.read_text().count("not authorised") > refused_before, timeout=30,
            what="the box's next login refused",
        )  # fmt: skip
        assert agent.poll() is None  # the doors go on, offline
        assert Register(Database.open(fleet.db)).get("valby-skole").state == "revoked"
        audit = AuditLog(Database.open(fleet.db)).rows("valby-skole")[::-1]
        assert [(r["who"], r["action"], r["ok"]) for r in audit] == [
            ("registrar-ida", "site_added", None), ("enrolment", "enrolled", None), ("registrar-ida", "revoke", 1)
        ]  # fmt: skip
    finally:
        agent.terminate()
        agent.wait(20)
        watcher.close()


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_each_refusal_is_one_line_exit_2_and_writes_no_configuration(tmp_path, running_fleet):
    fleet = running_fleet
    code = fleet.add_site("valby-skole", "Valby Skole")
    spare = fleet.client.post("/register", data={"csrf": fleet.csrf, "action": "code", "site": "valby-skole"})
    spare_code = re.search(r"<code>([A-Z2-7-]+)</code>", spare.text).group(1)
    register = Register(Database.open(fleet.db))
    register.add("hvidovre-hallen", "Hvidovre Hallen", "Europe/Copenhagen", "main-strike-wiegand", "ida", 0.0)
    stale = register.new_code("hvidovre-hallen", time.time() - 25 * 3600)

    unknown = enrol(fleet.url, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", tmp_path / "a")
    assert unknown.returncode == 2 and "ukendt kode" in one_line(unknown) and "another municipality" in one_line(unknown)
    expired = enrol(fleet.url, stale, tmp_path / "a")
    assert expired.returncode == 2 and "udløbet" in one_line(expired)
    assert not (tmp_path / "a" / "haldor.toml").exists()

    assert enrol(fleet.url, code, tmp_path / "box").returncode == 0
    written = (tmp_path / "box" / "haldor.toml").read_text()
    again = enrol(fleet.url, spare_code, tmp_path / "box")
    assert again.returncode == 2 and "datamappen er allerede tilmeldt" in one_line(again)
    assert (tmp_path / "box" / "haldor.toml").read_text() == written
    used = enrol(fleet.url, code, tmp_path / "b")
    assert used.returncode == 2 and "koden er allerede brugt" in one_line(used)
    enrolled = enrol(fleet.url, spare_code, tmp_path / "c")
    assert enrolled.returncode == 2 and "stedet har allerede en tilmeldt boks" in one_line(enrolled)
    for folder in ("b", "c"):
        assert not (tmp_path / folder / "haldor.toml").exists()


def test_a_broker_that_refuses_the_login_leaves_the_code_usable_and_nothing_made(tmp_path, dynsec_broker):
    store = FleetStore(tmp_path / "fleet.db")
    register = Register(store.db)
    code = register.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "ida", time.time())
    admin = Dynsec(dynsec_broker.admin_options())
    admin.run([{"command": "createClient", "username": "valby-skole", "password": "someone-elses"}])  # in the way
    enroller = Enroller(register, admin, ENROLMENT, PREFIX)
    (tmp_path / "box").mkdir()
    key = public_text(site_key(tmp_path / "box"))
    with pytest.raises(DynsecError, match="Client already exists"):
        enroller.enrol({"code": code, "sealing_key": key}, time.time())
    assert register.get("valby-skole").state == "waiting"
    assert admin.run([{"command": "getRole", "rolename": role_name("valby-skole")}])[0].error  # undone
    admin.run([{"command": "deleteClient", "username": "valby-skole"}])
    assert enroller.enrol({"code": code, "sealing_key": key}, time.time())["site"]["id"] == "valby-skole"  # the code again


def test_the_bridge_seals_to_the_key_pinned_at_enrolment_and_sends_a_revoked_site_nothing(tmp_path, dynsec_broker):
    from .test_bridge import Municipality

    (tmp_path / "town").mkdir()
    town = Municipality(tmp_path / "town", dynsec_broker.port)
    token = tmp_path / "register.token"
    token.write_text("bridge-" + "0123456789abcdef" * 2 + "\n")
    fleet = RunningFleet(tmp_path, dynsec_broker, schedule_key=town.public, token_file=token)
    assert httpx.get(fleet.url + "/register.json").status_code == 401
    town.config.write_text(
        town.config.read_text().replace('id = "valby-skole"\nplain = true\n', 'id = "valby-skole"\n', 1)
        + f'[register]\nurl = "{fleet.url}/register.json"\ntoken_file = "{token}"\n'
    )
    watcher = Watcher(dynsec_broker.port)
    agent = None
    try:
        unenrolled = town.run("--once")
        assert unenrolled.returncode == 1 and "valby-skole: not published: [[sites]] public_key is empty" in unenrolled.stderr
        assert enrol(fleet.url, fleet.add_site("valby-skole", "Valby Skole"), tmp_path / "box").returncode == 0
        agent = subprocess.Popen(
            [sys.executable, "-m", "haldor", "run", "--config", str(tmp_path / "box" / "haldor.toml")],
            env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}, stderr=open(tmp_path / "agent.log", "ab"),
        )  # fmt: skip
        wait_for(lambda: any(s["online"] for s in watcher.docs("status")), timeout=30, what="the box online")
        served = town.run("--once")
        assert served.returncode == 0, served.stdout + served.stderr
        assert "valby-skole: haldor.schedule/1" in served.stdout
        wait_for(lambda: watcher.events("sync.applied"), timeout=30, what="the box applying the sealed schedule")
        revoked = fleet.client.post("/register", data={"csrf": fleet.csrf, "action": "revoke", "site": "valby-skole"})
        assert revoked.status_code == 303
        town.write_feed(hours=1)  # something changed for the site
        after = town.run("--once")
        assert after.returncode == 1
        assert "valby-skole: not published: its box is revoked in the fleet's register" in after.stderr
        assert "valby-skole: haldor." not in after.stdout
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(20)
        watcher.close()
        fleet.stop()


def test_a_bad_enrolment_or_register_section_names_its_key(tmp_path):
    from haldor.bridge import settings as bridge_settings
    from haldor.errors import ConfigError
    from haldor.fleet import settings as fleet_settings

    password = tmp_path / "admin.password"
    password.write_text("x\n")
    good = (
        f'[enrolment]\nbroker_host = "broker.example"\nadmin_username = "admin"\nadmin_password_file = "{password}"\n'
        f'schedule_keys = {{ "bookings-2026" = "{BOOKING_KEY}" }}\n'
    )
    assert fleet_settings.parse(tomllib.loads(good), "fleet.toml").enrolment.broker_host == "broker.example"
    for text, key in (
        (good.replace('broker_host = "broker.example"', ""), "enrolment.broker_host"),
        (good.replace(f'"{BOOKING_KEY}"', '"c2hvcnQ="'), "enrolment.schedule_keys.bookings-2026"),
        (good.replace(str(password), str(tmp_path / "missing")), "enrolment.admin_password_file"),
        (good + 'register_token_file = "nowhere"\n', "enrolment.register_token_file"),
    ):
        with pytest.raises(ConfigError, match=rf"^fleet.toml: {re.escape(key)}"):
            fleet_settings.parse(tomllib.loads(text), "fleet.toml")
    with pytest.raises(ConfigError, match=r"register\.url"):
        bridge_settings._register(toml_checker(tmp_path), bridge_settings._RegisterTable(url="ftp://x"))


def toml_checker(tmp_path: Path):
    from haldor import toml_file

    return toml_file.Checker(str(tmp_path / "bridge.toml"), toml_file.TYPE_NAMES)


def test_a_revocation_the_broker_did_not_confirm_is_said_in_words_and_changes_nothing(register_page):
    web, server = register_page  # its broker cannot be reached
    web.register.add("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "admin-ida", time.time())
    web.register.enrolled("valby-skole", "k" * 44, time.time())
    client, csrf = login(server.url, "admin-ida")
    assert "data-ask=" in client.get("/register").text  # asked twice in the browser
    answer = client.post("/register", data={"csrf": csrf, "action": "revoke", "site": "valby-skole"})
    assert answer.status_code == 502 and "Tilbagekaldelse mislykkedes: dynamic security: broker 127.0.0.1:1" in answer.text
    assert web.register.get("valby-skole").state == "enrolled"
    row = web.audit.rows("valby-skole")[0]
    assert (row["action"], row["ok"]) == ("revoke", 0) and "dynamic security" in row["error"]


def test_the_code_travels_only_over_https_beyond_loopback(tmp_path):
    refused = enrol("http://fleet.kommune.example", "AAAA", tmp_path / "box")
    assert refused.returncode == 2 and "https only" in one_line(refused)
    assert not (tmp_path / "box").exists()
