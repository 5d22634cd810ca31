"""Enrolment tried as an attacker would: guessing codes, racing a code from two boxes on
PostgreSQL, a revoked box coming back with a spare code of its own time, and bodies that
are huge or not JSON."""

from __future__ import annotations

import base64
import threading
import tomllib

import httpx
import pytest

from haldor.access import sealing
from haldor.agent.enrol import configuration
from haldor.fleet.login_limits import SOURCE_FAILURES
from haldor.fleet.register import Refused, Register
from haldor.fleet.store import FleetStore

from .helpers import wait_for
from .test_enrol import T0, login, register_page  # noqa: F401 (a fixture)

KEY = base64.b64encode(bytes(range(32))).decode()
SITE = ("valby-skole", "Valby Skole", "Europe/Copenhagen", "main-strike-wiegand", "admin-ida")


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_db(request, tmp_path):
    return str(tmp_path / "fleet.db") if request.param == "sqlite" else request.getfixturevalue("postgres").database()


def test_a_revoked_box_does_not_come_back_with_a_spare_code_of_its_time(fleet_db):
    register = Register(FleetStore(fleet_db).db)
    code = register.add(*SITE, T0)
    spare = register.new_code("valby-skole", T0 + 1)  # made while the box was not enrolled yet
    assert register.take(code, T0 + 2).site == "valby-skole"
    register.enrolled("valby-skole", KEY, T0 + 3)
    register.revoked("valby-skole", "admin-ida", T0 + 4)
    with pytest.raises(Refused) as void:
        register.take(spare, T0 + 5)
    assert void.value.reason == "code_void"
    assert register.take(register.new_code("valby-skole", T0 + 6), T0 + 7).site == "valby-skole"  # a code made since


def test_two_boxes_racing_one_code_on_postgresql_do_not_both_win(postgres):
    import psycopg

    url = postgres.database()
    register = Register(FleetStore(url).db)
    code = register.add(*SITE, T0)
    other = psycopg.connect(url)  # the other box's transaction: it took the code and has not committed yet
    other.execute("UPDATE enrol_codes SET used_at = %s WHERE hash = %s", [T0 + 1, register._hash(code)])
    outcome: list[object] = []

    def take() -> None:
        try:
            outcome.append(register.take(code, T0 + 1))
        except Refused as exc:
            outcome.append(exc.reason)

    racer = threading.Thread(target=take)
    racer.start()
    watch = psycopg.connect(url, autocommit=True)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    wait_for(lambda: watch.execute(waiting).fetchone()[0] == 1, timeout=20, what="the second take waiting on the first")
    other.commit()
    racer.join(20)
    assert outcome == ["code_used"]
    other.close()
    watch.close()


def post(url: str, body: dict | bytes, source: str) -> httpx.Response:
    headers = {"X-Forwarded-For": source}
    if isinstance(body, bytes):
        return httpx.post(url + "/enrol", content=body, headers=headers, timeout=30)
    return httpx.post(url + "/enrol", json=body, headers=headers, timeout=30)


def test_guessing_codes_is_refused_for_a_while_and_only_from_that_source(register_page):  # noqa: F811
    web, server = register_page
    url = server.url
    code = web.register.add(*SITE, web.clock())
    for n in range(SOURCE_FAILURES):
        wrong = post(url, {"code": f"AAAA-BBBB-CCCC-DDDD-EEEE-{n:04d}", "sealing_key": KEY}, "203.0.113.9")
        assert wrong.status_code == 403 and wrong.json()["error"] == "code_unknown"
    blocked = post(url, {"code": code, "sealing_key": KEY}, "203.0.113.9")  # the right code, too late
    assert blocked.status_code == 429 and blocked.json()["error"] == "blocked" and "too many" in blocked.json()["message"]
    assert web.register.get("valby-skole").state == "waiting"
    elsewhere = post(url, {"code": code, "sealing_key": KEY}, "198.51.100.7")
    assert elsewhere.status_code == 503  # past the limit and the code: this test's broker is never there


def test_a_body_that_is_huge_not_json_or_a_bad_key_is_refused_and_counts_no_guess(register_page):  # noqa: F811
    web, server = register_page
    url = server.url
    assert post(url, b"x" * (2 * 1024 * 1024), "203.0.113.5").status_code == 413
    for _ in range(SOURCE_FAILURES):
        assert post(url, b"{not json", "203.0.113.5").json()["error"] == "bad_request"
        for key in ("not base64!", base64.b64encode(b"short").decode(), None):
            assert post(url, {"code": "AAAA", "sealing_key": key}, "203.0.113.5").json()["error"] == "bad_request"
    assert post(url, {"code": "AAAA", "sealing_key": KEY}, "203.0.113.5").json()["error"] == "code_unknown"


@pytest.mark.parametrize("raw", [bytes(32), bytes([1]) + bytes(31)])
def test_a_low_order_sealing_key_is_refused_at_enrolment_and_by_the_bridge(register_page, raw):  # noqa: F811
    web, server = register_page
    code = web.register.add(*SITE, web.clock())
    bad = base64.b64encode(raw).decode()
    refused = post(server.url, {"code": code, "sealing_key": bad}, "203.0.113.6")
    assert refused.status_code == 403 and refused.json()["error"] == "bad_request"
    assert web.register.get("valby-skole").state == "waiting"
    with pytest.raises(ValueError, match="low-order"):  # a register that holds one anyway: the bridge leaves the site out
        sealing.load_public(bad)


def test_a_site_name_with_control_characters_is_refused_and_a_box_writes_any_name_it_gets(tmp_path):
    register = Register(FleetStore(str(tmp_path / "fleet.db")).db)
    for name in ("Valby\x7f Skole", 'Valby"\n[mqtt]\nhost = "evil"', "Valby\x00"):
        with pytest.raises(Refused) as bad:
            register.add("valby-skole", name, *SITE[2:], T0)
        assert bad.value.reason == "bad_name"
    answer = {
        "site": {"id": "valby-skole", "name": 'Valby\x7f "Skole"\n[mqtt]', "timezone": "Europe/Copenhagen"},
        "mqtt": {"host": "127.0.0.1", "port": 8883, "tls": True, "username": "valby-skole", "topic_prefix": "haldor/v1"},
        "trust": {"keys": {"k\x7f": KEY}},
        "doors": [],
        "readers": [],
    }
    written = tomllib.loads(configuration(answer, tmp_path / "box"))  # from a fleet that let one through
    assert written["site"]["name"] == 'Valby\x7f "Skole"\n[mqtt]' and written["mqtt"]["host"] == "127.0.0.1"
    assert written["trust"]["keys"] == {"k\x7f": KEY}


def test_markup_in_a_site_name_zone_or_id_is_shown_as_text_on_the_register_page(register_page):  # noqa: F811
    web, server = register_page
    client, csrf = login(server.url, "admin-ida")
    name = "<script>alert('x')</script> & Co"
    form = {"csrf": csrf, "action": "add", "site": "valby-skole", "name": name, "zone": "Europe/Copenhagen"}
    assert client.post("/register", data={**form, "profile": "main-strike-wiegand"}).status_code == 200
    page = client.get("/register").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in page
    bad_zone = client.post("/register", data={**form, "site": "b", "zone": "<b>Mars</b>", "profile": "main-strike-wiegand"})
    assert bad_zone.status_code == 400 and "<b>Mars" not in bad_zone.text and "&lt;b&gt;Mars" in bad_zone.text
    bad_site = client.post("/register", data={**form, "site": "<i>x/../y", "profile": "main-strike-wiegand"})
    assert bad_site.status_code == 400 and "<i>x" not in bad_site.text and web.register.get("<i>x/../y") is None


def test_the_bridge_sends_its_register_token_over_https_only_beyond_loopback(tmp_path):
    from haldor.bridge import settings as bridge_settings
    from haldor.errors import ConfigError

    from .test_enrol import toml_checker

    token = tmp_path / "register.token"
    token.write_text("bridge-" + "0123456789abcdef" * 2 + "\n")
    table = bridge_settings._RegisterTable
    with pytest.raises(ConfigError, match=r"register\.url: https only beyond loopback"):
        bridge_settings._register(toml_checker(tmp_path), table(url="http://fleet.example/register.json", token_file=str(token)))
    for url in ("https://fleet.example/register.json", "http://127.0.0.1:8080/register.json"):
        assert bridge_settings._register(toml_checker(tmp_path), table(url=url, token_file=str(token))).url == url


def test_register_json_needs_the_bridges_token_exactly(tmp_path):
    from dataclasses import replace

    from haldor.fleet.dynsec import Dynsec
    from haldor.fleet.enrolment import Enroller
    from haldor.fleet.serving import FleetServer
    from haldor.fleet.web import FleetWeb
    from haldor.mqtt import BrokerOptions

    from .test_enrol import ENROLMENT, PREFIX

    token = "bridge-" + "0123456789abcdef" * 2
    web = FleetWeb(FleetStore(str(tmp_path / "fleet.db")))
    web.enroller = Enroller(web.register, Dynsec(BrokerOptions("127.0.0.1", 1)), replace(ENROLMENT, register_token=token), PREFIX)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    try:
        for header in ({}, {"Authorization": token}, {"Authorization": f"Bearer {token[:-1]}"}, {"Authorization": "Bearer x"}):
            assert httpx.get(server.url + "/register.json", headers=header).status_code == 401
        assert httpx.get(server.url + "/register.json", headers={"Authorization": f"Bearer {token}"}).json() == {"sites": []}
    finally:
        server.shutdown()
