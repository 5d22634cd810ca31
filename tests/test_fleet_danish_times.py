"""Every date and time the fleet's pages show a Danish reader is Danish ("25. nov. 2026",
"17.00"), whatever the browser's language; English only with ?lang=en. Read as a person
reads the page: its text, the values of its fields and its tooltips."""

from __future__ import annotations

import html
import re
import time

from haldor.fleet.commands import Operator

from .test_fleet_web import fill_with_markup, hostile, logged_in
from .test_fleet_web import page as page  # noqa: F401  (the fixture: a page with a login)

#: an ISO day ("2026-11-25") or a time with a colon ("17:00"): how a Danish reader is not written to
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}\b")
PAGES = (
    "/?from=2026-08-10&to=2027-06-27",
    "/?site=valby&from=2026-11-01&to=2026-11-30",
    "/access?site=valby&from=2026-11-23&to=2026-11-23",
    "/audit?from=2026-11-01",
    "/association?association=a17&from=2026-08-10&to=2027-06-27",
    "/report?from=2026-08-10&to=2027-06-27",
    "/report?association=a17&from=2026-08-10&to=2027-06-27",
)


def shown(page: str) -> str:
    """What a reader sees of a page: its text, the values in its fields, its tooltips."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    seen = re.findall(r"(?:value|title|placeholder|aria-label)='([^']*)'", body)
    text = re.sub(r"<[^>]+>", " ", body)
    return html.unescape(" ".join([text, *seen]))


def test_no_page_shows_an_iso_time_to_a_danish_reader(page):
    web, _, store = page
    fill_with_markup(store)
    web.audit.record(time.time(), Operator("pedel-anna", "operator"), "unlock", site="valby", door="main", detail=hostile("x"))
    client = logged_in(web)
    for path in PAGES:
        reply = client.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})  # an English browser: Danish all the same
        assert reply.status_code == 200, path
        text = shown(reply.text)
        assert ISO.findall(text) == [], (path, ISO.findall(text))
        assert re.search(r"\b\d{1,2}\. (jan|feb|mar|apr|maj|jun|jul|aug|sep|okt|nov|dec)\.? \d{4} \d{2}\.\d{2}\b", text), path
    overview = shown(client.get("/?from=2026-08-10&to=2027-06-27").text)
    assert "25. nov. 2026 17.00" in overview  # the site's status, in its own (the page's) zone
    access = shown(client.get(PAGES[2]).text)
    assert "23. nov. 2026 18.01" in access and "23. nov. 2026 18.00" in access
    english = shown(client.get("/access?site=valby&from=2026-11-23&to=2026-11-23&lang=en").text)
    assert "23 Nov 2026 18:01" in english and "23. nov." not in english
