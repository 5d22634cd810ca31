"""`haldor bridge`: calendar files and sheets in, signed schedules out, applied by a real
agent over a real Mosquitto."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import openpyxl
import pytest

from haldor.bridge import service, settings, sheets
from haldor.bridge.calendar import AssociationRule, booking_id, read_feed
from haldor.bridge.state import BridgeState
from haldor.errors import DocumentError

from .broker import Broker, Watcher
from .helpers import SITE, site_config, wait_for
from .test_tools import ENV, haldor

CPH = ZoneInfo("Europe/Copenhagen")
NAMES = {"a17": "a17", "valby volley": "a17", "a18": "a18"}


def calendar(*events: icalendar.Event) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Haldor tests//")
    cal.add("version", "2.0")
    for e in events:
        cal.add_component(e)
    return cal.to_ical()


def event(uid: str, start: datetime, hours: float = 2, *, categories=("a17",), **props) -> icalendar.Event:
    e = icalendar.Event()
    e.add("uid", uid)
    e.add("summary", props.pop("summary", "Volleyball U14"))
    e.add("dtstart", start)
    e.add("dtend", start + timedelta(hours=hours))
    if categories:
        e.add("categories", list(categories))
    for key, value in props.items():
        e.add(key.replace("_", "-"), value)
    return e


def feed(data: bytes, start: datetime, days: int = 60):
    return read_feed(
        data,
        "gym-a.ics",
        site=SITE,
        room="gym-a",
        tz=CPH,
        start=start,
        end=start + timedelta(days=days),
        rule=AssociationRule("categories"),
        associations=NAMES,
    )


def test_a_weekly_booking_stays_at_19_local_across_the_end_of_summer_time():
    first = datetime(2026, 10, 13, 19, 0, tzinfo=CPH)  # summer time ends on Sunday 25 October
    weekly = event("weekly@booking", first, rrule={"freq": "weekly", "count": 4})
    got = feed(calendar(weekly), first - timedelta(days=1))
    starts = [b["start"] for b in got.bookings]
    assert starts == [
        "2026-10-13T19:00:00+02:00",
        "2026-10-20T19:00:00+02:00",
        "2026-10-27T19:00:00+01:00",
        "2026-11-03T19:00:00+01:00",
    ]
    assert {b["association"] for b in got.bookings} == {"a17"} and got.problems == []


def test_cancelled_moved_and_tentative_instances():
    first = datetime(2026, 11, 3, 19, 0, tzinfo=CPH)
    weekly = event("w@b", first, rrule={"freq": "weekly", "count": 4}, exdate=first + timedelta(weeks=3))
    moved = event("w@b", first + timedelta(weeks=1, days=1, hours=-1), categories=(), recurrence_id=first + timedelta(weeks=1))
    cancelled = event(
        "w@b", first + timedelta(weeks=2), categories=(), recurrence_id=first + timedelta(weeks=2), status="CANCELLED"
    )
    tentative = event("t@b", first + timedelta(days=2), status="TENTATIVE", categories=("Valby Volley",))
    got = feed(calendar(weekly, moved, cancelled, tentative), first - timedelta(days=1))
    by_start = {b["start"]: b for b in got.bookings}
    assert sorted(by_start) == ["2026-11-03T19:00:00+01:00", "2026-11-05T19:00:00+01:00", "2026-11-11T18:00:00+01:00"]
    moved_booking = by_start["2026-11-11T18:00:00+01:00"]
    assert moved_booking["id"] == booking_id("w@b", first + timedelta(weeks=1), "gym-a")  # the instance it replaces
    assert moved_booking["association"] == "a17"  # from the series it belongs to
    assert by_start["2026-11-05T19:00:00+01:00"]["status"] == "pending"  # tentative never grants
    assert by_start["2026-11-03T19:00:00+01:00"]["status"] == "approved"


def test_an_event_without_a_known_association_is_reported_and_left_out():
    start = datetime(2026, 11, 3, 19, 0, tzinfo=CPH)
    got = feed(calendar(event("x@b", start, categories=("Ukendt klub",))), start - timedelta(days=1))
    assert got.bookings == []
    assert "no association from categories ['Ukendt klub']" in got.problems[0]


def test_excel_csv_with_bom_and_semicolons_and_a_bad_row(tmp_path):
    path = tmp_path / "credentials.csv"
    path.write_bytes(
        "\ufeffId;Association;Card;PIN;Role;Valid_until;Name\r\n"
        "c1;a17;04A1B2C3D4E5F6;4821;member;30-06-2027;Anne Hansen\r\n"
        "c2;a17;nonsense;;member;;Bo Jensen\r\n"
        "c3;;em:0A0B0C0D0E;;caretaker;;Pedel\r\n"
        ";;;;;;\r\n".encode()
    )
    sheet = sheets.read_sheet(path, sheets.COLUMNS["credentials"], sheets.PARSERS["credentials"], sheets.Context(CPH))
    assert [c["id"] for c in sheet.items] == ["c1", "c3"]
    assert sheet.items[0]["card"] == "uid:04A1B2C3D4E5F6"
    assert sheet.items[0]["valid_until"] == "2027-06-30T23:59:59+02:00"
    assert not any("Anne" in json.dumps(c) for c in sheet.items)  # names stay in the sheet
    assert len(sheet.problems) == 1 and sheet.problems[0].startswith(f"{path}:3: card: ")


def test_an_xlsx_sheet_reads_as_its_csv(tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    book.active.append(["a17", "Valby Volley"])
    book.save(tmp_path / "associations.xlsx")
    rows = sheets.read_rows(tmp_path / "associations.xlsx")
    assert rows == [sheets.Row(2, {"id": "a17", "name": "Valby Volley"})]


class Municipality:
    """The sheets, a feed and the bridge's configuration for two sites."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.dir = tmp_path
        haldor("keygen", "bookings-2026", "--dir", str(tmp_path))
        self.public = (tmp_path / "bookings-2026.pub").read_text().strip()
        (tmp_path / "associations.csv").write_text("id;name\na17;Valby Volley\na18;Valby Badminton\n")
        (tmp_path / "credentials.csv").write_text(
            "id;association;card;pin;role;sites\n"
            "c1;a17;04A1B2C3D4E5F6;4821;member;\n"
            "c2;a18;04AABBCCDD0011;;member;\n"
            "c9;;em:0A0B0C0D0E;;caretaker;valby-skole vanlose-skole\n"
        )
        (tmp_path / "rooms.csv").write_text(
            "site;id;name;doors\nvalby-skole;gym-a;Gymnastiksal A;main\nvanlose-skole;hal;Hallen;main\n"
        )
        self.start = datetime.now(CPH).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        self.write_feed()
        (tmp_path / "hal.ics").write_bytes(calendar(event("hal@b", self.start, categories=("a18",))))
        (tmp_path / "bridge.toml").write_text(
            '[bridge]\nkey = "bookings-2026.key"\nstate = "state/bridge.db"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntls = false\n'
            '[sheets]\nassociations = "associations.csv"\ncredentials = "credentials.csv"\nrooms = "rooms.csv"\n'
            '[[sites]]\nid = "valby-skole"\nplain = true\n[[sites]]\nid = "vanlose-skole"\nplain = true\n'
            '[[feeds]]\nsite = "valby-skole"\nroom = "gym-a"\nsource = "gym-a.ics"\n'
            '[[feeds]]\nsite = "vanlose-skole"\nroom = "hal"\nsource = "hal.ics"\n'
        )
        self.config = tmp_path / "bridge.toml"

    def write_feed(self, hours: float = 3) -> None:
        weekly = event("volley@b", self.start, hours, rrule={"freq": "weekly", "count": 30})
        (self.dir / "gym-a.ics").write_bytes(calendar(weekly))

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return haldor("bridge", "--config", str(self.config), *args, check=False)


@pytest.fixture
def town(tmp_path, broker):
    return Municipality(tmp_path, broker.port)


def test_the_bridge_feeds_a_real_agent_and_then_sends_only_what_changed(town, tmp_path, broker):
    box = site_config(
        tmp_path / "box.toml", tmp_path / "data", port=broker.port, keys={"bookings-2026": town.public}, plain=False
    )
    site_key = re.search(r"--seal-to (\S+)", haldor("keygen", "--site", "--config", str(box)).stdout).group(1)
    town.config.write_text(
        town.config.read_text().replace(
            'id = "valby-skole"\nplain = true\n', f'id = "valby-skole"\npublic_key = "{site_key}"\n', 1
        )
    )
    watcher = Watcher(broker.port)
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(box)], env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(d.get("online") for d in watcher.docs("status")), timeout=20, what="agent online")
        first = town.run("--once")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "valby-skole: haldor.schedule/1" in first.stdout and "vanlose-skole: haldor.schedule/1" in first.stdout
        assert (
            "warning: vanlose-skole: sent in clear" in first.stderr and "warning: valby-skole: sent in clear" not in first.stderr
        )
        wait_for(lambda: [e for e in watcher.events("sync.applied") if e["reason"].startswith("snapshot")], what="applied")
        now = (town.start + timedelta(hours=1, minutes=30)).isoformat()
        decision = json.loads(
            haldor("decide", "--config", str(box), "--door", "main", "--card", "uid:04A1B2C3D4E5F6", "--at", now).stdout
        )
        assert decision["granted"] is True and decision["credential"] == "c1"
        other = json.loads(
            haldor("decide", "--config", str(box), "--door", "main", "--card", "uid:04AABBCCDD0011", "--at", now).stdout
        )
        assert other["granted"] is False  # a18 books Vanløse, not Valby

        assert "nothing to publish" in town.run("--dry-run").stdout  # nothing changed
        town.write_feed(hours=1)  # every instance of the series now ends after one hour
        dry = town.run("--dry-run")
        assert re.search(r"valby-skole: haldor.delta/1 version \d+\n  changed bookings: ", dry.stdout), dry.stdout
        assert "vanlose-skole: nothing to publish" in dry.stdout
        second = town.run("--once")
        assert second.returncode == 0 and "valby-skole: haldor.delta/1" in second.stdout
        assert "vanlose-skole" not in second.stdout
        wait_for(lambda: [e for e in watcher.events("sync.applied") if e["reason"].startswith("delta")], what="delta applied")
        later = json.loads(
            haldor("decide", "--config", str(box), "--door", "main", "--card", "uid:04A1B2C3D4E5F6", "--at", now).stdout
        )
        assert later["granted"] is False  # the booking now ended at the top of the hour (and its grace)
    finally:
        agent.terminate()
        agent.wait(10)
        watcher.close()


def test_a_sheet_cut_in_half_is_refused_whole(town):
    cfg = settings.load(town.config)
    state = BridgeState(cfg.state)
    state.record_rows("credentials", 10)  # the last run saw ten members
    state.close()
    said: list[str] = []
    assert service.run_once(cfg, dry_run=True, say=said.append) == 1
    assert "3 usable rows, 10 at the last run" in said[0] and "nothing published" in said[0]
    assert service.run_once(cfg, dry_run=True, accept_sheets=True, say=said.append) == 0
    state = BridgeState(cfg.state)
    assert state.sheet_rows("credentials") == 10  # a dry run changes nothing, --accept-sheets included
    state.record_rows("credentials", 3)
    state.close()
    # every row refused (roles written in Danish): as good as an empty sheet, refused whole
    text = (town.dir / "credentials.csv").read_text()
    (town.dir / "credentials.csv").write_text(text.replace(";member;", ";medlem;").replace(";caretaker;", ";pedel;"))
    said.clear()
    assert service.run_once(cfg, dry_run=True, say=said.append) == 1
    assert "0 usable rows, 3 at the last run" in said[-1] and "3 rows refused" in said[-1]


def test_a_bad_bridge_configuration_names_the_key(tmp_path):
    path = tmp_path / "bridge.toml"
    path.write_text('[bridge]\nkey = "k.key"\n[sheets]\nassociations = "a.csv"\ncredentials = "c.csv"\nrooms = "r.csv"\n')
    result = haldor("bridge", "--config", str(path), "--once", check=False)
    assert result.returncode == 2 and result.stderr.strip() == f"haldor: {path}: sites: at least one [[sites]] table"


def test_the_service_answers_a_sync_request_with_a_fresh_snapshot(town, broker):
    watcher = Watcher(broker.port, topics="haldor/v1/+/schedule")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "haldor", "bridge", "--config", str(town.config)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        first = wait_for(lambda: watcher.docs("schedule"), timeout=20, what="the first snapshot")[0]
        version = json.loads(first["doc"])["version"]
        asking = Watcher(broker.port, topics="unused")
        asking.client.publish(f"haldor/v1/{SITE}/sync/request", json.dumps({"site": SITE, "have_version": None}), qos=1)
        again = wait_for(lambda: watcher.docs("schedule")[1:], timeout=20, what="a snapshot for the request")[0]
        assert json.loads(again["doc"])["version"] > version
        asking.close()
    finally:
        bridge.terminate()
        assert bridge.wait(10) == 0
        watcher.close()


class FeedServer:
    """A booking system's calendar feed over HTTP, with an ETag."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests, self.status = body, [], 200
        feeds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feeds.requests.append(dict(self.headers))
                etag = f'"{hashlib.sha256(feeds.body).hexdigest()[:16]}"'
                if feeds.status != 200:
                    self.send_response(feeds.status)
                    self.end_headers()
                elif self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Type", "text/calendar")
                    self.end_headers()
                    self.wfile.write(feeds.body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gym-a.ics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_feed_over_http_is_asked_with_its_etag_and_a_failing_feed_keeps_its_site(town):
    server = FeedServer((town.dir / "gym-a.ics").read_bytes())
    try:
        town.config.write_text(town.config.read_text().replace('source = "gym-a.ics"', f'source = "{server.url}"'))
        cfg = settings.load(town.config)
        said: list[str] = []
        assert service.run_once(cfg, dry_run=True, say=said.append) == 0
        assert any(line.startswith("valby-skole: haldor.schedule/1") for line in said)
        state = BridgeState(cfg.state)
        assert state.cached_feed(server.url) is not None
        state.close()
        said.clear()
        assert service.run_once(cfg, dry_run=True, say=said.append) == 0
        assert server.requests[-1].get("If-None-Match")  # the second time: unchanged, 304, the kept copy
        assert any(line.startswith("valby-skole: haldor.schedule/1") for line in said)
        server.status = 404
        state = BridgeState(cfg.state)
        state.forget_feeds()
        state.close()
        said.clear()
        assert service.run_once(cfg, dry_run=True, say=said.append) == 1
        assert any("HTTP 404" in line and "valby-skole is kept as it was" in line for line in said)
        assert not any(line.startswith("valby-skole:") for line in said)  # nothing planned for it
        assert any(line.startswith("vanlose-skole: haldor.schedule/1") for line in said)
    finally:
        server.close()


def test_the_example_bridge_configuration_is_valid(tmp_path):
    example = Path(__file__).resolve().parent.parent / "config" / "bridge.toml"
    (tmp_path / "bridge.toml").write_text(example.read_text())
    haldor("keygen", "bookings-2026", "--dir", str(tmp_path))  # the key it names, beside it
    cfg = settings.load(tmp_path / "bridge.toml")
    assert [s.id for s in cfg.sites] == ["valby-skole"] and cfg.feeds[0].room == "gym-a"
    assert cfg.broker is not None and cfg.broker.username == "booking-system"  # the shipped ACL's user
    assert cfg.limits == settings.Limits()  # the example says the defaults


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_state_is_the_same_in_sqlite_and_postgresql(backend, tmp_path, request):
    """One schema, one migration runner: what is recorded is read back alike, and a second
    start migrates nothing twice."""
    target = str(tmp_path / "bridge.db") if backend == "sqlite" else request.getfixturevalue("postgres").database()
    state = BridgeState(target)
    state.record("valby-skole", 1_795_000_000, {"schema": "haldor.schedule/1", "rooms": [{"id": "gym-a"}]}, 1.5)
    state.record("valby-skole", 1_795_000_001, {"schema": "haldor.schedule/1", "rooms": []}, 2.5)
    state.record_rows("credentials", 120)
    state.cache_feed("http://127.0.0.1/x.ics", '"abc"', None, b"BEGIN:VCALENDAR\x00\xff")
    state.record_parsed("feed:valby-skole/gym-a|a.ics", "k1", {"bookings": [{"id": "b", "pin": None}], "problems": ["æ"]})
    state.record_parsed("feed:valby-skole/gym-a|a.ics", "k2", {"bookings": []})  # replaces it
    state.record_parsed("sheet:rooms", "k3", {"items": []})
    state.close()
    again = BridgeState(target)
    assert again.parsed("feed:valby-skole/gym-a|a.ics", "k1") is None
    assert again.parsed("feed:valby-skole/gym-a|a.ics", "k2") == {"bookings": []}
    again.record_all_parsed({}, keep={"sheet:rooms"})
    assert again.parsed("feed:valby-skole/gym-a|a.ics", "k2") is None and again.parsed("sheet:rooms", "k3") == {"items": []}
    assert again.published("valby-skole") == (1_795_000_001, {"schema": "haldor.schedule/1", "rooms": []})
    assert again.published("elsewhere") is None
    assert again.sheet_rows("credentials") == 120
    assert again.cached_feed("http://127.0.0.1/x.ics") == ('"abc"', None, b"BEGIN:VCALENDAR\x00\xff")
    assert again.db.one("SELECT version FROM haldor_schema WHERE name = 'bridge'") == (2,)  # the parsed inputs' step
    again.close()


def test_what_each_site_gets_and_when_a_delta_cannot_say_it():
    """Pure: a site gets its rooms, the associations that book them and their members,
    its own caretakers and closures; a removed association needs a snapshot."""
    from haldor.bridge import build

    site = settings.Site("valby-skole")
    booking = {"id": "b1", "room": "gym-a", "association": "a17", "start": "2026-12-01T19:00:00+01:00"}
    inputs = build.Inputs(
        associations=[{"id": "a17", "name": "Valby Volley", "_calendar": ""}, {"id": "a18", "name": "B", "_calendar": ""}],
        credentials=[
            {"id": "c1", "association": "a17", "role": "member", "_sites": []},
            {"id": "c2", "association": "a18", "role": "member", "_sites": []},
            {"id": "c9", "association": None, "role": "caretaker", "_sites": ["valby-skole"]},
            {"id": "c8", "association": None, "role": "caretaker", "_sites": ["vanlose-skole"]},
        ],
        rooms=[{"_site": "valby-skole", "id": "gym-a", "name": "A", "doors": ["main"]}],
        closures=[
            {"_site": "valby-skole", "room": None, "start": "2026-12-21T00:00:00+01:00", "end": "2027-01-03T00:00:00+01:00"},
            {"_site": "vanlose-skole", "room": None, "start": "2026-12-21T00:00:00+01:00", "end": "2027-01-03T00:00:00+01:00"},
        ],
        bookings={"valby-skole": [booking, {**booking, "id": "b2", "room": "pool"}]},
    )
    doc = build.snapshot(site, inputs, generated_at="2026-11-26T00:00:00Z")
    assert [a["id"] for a in doc["associations"]] == ["a17"]
    assert [c["id"] for c in doc["credentials"]] == ["c1", "c9"]
    assert [b["id"] for b in doc["bookings"]] == ["b1"] and "room 'pool'" in inputs.problems[0]
    assert len(doc["closures"]) == 1 and "_site" not in doc["closures"][0] and "_sites" not in doc["credentials"][0]
    later = {**doc, "bookings": [], "associations": []}
    diff = build.changes(doc, later)
    assert diff.removed["associations"] == ["a17"]
    assert build.delta(doc, later, diff, version=2, base_version=1) is None  # a delta cannot delete an association
    fewer = {**doc, "bookings": []}
    d = build.delta(doc, fewer, build.changes(doc, fewer), version=2, base_version=1)
    assert d["delete"] == {"bookings": ["b1"]} and d["upsert"] == {} and d["base_version"] == 1


def test_bad_rows_are_left_out_with_their_line_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "credentials.csv"
    path.write_text(
        "id;association;card;pin;role;valid_until\n"
        "c1;a17;04A1B2C3D4E5F6;;member;31-12-9999\n"  # "never expires", as people write it
        "c1;a17;04AABBCCDD0011;;member;\n"  # the same id again
        "c2;a17;wg26:99999999;;member;\n"  # more than 24 bits
        "c3;a17;04A1B2C3\n"  # cut off: fewer cells than the header
    )
    sheet = sheets.read_sheet(path, sheets.COLUMNS["credentials"], sheets.PARSERS["credentials"], sheets.Context(CPH))
    assert [c["id"] for c in sheet.items] == ["c1"] and sheet.items[0]["valid_until"] is None
    assert [p.split(": ", 1)[0] for p in sheet.problems] == [f"{path}:3", f"{path}:4", f"{path}:5"]
    assert "again (line 2 counts)" in sheet.problems[0] and "cut off" in sheet.problems[2]
    (tmp_path / "x.csv").write_bytes(b"id;name\nr\x81;x\n")
    with pytest.raises(DocumentError, match="neither UTF-8 nor Windows-1252"):
        sheets.read_rows(tmp_path / "x.csv")


def test_an_xlsx_date_means_the_whole_day():
    book = openpyxl.Workbook()
    book.active.append(["id", "association", "card", "pin", "role", "valid_until"])
    book.active.append(["c1", "a17", "04A1B2C3D4E5F6", None, "member", datetime(2027, 6, 30)])
    path = Path(tempfile.mkdtemp()) / "credentials.xlsx"
    book.save(path)
    sheet = sheets.read_sheet(path, sheets.COLUMNS["credentials"], sheets.PARSERS["credentials"], sheets.Context(CPH))
    assert sheet.items[0]["valid_until"] == "2027-06-30T23:59:59+02:00"  # as the same date in CSV


def test_an_event_ending_before_it_starts_is_left_out():
    start = datetime(2026, 11, 3, 19, 0, tzinfo=CPH)
    backwards = event("x@b", start, -2)
    got = feed(calendar(backwards, event("y@b", start)), start - timedelta(days=1))
    assert [b["id"] for b in got.bookings] == [booking_id("y@b", start, "gym-a")]
    assert "ends before it starts" in got.problems[0]


def test_a_broker_that_refuses_the_bridge_leaves_the_state_as_it_was(town, tmp_path):
    acl = tmp_path / "read-only.acl"
    acl.write_text("topic read #\n")
    strict = Broker(tmp_path / "strict", extra=f"acl_file {acl}\n", audit=False).start()
    try:
        town.config.write_text(re.sub(r"port = \d+", f"port = {strict.port}", town.config.read_text()))
        refused = town.run("--once")
        assert refused.returncode == 1 and "refused to publish" in refused.stderr, refused.stdout + refused.stderr
        state = BridgeState(settings.load(town.config).state)
        assert state.published("valby-skole") is None  # nothing recorded: the next run tries again
        state.close()
    finally:
        strict.stop()


def test_a_feed_that_suddenly_lost_its_bookings_keeps_its_site(town):
    cfg = settings.load(town.config)
    said: list[str] = []
    state = BridgeState(cfg.state)
    state.record_rows("feed:valby-skole/gym-a", 100)  # the last run saw a hundred
    state.close()
    assert service.run_once(cfg, dry_run=True, say=said.append) == 1
    assert any("30 bookings, 100 at the last run" in line and "valby-skole is kept as it was" in line for line in said)
    assert not any(line.startswith("valby-skole:") for line in said)


@pytest.mark.parametrize(
    "text, key",
    [
        ('[[sites]]\nid = "s"\ntimezone = 5\n', "sites[0].timezone"),
        ('[[sites]]\nid = "s"\n[[feeds]]\nsite = "s"\nroom = "r"\nsource = "f.ics"\nurl = "x"\n', "feeds[0].url"),
        ('[[sites]]\nid = "s"\npolicy = { grace_before_min = "x" }\n', "sites[0].policy.grace_before_min"),
        ('[mqtt]\ntransport = "carrier-pigeon"\n[[sites]]\nid = "s"\n', "mqtt.transport"),
        ('[mqtt]\nport = 99999\n[[sites]]\nid = "s"\n', "mqtt.port"),
        ('[[sites]]\nid = "s"\n', "bridge.interval_s"),
        ('[limits]\nread_memory_mb = 1\n[[sites]]\nid = "s"\n', "limits.read_memory_mb"),
        ('[limits]\nsheet_rows = "many"\n[[sites]]\nid = "s"\n', "limits.sheet_rows"),
        ('[limits]\nfeed_bytes = 8\n[[sites]]\nid = "s"\n', "limits.feed_bytes"),
    ],
)
def test_a_bad_bridge_configuration_names_its_key(tmp_path, text, key):
    haldor("keygen", "k", "--dir", str(tmp_path))
    head = '[bridge]\nkey = "k.key"\n' + ("interval_s = -1\n" if key == "bridge.interval_s" else "")
    head += '[sheets]\nassociations = "a.csv"\ncredentials = "c.csv"\nrooms = "r.csv"\n'
    (tmp_path / "bridge.toml").write_text(head + text)
    result = haldor("bridge", "--config", str(tmp_path / "bridge.toml"), "--dry-run", check=False)
    assert result.returncode == 2 and f": {key}: " in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
