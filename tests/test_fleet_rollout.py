"""A release rolled out in stages from the fleet's page (issue 27): the form planned and
started by an operator, the signed ``update`` sent through the fleet's own command key to
simulated boxes on a real Mosquitto, each stage waited for on the answers and statuses the
fleet stores; a stage with a failing box stops it and the later stages get nothing; an
operator stops one; a viewer and a forged form are refused."""

from __future__ import annotations

import html
import json
import math
import re
import time

import httpx
import pytest

from haldor import cli
from haldor.fleet.commands import Commander
from haldor.fleet.ingest import FleetConsumer
from haldor.fleet.operators import Operators
from haldor.fleet.rollout_book import RolloutBook
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.integrator import documents
from haldor.mqtt import BrokerOptions
from haldor.sql import Database

from .helpers import wait_for
from .releases import build_wheel
from .sim_boxes import SimulatedBoxes
from .test_fleet import fleet_db  # noqa: F401 (a fixture: SQLite and PostgreSQL)

PASSWORD = "korrekt hest batteri"
SITES = [f"site-{i:02d}" for i in range(100)]
N = len(SITES)
#: the boxes of the stages test and 25%
SHARE = math.ceil(N * 25 / 100)
URL = "http://127.0.0.1:1/haldor-0.2.0-py3-none-any.whl"


@pytest.fixture
def keys(tmp_path):
    ops, _, _ = documents.keygen("fleet-commands", tmp_path / "keys")
    release, _, _ = documents.keygen("release", tmp_path / "keys")
    return ops, release


@pytest.fixture
def manifest(tmp_path, keys, capsys):
    wheel = build_wheel(tmp_path, "0.2.0")
    out = tmp_path / "manifest.json"
    assert cli.main(["release", "sign", str(wheel), "--key", str(keys[1]), "--out", str(out)]) == 0
    capsys.readouterr()
    return out.read_text()


@pytest.fixture
def fleet(tmp_path, broker, keys):
    """The fleet's page with its consumer and command key, an operator and a viewer."""
    db = str(tmp_path / "fleet.db")
    users = Operators(Database.open(db))
    users.add("pedel-anna", PASSWORD, "operator")
    users.add("kontor-bo", PASSWORD, "viewer")
    opts = BrokerOptions("127.0.0.1", broker.port)
    consumer = FleetConsumer(opts, FleetStore(db), command_results=True)
    web = FleetWeb(FleetStore(db), live_poll_s=0.1)
    web.auth = Sessions(users, secure=False)
    web.commander = Commander(consumer.client, opts, str(keys[0]), "fleet-commands", web.audit)
    web.rollouts.poll_s = 0.02
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = f"http://127.0.0.1:{server.server_address[1]}"
    consumer.start()
    wait_for(consumer.connected.is_set, what="the fleet connected")
    yield web
    web.rollouts.stop(users.get("pedel-anna"))
    server.shutdown()
    consumer.stop()


def boxes(broker, keys, web, failing=frozenset(), silent=()) -> SimulatedBoxes:
    made = SimulatedBoxes(
        broker.port,
        SITES + list(silent),
        command_keys=documents.public_keys([str(keys[0]).removesuffix(".key") + ".pub"]),
        release_keys=documents.public_keys([str(keys[1]).removesuffix(".key") + ".pub"]),
        failing=failing,
        silent=frozenset(silent),
    )
    wait_for(lambda: len(RolloutBook(web.store.db).versions()) == len(SITES) + len(silent), what="every box's status")
    return made


def login(web, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=web.url)
    client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"})
    page = client.get("/releases")
    assert page.status_code == 200
    return client, re.search(r"name='csrf' value='([^']+)'", page.text).group(1)


def form(csrf: str, manifest: str, action: str, **extra: str) -> dict[str, str]:
    return {"csrf": csrf, "action": action, "manifest": manifest, "url": URL, "test": "site-00,site-01", **extra}


def state(client: httpx.Client) -> str:
    found = re.search(r"id='rollout-state' data-state='(\w+)'", client.get("/releases").text)
    return found.group(1) if found else ""


def stages(client: httpx.Client, lang: str = "da") -> dict[str, tuple[int, int, int]]:
    page = client.get("/releases", params={"lang": lang}).text
    rows = re.findall(r"<tr data-stage='([^']+)' data-done='(\d+)' data-failed='(\d+)' data-count='(\d+)'>", page)
    return {name: (int(d), int(f), int(c)) for name, d, f, c in rows}


def test_an_operator_plans_and_starts_a_rollout_that_runs_through_its_stages(fleet, broker, keys, manifest):
    sims = boxes(broker, keys, fleet)
    try:
        client, csrf = login(fleet, "pedel-anna")
        fields = {k: v for k, v in form(csrf, "", "plan", stages="test,25%,all").items() if k != "manifest"}
        upload = {"manifest_file": ("manifest.json", manifest.encode(), "application/json")}
        planned = client.post("/releases", data=fields, files=upload)  # the file, as a browser uploads it
        assert planned.status_code == 200, planned.text
        assert f"Plan for 0.2.0: {N} boks(e) opdateres, 0 kører den allerede" in planned.text
        assert re.findall(r"<tr data-stage='([^']+)'><td>[^<]*</td><td>(\d+)</td>", planned.text) == [
            ("test", "2"),
            ("25%", str(SHARE - 2)),
            ("all", str(N - SHARE)),
        ]
        assert not any(sims.commands.values())  # a plan sends nothing
        start = re.search(r"<form method='post' action='[^']*' id='start'>(.*?)</form>", planned.text, re.S).group(1)
        fields = {k: html.unescape(v) for k, v in re.findall(r"name='(\w+)' value='([^']*)'", start)}
        assert (
            fields["action"] == "start"
            and fields["stages"] == "test,25%,all"
            and json.loads(fields["manifest"]) == json.loads(manifest)
        )
        began = time.monotonic()
        started = client.post("/releases", data=fields, follow_redirects=False)
        assert started.status_code == 303
        wait_for(lambda: state(client) == "done", timeout=20, what="the rollout done")
        print(f"\na rollout from the page to {len(SITES)} simulated boxes: {time.monotonic() - began:.2f} s")
        assert stages(client) == {"test": (2, 0, 2), "25%": (SHARE - 2, 0, SHARE - 2), "all": (N - SHARE, 0, N - SHARE)}
        assert set(sims.versions.values()) == {"0.2.0"} and all(len(c) == 1 for c in sims.commands.values())
        page_en = client.get("/releases", params={"lang": "en"}).text
        assert "Rollout of 0.2.0" in page_en and "done: every box runs the new release" in page_en
        assert "started by pedel-anna; 0 ran it already" in page_en
        assert f"{N - SHARE} of {N - SHARE} updated, 0 failed, 0 waiting" in page_en
        page_da = client.get("/releases").text
        assert "Udrulning af 0.2.0" in page_da and f"{N - SHARE} af {N - SHARE} opdateret, 0 fejlet, 0 venter" in page_da
        assert f"<tr data-version='0.2.0'><td>0.2.0</td><td>{N}</td></tr>" in page_da
        actions = [r["action"] for r in fleet.audit.rows()]
        assert actions.count("update") == N and actions.count("rollout_stage") == 3
        assert {"rollout_start", "rollout_done"} <= set(actions)
        again = client.post("/releases", data=form(csrf, manifest, "plan"))  # every box runs it now
        assert f"{N} kører den allerede" in again.text
    finally:
        sims.close()


def test_a_failing_box_stops_the_rollout_and_later_stages_get_nothing(fleet, broker, keys, manifest):
    sims = boxes(broker, keys, fleet, failing=frozenset({"site-03"}))
    try:
        client, csrf = login(fleet, "pedel-anna")
        started = client.post("/releases", data=form(csrf, manifest, "start", stages="test,25%,all"), follow_redirects=False)
        assert started.status_code == 303
        wait_for(lambda: state(client) == "failed", timeout=20, what="the rollout stopped")
        assert stages(client) == {"test": (2, 0, 2), "25%": (SHARE - 3, 1, SHARE - 2), "all": (0, 0, N - SHARE)}
        page = client.get("/releases", params={"lang": "en"}).text
        assert (
            f"stopped after too many failures: 1 failure(s) in stage 25%, at most 0 allowed; {N - SHARE} box(es) not touched"
            in page
        )
        assert "site-03: update to 0.2.0 rolled back to 0.1.0: self-check not passed" in page
        assert [s for s, c in sims.commands.items() if c] == SITES[:SHARE]
        assert "rollout_stop" in [r["action"] for r in fleet.audit.rows()]
    finally:
        sims.close()


def test_an_operator_stops_a_rollout_waiting_on_a_silent_box(tmp_path, fleet, broker, keys, manifest):
    sims = boxes(broker, keys, fleet, silent=["zz-silent"])  # it never answers
    try:
        client, csrf = login(fleet, "pedel-anna")
        data = form(csrf, manifest, "start", stages="test,all", test="zz-silent")
        assert client.post("/releases", data=data, follow_redirects=False).status_code == 303
        wait_for(lambda: "update" in [r["action"] for r in fleet.audit.rows()], what="the test group's command")
        assert state(client) == "running" and stages(client)["test"] == (0, 0, 1)
        assert "id='stop'" in client.get("/releases").text
        stopped = client.post("/releases", data={"csrf": csrf, "action": "stop"}, follow_redirects=False)
        assert stopped.status_code == 303
        assert state(client) == "stopped"
        assert [s for s, c in sims.commands.items() if c] == ["zz-silent"]  # the stage 'all' was never sent
        assert "rollout_stop" in [r["action"] for r in fleet.audit.rows()]
        kept = RolloutBook(FleetStore(str(tmp_path / "fleet.db")).db).latest()  # what a reload, or another process, reads
        assert kept is not None and (kept["state"], kept["why"]) == ("stopped", "stopped by pedel-anna")
    finally:
        sims.close()


def test_a_viewer_and_a_forged_form_cannot_start_one(fleet, broker, keys, manifest):
    sims = boxes(broker, keys, fleet)
    try:
        viewer, csrf = login(fleet, "kontor-bo")
        page = viewer.get("/releases").text
        assert "Kun en operatør kan starte en udrulning" in page and "id='rollout'" not in page
        refused = viewer.post("/releases", data=form(csrf, manifest, "start", stages="all"))
        assert refused.status_code == 403
        operator, token = login(fleet, "pedel-anna")
        forged = operator.post("/releases", data=form("forged", manifest, "start", stages="all"))
        assert forged.status_code == 403
        other = operator.post("/releases", data=form(token, manifest, "start"), headers={"Origin": "https://evil.example"})
        assert other.status_code == 403
        bad = operator.post("/releases", data=form(token, '{"doc": "{}", "sig": "x"}', "plan"))
        assert bad.status_code == 400 and "manifest" in bad.text
        assert not any(sims.commands.values()) and fleet.rollouts.latest() is None
        assert [r["action"] for r in fleet.audit.rows()].count("refused") == 1  # the viewer's try
        fleet.commander = None
        assert "Fleeten har ingen kommandonøgle" in operator.get("/releases").text
    finally:
        sims.close()


def test_a_box_counts_as_done_only_once_it_answered_ok_and_its_status_shows_the_release():
    from haldor.integrator.stages import outcome

    assert outcome(None, "0.2.0", "0.2.0") == ""  # no answer yet
    assert outcome({"ok": True, "error": None}, "0.1.0", "0.2.0") == ""  # its status not yet new
    assert outcome({"ok": True, "error": None}, "0.2.0", "0.2.0") is None
    assert outcome({"ok": False, "error": "not sent: broker down"}, "0.1.0", "0.2.0") == "not sent: broker down"


def test_a_rollout_s_rows_on_sqlite_and_postgresql_and_one_cut_off_by_a_restart(fleet_db):  # noqa: F811
    """What the page reads after a reload, from the answers and statuses the consumer stored;
    a rollout the book says runs but no thread of this process runs was cut off."""
    from haldor.fleet.operators import Operator
    from haldor.fleet.rollout_book import Planned
    from haldor.fleet.rollouts import Rollouts

    store = FleetStore(fleet_db)
    for site, version in (("a", "0.1.0"), ("b", "0.1.0"), ("c", "0.2.0")):
        store.set_status(site, {"online": True, "agent_version": version}, 1000.0)
    book = RolloutBook(store.db)
    assert book.versions() == {"a": "0.1.0", "b": "0.1.0", "c": "0.2.0"}
    planned = Planned("0.2.0", URL, {"doc": "{}", "sig": "x"}, ["test", "all"], ["a"], 0, 60.0, [["a"], ["b"]], ["c"])
    rollout = book.create(planned, "pedel-anna", 1000.0)
    audit = FleetWeb(store).audit
    for site in ("a", "b"):
        audit.record(1000.0, Operator("pedel-anna", "operator"), "update", site=site, command=f"cmd-{site}")
        book.sent(rollout, site, f"cmd-{site}", 1000.0)
    assert book.judge(rollout, 0, "0.2.0") == 1  # no answer yet
    store.command_results([("a", {"id": "cmd-a", "ok": True, "error": None})], 1001.0)
    assert book.judge(rollout, 0, "0.2.0") == 1  # ok, but its status still says 0.1.0
    store.set_status("a", {"online": True, "agent_version": "0.2.0"}, 1002.0)
    store.command_results([("b", {"id": "cmd-b", "ok": False, "error": "rolled back"})], 1002.0)
    assert book.judge(rollout, 0, "0.2.0") == 0 and book.judge(rollout, 1, "0.2.0") == 0
    assert book.counts(rollout) == {-1: {"skipped": 1}, 0: {"done": 1}, 1: {"failed": 1}}
    assert book.failures(rollout) == [("b", "rolled back")]
    assert Rollouts(RolloutBook(FleetStore(fleet_db).db), audit).latest()["state"] == "interrupted"


def test_the_page_lists_versions_by_their_numbers():
    from haldor.integrator.stages import version_order

    assert sorted(["0.10.0", None, "0.9.0", "odd", "0.2.0"], key=version_order) == ["0.2.0", "0.9.0", "0.10.0", "odd", None]
