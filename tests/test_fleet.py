"""`haldor fleet` against a real Mosquitto: simulated sites, duplicates, out-of-order
delivery, a site that vanishes; the usage numbers against a hand-made table; the page
in headless Chromium."""

from __future__ import annotations

import codecs
import csv
import io
import json
import tempfile
import threading
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from haldor import __version__
from haldor.agent.link import offline_status
from haldor.fleet.ingest import FleetConsumer
from haldor.fleet.report import ALL_TIME, Period, UsageLine, site_rows
from haldor.fleet.serving import FleetServer
from haldor.fleet.store import FleetStore
from haldor.fleet.web import FleetWeb
from haldor.mqtt import BrokerOptions, make_client

from .broker import Broker
from .helpers import wait_for

P = "haldor/v1"
#: the examples' season, whatever day the tests run (the page's default is the season so far)
SEASON = "?from=2026-08-10&to=2027-06-27"


def danish_csv(raw: bytes) -> list[dict[str, str]]:
    """What Danish Excel does with a file: a BOM says UTF-8, and the separator is ";"."""
    assert raw.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


NAMES = {"gym-a": "Gymnastiksal A", "gym-b": "Gymnastiksal B", "a17": "Valby Volley", "a18": "Vanløse Badminton"}


def named(event: dict) -> dict:
    """The usage as a box that sends names (older ones do not)."""
    u = event["usage"]
    return {**event, "usage": {**u, "room_name": NAMES[u["room"]], "association_name": NAMES[u["association"]]}}


def usage(site, booking, start, booked_min, used, no_show=False, room="gym-a", association="a17"):
    return {
        "schema": "haldor.event/1",
        "id": str(uuid.uuid4()),
        "site": site,
        "seq": 1,
        "at": start,
        "type": "booking.usage",
        "door": None,
        "reader": None,
        "credential": None,
        "booking": booking,
        "reason": None,
        "usage": {
            "booked_min": booked_min,
            "first_entry": None,
            "entries": int(used),
            "checkins": 0,
            "used": used,
            "no_show": no_show,
            "room": room,
            "association": association,
            "start": start,
            "closed": False,
            "closed_min": 0,
            "observed": 1.0,
        },
    }


def weekly_usage(rows: list[dict], period: Period = ALL_TIME) -> list[UsageLine]:
    """The usage lines of ``rows`` (a site and its usage each), through a real store."""
    with tempfile.TemporaryDirectory() as folder:
        store = FleetStore(Path(folder) / "fleet.db")
        events = [
            {"id": str(uuid.uuid4()), "site": r["site"], "type": "booking.usage", "booking": str(uuid.uuid4()), "usage": r}
            for r in rows
        ]
        store.store((), events)
        lines = store.weekly_usage(period)
        store.close()
    return lines


def test_weekly_usage_matches_a_hand_made_table():
    rows = [
        {"site": "valby", **usage("valby", "b1", "2026-11-23T17:00:00+01:00", 120, True)["usage"]},
        {"site": "valby", **usage("valby", "b2", "2026-11-24T17:00:00+01:00", 90, False, no_show=True)["usage"]},
        {"site": "valby", **usage("valby", "b3", "2026-11-29T23:30:00+01:00", 60, True)["usage"]},  # Sunday: still week 48
        {"site": "valby", **usage("valby", "b4", "2026-11-30T00:30:00+01:00", 60, True)["usage"]},  # Monday: week 49
        {
            "site": "valby",
            **usage("valby", "b5", "2026-11-25T18:00:00+01:00", 45, True, room="gym-b", association="a18")["usage"],
        },
        {"site": "vanlose", **usage("vanlose", "b1", "2026-11-25T18:00:00+01:00", 120, False, no_show=True)["usage"]},
    ]
    assert weekly_usage(rows) == [
        UsageLine("2026-W48", "valby", "gym-a", "a17", 3, 4.5, 3.0, 1, 0, 0, "valby", "gym-a", "a17"),
        UsageLine("2026-W48", "valby", "gym-b", "a18", 1, 0.75, 0.75, 0, 0, 0, "valby", "gym-b", "a18"),
        UsageLine("2026-W48", "vanlose", "gym-a", "a17", 1, 2.0, 0.0, 1, 0, 0, "vanlose", "gym-a", "a17"),
        UsageLine("2026-W49", "valby", "gym-a", "a17", 1, 1.0, 1.0, 0, 0, 0, "valby", "gym-a", "a17"),
    ]


def test_a_site_without_status_for_three_minutes_is_silent():
    rows = site_rows(
        [
            {"site": "a", "online": 1, "since": 0.0, "seen_at": 1000.0},
            {"site": "b", "online": 1, "since": 0.0, "seen_at": 1100.0},
        ],
        now=1250.0,
    )
    assert [(r["site"], r["online"], r["silent"]) for r in rows] == [("a", False, True), ("b", True, False)]


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_db(request, tmp_path) -> str:
    """The same fleet tests on both backends: a file, and a real PostgreSQL."""
    return str(tmp_path / "fleet.db") if request.param == "sqlite" else request.getfixturevalue("postgres").database()


@pytest.fixture
def fleet(tmp_path, fleet_db):
    broker = Broker(tmp_path / "broker").start()
    store = FleetStore(fleet_db)
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), store)
    consumer.start()
    wait_for(consumer.connected.is_set, what="fleet connected")
    web = FleetWeb(FleetStore(fleet_db), live_poll_s=0.1)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield broker, consumer, store, web
    server.shutdown()
    consumer.stop()
    broker.stop()


class SimulatedSite:
    """A box as the broker sees it: status with a Last Will, and events."""

    def __init__(self, port: int, site: str) -> None:
        self.site = site
        self.client = make_client(f"haldor-{site}")
        self.client.manual_ack_set(False)
        self.client.will_set(
            f"{P}/{site}/status",
            json.dumps(offline_status(site, __version__)),
            qos=1,
            retain=True,
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, leaf: str, doc: dict, retain: bool = False) -> None:
        self.client.publish(f"{P}/{self.site}/{leaf}", json.dumps(doc), qos=1, retain=retain).wait_for_publish(5)

    def status(self, at: str, **kw) -> None:
        self.send(
            "status",
            {
                "schema": "haldor.status/1",
                "site": self.site,
                "online": True,
                "at": at,
                "agent_version": __version__,
                "schedule_version": 42,
                "last_sync": at,
                "clock_trusted": True,
                "mode": "normal",
                "doors": {},
                "readers": {},
                "storage": {"ok": True, "fault": None, "since": None, "waiting": 0, "dropped": 0, "cards_work": True},
                "outbox": {"pending": 3, "oldest": None, "dropped": 0, "capacity": 1_000_000},
                "uptime_s": 60,
                "timezone": "Europe/Copenhagen",
                "names": {"site": self.site.title(), "rooms": {"gym-a": "Gymnastiksal A"}, "doors": {"main": "Hovedindgang"}},
                **kw,
            },
            retain=True,
        )

    def vanish(self) -> None:
        self.client.socket().close()  # no DISCONNECT: the broker speaks the will
        self.client.loop_stop()


def test_sites_events_duplicates_and_a_vanishing_site(fleet):
    broker, consumer, store, web = fleet
    valby, vanlose = SimulatedSite(broker.port, "valby"), SimulatedSite(broker.port, "vanlose")
    valby.status("2026-11-25T17:00:00+01:00")
    vanlose.status(
        "2026-11-25T17:00:05+01:00",
        readers={"main-in": {"ok": False, "fault": "stopped answering"}, "kiosk": {"ok": True, "fault": None}},
    )
    events = [
        named(usage("valby", "b1", "2026-11-23T17:00:00+01:00", 120, True)),
        named(usage("valby", "b2", "2026-11-24T17:00:00+01:00", 90, False, no_show=True)),
        {
            "schema": "haldor.event/1",
            "id": str(uuid.uuid4()),
            "site": "valby",
            "seq": 7,
            "at": "2026-11-25T17:01:00+01:00",
            "type": "door.forced",
            "door": "main",
            "reader": None,
            "credential": None,
            "booking": None,
            "reason": None,
        },
    ]
    for e in reversed(events):  # out of order
        valby.send("events", e)
    for e in events:  # and every one again: delivery is at least once
        valby.send("events", e)
    valby.status("2026-11-25T16:00:00+01:00", schedule_version=41)  # an old status arriving late
    wait_for(lambda: consumer.received >= 9, what="all delivered")
    assert store.counts()["events"] == 3 and consumer.duplicates == 3
    sites = {s["site"]: s for s in store.sites()}
    assert sites["valby"]["schedule_version"] == 42 and sites["valby"]["online"] == 1
    vanlose.vanish()
    wait_for(lambda: {s["site"]: s for s in store.sites()}["vanlose"]["online"] == 0, what="vanlose offline by its will")
    summary = httpx.get(web.url + "api/summary" + SEASON).json()
    assert [(s["site"], s["online"]) for s in summary["sites"]] == [("vanlose", False), ("valby", True)]
    assert [s["reader_faults"] for s in summary["sites"]] == [{"main-in": "stopped answering"}, {}]
    sites_csv = danish_csv(httpx.get(web.url + "sites.csv").content)
    assert sites_csv[0]["Sted"] == "Vanlose" and sites_csv[0]["site_id"] == "vanlose"
    assert sites_csv[0]["Kortlæsere"] == "main-in: stopped answering"
    assert danish_csv(httpx.get(web.url + "usage.csv" + SEASON).content) == [
        {
            "Uge": "2026-W48",
            "Sted": "Valby",
            "Lokale": "Gymnastiksal A",
            "Forening": "Valby Volley",
            "Bookinger": "2",
            "Booket (timer)": "3,5",
            "Brugt (timer)": "2",
            "Brugt %": "57",
            "Udeblevet": "1",
            "Lukket": "0",
            "Ikke set": "0",
            "site_id": "valby",
            "room_id": "gym-a",
            "association_id": "a17",
        }
    ]
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(httpx.get(web.url + "usage.xlsx" + SEASON).content)).active
    header, first = list(sheet.iter_rows(values_only=True))[:2]
    assert dict(zip(header, first, strict=True))["Booket (timer)"] == 3.5  # a number, whatever Excel's language
    valby.client.disconnect()


def access(site: str, type_: str, at: str, seq: int, **fields) -> dict:
    return {
        "schema": "haldor.event/1",
        "id": str(uuid.uuid4()),
        "site": site,
        "seq": seq,
        "at": at,
        "type": type_,
        "door": "main",
        "reader": "main-in",
        "credential": None,
        "booking": None,
        "reason": None,
        **fields,
    }


def test_the_fleet_page_in_a_browser(fleet, tmp_path):
    """A manager's reading: names (ids on hover), local times, decimal comma and a
    singular in Danish, English at a click; the page follows the fleet by itself; a
    site's access log by door and period; no serious accessibility fault."""
    from playwright.sync_api import expect, sync_playwright

    from .test_kiosk import CHROMIUM, OUTPUT, _axe_serious

    broker, consumer, store, web = fleet
    site = SimulatedSite(broker.port, "valby")
    site.status("2026-11-25T17:00:00+01:00")
    site.send("events", named(usage("valby", "b1", "2026-11-23T17:00:00+01:00", 90, True)))
    site.send("events", named(usage("valby", "b2", "2026-11-30T17:00:00+01:00", 60, False, no_show=True)))
    site.send("events", access("valby", "access.granted", "2026-11-23T16:58:00+01:00", 3, credential="c1001", booking="b1"))
    site.send("events", access("valby", "access.denied", "2026-11-23T16:59:00+01:00", 4, credential="c2002", reason="no_booking"))
    wait_for(lambda: store.counts()["events"] == 4, what="events stored")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(web.url + SEASON)
            assert page.locator("h1").inner_text() == "Haldor: 1 sted, 0 offline"
            row = page.locator("#sites [data-site='valby']")
            assert row.locator(".on").count() == 1
            assert row.locator("th").inner_text() == "Valby" and row.locator("th span").get_attribute("title") == "valby"
            assert "25. nov. 2026 17.00" in row.inner_text()  # the site's local time, no zone named: the page's own
            assert page.locator("#chart rect.booked").count() == 2 and page.locator("#chart rect.used").count() == 2
            rows = page.locator("#usage tbody tr").all_inner_texts()
            assert rows[0].split("\t")[:9] == [
                "uge 48, 2026",
                "Valby",
                "Gymnastiksal A",
                "Valby Volley",
                "1",
                "1,5",
                "1,5",
                "100 %",
                "0",
            ]
            assert rows[1].startswith("uge 49, 2026")
            season = page.locator("#season tbody tr").all_inner_texts()
            assert season[0].split("\t")[:5] == ["2026/27", "Valby Volley", "1", "2", "2,5"]
            assert _axe_serious(page) == []
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "fleet.png"), full_page=True)

            # the page follows the fleet without a reload
            page.evaluate("window.notReloaded = true")
            site.send("events", access("valby", "door.forced", "2026-11-25T23:00:00+01:00", 5, reader=None))
            expect(page.locator("#alarms tbody tr")).to_have_count(1, timeout=10_000)
            assert "Dør åbnet uden tilladelse" in page.locator("#alarms").inner_text()
            assert "Hovedindgang" in page.locator("#alarms").inner_text()
            assert page.evaluate("window.notReloaded") is True

            page.get_by_role("link", name="English").click()
            assert page.locator("h1").inner_text() == "Haldor: 1 site, 0 offline"
            assert page.locator("#usage tbody tr").first.inner_text().split("\t")[5] == "1.5"

            page.goto(web.url + "access?site=valby&from=2026-11-23&to=2026-11-23")
            entries = page.locator("#access tbody tr").all_inner_texts()
            assert [e.split("\t")[:5] for e in entries] == [
                ["23. nov. 2026 16.59", "Hovedindgang", "Adgang nægtet", "Ingen booking lige nu", "c2002"],
                ["23. nov. 2026 16.58", "Hovedindgang", "Adgang givet", "", "c1001"],
            ]
            assert _axe_serious(page) == []
            page.screenshot(path=str(OUTPUT / "fleet-access.png"), full_page=True)
            page.goto(web.url + "access?site=valby&from=2026-11-24&to=2026-11-24")
            assert page.locator("#access").count() == 0 and "Ingen adgang i perioden" in page.locator("main").inner_text()
        finally:
            browser.close()
    log = danish_csv(httpx.get(web.url + "access.csv?site=valby&from=2026-11-23&to=2026-11-25").content)
    # the time as Danish Excel reads a date and time (issue 24: an ISO string stayed text), and with its offset for machines
    assert [(r["Kort/kode (id)"], r["type"], r["Tid"], r["at"]) for r in log] == [
        ("", "door.forced", "25-11-2026 23:00:00", "2026-11-25T23:00:00+01:00"),
        ("c2002", "access.denied", "23-11-2026 16:59:00", "2026-11-23T16:59:00+01:00"),
        ("c1001", "access.granted", "23-11-2026 16:58:00", "2026-11-23T16:58:00+01:00"),
    ]
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(httpx.get(web.url + "access.xlsx?site=valby&from=2026-11-23&to=2026-11-25").content)).active
    assert sheet.cell(2, 1).value == datetime(2026, 11, 25, 23, 0)  # a date cell, not text
    site.client.disconnect()


def test_closed_and_unwatched_bookings_are_counted_apart():
    """An association is not blamed for a room it could not use, nor for what the box did not see."""
    start = "2026-11-23T17:00:00+01:00"
    rows = [
        {**usage("s", "b1", start, 120, False, no_show=True)["usage"], "site": "s", "observed": 1.0},
        {**usage("s", "b2", start, 120, False)["usage"], "site": "s", "closed": True, "closed_min": 120},
        {**usage("s", "b3", start, 120, True)["usage"], "site": "s", "closed_min": 60},  # open for an hour, used
        {**usage("s", "b4", start, 120, False)["usage"], "site": "s", "observed": 0.4},  # the box was off
    ]
    (line,) = weekly_usage(rows)
    assert (line.bookings, line.closed, line.unobserved, line.no_shows) == (4, 1, 1, 1)
    assert (line.booked_hours, line.used_hours) == (3.0, 1.0)


def test_two_consumers_sharing_the_load_on_one_postgresql_store_every_event_once(tmp_path, postgres):
    """--shared-group consumers on different machines, one database: no merging by hand.
    The broker hands each message to one of them; one that reconnects may get one
    again, and the database keeps each event once."""
    broker = Broker(tmp_path / "broker").start()
    target = postgres.database()
    consumers = [
        FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(target), client_id=f"fleet-{i}", shared_group="fleet")
        for i in range(2)
    ]
    try:
        for c in consumers:
            c.start()
            wait_for(c.connected.is_set, what="consumer connected")
        sites = [SimulatedSite(broker.port, f"site-{i}") for i in range(4)]
        sent = []
        for n in range(50):
            for site in sites:
                e = usage(site.site, f"b{n}", "2026-11-23T17:00:00+01:00", 60, n % 2 == 0)
                sent.append(e)
                site.send("events", e)
        for e in [e for e in sent if e["site"] == "site-0"][:10]:
            sites[0].send("events", e)  # again: delivery is at least once
        store = FleetStore(target)
        wait_for(lambda: sum(c.received for c in consumers) >= len(sent) + 10, timeout=20, what="all received")
        assert sum(c.duplicates for c in consumers) == 10
        assert all(c.received > 0 for c in consumers)  # both did their share
        assert store.counts()["events"] == len(sent)
        for site in sites:
            site.client.disconnect()
    finally:
        for c in consumers:
            c.stop()
        broker.stop()


def test_odd_values_from_a_box_never_stall_a_batch(fleet_db):
    """A string where an integer belongs would fail PostgreSQL's insert, and the batch
    would be tried again for ever: odd values are stored as nothing."""
    store = FleetStore(fleet_db)
    odd = {**usage("valby", "b1", "2026-11-23T17:00:00+01:00", 60, True), "seq": "seven", "door": 5, "credential": ["x"]}
    status = {"online": True, "schedule_version": "42", "outbox": [1], "timezone": "Mars/Olympus", "names": {"rooms": [1]}}
    assert store.store([("valby", status, 1.0)], [odd]) == 1
    assert store.counts() == {"events": 1, "sites": 1}
    (site,) = store.sites()
    assert (site["schedule_version"], site["timezone"], site["name"]) == (None, None, None)
    assert site_rows([site], 2.0)[0]["rooms"] == {}  # and the page still shows it
    store.close()


def test_danish_and_english_figures():
    from haldor.fleet.formats import count, number, percent, week, when

    assert (number(1234.5, "da"), number(1234.5, "en"), number(3.0, "da")) == ("1.234,5", "1,234.5", "3")
    assert (percent(0.57, "da"), percent(0.57, "en")) == ("57 %", "57%")
    assert [count(n, "site", "da") for n in (0, 1, 2)] == ["0 steder", "1 sted", "2 steder"]
    assert [count(n, "site", "en") for n in (1, 2)] == ["1 site", "2 sites"]
    assert (week("2026-W48", "da"), week("2027-W01", "en")) == ("uge 48, 2026", "week 1, 2027")
    # each site's own zone; named when it is not the page's; Danish whatever the browser, English with ?lang=en
    assert when("2026-11-25T16:02:00+00:00", "Europe/Copenhagen", "Europe/Copenhagen", "da") == "25. nov. 2026 17.02"
    assert when("2026-11-25T17:02:00+01:00", "Atlantic/Faroe", "Europe/Copenhagen", "da") == "25. nov. 2026 16.02 WET"
    assert when("2026-11-25T16:02:00+00:00", "Europe/Copenhagen", "Europe/Copenhagen", "en") == "25 Nov 2026 17:02"
    assert when(None, None, "Europe/Copenhagen", "da") == "-"
    assert when("not a time", None, "Europe/Copenhagen", "da") == "not a time"


@pytest.mark.parametrize(
    "year, week, season",
    [
        (2026, 33, "2026/27"),
        (2026, 53, "2026/27"),
        (2027, 1, "2026/27"),
        (2027, 26, "2026/27"),
        (2027, 27, None),
        (2027, 32, None),
    ],
)
def test_a_season_runs_from_week_33_to_week_26(year, week, season):
    from haldor.fleet.report import season_of

    assert season_of(year, week) == season


def test_season_totals_and_the_period_filter():
    from datetime import date

    from haldor.fleet.report import season_start, season_totals

    rows = [
        {**named(usage("valby", "b1", "2026-08-10T17:00:00+02:00", 60, True))["usage"], "site": "valby"},  # week 33
        {**named(usage("vanlose", "b2", "2027-06-28T17:00:00+02:00", 60, True))["usage"], "site": "vanlose"},  # week 26
        {**named(usage("vanlose", "b3", "2027-07-05T17:00:00+02:00", 60, True))["usage"], "site": "vanlose"},  # summer
        {**named(usage("valby", "b4", "2026-08-09T17:00:00+02:00", 60, False))["usage"], "site": "valby"},  # week 32
    ]
    (season,) = season_totals(weekly_usage(rows))
    assert (season.season, season.association_name, season.sites, season.bookings, season.used_hours) == (
        "2026/27",
        "Valby Volley",
        2,
        2,
        2.0,
    )
    one_day = weekly_usage(rows, Period(date(2026, 8, 10), date(2026, 8, 10)))
    assert [(u.week, u.site_name, u.bookings) for u in one_day] == [("2026-W33", "valby", 1)]
    assert season_start(date(2026, 11, 26)) == date(2026, 8, 10)
    assert season_start(date(2027, 7, 15)) == date(2026, 8, 10)  # the summer break: the last season's


def test_a_mistyped_date_is_said_and_the_rest_still_shown():
    from datetime import date

    from haldor.fleet.view import read_view

    view = read_view("from=2026-13-01&to=2026-11-30&lang=en&site=valby", date(2026, 11, 26))
    assert view.problems == ("Unknown date (write YYYY-MM-DD): 2026-13-01",)
    assert (view.period.first, view.period.last, view.site, view.lang) == (None, date(2026, 11, 30), "valby", "en")
    assert read_view("", date(2026, 11, 26)).period.first == date(2026, 8, 10)  # the season so far
    assert read_view("", date(2026, 11, 26), access=True).period.first == date(2026, 11, 20)  # the last week
    assert read_view("lang=xx", date(2026, 11, 26)).lang == "da"


def test_an_old_fleet_database_gains_the_new_columns(tmp_path):
    """A fleet.db made before names were sent keeps its events and gets the columns."""
    import sqlite3

    from haldor.fleet.schema import MIGRATIONS

    db = sqlite3.connect(tmp_path / "fleet.db")
    db.executescript(MIGRATIONS[0].format(float="REAL", bigint="INTEGER"))
    db.execute("INSERT INTO events(id, site, type) VALUES ('e1', 'valby', 'door.forced')")
    db.commit()
    db.close()
    store = FleetStore(tmp_path / "fleet.db")
    assert store.counts()["events"] == 1
    store.set_status("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00", "timezone": "Europe/Copenhagen"}, 1.0)
    assert store.sites()[0]["timezone"] == "Europe/Copenhagen"
    store.close()


def test_fleet_processes_starting_at_once_on_a_new_postgresql_database(postgres):
    """Two consumers started together on an empty database: one makes the schema, the
    others wait for it (CREATE TABLE IF NOT EXISTS is not safe against itself)."""
    target = postgres.database()
    barrier, errors = threading.Barrier(4), []

    def start() -> None:
        barrier.wait()
        try:
            FleetStore(target).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


class PoisonStore(FleetStore):
    """A database that refuses one event for ever, and takes every other."""

    def store(self, statuses, events):
        events = list(events)
        if any(e.get("booking") == "poison" for e in events):
            raise ValueError("the database refuses this row")
        return super().store(statuses, events)


def test_one_message_the_database_refuses_never_stops_the_others(tmp_path):
    """Tried alone, it still fails while the database takes writes: it is dropped (logged,
    counted) and every other event of its batch, and after it, is stored."""
    broker = Broker(tmp_path / "broker").start()
    target = str(tmp_path / "fleet.db")
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), PoisonStore(target))
    consumer.start()
    site = SimulatedSite(broker.port, "valby")
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        events = [usage("valby", f"b{i}", "2026-11-23T17:00:00+01:00", 60, True) for i in range(20)]
        events[7] = usage("valby", "poison", "2026-11-23T17:00:00+01:00", 60, True)
        for e in events:
            site.send("events", e)
        wait_for(
            lambda: consumer.dropped == 1 and FleetStore(target).counts()["events"] == 19, timeout=15, what="the rest stored"
        )
        site.send("events", usage("valby", "b99", "2026-11-23T17:00:00+01:00", 60, True))
        wait_for(lambda: FleetStore(target).counts()["events"] == 20, what="later events stored too")
    finally:
        site.client.disconnect()
        consumer.stop()
        broker.stop()


def test_hostile_values_from_a_box(tmp_path):
    """An event for another site on a box's topic, numbers a box never sends, and a
    status from a clock years ahead: none of them changes what the page shows of others."""
    store = FleetStore(tmp_path / "fleet.db")
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", 1), store)
    forced = {**access("aarhus", "door.forced", "2026-11-25T23:00:00+01:00", 1, reader=None)}
    infinite = b'{"id": "x1", "type": "booking.usage", "booking": "b1", "usage": {"booked_min": Infinity}}'
    huge = usage("valby", "b2", "2026-11-23T17:00:00+01:00", 60, True)
    huge["usage"]["booked_min"] = 1e308
    consumer.handle_batch(
        [
            (f"{P}/valby/events", json.dumps(forced).encode()),  # says aarhus on valby's topic
            (f"{P}/valby/events", infinite),
            (f"{P}/valby/events", json.dumps(huge).encode()),
        ],
        1.0,
    )
    assert store.counts()["events"] == 1 and store.access_log("aarhus") == []
    assert store.weekly_usage() == []  # the event is kept, its figures are not
    now = datetime.fromisoformat("2026-11-26T08:00:00+01:00").timestamp()
    store.set_status("valby", {"online": True, "at": "2036-01-01T00:00:00+01:00", "mode": "normal"}, now)
    store.set_status("valby", {"online": True, "at": "2026-11-26T08:01:00+01:00", "mode": "lockdown"}, now + 60)
    assert store.sites()[0]["mode"] == "lockdown"
    store.set_status("valby", {"online": "false", "at": "2026-11-26T08:02:00+01:00"}, now + 120)
    assert store.sites()[0]["online"] == 0  # only true is true
    store.close()


def test_one_usage_per_booking_whatever_event_carried_it(tmp_path):
    store = FleetStore(tmp_path / "fleet.db")
    first = usage("valby", "b1", "2026-11-23T17:00:00+01:00", 60, True)
    again = {**first, "id": str(uuid.uuid4())}  # a box restored from a copy reports it again
    store.store((), [first, again])
    (line,) = store.weekly_usage()
    assert line.bookings == 1 and store.counts()["events"] == 2
    store.close()


def test_formulas_from_a_box_stay_text_in_the_spreadsheets():
    from openpyxl import load_workbook

    from haldor.fleet.exports import Table, to_csv, to_xlsx

    table = Table("t", ["Forening", "Timer"], [['=HYPERLINK("http://x","Klik")', 1.5], ["@SUM(1+1)", 2.0]])
    sheet = load_workbook(io.BytesIO(to_xlsx(table))).active
    assert [(c.value, c.data_type) for c in sheet["A"]][1:] == [('=HYPERLINK("http://x","Klik")', "s"), ("@SUM(1+1)", "s")]
    rows = danish_csv(to_csv(table, "da"))
    assert [r["Forening"] for r in rows] == ['\'=HYPERLINK("http://x","Klik")', "'@SUM(1+1)"]


@pytest.mark.parametrize(
    "name",
    [
        " =1+1",  # a space
        "\u00a0=1+1",  # a no-break space
        "\u3000+1",  # an ideographic space
        "\u2003@SUM(A1)",  # an em space
        "\n-1+1",
        " \t=1+1",
        "\u2028=1+1",  # a line separator
        "\u200b=1+1",  # a zero-width space
        "\uff1d1+1",  # a full-width =
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
        ' \uff1dHYPERLINK("http://x")',
    ],
)
def test_a_formula_after_spaces_or_in_full_width_stays_text(name):
    """Regression (issue 23): only a sign at the very start was prefixed, so " =1+1" and
    a full-width "\uff1d" reached a spreadsheet as formulas."""
    from openpyxl import load_workbook

    from haldor.fleet.exports import Table, to_csv, to_xlsx

    table = Table("t", ["Forening", "Timer"], [[name, 1.0], [" Valby Volley", 2.0], ["a=b", 3.0]])
    assert [r["Forening"] for r in danish_csv(to_csv(table, "da"))] == ["'" + name, " Valby Volley", "a=b"]
    sheet = load_workbook(io.BytesIO(to_xlsx(table))).active
    assert (sheet["A2"].value, sheet["A2"].data_type) == (name, "s")  # a text cell: never a formula


def test_the_page_keeps_up_and_says_what_it_cannot_show(fleet):
    broker, consumer, store, web = fleet
    site = SimulatedSite(broker.port, "valby")
    site.status("2026-11-25T17:00:00+01:00")
    site.send("events", usage("valby", "b1", "2026-11-23T17:00:00+01:00", 90, True))  # no room name: the status's
    wait_for(lambda: store.counts()["events"] == 1, what="stored")
    page = httpx.get(web.url + SEASON).text
    assert "Gymnastiksal A" in page
    site.send("events", usage("valby", "b2", "2026-11-24T17:00:00+01:00", 60, False, association="a18"))
    wait_for(lambda: store.counts()["events"] == 2, what="stored")
    assert "a18" in httpx.get(web.url + SEASON).text  # a new booking's figures: summed again at once
    assert "href='/access?from=2026-08-10&amp;to=2027-06-27&amp;lang=da&amp;site=valby'" in page  # the period kept
    far = httpx.get(web.url + "?to=9999-12-31")
    assert far.status_code == 200 and "Ukendt dato" in far.text
    unknown = httpx.get(web.url + "?site=nope")
    assert unknown.status_code == 200 and "Ukendt sted; viser alle steder" in unknown.text
    assert httpx.get(web.url + "access?site=valby&door=nope").text.count("Ukendt dør") == 1
    assert httpx.get(web.url + "?from=20261101").text.count("Ukendt dato") == 1
    site.client.disconnect()


def test_the_chart_runs_evenly_through_quiet_weeks_and_the_new_year():
    from haldor.fleet.report import weekly_totals

    lines = weekly_usage(
        [
            {**usage("valby", "b1", "2026-12-21T17:00:00+01:00", 60, True)["usage"], "site": "valby"},  # week 52
            {**usage("valby", "b2", "2027-01-05T17:00:00+01:00", 120, False)["usage"], "site": "valby"},  # week 1
        ]
    )
    assert weekly_totals(lines) == [("2026-W52", 1.0, 1.0), ("2026-W53", 0.0, 0.0), ("2027-W01", 2.0, 0.0)]


def test_a_command_from_elsewhere_enters_the_audit_log_once_with_the_boxs_answer(fleet_db):
    from haldor.fleet.commands import AuditLog

    store = FleetStore(fleet_db)
    result = access(
        "valby",
        "command.result",
        "2026-11-25T17:00:00+01:00",
        9,
        reader=None,
        reason="expired",
        command="c-77",
        action="unlock",
        ok=False,
        by="pedel-anna",
        why="Stævne",
    )
    store.store((), [result])
    store.store((), [{**result, "id": str(uuid.uuid4())}])  # the same answer again, another event id: still one row
    (row,) = AuditLog(store.db).rows("valby")
    assert (row["who"], row["action"], row["detail"], row["ok"], row["error"], row["command"]) == (
        "pedel-anna",
        "unlock",
        "Stævne",
        0,
        "expired",
        "c-77",
    )
