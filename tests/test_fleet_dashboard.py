"""The fleet's dashboard: its figures are the usage lines the tables and spreadsheets
show (summed, never counted a second way), last season's weeks stand beside this
season's, the sites that need a look come first, and each picture has a table."""

from __future__ import annotations

import re
import time
from datetime import date

import httpx
import pytest

from haldor.fleet.charts import season_chart
from haldor.fleet.dashboard import by_association, by_attention, season_weeks, totals, week_back, year_before
from haldor.fleet.formats import long_day, short_day, span
from haldor.fleet.report import Period, UsageLine
from haldor.fleet.serving import FleetServer
from haldor.fleet.store import FleetStore
from haldor.fleet.usage_details import UsageDetails
from haldor.fleet.view import read_view
from haldor.fleet.web import FleetWeb
from haldor.fleet.week_map import Cell, spread

from .test_fleet import SEASON, danish_csv, named, usage
from .test_fleet import fleet_db as fleet_db  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from .test_fleet_web import ESCAPED, HOSTILE, fill_with_markup, hostile, logged_in
from .test_fleet_web import page as page  # noqa: F401  (the fixture: a page with a login)


def line(week: str, booked: float, used: float, no_shows: int = 0, closed: int = 0, unobserved: int = 0) -> UsageLine:
    return UsageLine(week, "valby", "gym-a", "a17", 2, booked, used, no_shows, closed, unobserved)


def test_totals_sum_the_lines_the_tables_show():
    got = totals([line("2026-W48", 3.5, 2.0, 1), line("2026-W49", 1.25, 0.0, 1, 1, 2)])
    assert (got.bookings, got.booked_hours, got.used_hours, got.no_shows, got.closed, got.unobserved) == (4, 4.75, 2.0, 2, 1, 2)
    assert got.unused_hours == 2.75 and round(got.used_share, 4) == round(2.0 / 4.75, 4)
    assert totals([]).used_share == 0.0


def test_last_season_is_the_same_weeks_a_year_before():
    assert week_back("2026-W48") == "2025-W48"
    assert year_before(Period(date(2026, 8, 10), date(2027, 6, 27))) == Period(date(2025, 8, 11), date(2026, 6, 28))
    assert year_before(Period(date(2026, 8, 10), None)) == Period(date(2025, 8, 11), date(2026, 8, 9))
    weeks = season_weeks([line("2026-W48", 4, 3), line("2026-W50", 2, 1)], [line("2025-W48", 5, 1)])
    assert [(w.week, w.booked, w.used, w.last_booked, w.last_used) for w in weeks] == [
        ("2026-W48", 4, 3, 5, 1),
        ("2026-W49", 0, 0, 0, 0),  # a quiet week is a week, this season and last
        ("2026-W50", 2, 1, 0, 0),
    ]
    alone = season_weeks([line("2026-W48", 4, 3)], [])
    assert alone[0].last_used is None and not season_chart(alone).has_last  # type: ignore[union-attr]


def test_the_chart_is_drawn_to_scale():
    chart = season_chart(season_weeks([line("2026-W48", 4, 1)], [line("2025-W48", 2, 2)]))
    assert chart is not None and chart.top == 4
    bars = chart.weeks[0]
    assert bars.booked_h == 180 and bars.used_h == 45 and bars.last_y == 10 + 180 - 90


def site(name: str, **fields) -> dict:
    return {
        "site": name.lower(),
        "name": name,
        "online": True,
        "silent": False,
        "unknown": False,
        "schedule_age_h": 1.0,
        "reader_faults": {},
        "events_missing": 0,
        "events_lost": 0,
        "outbox_pending": 0,
        "mode": "normal",
        **fields,
    }


def test_sites_needing_a_look_come_first_in_words_and_colour():
    ranked = by_attention(
        [
            site("Amager"),
            site("Brønshøj", reader_faults={"in": "stopped"}),
            site("Valby", online=False),
            site("Ørestad", silent=True),
        ]
    )
    assert [(s["name"], s["state"], s["why"]) for s in ranked] == [
        ("Valby", "bad", ["offline"]),
        ("Ørestad", "bad", ["silent"]),
        ("Brønshøj", "warn", ["reader"]),
        ("Amager", "ok", []),
    ]


@pytest.fixture
def served(tmp_path):
    store = FleetStore(str(tmp_path / "fleet.db"))
    web = FleetWeb(store)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    web.url = server.url  # type: ignore[attr-defined]
    yield web, server, store
    server.shutdown()


def fill(store: FleetStore) -> None:
    now = time.time()
    store.set_status("valby", {"online": True, "at": "2026-11-25T17:00:00+01:00", "names": {"site": "Valby"}}, now)
    store.set_status("vanlose", {"online": False, "at": "2026-11-25T17:00:00+01:00", "names": {"site": "Vanløse"}}, now)
    store.add_event(named(usage("valby", "b1", "2026-11-23T17:00:00+01:00", 90, True)))
    store.add_event(named(usage("valby", "b2", "2026-11-24T19:30:00+01:00", 120, False, no_show=True)))
    store.add_event(named(usage("vanlose", "b3", "2026-11-30T17:00:00+01:00", 60, True, association="a18")))
    store.add_event(named(usage("valby", "b0", "2025-11-24T17:00:00+01:00", 60, True)))  # last season


def kpis(html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^< ]+(?: (?:af|of) \d+)?)", html))


def test_the_dashboard_says_what_the_csv_sums_to(served):
    web, _, store = served
    fill(store)
    html = httpx.get(web.url + "" + SEASON).text
    rows = danish_csv(httpx.get(web.url + "/usage.csv" + SEASON).content)

    def csv_sum(column: str) -> float:
        return sum(float(r[column].replace(",", ".")) for r in rows)

    figures = kpis(html)
    assert figures["Bookede timer"] == "4,5" and csv_sum("Booket (timer)") == 4.5
    assert figures["Brugte timer"] == "2,5" and csv_sum("Brugt (timer)") == 2.5
    assert figures["Andel brugt"] == "56" and figures["Udeblivelser"] == str(int(csv_sum("Udeblevet"))) == "1"
    assert figures["Ubrugte timer"] == "2" and figures["Steder online"] == "1 af 2"
    assert html.index("id='dashboard'") < html.index("id='sites'")  # the dashboard is at the top
    assert "<td class='n'>1</td><td class='n'>1</td>" in html  # last season's week 48 beside this one's
    states = re.findall(r"<li data-site='(\w+)' data-state='(\w+)'><span class='state state-\w+'>([^<]+)</span>", html)
    assert states[0] == ("vanlose", "bad", "Ikke hørt fra")
    english = kpis(httpx.get(web.url + "" + SEASON + "&lang=en").text)
    assert english["Booked hours"] == "4.5" and english["Sites online"] == "1 of 2"
    one = kpis(httpx.get(web.url + "" + SEASON + "&site=vanlose").text)
    assert one["Bookede timer"] == "1" and one["Steder online"] == "0 af 1"


def test_the_week_map_spreads_each_booking_over_the_hours_it_covers():
    # Monday 19.30-21.00 used; two Sundays 23.30-00.30 unused (into Monday); Tuesday 17-18 closed (no hours)
    week = spread([(0, 19 * 60 + 30, 1.5, 1.5, 1.5), (6, 23 * 60 + 30, 1.0, 2.0, 0.0), (1, 17 * 60, 0.0, 0.0, 0.0)])
    assert week.cells[0][19] == Cell(0.5, 0.5) and week.cells[0][20] == Cell(1.0, 1.0)
    assert week.cells[6][23] == Cell(1.0, 0.0) and week.cells[0][0] == Cell(1.0, 0.0)  # past midnight: Monday
    assert week.hours == list(range(0, 24)) and week.total() == Cell(3.5, 1.5)
    assert [(d, h) for d, h, _ in week.worst(2)] == [(0, 0), (6, 23)]
    assert week.level(week.cells[0][0]) == 4 and week.level(week.cells[0][19]) == 0


def test_the_week_map_adds_up_to_the_dashboard_and_follows_the_chosen_room(served):
    web, _, store = served
    fill(store)
    store.add_event(named(usage("valby", "b4", "2026-11-25T18:00:00+01:00", 60, False, room="gym-b", association="a18")))
    details = UsageDetails(store.db)
    season = Period(date(2026, 8, 10), date(2027, 6, 27))
    whole = details.week_map(season)
    assert whole.total() == Cell(5.5, 2.5) and whole.total().booked == sum(u.booked_hours for u in store.weekly_usage(season))
    assert whole.cells[1][19] == Cell(0.5, 0.0) and whole.cells[1][20] == Cell(1.0, 0.0)  # Tuesday 19.30, a no-show
    assert details.week_map(season, "valby", "gym-b").total() == Cell(1.0, 0.0)
    html = httpx.get(web.url + "/" + SEASON + "&site=valby&room=gym-b").text
    assert "<td class='lvl-4' title='1 af 1 timer ubrugt'>1</td>" in html and "aria-current='page'>Gymnastiksal B</a>" in html
    assert "onsdag kl. 18.00 (1 af 1 timer ubrugt)" in html
    english = httpx.get(web.url + "/" + SEASON + "&lang=en").text
    assert "Tuesday hour 20:00 (1 of 1 hours unused)" in english


def test_rows_stored_before_the_details_are_worked_out_again_from_their_events(tmp_path):
    db = str(tmp_path / "fleet.db")
    store = FleetStore(db)
    store.add_event(named(usage("valby", "b1", "2026-11-23T19:30:00+01:00", 90, True)))
    store.db.execute("UPDATE usage SET start = NULL, weekday = NULL, start_min = NULL, entries = NULL")
    store.close()
    again = FleetStore(db)
    [booking] = UsageDetails(again.db).bookings("a17", Period())
    assert (booking["start"], booking["entries"], booking["booked_min"]) == ("2026-11-23T19:30:00+01:00", 1, 90)
    assert UsageDetails(again.db).week_map(Period()).cells[0][20] == Cell(1.0, 1.0)
    assert again.usage_count() == 1


def test_associations_rank_by_unused_hours_or_no_show_share():
    lines = [
        UsageLine("2026-W48", "valby", "gym-a", "a17", 4, 6.0, 5.0, 1, 0, 0, "Valby", "A", "Valby Volley"),
        UsageLine("2026-W48", "valby", "gym-a", "a18", 2, 4.0, 1.0, 0, 0, 0, "Valby", "A", "Vanløse Badminton"),
        UsageLine("2026-W49", "vanlose", "gym-a", "a19", 3, 2.0, 0.0, 2, 1, 0, "Vanløse", "A", "Amager Atletik"),
    ]
    assert [r.association for r in by_association(lines)] == ["a18", "a19", "a17"]  # 3, 2, 1 unused hours
    ranked = by_association(lines, "no_shows")
    assert [(r.association, r.no_show_share) for r in ranked] == [("a19", 1.0), ("a17", 0.25), ("a18", 0.0)]
    assert [r.association for r in by_association(lines, "name")] == ["a19", "a17", "a18"]
    assert [r.association for r in by_association(lines, "booked")] == ["a17", "a18", "a19"]
    assert by_association(lines)[0].figures == totals(lines[1:2])  # the dashboard's own sums


def test_an_associations_season_lists_every_booking_and_why(served):
    web, _, store = served
    fill(store)
    closed = named(usage("vanlose", "b5", "2026-12-01T17:00:00+01:00", 60, False))
    closed["usage"] |= {"closed": True, "closed_min": 60}
    store.add_event(closed)
    html = httpx.get(web.url + "/" + SEASON + "&sort=no_shows").text
    assert re.findall(r"<tr data-association='(\w+)'>", html) == ["a17", "a18"]
    link = re.search(r"href='(/association\?[^']+)'>Valby Volley</a>", html)
    assert link is not None
    page = httpx.get(web.url + link.group(1).replace("&amp;", "&")).text
    rows = re.findall(r"<tr data-booking='(\w+)' data-why='(\w+)'><td>([^<]+)</td>\s*<td>([^<]+)</td><td>([^<]+)</td>", page)
    assert rows == [
        ("b1", "entry", "mandag 23. nov. 2026", "17.00–18.30", "Valby"),
        ("b2", "no_show", "tirsdag 24. nov. 2026", "19.30–21.30", "Valby"),
        ("b5", "closed", "tirsdag 1. dec. 2026", "17.00–18.00", "Vanløse"),
    ]
    figures = kpis(page)
    csv = [r for r in danish_csv(httpx.get(web.url + "/usage.csv" + SEASON).content) if r["association_id"] == "a17"]
    assert (
        figures["Bookede timer"] == "3,5" == str(sum(float(r["Booket (timer)"].replace(",", ".")) for r in csv)).replace(".", ",")
    )
    assert figures["Bookinger i lukkede lokaler"] == "1" and figures["Udeblivelser"] == "1"
    assert "Steder online" not in figures
    english = httpx.get(web.url + link.group(1).replace("&amp;", "&").replace("lang=da", "lang=en")).text
    assert "Monday 23 Nov 2026" in english and "17:00–18:30" in english and "no-show: nobody came" in english
    assert "Ingen bookinger" in httpx.get(web.url + "/association?association=nobody").text


def test_days_are_read_and_written_the_danish_way_whatever_the_browser():
    assert read_view("from=06-12-2026&to=7.12.2026", date(2026, 12, 6)).period == Period(date(2026, 12, 6), date(2026, 12, 7))
    assert read_view("from=2026-12-06", date(2026, 12, 6)).period.first == date(2026, 12, 6)  # links and English
    wrong = read_view("from=31-02-2026", date(2026, 12, 6))
    assert wrong.problems == ("Ukendt dato (skriv DD-MM-ÅÅÅÅ, fx 06-12-2026): 31-02-2026",) and wrong.period.first is None
    assert long_day(date(2026, 12, 6), "da") == "6. dec. 2026" and long_day("2026-05-01", "en") == "1 May 2026"
    assert short_day(date(2026, 12, 6), "da") == "06-12-2026" and short_day(date(2026, 12, 6), "en") == "2026-12-06"
    assert (
        span("2026-12-06T19:30:00+01:00", 90, "da") == "19.30–21.00"
        and span("2026-12-06T19:30:00+01:00", 90, "en") == "19:30–21:00"
    )


def test_the_filter_is_a_danish_text_field_read_by_the_server(served):
    web, _, store = served
    fill(store)
    html = httpx.get(web.url + "/?from=2026-08-10&to=27-06-2027").text
    assert "type='date'" not in html
    assert "name='from' inputmode='numeric'" in html and "value='10-08-2026'" in html and "value='27-06-2027'" in html
    assert kpis(html)["Bookede timer"] == "4,5"
    english = httpx.get(web.url + "/?from=10-08-2026&lang=en").text
    assert "value='2026-08-10'" in english
    wrong = httpx.get(web.url + "/?from=32-13-2026").text
    assert "<p class='problem' role='alert'>Ukendt dato (skriv DD-MM-ÅÅÅÅ, fx 06-12-2026): 32-13-2026</p>" in wrong


def test_the_season_report_has_the_pages_and_the_spreadsheets_figures(served):
    web, _, store = served
    fill(store)
    overview = kpis(httpx.get(web.url + "/" + SEASON).text)
    report = httpx.get(web.url + "/report" + SEASON).text
    figures = kpis(report)
    assert "Steder online" not in figures
    assert figures == {k: v for k, v in overview.items() if k != "Steder online"}
    assert "Periode: 10. aug. 2026 – 27. jun. 2027." in report
    assert re.findall(
        r"<tr data-site='(\w+)'><th scope='row'>([^<]+)</th><td class='n'>(\d+)</td><td class='n'>([\d,]+)</td>", report
    ) == [
        ("valby", "Valby", "2", "3,5"),
        ("vanlose", "Vanløse", "1", "1"),
    ]
    assert "id='week-map'" in report and "id='association-rank'" in report and "<p class='sorts no-print'>" in report
    assert "<details open>" in report  # the chart's figures printed beside it
    one = httpx.get(web.url + "/report" + SEASON + "&association=a18").text
    assert "<h1 id='heading'>Sæsonrapport for Vanløse Badminton</h1>" in one
    csv = [r for r in danish_csv(httpx.get(web.url + "/season.csv" + SEASON).content) if r["association_id"] == "a18"]
    assert kpis(one)["Bookede timer"] == csv[0]["Booket (timer)"] == "1"
    assert re.findall(r"<tr data-booking='(\w+)'", one) == ["b3"]
    css = httpx.get(web.url + "/static/fleet.css").text
    assert "@media print" in css and "size:A4" in css


def test_every_dashboard_template_escapes_what_a_box_sends(page):
    web, _, store = page
    fill_with_markup(store)
    odd = usage("valby", hostile("booking"), "2026-11-24T19:00:00+01:00", 60, False, room=hostile("room-id"), association=HOSTILE)
    odd["usage"] |= {"room_name": hostile("room"), "association_name": hostile("association")}
    store.add_event(odd)
    client = logged_in(web)
    quoted = "%3Cscript%3Ealert%281%29%3C%2Fscript%3E%27+onmouseover%3D%27alert%282%29%22+onfocus%3D%22alert%283%29"
    pages = {
        "/" + SEASON: ["site", "association"],
        "/" + SEASON + "&site=valby": ["site", "room", "association"],
        "/association" + SEASON + "&association=a17": ["site", "room", "association"],
        "/association" + SEASON + "&association=" + quoted: ["site", "room", "association", "booking"],
        "/report" + SEASON: ["site", "association"],
        "/report" + SEASON + "&association=" + quoted: ["site", "room", "association", "booking"],
    }
    for path, shown in pages.items():
        reply = client.get(path)
        assert reply.status_code == 200, path
        text = reply.text
        for what in shown:
            assert f"{what} {ESCAPED}" in text, (path, what)
        assert "<script>alert" not in text and "' onmouseover='" not in text and '" onfocus="' not in text, path


def test_the_dashboard_lists_the_first_sites_and_associations_and_says_where_the_rest_are(served, monkeypatch):
    from haldor.fleet import templating

    web, _, store = served
    fill(store)
    monkeypatch.setattr(templating, "DASH_SITES", 1)
    monkeypatch.setattr(templating, "DASH_ASSOCIATIONS", 1)
    html = httpx.get(web.url + "/" + SEASON).text
    assert re.findall(r"<li data-site='(\w+)'", html) == ["vanlose"] and "De 1 første af 2 steder" in html
    assert re.findall(r"<tr data-association='(\w+)'", html) == ["a17"] and "De 1 første af 2 foreninger" in html
    report = httpx.get(web.url + "/report" + SEASON + "&sort=name").text
    assert re.findall(r"<tr data-association='(\w+)'", report) == ["a17", "a18"]


def test_the_dashboards_reads_on_both_backends(fleet_db):
    """The new columns, the week map, an association's bookings and the worked-out-again
    rows on SQLite and on a real PostgreSQL."""
    store = FleetStore(fleet_db)
    fill(store)
    season = Period(date(2026, 8, 10), date(2027, 6, 27))
    details = UsageDetails(store.db)
    assert details.week_map(season).total() == Cell(4.5, 2.5)
    assert details.week_map(season, "valby").cells[1][20] == Cell(1.0, 0.0)
    assert [b["booking"] for b in details.bookings("a17", season)] == ["b1", "b2"]
    assert details.rooms("valby") == [("gym-a", "Gymnastiksal A")]
    store.db.execute("UPDATE usage SET start = NULL, weekday = NULL, start_min = NULL")
    store.close()
    again = FleetStore(fleet_db)
    assert UsageDetails(again.db).week_map(season).total() == Cell(4.5, 2.5) and again.usage_count() == 4
    again.close()


def test_the_table_of_sites_shows_the_first_of_them_and_the_spreadsheet_all(served, monkeypatch):
    from haldor.fleet import templating

    web, _, store = served
    fill(store)
    monkeypatch.setattr(templating, "PAGE_ROWS", 1)
    html = httpx.get(web.url + "/" + SEASON).text
    start = html.index("<table id='sites'>")
    table, after = html[start : html.index("</table>", start)], html[html.index("</table>", start) : html.index("<h2>", start)]
    assert re.findall(r"<tr data-site='(\w+)'", table) == ["vanlose"]  # the offline one first
    assert "Viser de første 1 rækker" in after
    assert len(danish_csv(httpx.get(web.url + "/sites.csv" + SEASON).content)) == 2
