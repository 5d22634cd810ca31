"""Operators of the fleet's page: users with argon2 hashes and roles, a login with a
signed session cookie, CSRF on every form, a lockout after wrong passwords; a trusted
header from a reverse proxy; a bearer token for /metrics; and `haldor fleet user`."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from haldor.fleet.operators import OperatorError, Operators
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.sql import Database

PASSWORD = "korrekt hest batteri"


@pytest.fixture
def page(tmp_path):
    """A fleet page that needs a login, with one operator and one viewer."""
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    users = Operators(Database.open(db))
    users.add("pedel-anna", PASSWORD, "operator")
    users.add("kontor-bo", PASSWORD, "viewer")
    web = FleetWeb(store)
    web.auth = Sessions(users, secure=False)
    web.metrics_token = "s3cret-token"
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield web, users
    server.shutdown()


def login(web, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=web.url)
    client.post("/login", data={"name": name, "password": password, "next": "/"})
    return client


def test_nothing_is_shown_without_a_login(page):
    web, _ = page
    for path in ("/", "/access?site=valby", "/usage.csv", "/api/summary", "/live", "/metrics"):
        reply = httpx.get(web.url + path)
        assert reply.status_code in (303, 401), path
    assert httpx.get(web.url + "/").headers["location"] == "/login?next=%2F"
    assert httpx.get(web.url + "/healthz").status_code == 200


def test_a_login_sets_a_session_cookie_that_a_browser_cannot_read_or_send_elsewhere(page):
    web, _ = page
    reply = httpx.post(web.url + "/login", data={"name": "pedel-anna", "password": PASSWORD, "next": "/usage.csv"})
    assert reply.status_code == 303 and reply.headers["location"] == "/usage.csv"
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    client = login(web, "pedel-anna")
    assert client.get("/").status_code == 200 and "pedel-anna" in client.get("/").text
    forged = httpx.get(web.url + "/", cookies={"haldor_session": client.cookies["haldor_session"][:-3] + "AAA"})
    assert forged.status_code == 303
    away = httpx.post(web.url + "/login", data={"name": "pedel-anna", "password": PASSWORD, "next": "//evil.example/"})
    assert away.headers["location"] == "/"  # never sent to another site after the login


def test_a_wrong_password_and_the_lockout(page):
    web, users = page
    open_session = login(web, "kontor-bo")  # a lockout stops new logins, not the user's open page
    wrong = httpx.post(web.url + "/login", data={"name": "kontor-bo", "password": "forkert", "next": "/"})
    assert wrong.status_code == 401 and "Forkert brugernavn eller adgangskode" in wrong.text and "set-cookie" not in wrong.headers
    for _ in range(4):
        httpx.post(web.url + "/login", data={"name": "kontor-bo", "password": "forkert", "next": "/"})
    assert users.locked("kontor-bo")
    locked = httpx.post(web.url + "/login", data={"name": "kontor-bo", "password": PASSWORD, "next": "/"})
    assert locked.status_code == 401  # the right password does not help while locked
    unknown = httpx.post(web.url + "/login", data={"name": "nobody", "password": PASSWORD, "next": "/"})
    assert unknown.status_code == 401 and unknown.text == wrong.text  # an unknown name says no more
    assert open_session.get("/").status_code == 200
    assert [r["action"] for r in web.audit.rows()][:2] == ["locked", "login_refused"]  # a known user's, in the log
    users.unlock("kontor-bo")
    assert login(web, "kontor-bo").get("/").status_code == 200


def test_csrf_is_refused_and_logout_needs_the_token(page):
    web, _ = page
    client = login(web, "pedel-anna")
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf": "guess"}).status_code == 403
    html = client.get("/").text
    token = html.split("name='csrf' value='")[1].split("'")[0]
    other_site = client.post("/logout", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    out = client.post("/logout", data={"csrf": token})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]


def test_sessions_end_at_a_logout_and_a_removal_and_never_come_back(page):
    web, users = page
    client = login(web, "kontor-bo")
    copied = dict(client.cookies)
    token = client.get("/").text.split("name='csrf' value='")[1].split("'")[0]
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert httpx.get(web.url + "/", cookies=copied).status_code == 303  # a copied cookie ends with the logout
    client = login(web, "kontor-bo")
    old = dict(client.cookies)
    users.remove("kontor-bo")
    assert client.get("/").status_code == 303
    users.add("kontor-bo", PASSWORD, "operator")  # the name again, another person perhaps
    assert httpx.get(web.url + "/", cookies=old).status_code == 303


@pytest.mark.parametrize(
    "target, lands",
    [
        ("/usage.csv?from=2026-01-01", "/usage.csv?from=2026-01-01"),
        ("//evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("/\r\nSet-Cookie: injected=1", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_after_the_login_only_a_path_of_this_site(page, target, lands):
    web, _ = page
    reply = httpx.post(web.url + "/login", data={"name": "pedel-anna", "password": PASSWORD, "next": target})
    assert reply.status_code == 303 and reply.headers["location"] == lands
    assert "injected" not in str(reply.headers)


def test_odd_requests_get_an_answer_not_a_dropped_connection(page):
    web, _ = page
    client = login(web, "pedel-anna")
    assert client.post("/logout", data={"csrf": "é…"}).status_code == 403
    assert (
        httpx.get(
            web.url + "/", headers={"Cookie": 'tracking={"a":1}; x=a b; ' + f"haldor_session={client.cookies['haldor_session']}"}
        ).status_code
        == 200
    )
    assert httpx.get(web.url + "/", headers={"Cookie": 'haldor_session="a.é"'.encode()}).status_code == 303
    assert httpx.get(web.url + "/metrics", headers={"Authorization": "Bearer é".encode()}).status_code == 401
    assert httpx.get(web.url + "/metrics", headers={"Authorization": "s3cret-token"}).status_code == 401  # "Bearer " it is
    with socket.create_connection(("127.0.0.1", httpx.URL(web.url).port), timeout=5) as raw:
        raw.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nname=x")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")  # never a read until the end of the stream (uvicorn answers in 1.1)
    elsewhere = httpx.post(
        web.url + "/login", data={"name": "pedel-anna", "password": PASSWORD}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers  # no login from another site's form


def test_metrics_with_the_bearer_token(page):
    web, _ = page
    assert httpx.get(web.url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    reply = httpx.get(web.url + "/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert reply.status_code == 200 and "haldor_fleet_sites" in reply.text


def test_a_reverse_proxy_names_the_user(tmp_path):
    db = str(tmp_path / "fleet.db")
    users = Operators(Database.open(db))
    users.add("anna@kommune.dk", PASSWORD, "viewer")
    web = FleetWeb(FleetStore(db))
    web.auth = Sessions(users, secure=True, trusted_header="X-Remote-User")
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert httpx.get(url, headers={"X-Remote-User": "anna@kommune.dk"}).status_code == 200
        assert httpx.get(url, headers={"X-Remote-User": "mallory@kommune.dk"}).status_code == 303  # not a user here
        assert httpx.get(url).status_code == 303
        twice = httpx.get(url, headers=[("X-Remote-User", "mallory@kommune.dk"), ("X-Remote-User", "anna@kommune.dk")])
        assert twice.status_code == 303  # a proxy that appends instead of replacing: refused
        assert httpx.post(url + "login", data={"name": "anna@kommune.dk", "password": PASSWORD}).status_code == 404
    finally:
        server.shutdown()


def test_users_are_checked_when_added():
    users = Operators(Database.open(":memory:"))
    with pytest.raises(OperatorError, match="at least 12"):
        users.add("bo", "kort", "viewer")
    with pytest.raises(OperatorError, match="role"):
        users.add("bo", PASSWORD, "admin")
    with pytest.raises(OperatorError, match="user name"):
        users.add("bo<script>", PASSWORD, "viewer")
    users.add("bo", PASSWORD, "viewer")
    with pytest.raises(OperatorError, match="exists"):
        users.add("bo", PASSWORD, "operator")
    hashed = users.db.one("SELECT hash FROM operators")[0]
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed


def haldor(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haldor", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_haldor_fleet_user_add_list_remove(tmp_path):
    db = str(tmp_path / "fleet.db")
    added = haldor(
        "fleet", "--db", db, "user", "add", "pedel-anna", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert haldor("fleet", "--db", db, "user", "list").stdout == "pedel-anna\toperator\n"
    short = haldor("fleet", "--db", db, "user", "add", "bo", "--password-stdin", stdin="kort\n")
    assert short.returncode == 2 and "at least 12" in short.stderr
    assert haldor("fleet", "--db", db, "user", "remove", "pedel-anna").returncode == 0
    assert haldor("fleet", "--db", db, "user", "list").stdout == ""
    assert haldor("fleet", "--db", db, "user", "remove", "pedel-anna").returncode == 1


def test_the_page_is_not_served_beyond_loopback_without_tls_and_a_login(tmp_path):
    """Checked before anything listens: no address beyond loopback is ever bound here."""
    base = ["fleet", "--broker", "127.0.0.1:1", "--db", str(tmp_path / "f.db"), "--listen", "0.0.0.0:8090"]
    plain = haldor(*base)
    assert plain.returncode == 2 and "need TLS" in plain.stderr and plain.stderr.count("\n") == 1
    nobody = haldor(*base, "--public-url", "https://fleet.kommune.example")
    assert nobody.returncode == 2 and "needs a login" in nobody.stderr
    proxy = haldor(*base, "--public-url", "https://fleet.kommune.example", "--trusted-header", "X-Remote-User")
    assert proxy.returncode == 2 and "listen on loopback" in proxy.stderr


def test_an_operator_unlocks_a_door_of_a_real_agent_from_the_page_and_the_audit_log_shows_it(tmp_path, broker, signing_key):
    """Playwright in Chromium over a real Mosquitto and a real agent: a wrong password,
    the login, a viewer who sees no buttons and is refused if it tries, an operator who
    unlocks the main door for 10 minutes and sees the box's answer; the audit log holds
    it, and a forged form is refused."""
    from playwright.sync_api import expect, sync_playwright

    from haldor.fleet.commands import Commander
    from haldor.fleet.ingest import FleetConsumer
    from haldor.integrator import documents
    from haldor.mqtt import BrokerOptions

    from .helpers import wait_for
    from .rig import Rig, public_key
    from .test_kiosk import CHROMIUM, OUTPUT, _axe_serious

    key_path, _, command_public = documents.keygen("fleet-commands", tmp_path / "keys")
    (tmp_path / "box").mkdir()
    site = Rig(
        tmp_path / "box",
        reader=False,
        port=broker.port,
        keys={"bookings-2026": public_key(signing_key)},
        command_keys={"fleet-commands": command_public},
    )
    db = str(tmp_path / "fleet.db")
    users = Operators(Database.open(db))
    users.add("pedel-anna", PASSWORD, "operator")
    users.add("kontor-bo", PASSWORD, "viewer")
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db), command_results=True)
    web = FleetWeb(FleetStore(db), live_poll_s=0.1)
    web.auth = Sessions(users, secure=False)
    web.commander = Commander(
        consumer.client, BrokerOptions("127.0.0.1", broker.port), str(key_path), "fleet-commands", web.audit
    )
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    consumer.start()
    site.start()
    lock = site.factory.pin(17)
    try:
        wait_for(lambda: any(s["site"] == "valby-skole" and s["doors"] for s in web.store.sites()), what="the box's status")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(url + "/access?site=valby-skole")
                assert page.url.startswith(url + "/login")
                page.fill("input[name=name]", "pedel-anna")
                page.fill("input[name=password]", "forkert adgangskode")
                page.click("#login button")
                assert "Forkert brugernavn" in page.locator("[role=alert]").inner_text()
                assert _axe_serious(page) == []

                viewer = browser.new_page()
                viewer.goto(url + "/login?next=%2Faccess%3Fsite%3Dvalby-skole")
                viewer.fill("input[name=name]", "kontor-bo")
                viewer.fill("input[name=password]", PASSWORD)
                viewer.click("#login button")
                assert viewer.url.endswith("/access?site=valby-skole")
                assert viewer.locator("form.act").count() == 0  # a viewer reads
                token = viewer.locator("form.who input[name=csrf]").get_attribute("value")
                tried = viewer.request.post(
                    url + "/command",
                    form={"csrf": token, "site": "valby-skole", "door": "main", "action": "unlock", "minutes": "10"},
                )
                assert tried.status == 403
                assert [r["action"] for r in web.audit.rows()][0] == "refused"  # the attempt is in the audit log

                page.fill("input[name=name]", "pedel-anna")
                page.fill("input[name=password]", PASSWORD)
                page.click("#login button")
                assert page.url.endswith("/access?site=valby-skole")
                door = page.locator("form.act[data-door='main']")
                door.locator("input[name=reason]").fill("Valby Volley låst ude, sag 4711")
                door.locator("input[name=minutes]").fill("10")
                door.locator("button[value=unlock]").click()
                wait_for(lambda: lock.state, timeout=10, what="the main door unlocked by the command")
                expect(page.locator("#audit tbody tr").first.locator(".result")).to_have_text("udført", timeout=10_000)
                row = page.locator("#audit tbody tr").first.inner_text()
                assert "pedel-anna" in row and "Lås op: main" in row and "sag 4711 (10 min)" in row
                assert _axe_serious(page) == []
                OUTPUT.mkdir(exist_ok=True)
                page.screenshot(path=str(OUTPUT / "fleet-actions.png"), full_page=True)

                forged = page.request.post(url + "/command", form={"csrf": "forged", "site": "valby-skole", "action": "lockdown"})
                assert forged.status == 403
                page.goto(url + "/audit?from=2020-01-01")
                actions = [r.split("\t")[3] for r in page.locator("#audit tbody tr").all_inner_texts()]
                assert actions.count("Lås op: main") == 1 and "Logget ind" in actions
                assert "lockdown" not in " ".join(actions).lower()
            finally:
                browser.close()
        (entry,) = [r for r in web.audit.rows() if r["action"] == "unlock"]
        assert entry["ok"] == 1 and entry["who"] == "pedel-anna" and entry["door"] == "main"
    finally:
        server.shutdown()
        consumer.stop()
        site.close()


def test_an_answer_counts_only_from_the_site_the_command_went_to(tmp_path):
    from haldor.fleet.commands import AuditLog
    from haldor.fleet.operators import Operator

    store = FleetStore(tmp_path / "fleet.db")
    audit = AuditLog(store.db)
    audit.record(
        1.0, Operator("pedel-anna", "operator"), "unlock", site="stille-sted", door="main", command="c-1", expires_at=121.0
    )
    assert store.command_results([("ondt-sted", {"id": "c-1", "ok": True, "error": None})], 2.0) == 0
    assert store.command_results([("stille-sted", {"id": "c-1", "ok": False, "error": "replayed"})], 3.0) == 1
    (row,) = audit.rows()
    assert (row["ok"], row["error"], row["answered_at"]) == (0, "replayed", 3.0)
    store.set_status(
        "stille-sted", {"online": True, "at": "2026-11-25T17:00:00+01:00", "names": {"site": "Stille\r\nBcc: x"}}, 1.0
    )
    assert store.sites()[0]["name"] == "StilleBcc: x"  # no line break reaches an e-mail's subject


def test_the_first_user_added_locks_the_running_page_and_removing_the_last_opens_it_on_loopback(tmp_path):
    """Issue 24: `haldor fleet user add` said "added", and the running page stayed open."""
    import subprocess
    import sys

    from .helpers import wait_for

    db = str(tmp_path / "fleet.db")
    web = FleetWeb(FleetStore(db))
    web.auth = Sessions(Operators(Database.open(db)), secure=False)  # as `haldor fleet` does, users or not
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    url = web.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(url + "/").status_code == 200  # loopback, nobody to log in: open
        add = subprocess.run(
            [sys.executable, "-m", "haldor", "fleet", "--db", db, "user", "add", "pedel-anna", "--password-stdin"],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert add.returncode == 0, add.stderr
        for path in ("/", "/api/summary", "/usage.csv", "/access?site=valby"):
            wait_for(lambda p=path: httpx.get(url + p).status_code in (303, 401), what=f"{path} locked")
        assert login(web, "pedel-anna").get("/").status_code == 200
        Operators(Database.open(db)).remove("pedel-anna")
        wait_for(lambda: httpx.get(url + "/").status_code == 200, what="open again on loopback")
    finally:
        server.shutdown()
    beyond = FleetWeb(FleetStore(db))  # beyond loopback the login stays without users
    beyond.auth, beyond.login_always = Sessions(Operators(Database.open(db)), secure=False), True
    beyond_server = FleetServer(beyond, ("127.0.0.1", 0)).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{beyond_server.server_address[1]}/").status_code == 303
    finally:
        beyond_server.shutdown()


def test_behind_a_proxy_the_page_never_opens_even_without_users(tmp_path):
    """Review of issue 24: with --public-url every request comes from the proxy on loopback,
    so removing the last user opened the access log to the internet."""
    import socket
    import subprocess
    import sys

    from .broker import Broker
    from .helpers import wait_for

    broker = Broker(tmp_path / "broker", audit=False).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = str(tmp_path / "fleet.db")
    fleet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "haldor",
            "fleet",
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--db",
            db,
            "--listen",
            f"127.0.0.1:{port}",
            "--public-url",
            "https://fleet.kommune.example",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:

        def answer(path: str) -> int:
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"X-Forwarded-For": "203.0.113.9"}).status_code
            except httpx.TransportError:
                return 0

        wait_for(lambda: answer("/healthz") == 200, timeout=20, what="the fleet page up")
        for path in ("/", "/access.csv?site=valby", "/api/summary"):
            assert answer(path) in (303, 401), path
    finally:
        fleet.terminate()
        fleet.wait(10)
        broker.stop()
