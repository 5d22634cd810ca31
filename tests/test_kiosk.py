"""The caretaker's screen: the rules of what it shows, then the real page in headless
Chromium (Debian's), fed by a real agent through the kiosk server."""

from __future__ import annotations

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
from haldor.kiosk.state import AgentView, Day, DayBooking, DayClosure, build_state

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
    assert banner["kind"] == "reader" and "Kortlæser ude af drift: Hovedindgang, check-in ved skærmen." in banner["text"]
    english = _state(agent=AgentView(status={"reader_faults": faults[:1]}, status_at=T - 1), language="en")["banner"]
    assert english["text"].startswith("Card reader out of order: Hovedindgang.")
    # a silent agent says more than a reader it reported earlier
    assert _state(agent=AgentView(status={"reader_faults": faults}, status_at=T - 16))["banner"]["kind"] == "offline"


def test_storage_faults_and_unknown_cards_on_the_screen():
    since = T - 600  # ten minutes ago
    storage = {"ok": False, "fault": "database or disk is full", "since": since, "waiting": 3, "cards_work": True}
    banner = _state(agent=AgentView(status={"storage": storage}, status_at=T - 1))["banner"]
    hhmm = datetime.fromtimestamp(since, ZoneInfo("Europe/Copenhagen")).strftime("%H:%M")
    assert banner["kind"] == "storage" and banner["text"].startswith(f"Dørstyringen kan ikke gemme (siden {hhmm}). Dørene virker")
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
    assert g["text"] == "Velkommen, Valby Volley! Tjekket ind: U14, Gymnastiksal A" and g["good"]
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
    assert _state(day=day, agent=later)["greeting"]["text"] == "Valby Volley: jeres booking starter kl. 19:00 (Gymnastiksal A)"


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


class Screen:
    """A site with a prepared database, a kiosk server and an agent on a fake clock."""

    def __init__(self, tmp_path: Path, language: str = "da") -> None:
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
        store.schedule.apply(
            parse_document(
                snapshot(
                    42,
                    closures=[
                        {
                            "room": "gym-b",
                            "start": "2026-11-25T20:00:00+01:00",
                            "end": "2026-11-26T08:00:00+01:00",
                            "reason": "Malerarbejde",
                        }
                    ],
                    bookings=[
                        booking("b880", "2026-11-25T15:00:00+01:00", "2026-11-25T16:30:00+01:00", title="Volleyball U12"),
                        booking("b881", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00", title="Volleyball U14"),
                        booking(
                            "b882",
                            "2026-11-25T19:00:00+01:00",
                            "2026-11-25T21:00:00+01:00",
                            association="a18",
                            title="Badminton motion",
                        ),
                        booking(
                            "b883",
                            "2026-11-25T18:00:00+01:00",
                            "2026-11-25T20:00:00+01:00",
                            association="a18",
                            room="gym-b",
                            title="Badminton junior",
                        ),
                    ],
                )
            ),
            T - 3600,
        )
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
    assert "Lukket 20:00–08:00: Malerarbejde" in text
    page.wait_for_selector('[data-door="main"] .locked', timeout=5000)
    page.evaluate("window.__same = document.getElementById('rooms')")  # the page is not reloaded
    screen.agent.post(CardRead("kiosk", LEADER_CARD))
    page.wait_for_selector("#greeting.good", timeout=2000)
    assert page.inner_text("#greeting") == "Velkommen, Valby Volley! Tjekket ind: Volleyball U14, Gymnastiksal A"
    page.wait_for_selector('[data-booking="b881"] .tag.in', timeout=2000)
    assert page.evaluate("window.__same === document.getElementById('rooms')")
    _shot(page, "kiosk-da-1920x1080.png")
    page.set_viewport_size({"width": 800, "height": 480})
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
    assert page.inner_text("#banner").startswith("Kortlæser ude af drift: check-in ved skærmen.")
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
