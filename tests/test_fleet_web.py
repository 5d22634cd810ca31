"""The fleet's page on its web stack (Starlette, Jinja2, uvicorn): every template escapes
what a box sends, every answer carries the page's protections, its own CSS and JS are
served (and installed), forms are bounded in size and time, slow clients are dropped,
and `haldor fleet` stops cleanly on SIGTERM with a live stream open."""

from __future__ import annotations

import fnmatch
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

from haldor.fleet import app_forms
from haldor.fleet.operators import Operator, Operators
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.sql import Database
from haldor.texts import t

from .helpers import wait_for
from .test_fleet import SEASON, access, usage

PASSWORD = "korrekt hest batteri"
#: markup a box could send as a name: a script, and a quote that would end an attribute
HOSTILE = "<script>alert(1)</script>' onmouseover='alert(2)\" onfocus=\"alert(3)"
#: the same, as the templates write it
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#39; onmouseover=&#39;alert(2)&#34; onfocus=&#34;alert(3)"
ROOT = Path(__file__).resolve().parent.parent


def hostile(what: str) -> str:
    return f"{what} {HOSTILE}"


@pytest.fixture
def page(tmp_path):
    """A page with an operator and a site whose box sends markup in every name it can."""
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    users = Operators(Database.open(db))
    users.add("pedel-anna", PASSWORD, "operator")
    web = FleetWeb(store)
    web.auth = Sessions(users, secure=False)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = server.url
    yield web, server, store
    server.shutdown()


def fill_with_markup(store: FleetStore) -> None:
    names = {"site": hostile("site"), "rooms": {"gym-a": hostile("room")}, "doors": {"main": hostile("door")}}
    store.set_status(
        "valby",
        {
            "online": True,
            "at": "2026-11-25T17:00:00+01:00",
            "schedule_version": 42,
            "mode": hostile("mode"),
            "timezone": "Europe/Copenhagen",
            "doors": {"main": {"locked": True}},
            "readers": {"main-in": {"ok": False, "fault": hostile("fault")}},
            "names": names,
        },
        time.time(),
    )
    booked = usage("valby", "b1", "2026-11-23T17:00:00+01:00", 90, True)
    booked["usage"] |= {"room_name": hostile("room"), "association_name": hostile("association")}
    store.add_event(booked)
    store.add_event(access("valby", "door.forced", "2026-11-23T18:00:00+01:00", 2, reason=hostile("reason")))
    store.add_event(
        access("valby", "access.denied", "2026-11-23T18:01:00+01:00", 3, credential=hostile("card"), booking=hostile("booking"))
    )
    store.add_event(
        {
            "schema": "haldor.event/1",
            "id": str(uuid.uuid4()),
            "site": "valby",
            "seq": 4,
            "at": "2026-11-23T18:02:00+01:00",
            "type": "command.result",
            "door": "main",
            "reader": None,
            "credential": None,
            "booking": None,
            "reason": hostile("refusal"),
            "command": "c-1",
            "action": "unlock",
            "ok": False,
            "by": hostile("by"),
            "why": hostile("why"),
        }
    )


def logged_in(web) -> httpx.Client:
    client = httpx.Client(base_url=web.url)
    assert client.post("/login", data={"name": "pedel-anna", "password": PASSWORD, "next": "/"}).status_code == 303
    return client


def test_every_page_escapes_what_a_box_sends(page):
    web, _, store = page
    fill_with_markup(store)
    web.commander = object()  # only its presence counts on a page: the operator's buttons are shown
    web.audit.record(
        time.time(), Operator("pedel-anna", "operator"), "refused", site="valby", door="main", detail=hostile("detail")
    )
    client = logged_in(web)
    pages = {
        "/" + SEASON: ["site", "room", "association", "door", "fault", "mode"],
        "/?site=valby&from=2026-11-01&to=2026-11-30": ["site", "door", "reason"],
        "/access?site=valby&from=2026-11-23&to=2026-11-23": ["site", "door", "card", "booking", "by", "why", "detail", "refusal"],
        "/audit?from=2026-11-01": ["site", "door", "by", "why", "detail", "refusal"],
    }
    for path, shown in pages.items():
        reply = client.get(path)
        assert reply.status_code == 200, path
        text = reply.text
        for what in shown:
            assert f"{what} {ESCAPED}" in text, (path, what)
        assert "<script>alert" not in text and "' onmouseover='" not in text and '" onfocus="' not in text, path
    login = httpx.get(web.url + "/login", params={"next": HOSTILE}).text  # the page to go to after the login, sent back
    assert "<script>alert" not in login and "' onmouseover='" not in login and '" onfocus="' not in login
    assert "&lt;script&gt;" in login


def test_every_answer_carries_the_pages_protections(page):
    web, _, _ = page
    client = logged_in(web)
    for path in ("/", "/login", "/healthz", "/static/fleet.css", "/static/fleet.js", "/nowhere", "/live?x=1", "/metrics"):
        if path == "/live?x=1":
            with client.stream("GET", path) as reply:
                headers = reply.headers
        else:
            headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["cache-control"] == "no-store", path
        csp = headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
    css, js = client.get("/static/fleet.css"), client.get("/static/fleet.js")
    assert css.headers["content-type"].startswith("text/css") and ".legend .key-booked" in css.text
    assert "javascript" in js.headers["content-type"] and 'new EventSource("/live")' in js.text
    assert httpx.get(web.url + "/static/fleet.css").status_code == 200  # the login page needs it before any login
    html = client.get("/").text
    assert "<script src='/static/fleet.js'></script>" in html and "<style" not in html and " style=" not in html
    assert " onclick=" not in client.get("/access?site=nowhere").text


def test_the_pages_files_are_installed_with_the_package():
    """A non-editable install has the templates and the static files (pyproject's package-data)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["haldor"]
    files = [
        p.relative_to(ROOT / "haldor").as_posix() for p in (ROOT / "haldor/fleet").glob("*/*") if p.parent.name != "__pycache__"
    ]
    assert any(f.startswith("fleet/templates/") for f in files) and any(f.startswith("fleet/static/") for f in files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in data)] == []


def test_a_form_too_large_or_too_slow_is_refused_and_never_read_to_the_end(page, monkeypatch):
    web, server, _ = page
    big = {"name": "pedel-anna", "password": "x" * (app_forms.MAX_FORM_BYTES + 1)}
    assert httpx.post(web.url + "/login", data=big).status_code == 413
    chunks = (b"name=x&password=" + b"y" * 4096 for _ in range(8))  # no Content-Length: counted as it comes
    assert httpx.post(web.url + "/login", content=chunks).status_code == 413
    with socket.create_connection(server.server_address, timeout=10) as raw:
        raw.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\nname=x")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    monkeypatch.setattr(app_forms, "BODY_S", 0.5)
    with socket.create_connection(server.server_address, timeout=10) as raw:
        raw.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nname=x")  # and the rest never
        assert raw.recv(100).startswith(b"HTTP/1.1 408")
    assert logged_in(web).get("/").status_code == 200  # the page goes on


def test_a_client_that_sends_its_request_slowly_is_dropped(tmp_path):
    web = FleetWeb(FleetStore(str(tmp_path / "fleet.db")))
    server = FleetServer(web, ("127.0.0.1", 0), head_s=0.5).start()
    try:
        with socket.create_connection(server.server_address, timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            assert raw.recv(100) == b""  # closed by the page, long before the client's own 10 s
        with socket.create_connection(server.server_address, timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.shutdown()


def test_haldor_fleet_stops_cleanly_on_sigterm_with_a_live_stream_open(tmp_path, broker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fleet = subprocess.Popen(
        [sys.executable, "-m", "haldor", "fleet", "--broker", f"127.0.0.1:{broker.port}", "--db", str(tmp_path / "fleet.db"),
         "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=20, what="the fleet page up")
        with httpx.stream("GET", url + "/live", timeout=10) as live:
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
            assert next(live.iter_lines()).startswith("data: ")
            fleet.send_signal(signal.SIGTERM)
            assert fleet.wait(20) == 0, fleet.stderr.read() if fleet.stderr else ""
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.wait(10)


def test_a_lockdown_is_asked_for_twice_in_the_browser(tmp_path, broker):
    """The question that was an inline onclick is the page's own script now: dismissed,
    nothing is sent; accepted, the command goes out and the audit log holds it."""
    from playwright.sync_api import sync_playwright

    from haldor.fleet.commands import Commander
    from haldor.fleet.ingest import FleetConsumer
    from haldor.integrator import documents
    from haldor.mqtt import BrokerOptions

    from .test_kiosk import CHROMIUM

    key_path, _, _ = documents.keygen("fleet-commands", tmp_path / "keys")
    db = str(tmp_path / "fleet.db")
    users = Operators(Database.open(db))
    users.add("pedel-anna", PASSWORD, "operator")
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db), command_results=True)
    web = FleetWeb(FleetStore(db))
    web.auth = Sessions(users, secure=False)
    web.commander = Commander(
        consumer.client, BrokerOptions("127.0.0.1", broker.port), str(key_path), "fleet-commands", web.audit
    )
    web.store.set_status("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00", "names": {"site": "Valby"}}, time.time())
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    consumer.start()
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(server.url + "/login?next=%2Faccess%3Fsite%3Dvalby")
                page.fill("input[name=name]", "pedel-anna")
                page.fill("input[name=password]", PASSWORD)
                page.click("#login button")
                asked: list[str] = []
                page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
                page.click("button[value=lockdown]")
                assert asked == [t("fleet.confirm_lockdown", "da")]
                assert [r["action"] for r in web.audit.rows()] == ["login"]  # dismissed: nothing sent
                page.once("dialog", lambda dialog: dialog.accept())
                page.click("button[value=lockdown]")
                page.wait_for_url("**/access?*#audit")
                assert [r["action"] for r in web.audit.rows()][0] == "lockdown"
            finally:
                browser.close()
    finally:
        server.shutdown()
        consumer.stop()


def test_answers_on_a_kept_connection_do_not_wait_for_the_clients_delayed_ack(page):
    """Regression: the socket bound without IPPROTO_TCP kept Nagle on, and every answer on a
    kept connection waited 40 ms for the client's delayed ACK (a page with its CSS and script: 120 ms)."""
    web, _, _ = page
    with httpx.Client(base_url=web.url) as client:
        client.get("/healthz")
        started = time.monotonic()
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 0.5  # 20 x 40 ms would be 0.8 s
