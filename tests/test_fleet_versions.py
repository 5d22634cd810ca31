"""The fleet's page shows which release each box runs (issue 27: the fleet shows each
box's version), as its status says it."""

from __future__ import annotations

import re

import httpx

from .helpers import wait_for
from .test_fleet import SEASON, SimulatedSite, fleet, fleet_db  # noqa: F401 (fixtures)


def test_the_overview_shows_each_box_s_version(fleet):  # noqa: F811
    broker, consumer, store, web = fleet
    valby, vanlose = SimulatedSite(broker.port, "valby"), SimulatedSite(broker.port, "vanlose")
    valby.status("2026-11-25T17:00:00+01:00", agent_version="0.2.0")
    vanlose.status("2026-11-25T17:00:00+01:00", agent_version="0.1.0")
    wait_for(lambda: {s["site"]: s["agent_version"] for s in store.sites()} == {"valby": "0.2.0", "vanlose": "0.1.0"})
    page = httpx.get(web.url + SEASON).text
    shown = dict(re.findall(r"<tr data-site='(\w+)'>.*?<span class='version'>Haldor ([\d.]+)</span>", page, re.S))
    assert shown == {"valby": "0.2.0", "vanlose": "0.1.0"}
    valby.client.disconnect()
    vanlose.client.disconnect()
