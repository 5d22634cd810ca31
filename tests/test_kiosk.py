"""The caretaker's screen: the rules of what it shows, then the real page in headless
Chromium (Debian's), fed by a real agent through the kiosk server."""

from __future__ import annotations

import json
import os
import queue
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from haldor import config
from haldor.access.schedule import parse_document
from haldor.agent.hardware import build_hardware
from haldor.agent.kiosk_feed import KioskFeed
from haldor.agent.loop import Agent
from haldor.agent.messages import Stop
from haldor.agent.site import open_store
from haldor.clock import FakeClock
from haldor.drivers.base import CardRead, ReaderFault, ReaderRestored
from haldor.kiosk import server as kiosk_server
from haldor.kiosk.state import AgentView, Day, DayBooking, DayClosure, build_state, hhmm

from .broker import free_port
from .helpers import LEADER_CARD, booking, local, site_config, snapshot, wait_for

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
T = local(2026, 11, 25, 17, 30)


# --- the rules -------------------------------------------------------------------------


def _day(**kw) -> Day:
    day = Day(
        rooms=[("gym-a", "Gymnastiksal A"), ("gym-b", "Gymnastiksal B")],
        last_sync=T - 3600,
        version=42,
        associations={"a17": "Valby Volley"},
    )
    day.bookings = [
        DayBooking(
            "b1", "gym-a", "Valby Volley", "U12", local(2026, 11, 25, 15), local(2026, 11, 25, 16), "approved", True, False
        ),
        DayBooking(
            "b2", "gym-a", "Valby Volley", "U14", local(2026, 11, 25, 17), local(2026, 11, 25, 19), "approved", False, False
        ),
        DayBooking(
            "b3", "gym-a", "Valby Badminton", "Motion", local(2026, 11, 25, 19), local(2026, 11, 25, 21), "approved", False, False
        ),
        DayBooking(
            "b4", "gym-a", "Seniordans", "Dans", local(2026, 11, 25, 21), local(2026, 11, 25, 22), "approved", False, False
        ),
        DayBooking(
            "b5", "gym-b", "Valby Yoga", "Yoga", local(2026, 11, 25, 16), local(2026, 11, 25, 17), "approved", False, True
        ),
        DayBooking(
            "b6", "gym-b", "Valby Skak", "Skak", local(2026, 11, 25, 18), local(2026, 11, 25, 19), "requested", False, False
        ),
    ]
    for k, v in kw.items():
        setattr(day, k, v)
    return day


def _state(now=T, day=None, agent=None, language="da"):
    agent = (
        agent
        if agent is not None
        else AgentView(status={"doors": {"main": {"locked": True, "open": False, "mode": "normal"}}}, status_at=now - 1)
    )
    return build_state(
        now,
        day or _day(),
        agent,
        title="Valby Skole",
        language=language,
        doors=[("main", "Hovedindgang"), ("gym-a", "Sal A")],
        offline_after_s=15,
    )


def test_the_current_and_the_next_booking_of_each_room():
    s = _state()
    gym_a = {b["id"]: b["state"] for b in s["rooms"][0]["bookings"]}
    assert gym_a == {"b1": "past", "b2": "current", "b3": "next", "b4": "later"}
    gym_b = {b["id"]: b for b in s["rooms"][1]["bookings"]}
    assert gym_b["b5"]["no_show"] and not gym_b["b6"]["approved"] and gym_b["b6"]["state"] == "later"
    assert s["rooms"][0]["bookings"][0]["checked_in"] is True
    assert s["banner"] is None and s["online"]
    assert [d["state"] for d in s["doors"]] == ["locked", "unknown"]


def test_never_a_person_on_screen():
    text = str(_state())
    assert "c1001" not in text and "credential" not in text


def test_offline_and_stale_banners():
    assert _state(agent=AgentView(status={}, status_at=T - 16))["banner"]["kind"] == "offline"
    assert _state(agent=AgentView())["banner"]["kind"] == "offline"
    stale = _state(day=_day(last_sync=T - 25 * 3600))["banner"]
    assert stale["kind"] == "stale" and "over et døgn" in stale["text"]
    assert "more than" not in _state(day=_day(last_sync=None), language="en")["banner"]["text"]


def test_a_reader_out_of_order_is_named_by_its_door():
    faults = [{"reader": "main-in", "door": "main"}, {"reader": "kiosk", "door": None}]
    banner = _state(agent=AgentView(status={"reader_faults": faults}, status_at=T - 1))["banner"]
    assert banner["kind"] == "reader" and "Kortlæser ude af drift: Hovedindgang, læseren ved skærmen." in banner["text"]
    english = _state(agent=AgentView(status={"reader_faults": faults[:1]}, status_at=T - 1), language="en")["banner"]
    assert english["text"].startswith("Card reader out of order: Hovedindgang.")
    # a silent agent says more than a reader it reported earlier
    assert _state(agent=AgentView(status={"reader_faults": faults}, status_at=T - 16))["banner"]["kind"] == "offline"


def test_storage_faults_and_unknown_cards_on_the_screen():
    since = T - 600  # ten minutes ago
    storage = {"ok": False, "fault": "database or disk is full", "since": since, "waiting": 3, "cards_work": True}
    banner = _state(agent=AgentView(status={"storage": storage}, status_at=T - 1))["banner"]
    hhmm = datetime.fromtimestamp(since, ZoneInfo("Europe/Copenhagen")).strftime("%H.%M")
    assert banner["kind"] == "storage" and banner["text"].startswith(
        f"Dørstyringen kan ikke gemme (siden kl. {hhmm}). Dørene virker"
    )
    no_since = _state(agent=AgentView(status={"storage": {**storage, "since": None}}, status_at=T - 1), language="en")["banner"]
    assert no_since["text"].startswith("The door controller cannot save. The doors work")
    secret = {**storage, "cards_work": False}
    faults = [{"reader": "main-in", "door": "main"}]
    banner = _state(agent=AgentView(status={"storage": secret, "reader_faults": faults}, status_at=T - 1))["banner"]
    assert banner["text"].startswith("Kort og PIN-koder virker ikke")  # before a reader: no card works anywhere
    assert _state(agent=AgentView(status={"storage": {"ok": True, "cards_work": True}}, status_at=T - 1))["banner"] is None


def test_closures_for_a_room_and_for_the_whole_site():
    day = _day(closures=[DayClosure("gym-b", T - 60, T + 3600, "Malerarbejde")])
    s = _state(day=day)
    assert s["rooms"][1]["closed"] == "Malerarbejde" and s["rooms"][0]["closed"] is None
    site = _state(day=_day(closures=[DayClosure(None, T - 60, T + 86400, "Juleferie")]))
    assert site["site_closed"] == "Juleferie" and all(r["closed"] == "Juleferie" for r in site["rooms"])


def test_greetings_fade_and_enrolment_help_stays_a_minute():
    day = _day(booking_titles={"b2": ("U14", "Gymnastiksal A", local(2026, 11, 25, 17))})
    hello = AgentView(
        status={}, status_at=T, answer={"outcome": "checked_in", "association": "a17", "booking": "b2", "good": True}, answer_at=T
    )
    g = _state(day=day, agent=hello)["greeting"]
    assert g["text"] == "Velkommen, Valby Volley! I er tjekket ind: U14, Gymnastiksal A" and g["good"]
    assert (
        _state(now=T + 9, day=day, agent=AgentView(status={}, status_at=T + 9, answer=hello.answer, answer_at=T))["greeting"]
        is None
    )
    unknown = AgentView(
        status={},
        status_at=T + 50,
        answer={"outcome": "unknown_card", "card": "uid:04A1B2C3", "card_reversed": "uid:C3B2A104"},
        answer_at=T,
    )
    g = _state(now=T + 50, agent=unknown, language="en")["greeting"]
    assert g["text"] == "Unknown card" and not g["good"] and "uid:04A1B2C3" in g["enrol"] and "uid:C3B2A104" in g["enrol"]
    later = AgentView(
        status={},
        status_at=T,
        answer={"outcome": "later", "association": "a17", "booking": "b2", "starts_at": local(2026, 11, 25, 19)},
        answer_at=T,
    )
    assert _state(day=day, agent=later)["greeting"]["text"] == "Valby Volley: jeres booking begynder kl. 19.00 (Gymnastiksal A)"


# --- the page in a browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


DEFAULT_SCHEDULE = {
    "closures": [
        {"room": "gym-b", "start": "2026-11-25T20:00:00+01:00", "end": "2026-11-26T08:00:00+01:00", "reason": "Malerarbejde"}
    ],
    "bookings": [
        booking("b880", "2026-11-25T15:00:00+01:00", "2026-11-25T16:30:00+01:00", title="Volleyball U12"),
        booking("b881", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00", title="Volleyball U14"),
        booking("b882", "2026-11-25T19:00:00+01:00", "2026-11-25T21:00:00+01:00", association="a18", title="Badminton motion"),
        booking(
            "b883",
            "2026-11-25T18:00:00+01:00",
            "2026-11-25T20:00:00+01:00",
            association="a18",
            room="gym-b",
            title="Badminton junior",
        ),
        booking("b884", "2026-11-26T09:00:00+01:00", "2026-11-26T11:00:00+01:00", title="Seniorvolley"),  # tomorrow
    ],
}


class Screen:
    """A site with a prepared database, a kiosk server and an agent on a fake clock."""

    def __init__(
        self,
        tmp_path: Path,
        language: str = "da",
        *,
        schedule: dict | None = None,
        checkins: tuple[str, ...] = (),
        no_shows: tuple[str, ...] = (),
    ) -> None:
        port = free_port()
        path = site_config(
            tmp_path / "haldor.toml",
            tmp_path / "data",
            extra=f"""
[kiosk]
listen = "127.0.0.1:{port}"
title = "Valby Skole, idrætshallen"
[[readers]]
id = "kiosk"
type = "serial-line"
port = "loop://"
""",
            doors="""
[[doors]]
id = "main"
name = "Hovedindgang"
lock_pin = 17
[[doors]]
id = "gym-a"
name = "Gymnastiksal A"
lock_pin = 18
""",
        )
        text = path.read_text().replace("[site]\n", f'[site]\nlanguage = "{language}"\n')
        path.write_text(text)
        self.cfg = config.load(path)
        self.url = f"http://127.0.0.1:{port}/"
        store = open_store(self.cfg)
        store.schedule.apply(parse_document(snapshot(42, **(schedule or DEFAULT_SCHEDULE))), T - 3600)
        for b in checkins:
            store.activity.note_checkin(b, "c1002", "leader", T - 600)
        for b in no_shows:
            store.activity.mark_reported("no_show", b, T - 600)
        store.close()
        self.clock = FakeClock(T)
        self.kiosk = kiosk_server.Kiosk(self.cfg, clock=self.clock.now, offline_after_s=2)
        self.server = kiosk_server.serve(self.cfg, kiosk=self.kiosk)
        self.agent_thread: threading.Thread | None = None

    def start_agent(self) -> Agent:
        from gpiozero.pins.mock import MockFactory

        inbox: queue.Queue = queue.Queue()
        self.store = open_store(self.cfg)
        self.feed = KioskFeed(self.url + "api/agent")
        self.factory = MockFactory()
        self.agent = Agent(
            self.cfg,
            self.store,
            build_hardware(self.cfg, inbox.put, self.factory),
            clock=self.clock,
            inbox=inbox,
            kiosk=self.feed,
        )
        self.agent_thread = threading.Thread(target=self.agent.run, daemon=True)
        self.agent_thread.start()
        wait_for(self.agent.running.is_set, what="agent running")
        return self.agent

    def stop_agent(self) -> None:
        if self.agent_thread is not None:
            self.agent.post(Stop())
            self.agent_thread.join(10)
            self.feed.close()
            self.store.close()
            self.agent_thread = None

    def close(self) -> None:
        self.stop_agent()
        kiosk_server.stop(self.server)


@pytest.fixture
def screen(tmp_path):
    s = Screen(tmp_path)
    yield s
    s.close()


def _shot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=False)


def test_the_page_shows_todays_bookings_and_a_check_in_without_reload(browser, screen):
    screen.start_agent()
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(screen.url)
    page.wait_for_selector('[data-booking="b881"].current', timeout=5000)
    text = page.inner_text("body")
    assert "Valby Skole, idrætshallen" in text
    assert "Valby Volley" in text and "Volleyball U14" in text and "Badminton junior" in text
    assert "c1001" not in text and "c1002" not in text  # associations and bookings, never a person
    assert page.locator('[data-booking="b882"].next').count() == 1
    assert page.locator('[data-booking="b880"].past').count() == 1
    assert "Lukket 20.00–08.00: Malerarbejde" in text
    page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
    page.evaluate("window.__same = document.getElementById('rooms')")  # the page is not reloaded
    screen.agent.post(CardRead("kiosk", LEADER_CARD))
    page.wait_for_selector("#greeting.good", timeout=2000)
    assert page.inner_text("#greeting") == "Velkommen, Valby Volley! I er tjekket ind: Volleyball U14, Gymnastiksal A"
    page.wait_for_selector('[data-booking="b881"] .tag.in', timeout=2000)
    assert page.evaluate("window.__same === document.getElementById('rooms')")
    assert page.locator('[data-room="gym-a"] [data-booking="b884"].tomorrow').count() == 1  # room to spare: tomorrow's first
    assert "I morgen" in page.inner_text('[data-room="gym-a"]')
    _shot(page, "kiosk-da-1920x1080.png")
    page.set_viewport_size({"width": 800, "height": 480})
    page.wait_for_function(f"({MEASURE})().worst <= 0.5 && innerWidth === 800", timeout=2000)  # laid out again
    _shot(page, "kiosk-da-800x480.png")
    assert page.evaluate("document.documentElement.scrollWidth <= 800")  # nothing runs off the small screen


def test_an_unknown_card_shows_its_number_for_enrolment(browser, screen):
    screen.start_agent()
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(screen.url)
    page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
    screen.agent.post(CardRead("kiosk", "uid:04DEADBEEF0102"))  # a stranger's card: a word in a corner
    page.wait_for_selector("#greeting.bad.corner", timeout=2000)
    assert "04DEADBEEF0102" not in page.inner_text("body")
    screen.agent.post(CardRead("kiosk", "em:0A0B0C0D0E"))  # the caretaker opens enrolment
    page.wait_for_selector("#greeting.good", timeout=2000)
    assert "hold it to the reader" in page.inner_text("#greeting") or "hold det op" in page.inner_text("#greeting")
    screen.agent.post(CardRead("kiosk", "uid:04DEADBEEF0102"))
    page.wait_for_selector("#greeting.bad .enrol", timeout=2000)
    assert "uid:04DEADBEEF0102" in page.inner_text("#greeting") and "uid:0201EFBEADDE04" in page.inner_text("#greeting")


def test_a_reader_fault_shows_on_the_screen_and_goes_when_it_clears(browser, screen):
    screen.start_agent()
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(screen.url)
    page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
    screen.agent.post(ReaderFault("kiosk", "stopped answering (OSDP address 1 on /dev/ttyUSB0)"))
    page.wait_for_selector("#banner.reader", timeout=3000)
    assert page.inner_text("#banner").startswith("Kortlæser ude af drift: læseren ved skærmen.")
    _shot(page, "kiosk-da-reader-fault-1920x1080.png")
    screen.agent.post(ReaderRestored("kiosk"))
    wait_for(lambda: page.locator("#banner.reader").count() == 0, timeout=3, what="banner gone")


def test_the_offline_banner_when_the_agent_goes_quiet(browser, screen):
    screen.start_agent()
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(screen.url)
    page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
    assert page.locator("#banner.offline").count() == 0
    screen.stop_agent()
    screen.clock.advance(3)  # the kiosk hears nothing for longer than offline_after_s
    page.wait_for_selector("#banner.offline", timeout=3000)
    assert "Dørstyringen svarer ikke" in page.inner_text("#banner")
    assert page.locator('[data-door="main"] .unknown').count() == 1
    _shot(page, "kiosk-da-offline-1920x1080.png")


def test_english_by_configuration(browser, tmp_path):
    s = Screen(tmp_path, language="en")
    try:
        s.start_agent()
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(s.url)
        page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
        text = page.inner_text("body")
        assert "Doors:" in text and "Locked" in text and "Closed 20:00–08:00" in text
        assert "Låst" not in text
        assert page.evaluate("document.documentElement.lang") == "en"
        _shot(page, "kiosk-en-800x480.png")
    finally:
        s.close()


def test_only_the_agent_on_this_box_may_push(screen):
    r = httpx.post(screen.url + "api/agent", json={"status": {"doors": {}}})
    assert r.status_code == 204  # loopback
    assert httpx.get(screen.url + "api/state").json()["online"] is True
    assert httpx.post(screen.url + "demo/badge", json={"reader": "kiosk", "card": "x"}).status_code == 404  # not a demo
    assert httpx.post(screen.url + "api/agent", content=b"x" * 70_000).status_code == 413


def test_a_push_whose_length_is_no_number_is_refused_and_the_screen_keeps_serving(screen):
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(screen.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    conn.putrequest("POST", "/api/agent")
    conn.putheader("Content-Length", "twelve")
    conn.endheaders()
    assert conn.getresponse().status == 400
    conn.close()
    assert httpx.get(screen.url + "api/state").status_code == 200


def test_the_demo_serves_the_screen_with_a_badge_panel(browser, tmp_path):
    import re
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "haldor", "demo", "--no-prompt", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        url = wait_for(
            lambda: next((m.group(0) for line in lines if (m := re.search(r"http://127\.0\.0\.1:\d+/", line))), None),
            timeout=20,
            what="the demo prints the screen's URL",
        )
        assert url == f"http://127.0.0.1:{port}/"
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(url)
        page.wait_for_selector("#demo.on", timeout=5000)
        page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
        page.select_option("#demo-reader", "kiosk")
        page.fill("#demo-card", "04AABBCCDD0011")  # the sample leader card
        page.click("#demo button")
        page.wait_for_selector("#greeting.good", timeout=3000)
        assert "Valby Volley" in page.inner_text("#greeting")
        page.select_option("#demo-reader", "main")
        page.fill("#demo-card", "04A1B2C3D4E5F6")
        page.click("#demo button")
        page.wait_for_selector('[data-door="main"] .unlocked', timeout=3000)  # the simulated lock moved
        _shot(page, "demo-1920x1080.png")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_haldor_kiosk_serves_until_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    port = free_port()
    path = site_config(tmp_path / "haldor.toml", tmp_path / "data", extra=f'[kiosk]\nlisten = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "haldor", "kiosk", "--config", str(path)], stderr=subprocess.DEVNULL)
    try:

        def up():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=15, what="kiosk answering")
        page = httpx.get(f"http://127.0.0.1:{port}/").text
        assert "<title>Haldor</title>" in page and "://" not in page  # nothing from the network: the box may be offline
        state = httpx.get(f"http://127.0.0.1:{port}/api/state").json()
        assert state["online"] is False and state["banner"]["kind"] == "offline"  # no agent has spoken
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_only_the_latest_ended_booking_stays_on_the_card():
    day = _day()
    day.bookings.insert(
        0,
        DayBooking(
            "b0", "gym-a", "Valby Volley", "U10", local(2026, 11, 25, 13), local(2026, 11, 25, 14), "approved", False, False
        ),
    )
    ids = [b["id"] for b in _state(day=day)["rooms"][0]["bookings"]]
    assert ids == ["b1", "b2", "b3", "b4"]  # b0 ended before b1 did: left off


def _busy_day(rooms: int, *, long_names: bool = False) -> Day:
    """``rooms`` rooms with six bookings each from 16 to 22 (at 17.30: one ended, one on now)
    and two tomorrow morning."""
    day = Day(rooms=[(f"r{i}", f"Sal {i}") for i in range(rooms)], last_sync=T - 3600, day_end=local(2026, 11, 26))
    club = "Gymnastikforeningen Valby-Vigerslev" if long_names else "Valby Volley"
    for i in range(rooms):
        for k in range(6):
            start = local(2026, 11, 25, 16 + k)
            day.bookings.append(DayBooking(f"r{i}b{k}", f"r{i}", club, "Træning", start, start + 3600, "approved", False, False))
        for k in range(2):
            start = local(2026, 11, 26, 9 + k)
            day.tomorrow.append(DayBooking(f"r{i}t{k}", f"r{i}", club, "Motion", start, start + 3600, "approved", False, False))
    return day


def test_a_card_shows_what_fits_and_counts_the_rest():
    """The state decides how many bookings a card holds, from the number of rooms (and
    the banners above them): now and next first, the rest of today in order, then the one
    that ended, then tomorrow's first; what is left out of today is counted in ``more``."""
    one = _state(day=_busy_day(1))["rooms"][0]
    assert [b["id"] for b in one["bookings"]] == ["r0b0", "r0b1", "r0b2", "r0b3", "r0b4", "r0b5"] and one["more"] == 0
    assert [b["id"] for b in one["tomorrow"]] == ["r0t0", "r0t1"] and one["tomorrow"][0]["state"] == "tomorrow"
    assert one["tomorrow"][0]["start"] == "09.00" and set(one["tomorrow"][0]) == set(one["bookings"][0])  # no person

    for rooms in (3, 8):
        s = _state(day=_busy_day(rooms, long_names=True))
        assert s["layout"]["columns"] * s["layout"]["rows"] >= rooms
        for room in s["rooms"]:
            today = [b for b in room["bookings"] if b["state"] != "past"]
            assert today[0]["id"].endswith("b1") and today[0]["state"] == "current"
            assert room["more"] > 0 and len(today) + room["more"] == 5 and room["tomorrow"] == []
    eight = _state(day=_busy_day(8))["rooms"]
    three = _state(day=_busy_day(3))["rooms"]
    assert len(three[0]["bookings"]) > len(eight[0]["bookings"])  # fewer rooms, more of each

    calm, alarmed = _state(day=_busy_day(3)), _state(day=_busy_day(3), agent=AgentView())
    assert alarmed["banner"]["kind"] == "offline"
    assert alarmed["rooms"][0]["more"] >= calm["rooms"][0]["more"]  # the banner takes its lines

    crowded = _busy_day(8)
    crowded.rooms += [("idle-1", "Kælderen"), ("idle-2", "Loftet")]
    crowded.rooms.insert(0, crowded.rooms.pop())  # an idle room first in the list
    s = _state(day=crowded)
    assert len(s["rooms"]) == 8 and s["rooms_more"] == 2 and not {"idle-1", "idle-2"} & {r["id"] for r in s["rooms"]}


def test_a_narrow_card_gives_up_a_later_closure_line_before_the_booking_now():
    reason = "Rengøring af gulvet i hele salen og i omklædningsrummene"
    closure = DayClosure("r0", local(2026, 11, 25, 22), local(2026, 11, 25, 23), reason)
    narrow, wide = _busy_day(8), _busy_day(1)
    narrow.closures = wide.closures = [closure]
    room = _state(day=narrow)["rooms"][0]
    assert room["closures_today"] == [] and room["bookings"][0]["state"] == "current" and room["more"] > 0
    assert _state(day=wide)["rooms"][0]["closures_today"] == [{"start": "22.00", "end": "23.00", "reason": reason}]


def test_a_booking_in_a_closed_room_is_shown_closed_never_now_or_next():
    """Gym A is being painted from 17:00 to 20:00: U14 (17-19) and Motion (19-21) cannot
    take place as booked; Dans at 21 is next."""
    day = _day(closures=[DayClosure("gym-a", local(2026, 11, 25, 17), local(2026, 11, 25, 20), "Malerarbejde")])
    room = _state(day=day)["rooms"][0]
    states = {b["id"]: (b["state"], b["closed"]) for b in room["bookings"]}
    assert states["b2"] == ("closed", "Malerarbejde") and states["b3"] == ("closed", "Malerarbejde")
    assert states["b4"] == ("next", None)
    assert not any(b["state"] == "current" for b in room["bookings"])


def test_the_browser_is_started_on_the_configured_address_once_the_kiosk_answers(tmp_path):
    """No port written twice, no curl: `haldor kiosk --browser` waits for /healthz, then
    becomes the browser on the kiosk's page."""
    import http.server
    import subprocess
    import sys
    import threading

    from haldor.kiosk.browser import kiosk_url

    assert kiosk_url("0.0.0.0:8081") == "http://127.0.0.1:8081/"

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake = tmp_path / "chromium"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n')
    fake.chmod(0o755)
    try:
        listen = f"127.0.0.1:{server.server_address[1]}"
        code = f"from haldor.kiosk.browser import open_browser; open_browser({listen!r}, browser={str(fake)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
        args = (tmp_path / "args").read_text().split()
        assert args[0] == "--kiosk" and args[-1] == f"http://{listen}/"
    finally:
        server.shutdown()


# --- a screen read from 3 m: sizes, boxes, contrast, first paint, one time format ----------

SIZES = [(1920, 1080), (800, 480)]
MAIN_PX = {1920: 40, 800: 20}  # room names, booking times and associations at least this big
ROOM_NAMES = ["Gymnastiksal A", "Gymnastiksal B", "Lille sal", "Springsal", "Multisal", "Dansesal", "Motionsrum", "Hal 2"]
CLUBS = {
    "a17": "Valby Volley",
    "a18": "Valby Badminton",
    "a19": "Seniordans Valby",
    "a20": "Gymnastikforeningen Valby-Vigerslev",  # long: wraps, and may be broken in a narrow card
    "a21": "Ældre Sagen Valby",
    "a22": "Pensionistklubben",
}


def _busy_schedule(rooms: int) -> dict:
    """``rooms`` rooms booked from 16 to 22 in hours (six bookings each: one ended, one on
    now, four to come), two bookings each tomorrow morning, a closure tonight in the first
    room and one now in the second."""
    clubs = list(CLUBS)
    bookings = []
    for r in range(rooms):
        for k in range(6):
            bookings.append(
                booking(
                    f"r{r}b{k}",
                    f"2026-11-25T{16 + k}:00:00+01:00",
                    f"2026-11-25T{17 + k}:00:00+01:00",
                    room=f"room-{r}",
                    association=clubs[(r + k) % len(clubs)],
                    title="Motion for seniorer" if k % 2 else "Træning",
                )
            )
        for k in range(2):
            bookings.append(
                booking(
                    f"r{r}t{k}",
                    f"2026-11-26T{9 + k:02}:00:00+01:00",
                    f"2026-11-26T{10 + k}:00:00+01:00",
                    room=f"room-{r}",
                    association=clubs[k],
                    title="Formiddagsgymnastik",
                )
            )
    return {
        "rooms": [{"id": f"room-{r}", "name": ROOM_NAMES[r], "doors": ["main"]} for r in range(rooms)],
        "associations": [{"id": a, "name": n} for a, n in CLUBS.items()],
        "bookings": bookings,
        "closures": [
            {"room": "room-0", "start": "2026-11-25T22:00:00+01:00", "end": "2026-11-25T23:00:00+01:00", "reason": "Rengøring"},
        ]
        + [  # the second room is shut now: its bookings until 18.30 are shown closed
            {"room": "room-1", "start": "2026-11-25T17:00:00+01:00", "end": "2026-11-25T18:30:00+01:00", "reason": "Vandskade"}
        ][: rooms - 1],
    }


def _online(screen: Screen) -> None:
    """The agent's word, pushed as the agent does: doors locked, nothing wrong."""
    doors = {d: {"locked": True, "open": False, "mode": "normal"} for d in ("main", "gym-a")}
    assert httpx.post(screen.url + "api/agent", json={"status": {"doors": doors}}).status_code == 204
    wait_for(lambda: httpx.get(screen.url + "api/state").json()["online"], timeout=3, what="the kiosk hears the agent")


# every element of every room card against its card, and every card against the screen
MEASURE = """() => {
  const px = v => parseFloat(v);
  const sizes = sel => [...document.querySelectorAll(sel)].map(e => px(getComputedStyle(e).fontSize));
  const view = {w: innerWidth, h: innerHeight};
  let worst = 0, where = "";
  for (const room of document.querySelectorAll(".room")) {
    const box = room.getBoundingClientRect();
    const out = Math.max(0, -box.left, -box.top, box.right - view.w, box.bottom - view.h);
    if (out > worst) { worst = out; where = room.dataset.room + " leaves the screen"; }
    for (const e of room.querySelectorAll("*")) {
      const r = e.getBoundingClientRect();
      if (!r.width && !r.height) continue;
      const over = Math.max(box.left - r.left, box.top - r.top, r.right - box.right, r.bottom - box.bottom);
      if (over > worst) { worst = over; where = room.dataset.room + " " + e.className + ": " + e.textContent; }
    }
  }
  return {
    worst, where,
    names: sizes(".room h2"), times: sizes(".room .b .t"), clubs: sizes(".room .b .a"),
    rooms: [...document.querySelectorAll(".room")].map(r => ({
      id: r.dataset.room,
      today: [...r.querySelectorAll(".b.today:not(.past)")].map(b => b.dataset.booking),
      more: r.querySelector(".more")?.textContent ?? "",
      tomorrow: [...r.querySelectorAll(".b.tomorrow")].map(b => b.dataset.booking),
    })),
  };
}"""

# the contrast of each element's text colour on the background it is drawn on (WCAG 2)
CONTRAST = """sel => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  return [...document.querySelectorAll(sel)].map(e => {
    let bg = null, opacity = 1;
    for (let n = e; n; n = n.parentElement) {
      const style = getComputedStyle(n);
      opacity *= Number(style.opacity);
      const c = rgb(style.backgroundColor);
      if (!bg && (c.length < 4 || c[3] === 1)) bg = c;
    }
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(bg || [0, 0, 0])].sort((x, y) => y - x);
    return {text: e.textContent, ratio: (a + 0.05) / (b + 0.05), opacity};
  });
}"""


def _axe_serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("rooms", [1, 3, 8])
def test_busy_days_fit_their_boxes_at_both_sizes(browser, tmp_path, rooms):
    """Big type (at least 40 px on a 1080p screen, 20 px on the 7" panel), and with 1, 3
    or 8 rooms of six bookings nothing leaves its card: what does not fit is counted in
    "+N mere i dag". The free space of a quiet screen shows tomorrow's first bookings."""
    screen = Screen(
        tmp_path,
        schedule=_busy_schedule(rooms),
        checkins=tuple(f"r{r}b1" for r in range(rooms)),
        no_shows=tuple(f"r{r}b0" for r in range(rooms)),
    )
    try:
        _online(screen)
        for width, height in SIZES:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(screen.url)
            page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
            m = page.evaluate(MEASURE)
            assert m["worst"] <= 0.5, f"{rooms} rooms at {width}x{height}: {m['where']} runs {m['worst']:.1f} px over"
            for what in ("names", "times", "clubs"):
                assert m[what] and min(m[what]) >= MAIN_PX[width], (what, m[what])
            assert len(m["rooms"]) == rooms
            for r in m["rooms"]:
                left = 5  # the bookings still to come of six: one has ended
                shown = len(r["today"])
                assert shown >= 1 and r["today"][0].endswith("b1")  # the one on now is never summarised
                if shown < left:
                    assert r["more"] == f"+{left - shown} mere i dag", r
                else:
                    assert r["more"] == "", r
            if rooms == 1:  # room to spare: the whole evening and tomorrow's first
                assert m["rooms"][0]["today"] == [f"r0b{k}" for k in range(1, 6)] and m["rooms"][0]["tomorrow"] == [
                    "r0t0",
                    "r0t1",
                ]
                assert "I morgen" in page.inner_text(".room")
            if rooms == 8:  # eight busy rooms cannot show all of it on either screen
                assert all(r["more"] for r in m["rooms"])
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            serious = _axe_serious(page)
            assert not serious, serious
            _shot(page, f"kiosk-da-{rooms}-rooms-{width}x{height}.png")
            page.close()
    finally:
        screen.close()


def test_more_rooms_than_fit_are_counted(browser, tmp_path):
    """Ten rooms: eight cards (those with bookings left first), the rest summed up."""
    doc = _busy_schedule(8)
    doc["rooms"] += [
        {"id": "quiet-1", "name": "Kælderen", "doors": ["main"]},
        {"id": "quiet-2", "name": "Loftet", "doors": ["main"]},
    ]
    screen = Screen(tmp_path, schedule=doc)
    try:
        _online(screen)
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(screen.url)
        page.wait_for_selector("#roomsmore.on", timeout=5000)
        assert page.inner_text("#roomsmore") == "+2 lokaler mere"
        assert page.locator(".room").count() == 8 and page.locator('[data-room="quiet-1"]').count() == 0
        assert page.evaluate(MEASURE)["worst"] <= 0.5
    finally:
        screen.close()


def test_past_bookings_and_every_small_text_pass_aa_contrast(browser, screen):
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(screen.url)
    page.wait_for_selector('[data-booking="b880"].past', timeout=5000)
    for sel in (".b.past .t", ".b.past .a", ".b.past .ti", ".b.tomorrow .a", ".b .ti", ".note", ".more, .room h3", "#date"):
        for e in page.evaluate(CONTRAST, sel):
            assert e["opacity"] == 1 and e["ratio"] >= 4.5, (sel, e)
    past = page.evaluate(CONTRAST, ".b.past .a")
    assert past and min(e["ratio"] for e in past) >= 4.5


def test_the_first_paint_is_the_schedule_without_any_request(browser, screen):
    """The state comes with the page: with /api/state and the stream refused, the rooms
    are there when the document is parsed, before any request could have answered."""
    html = httpx.get(screen.url).text
    assert 'id="initial">{' in html and "Volleyball U14" in html and "Valby Skole, idrætshallen" in html
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.route("**/api/**", lambda route: route.abort())
    page.add_init_script(
        "document.addEventListener('DOMContentLoaded', () => {"
        " window.__first = {rooms: document.querySelectorAll('.room').length, clock: document.getElementById('clock').textContent}; })"
    )
    page.goto(screen.url, wait_until="domcontentloaded")
    first = page.evaluate("window.__first")
    assert first["rooms"] == 2 and first["clock"]
    assert page.locator('[data-booking="b881"].current').count() == 1
    assert "Volleyball U14" in page.inner_text("#rooms")


def test_nothing_in_a_name_can_end_the_embedded_state():
    state = json.dumps({"title": "</script><script>alert(1)</script>", "rooms": []})
    html = kiosk_server.page_html(False, state, "en").decode()
    assert "</script><script>alert(1)" not in html and '<html lang="en">' in html
    embedded = html.split('id="initial">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded)["title"] == "</script><script>alert(1)</script>"


def test_one_time_format_for_the_clock_and_the_bookings(browser, tmp_path):
    """Danish 20.10 (as Danes write it), English 20:10: the bookings from state.py and the
    page's clock alike."""
    tz = ZoneInfo("Europe/Copenhagen")
    assert hhmm(local(2026, 11, 25, 20, 10), tz, "da") == "20.10" and hhmm(local(2026, 11, 25, 20, 10), tz, "en") == "20:10"
    assert _state()["rooms"][0]["bookings"][1]["start"] == "17.00"
    assert _state(language="en")["rooms"][0]["bookings"][1]["start"] == "17:00"
    stale = _state(day=_day(last_sync=local(2026, 11, 24, 9, 5)))["banner"]["text"]
    assert "(sidst 24/11 09.05)" in stale
    for language, clock, times in (("da", "20.10", "17.00–19.00"), ("en", "20:10", "17:00–19:00")):
        (tmp_path / language).mkdir()
        s = Screen(tmp_path / language, language=language)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 480})
            page.clock.set_fixed_time(datetime(2026, 11, 25, 20, 10, 30, tzinfo=tz))
            page.goto(s.url)
            page.wait_for_selector('[data-booking="b881"]', timeout=5000)
            assert page.inner_text("#clock") == clock
            assert page.inner_text('[data-booking="b881"] .t') == times
        finally:
            s.close()


def test_the_page_summarises_what_the_state_misjudged(browser):
    """Should the state's estimate be wrong (a wider font, say), the page still cuts
    nothing: it takes off the latest bookings and counts them in "+N mere i dag"."""
    s = _state(day=_busy_day(1, long_names=True))
    s["rooms"] = [{**s["rooms"][0], "id": f"r{i}"} for i in range(8)]  # a whole evening on each of eight cards
    s["layout"] = {"columns": 4, "rows": 2, "booking": "stacked", "compact": True}
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.set_content(kiosk_server.page_html(False, json.dumps(s)).decode())
    m = page.evaluate(MEASURE)
    assert m["worst"] <= 0.5, m["where"]
    for r in m["rooms"]:
        assert r["today"] and r["today"][0] == "r0b1" and r["tomorrow"] == []
        assert r["more"] == f"+{5 - len(r['today'])} mere i dag"


def test_the_screen_is_headed_by_the_sites_name_unless_given_a_title(tmp_path):
    path = site_config(tmp_path / "haldor.toml", tmp_path / "data")
    path.write_text(path.read_text().replace("[site]\n", '[site]\nname = "Valby Skole"\n'))
    assert kiosk_server.Kiosk(config.load(path)).title == "Valby Skole"
    path.write_text(path.read_text().replace('name = "Valby Skole"\n', ""))
    assert kiosk_server.Kiosk(config.load(path)).title == "valby-skole"
