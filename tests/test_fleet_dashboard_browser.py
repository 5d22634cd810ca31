"""The dashboard as the facility office uses it, in headless Chromium: log in, read the
period's figures (checked against the database and the CSV), a site, an association's
season and the season report; at 1366x768 and 768x1024 without sideways scrolling; by
keyboard alone; no serious or critical axe finding. Screenshots go to test-output/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from haldor.fleet.dashboard import totals
from haldor.fleet.formats import number
from haldor.fleet.operators import Operators
from haldor.fleet.report import Period
from haldor.fleet.serving import FleetServer
from haldor.fleet.sessions import Sessions
from haldor.fleet.store import FleetStore
from haldor.fleet.usage_details import UsageDetails
from haldor.fleet.web import FleetWeb
from haldor.sql import Database

from .test_fleet import SEASON, danish_csv, usage

PASSWORD = "korrekt hest batteri"
SIZES = [(1366, 768), (768, 1024)]
NAMES = {
    "gym-a": "Gymnastiksal A",
    "gym-b": "Gymnastiksal B",
    "a17": "Valby Volley",
    "a18": "Vanløse Badminton",
    "a19": "Brønshøj Basket",
}


def season_of_bookings(store: FleetStore) -> None:
    """Three sites, three associations, a few weeks this season and one last season."""
    now = time.time()
    for site, name, online in (
        ("valby", "Valby Hallen", True),
        ("vanlose", "Vanløse Skole", False),
        ("bronshoj", "Brønshøj Hal", True),
    ):
        store.set_status(site, {"online": online, "at": "2026-11-25T17:00:00+01:00", "names": {"site": name}}, now)
    n = 0
    for day, used_a17 in (("2026-11-23", True), ("2026-11-30", False), ("2026-12-07", True), ("2025-11-24", True)):
        for site, room, association, hour, minutes, used in (
            ("valby", "gym-a", "a17", "17:00", 90, used_a17),
            ("valby", "gym-b", "a18", "19:30", 120, False),
            ("vanlose", "gym-a", "a18", "18:00", 60, True),
            ("bronshoj", "gym-a", "a19", "20:00", 60, day != "2026-11-30"),
        ):
            n += 1
            event = usage(
                site, f"b{n}", f"{day}T{hour}:00+01:00", minutes, used, no_show=not used, room=room, association=association
            )
            event["usage"] |= {"room_name": NAMES[room], "association_name": NAMES[association]}
            store.add_event(event)


@pytest.fixture
def office(tmp_path) -> Iterator[tuple[FleetWeb, FleetServer, FleetStore]]:
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    users = Operators(Database.open(db))
    users.add("kontor-bo", PASSWORD, "viewer")
    web = FleetWeb(store)
    web.auth = Sessions(users, secure=False)
    season_of_bookings(store)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    yield web, server, store
    server.shutdown()


def no_sideways_scrolling(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def figure(page, label: str) -> str:
    return page.locator(f"#kpis .kpi:has(dt:text-is('{label}')) dd").inner_text().split("\n")[0].strip()


def test_the_office_walks_the_dashboard_in_a_browser(office):
    from playwright.sync_api import sync_playwright

    from .test_kiosk import CHROMIUM, OUTPUT, _axe_serious

    web, server, store = office
    season = Period(date(2026, 8, 10), date(2027, 6, 27))
    expected = totals(store.weekly_usage(season))
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            for width, height in SIZES:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(
                    server.url
                    + "/login?next="
                    + httpx.URL("/" + SEASON).raw_path.decode().replace("&", "%26").replace("?", "%3F")
                )
                page.fill("input[name=name]", "kontor-bo")
                page.fill("input[name=password]", PASSWORD)
                page.click("#login button")
                page.wait_for_selector("#dashboard")
                size = f"{width}x{height}"

                # the period's figures: the database's sums, and the CSV's
                assert figure(page, "Bookede timer") == number(expected.booked_hours, "da")
                assert figure(page, "Brugte timer") == number(expected.used_hours, "da")
                assert figure(page, "Udeblivelser") == str(expected.no_shows)
                assert figure(page, "Steder online") == "2 af 3"
                rows = danish_csv(page.request.get(server.url + "/usage.csv" + SEASON).body())
                assert sum(float(r["Booket (timer)"].replace(",", ".")) for r in rows) == expected.booked_hours
                states = page.locator("#site-states li").all_inner_texts()
                assert states[0].startswith("Ikke hørt fra") and "Vanløse Skole" in states[0]
                assert (
                    page.locator("#season-chart rect.booked").count() == 3
                    and page.locator("#season-chart circle.last").count() == 3
                )
                assert no_sideways_scrolling(page), size
                assert _axe_serious(page) == [], size
                page.screenshot(path=str(OUTPUT / f"fleet-dashboard-{size}.png"), full_page=True)

                # a site: its week map, and one room of it
                page.locator("#site-states a", has_text="Valby Hallen").click()
                page.wait_for_url("**site=valby**")
                assert figure(page, "Bookede timer") == number(totals(store.weekly_usage(season, "valby")).booked_hours, "da")
                page.get_by_role("link", name="Gymnastiksal B").click()
                assert "tirsdag" not in page.locator("#week-map-worst").inner_text()
                assert "mandag kl. 20.00" in page.locator("#week-map-worst").inner_text()  # 19.30-21.30, never used
                assert no_sideways_scrolling(page), size
                assert _axe_serious(page) == [], size
                page.screenshot(path=str(OUTPUT / f"fleet-dashboard-site-{size}.png"), full_page=True)

                # an association's season, by keyboard alone from the ranking
                page.goto(server.url + "/" + SEASON + "&sort=no_shows")
                first = page.locator("#association-rank tbody tr").first
                assert first.get_attribute("data-association") == "a18"  # 2 of 3 no-shows this season
                for _ in range(200):
                    page.keyboard.press("Tab")
                    if page.evaluate("document.activeElement.textContent") == "Vanløse Badminton":
                        break
                else:
                    pytest.fail("the association's link is never reached by Tab")
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline not in ("", "none")  # the focus is seen
                page.keyboard.press("Enter")
                page.wait_for_url("**/association?**")
                bookings = UsageDetails(store.db).bookings("a18", season)
                assert page.locator("#bookings tbody tr").count() == len(bookings) == 6
                assert page.locator("#bookings tbody tr").first.inner_text().split("\t")[:2] == [
                    "mandag 23. nov. 2026",
                    "18.00–19.00",
                ]
                assert figure(page, "Bookede timer") == number(sum(b["booked_hours"] for b in bookings), "da")
                assert no_sideways_scrolling(page), size
                assert _axe_serious(page) == [], size
                page.screenshot(path=str(OUTPUT / f"fleet-association-{size}.png"), full_page=True)

                # the committee's report, on screen and on A4
                page.get_by_role("link", name="Sæsonrapport til udskrift").click()
                page.wait_for_url("**/report?**")
                assert figure(page, "Bookede timer") == number(sum(b["booked_hours"] for b in bookings), "da")
                page.goto(server.url + "/report" + SEASON)
                assert figure(page, "Bookede timer") == number(expected.booked_hours, "da")
                assert no_sideways_scrolling(page), size
                assert _axe_serious(page) == [], size
                page.screenshot(path=str(OUTPUT / f"fleet-report-{size}.png"), full_page=True)
                if width == SIZES[0][0]:
                    page.emulate_media(media="print")
                    assert page.locator("#filter").count() == 0 or not page.locator("#filter").is_visible()
                    assert not page.locator("header nav").is_visible()
                    page.pdf(path=str(OUTPUT / "fleet-report.pdf"), format="A4")
                page.close()
        finally:
            browser.close()
