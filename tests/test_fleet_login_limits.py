"""Issue 23: a guesser cannot keep operators out of the fleet's page. Failed logins count
per source address (behind the proxy on this machine: the address it forwards), a
stranger's wrong passwords do not lock a user out of its own address, and argon2's two
slots take one check per source. Real servers on SQLite and PostgreSQL and real argon2;
sources are told apart by the loopback address a client binds (127.0.0.2, 127.0.0.3, ...)."""

from __future__ import annotations

import http.client
import threading
import time

import httpx
import pytest
from argon2 import PasswordHasher, profiles

from haldor.clock import FakeClock
from haldor.fleet.login_limits import SOURCE_BLOCK_S, SOURCE_FAILURES, source_of
from haldor.fleet.operators import Operators
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.sql import Database

from .helpers import wait_for

PASSWORD = "korrekt hest batteri"
PROXY = "127.0.0.1"  # the reverse proxy on this machine connects from here


def _fleet(request, tmp_path, hasher):
    target = str(tmp_path / "fleet.db") if request.param == "sqlite" else request.getfixturevalue("postgres").database()
    clock = FakeClock(time.time())
    users = Operators(Database.open(target), clock=clock.now, hasher=hasher)
    users.add("pedel-anna", PASSWORD, "operator")
    web = FleetWeb(FleetStore(target))
    web.auth = Sessions(users, secure=False)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = f"http://127.0.0.1:{server.server_address[1]}"
    return web, users, clock, server


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet(request, tmp_path):
    """A fleet page that needs a login, with one operator; the logins' clock is moved by
    hand. Its hashes are made with argon2's cheapest profile: these tests count failures,
    not the cost of one (argon2 verifies each hash at the cost written in it)."""
    web, users, clock, server = _fleet(request, tmp_path, PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield web, users, clock
    server.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_at_full_cost(request, tmp_path):
    """As ``fleet``, its hashes at argon2's full cost, as `haldor fleet user add` makes
    them: for the tests of what a flood of checks does to the slots."""
    web, users, clock, server = _fleet(request, tmp_path, None)
    yield web, users, clock
    server.shutdown()


def browser(web, source: str = PROXY) -> httpx.Client:
    """A client at ``source``: any address of 127/8 is this machine's, so each is another place."""
    return httpx.Client(base_url=web.url, transport=httpx.HTTPTransport(local_address=source), timeout=20)


def login(web, name: str, password: str = PASSWORD, source: str = PROXY, forwarded: str = "") -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with browser(web, source) as client:
        return client.post("/login", data={"name": name, "password": password}, headers=headers)


def codes(web, count: int, source: str = PROXY, forwarded: str = "") -> list[int]:
    """``count`` wrong logins, each for a name nobody has (no user's lockout comes into it)."""
    return [login(web, f"gaet-{i}", "forkert gæt", source, forwarded).status_code for i in range(count)]


def test_a_flood_of_bad_logins_from_one_address_leaves_an_operator_elsewhere_in(fleet_at_full_cost):
    """Regression: 16 threads of bad logins held both argon2 slots (the operator got 503)
    and their wrong passwords for her name locked her out."""
    web, users, clock = fleet_at_full_cost
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303  # her office
    stop, answers = threading.Event(), []

    def flood(i: int) -> None:
        with browser(web, "127.0.0.2") as client:
            while not stop.is_set():
                name = "pedel-anna" if i % 2 else f"gaet-{i}"
                try:
                    answers.append(client.post("/login", data={"name": name, "password": "forkert gæt"}).status_code)
                except httpx.TransportError:
                    answers.append(0)  # the listen queue overflowed: the flood's loss, counted

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answers.count(401) > SOURCE_FAILURES and answers.count(503) > 16, timeout=60, what="the flood")
        assert [login(web, "pedel-anna", source="127.0.0.3").status_code for _ in range(5)] == [303] * 5
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert users.sources.blocked("127.0.0.2", clock.now()) and not users.sources.blocked("127.0.0.3", clock.now())


def test_a_strangers_five_wrong_passwords_do_not_lock_an_operator_out_of_her_own_address(fleet):
    """Regression: five wrong passwords from anywhere locked a named operator out everywhere."""
    web, users, _ = fleet
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303
    assert [login(web, "pedel-anna", "forkert gæt", "127.0.0.2").status_code for _ in range(5)] == [401] * 5
    assert users.locked("pedel-anna")  # locked still, and audited, from the stranger's address
    assert [(r["action"], r["detail"]) for r in web.audit.rows()][:2] == [("locked", "127.0.0.2"), ("login_refused", "127.0.0.2")]
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303  # where she logged in before
    refused = login(web, "pedel-anna", source="127.0.0.4")
    assert refused.status_code == 401  # a new place waits out the quarter, or `user unlock`
    assert refused.text == login(web, "nobody", source="127.0.0.4").text  # and says no more than for an unknown name
    users.unlock("pedel-anna")
    assert login(web, "pedel-anna", source="127.0.0.4").status_code == 303


def test_her_own_five_wrong_passwords_lock_that_address_for_her_only(fleet):
    web, users, _ = fleet
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303
    assert login(web, "pedel-anna", source="127.0.0.4").status_code == 303
    assert [login(web, "pedel-anna", "forkert gæt", "127.0.0.3").status_code for _ in range(5)] == [401] * 5
    assert web.audit.rows()[0]["action"] == "locked"
    assert login(web, "pedel-anna", source="127.0.0.4").status_code == 303  # her other own address
    assert [login(web, "pedel-anna", source="127.0.0.3").status_code for _ in range(5)] == [401] * 5
    assert users.sources.blocked("127.0.0.3", users.clock())  # ten failures: the address is refused too
    users.unlock("pedel-anna")  # the pedel calls the office
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303


def test_a_source_that_guesses_too_often_is_refused_for_a_while_that_grows(fleet):
    web, _, clock = fleet
    assert codes(web, SOURCE_FAILURES, "127.0.0.2") == [401] * SOURCE_FAILURES
    refused = login(web, "pedel-anna", source="127.0.0.2")
    assert refused.status_code == 401 and refused.text == login(web, "nobody", source="127.0.0.5").text  # the right password too
    assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303  # from elsewhere
    clock.advance(SOURCE_BLOCK_S + 1)
    assert codes(web, SOURCE_FAILURES, "127.0.0.2") == [401] * SOURCE_FAILURES  # again, after the first refusal ran out
    clock.advance(SOURCE_BLOCK_S + 1)
    assert login(web, "pedel-anna", source="127.0.0.2").status_code == 401  # twice as long the second time
    clock.advance(SOURCE_BLOCK_S)
    assert login(web, "pedel-anna", source="127.0.0.2").status_code == 303


def test_behind_the_proxy_the_forwarded_address_counts_and_elsewhere_the_header_is_ignored(fleet):
    web, _, _ = fleet
    # the proxy appends the address it saw: what the client wrote before it is the client's own word
    assert codes(web, SOURCE_FAILURES, forwarded="10.9.8.7, 198.51.100.7") == [401] * SOURCE_FAILURES
    assert login(web, "pedel-anna", forwarded="198.51.100.7").status_code == 401
    assert login(web, "pedel-anna", forwarded="198.51.100.8").status_code == 303  # another client of the proxy
    assert login(web, "pedel-anna", forwarded="10.9.8.7").status_code == 303  # the spoofed address counted nothing
    assert login(web, "pedel-anna").status_code == 303  # nor the proxy's own
    assert web.audit.rows()[1]["detail"] == "10.9.8.7"  # the audit log names the browser's address
    # a client that is not the proxy: its header is ignored, its own address counts
    assert codes(web, SOURCE_FAILURES, "127.0.0.2", forwarded="203.0.113.1") == [401] * SOURCE_FAILURES
    assert login(web, "pedel-anna", source="127.0.0.2", forwarded="203.0.113.2").status_code == 401
    assert login(web, "pedel-anna", forwarded="203.0.113.1").status_code == 303


def test_a_proxy_that_forwards_no_address_is_named_in_the_log(fleet, caplog):
    """Without X-Forwarded-For every browser behind the proxy is one address, and one guesser
    would shut them all out: the log says how to set it."""
    web, _, _ = fleet
    web.public_origin = "https://fleet.kommune.example"
    assert login(web, "pedel-anna", forwarded="198.51.100.7").status_code == 303
    assert "X-Forwarded-For" not in caplog.text
    assert login(web, "pedel-anna").status_code == 303
    assert "without X-Forwarded-For: set it in the proxy" in caplog.text


def test_one_argon2_check_at_a_time_per_source_and_two_in_all(fleet):
    web, users, _ = fleet
    web.slots.wait_s = 60.0  # longer than the client waits: a 503 that came back did not wait
    with web.slots.held("127.0.0.2"), web.slots.held("127.0.0.4"):  # a check from each in flight: both slots taken
        busy = login(web, "pedel-anna", "forkert gæt", "127.0.0.2")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"  # at once, never waiting for a slot
        assert users.db.one("SELECT 1 FROM login_sources") is None  # no argon2, nothing counted
        web.slots.wait_s = 0.2
        assert login(web, "pedel-anna", source="127.0.0.3").status_code == 503  # two in all, still
    with web.slots.held("127.0.0.2"):
        assert login(web, "pedel-anna", source="127.0.0.3").status_code == 303  # the other slot is another source's
    assert login(web, "pedel-anna", source="127.0.0.2").status_code == 303


@pytest.mark.parametrize(
    "peer, forwarded, source",
    [
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["10.0.0.1, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["10.0.0.1", "198.51.100.7"], "198.51.100.7"),  # the header twice: the proxy's is the last
        ("::1", ["2001:db8:1:2:aaaa::1"], "2001:db8:1:2::/64"),  # one home's /64 is one source
        ("127.0.0.1", ["::ffff:198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["not an address"], "127.0.0.1"),
        ("127.0.0.2", ["198.51.100.7"], "127.0.0.2"),  # not the proxy
        ("192.0.2.9", ["198.51.100.7"], "192.0.2.9"),
    ],
)
def test_the_source_a_login_counts_against(peer, forwarded, source):
    headers = http.client.HTTPMessage()
    for value in forwarded:
        headers["X-Forwarded-For"] = value
    assert source_of(peer, headers) == source
