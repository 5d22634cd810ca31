"""Issue 24, the chain tells the truth: `haldor bridge --once` as a process, a real
Mosquitto and, where a box answers, a real `haldor run`. A site the bridge cannot serve,
a box whose key or time zone differs from the bridge's, and a box that refuses what it
was sent each end in one line naming the site and exit 1; the other sites go on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from haldor.bridge import checks, settings
from haldor.bridge.state import BridgeState

from . import test_broker_acl
from .broker import Watcher
from .helpers import site_config, wait_for
from .test_bridge import CPH, Municipality
from .test_tools import ENV, haldor

acl_broker = test_broker_acl.acl_broker  # the shipped haldor.conf and haldor.acl


@pytest.fixture
def town(tmp_path, broker):
    return Municipality(tmp_path, broker.port)


def retained(broker, site: str, other: str) -> dict[str, dict]:
    """The retained schedules of ``site`` and ``other`` (the one known to be there),
    heard from one subscription: both arrive in its burst, or ``site``'s is not there."""
    watcher = Watcher(broker.port, topics="haldor/v1/+/schedule")
    try:
        wait_for(
            lambda: [t for t, d, _ in list(watcher.messages) if t == f"haldor/v1/{other}/schedule" and d],
            timeout=10,
            what=f"{other}'s schedule",
        )
        return {t.split("/")[2]: json.loads(d["doc"]) for t, d, _ in list(watcher.messages) if d}
    finally:
        watcher.close()


def published(town: Municipality, site: str) -> tuple[int, dict] | None:
    state = BridgeState(str(town.dir / "state" / "bridge.db"))
    try:
        return state.published(site)
    finally:
        state.close()


def test_a_site_without_a_key_is_not_sent_in_clear(town, broker):
    """Before: the example's public_key = "" published every card in clear, retained,
    with a warning and exit 0."""
    town.config.write_text(town.config.read_text().replace('id = "valby-skole"\nplain = true\n', 'id = "valby-skole"\n'))
    result = town.run("--once")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "valby-skole" in line]
    assert len(lines) == 1 and "valby-skole: not published: [[sites]] public_key is empty" in lines[0], result.stderr
    assert "vanlose-skole: haldor.schedule/1" in result.stdout and "valby-skole" not in result.stdout
    on_broker = retained(broker, "valby-skole", "vanlose-skole")
    assert "valby-skole" not in on_broker and on_broker["vanlose-skole"]["credentials"]
    assert published(town, "valby-skole") is None


class Box:
    """A real `haldor run` for valby-skole, trusting ``trusts`` as bookings-2026."""

    def __init__(self, tmp_path: Path, port: int, trusts: str, name: str = "box") -> None:
        self.config = site_config(
            tmp_path / f"{name}.toml", tmp_path / f"{name}-data", port=port, keys={"bookings-2026": trusts}, plain=False
        )
        keygen = haldor("keygen", "--site", "--config", str(self.config)).stdout
        self.key = re.search(r"--seal-to (\S+)", keygen).group(1)
        self.watcher = Watcher(port)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haldor", "run", "--config", str(self.config)], env=ENV, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: any(d.get("online") for d in self.watcher.docs("status")), timeout=20, what="box online")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(10)
        self.watcher.close()


def with_site(town: Municipality, line: str) -> None:
    """valby-skole configured with ``line`` (its key, a zone) instead of plain = true."""
    base = town.__dict__.setdefault("base", town.config.read_text())  # as the fixture wrote it
    town.config.write_text(base.replace('id = "valby-skole"\nplain = true\n', f'id = "valby-skole"\n{line}\n'))


def test_a_wrong_site_key_or_time_zone_is_refused_before_anything_is_sent(town, tmp_path, broker):
    """Before: "(36 changes)" and exit 0 for a key the box cannot open, and "65 changes"
    for Europe/London at a Danish box; now one line naming both, and nothing sent."""
    box = Box(tmp_path, broker.port, town.public)
    other = site_config(tmp_path / "other.toml", tmp_path / "other-data", keys={"bookings-2026": town.public}, plain=False)
    wrong = re.search(r"--seal-to (\S+)", haldor("keygen", "--site", "--config", str(other)).stdout).group(1)
    try:
        with_site(town, f'public_key = "{wrong}"')
        result = town.run("--once")
        assert result.returncode == 1, result.stdout + result.stderr
        line = next(x for x in result.stderr.splitlines() if x.startswith("valby-skole:"))
        assert f"public_key {checks.fingerprint(wrong)} here, but the box's site_key is {checks.fingerprint(box.key)}" in line
        assert "vanlose-skole: haldor.schedule/1" in result.stdout and "valby-skole" not in result.stdout
        assert "warning: vanlose-skole: no status from its box yet" in result.stderr  # never seen: on it goes

        with_site(town, f'public_key = "{box.key}"\ntimezone = "Europe/London"')
        result = town.run("--once")
        assert result.returncode == 1, result.stdout + result.stderr
        line = next(x for x in result.stderr.splitlines() if x.startswith("valby-skole:"))
        assert "timezone Europe/London here, but the box's is Europe/Copenhagen" in line
        assert published(town, "valby-skole") is None
        assert box.watcher.events("sync.rejected") == [] and box.watcher.events("sync.applied") == []
        assert "valby-skole" not in retained(broker, "valby-skole", "vanlose-skole")
    finally:
        box.close()


def test_a_box_that_refuses_or_does_not_answer_fails_the_run(town, tmp_path, broker):
    """Before: "valby-skole: ... (N changes)" and exit 0 while the box logged its refusal."""
    stranger = tmp_path / "stranger"
    haldor("keygen", "bookings-2026", "--dir", str(stranger))
    box = Box(tmp_path, broker.port, (stranger / "bookings-2026.pub").read_text().strip())  # trusts another key
    try:
        with_site(town, f'public_key = "{box.key}"')
        result = town.run("--once")
        assert result.returncode == 1, result.stdout + result.stderr
        line = next(x for x in result.stderr.splitlines() if x.startswith("valby-skole: snapshot"))
        assert "refused by the box: " in line and box.watcher.events("sync.rejected"), result.stderr
        assert re.search(r"valby-skole: haldor.schedule/1 version \d+ to haldor/v1/valby-skole/schedule", result.stdout)
        assert published(town, "valby-skole")[1] is None  # forgotten: the next run sends it again and says so again

        os.kill(box.proc.pid, signal.SIGSTOP)  # online on the broker, answering nothing
        town.config.write_text(town.config.read_text().replace("[bridge]\n", "[bridge]\nanswer_s = 2\n"))
        result = town.run("--once")
        assert result.returncode == 1, result.stdout + result.stderr
        assert re.search(r"valby-skole: no answer from its box to snapshot \d+ within 2 s \(bridge.answer_s\)", result.stderr)
    finally:
        box.close()


def test_an_applied_schedule_is_said_and_the_run_succeeds(town, tmp_path, broker):
    box = Box(tmp_path, broker.port, town.public)
    try:
        with_site(town, f'public_key = "{box.key}"')
        result = town.run("--once")
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^valby-skole: applied snapshot \d+$", result.stdout, flags=re.M), result.stdout
    finally:
        box.close()


def test_a_pin_excel_saved_as_a_number_keeps_its_zero_or_its_card(town, broker):
    """Before: 482 (0482 typed into a number column) dropped the whole row, card too."""
    book = openpyxl.Workbook()
    book.active.append(["id", "association", "card", "pin", "role", "sites"])
    book.active.append(["c1", "a18", "04A1B2C3D4E5F6", 482, "member", None])  # a number cell, as Excel saves it
    book.active.append(["c2", "a18", "04AABBCCDD0011", 4821, "member", None])
    book.save(town.dir / "credentials.xlsx")
    town.config.write_text(town.config.read_text().replace('"credentials.csv"', '"credentials.xlsx"'))
    result = town.run("--once")
    assert result.returncode == 0, result.stdout + result.stderr
    pins = {c["id"]: c["pin"] for c in retained(broker, "vanlose-skole", "vanlose-skole")["vanlose-skole"]["credentials"]}
    assert pins == {"c1": "0482", "c2": "4821"}  # every other PIN has 4 digits: so has this one

    (town.dir / "credentials.csv").write_text(
        "id;association;card;pin;role\nc1;a18;04A1B2C3D4E5F6;482;member\nc2;a18;04AABBCCDD0011;909090;member\n"
        "c3;a18;;4821;member\n"
    )
    town.config.write_text(town.config.read_text().replace('"credentials.xlsx"', '"credentials.csv"'))
    result = town.run("--once", "--accept-sheets")
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stderr.splitlines() if "credentials.csv:2" in x)
    assert "Format the pin column as Text in Excel" in line and "published with its card and without a PIN" in line
    doc = published(town, "vanlose-skole")[1]
    assert {c["id"]: c["pin"] for c in doc["credentials"]} == {"c1": None, "c2": "909090", "c3": "4821"}


def when(start: datetime, hours: float) -> str:
    end = start + timedelta(hours=hours)
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}" if end.date() == start.date() else f"{start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M}"


def test_a_dry_run_shows_each_booking_with_its_local_times_and_room(town):
    """Before: ids alone ("changed bookings: 3f9a..."), nothing to check against the booking system."""
    first = town.run("--dry-run")
    start = town.start
    expected = f"{when(start, 3)} gym-a"
    assert re.search(rf"^    added booking \S+: {re.escape(expected)}$", first.stdout, flags=re.M), first.stdout
    assert town.run("--once").returncode == 0
    town.write_feed(hours=1)
    again = town.run("--dry-run")
    shorter = f"{when(start, 1)} gym-a (was {expected})"
    assert re.search(rf"^    changed booking \S+: {re.escape(shorter)}$", again.stdout, flags=re.M), again.stdout
    assert start.tzinfo == CPH


def test_the_service_says_at_its_next_run_what_a_box_answered(town, tmp_path, broker):
    """The service does not block on answers: it hears them on its connection and its
    next run says them."""
    stranger = tmp_path / "stranger"
    haldor("keygen", "bookings-2026", "--dir", str(stranger))
    box = Box(tmp_path, broker.port, (stranger / "bookings-2026.pub").read_text().strip())
    with_site(town, f'public_key = "{box.key}"')
    bridge = subprocess.Popen(
        [sys.executable, "-m", "haldor", "bridge", "--config", str(town.config)], env=ENV, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(bridge.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: [x for x in list(lines) if x.startswith("valby-skole: haldor.schedule/1")], timeout=30, what="sent")
        wait_for(lambda: box.watcher.events("sync.rejected"), timeout=20, what="the box's refusal")
        asking = Watcher(broker.port, topics="unused")
        request = json.dumps({"site": "vanlose-skole", "have_version": None})
        asking.client.publish("haldor/v1/vanlose-skole/sync/request", request, qos=1).wait_for_publish(10)
        asking.close()
        wait_for(
            lambda: [x for x in list(lines) if "refused by the box: " in x and x.startswith("valby-skole: snapshot")],
            timeout=30,
            what="said",
        )
    finally:
        bridge.terminate()
        assert bridge.wait(10) == 0
        box.close()


@pytest.mark.parametrize(
    "zone, sent, refused",
    [
        ("Europe/Copenhagen", None, False),
        ("Europe/London", None, True),  # the box's own zone differs
        ("Europe/London", "Europe/London", False),  # the box echoes the zone this bridge sent it before the fix
        (None, None, False),  # an older box that does not say
    ],
)
def test_a_zone_is_compared_with_the_box_s_own_not_with_the_bridge_s_echo(zone, sent, refused):
    site = settings.Site("valby-skole", timezone="Europe/Copenhagen", public_key="")
    assert (checks.mismatch(site, {"timezone": zone}, sent) is not None) is refused


def test_the_shipped_acl_lets_the_bridge_read_the_boxes_status(tmp_path, acl_broker):
    """The bridge logs in as booking-system: the shipped ACL must let it read
    ``+/status`` (and ``+/events``), or every box would look never seen."""
    box = test_broker_acl.Client(acl_broker.port, "valby-skole", client_id="haldor-valby-skole")
    status = {"schema": "haldor.status/1", "site": "valby-skole", "online": True, "timezone": "Europe/London"}
    assert not box.publish("haldor/v1/valby-skole/status", retain=True, payload=json.dumps(status).encode()).is_failure
    box.close()
    town = Municipality(tmp_path / "town", acl_broker.port)
    (tmp_path / "mqtt.password").write_text(test_broker_acl.USERS["booking-system"])
    login = f'username = "booking-system"\npassword_file = "{tmp_path / "mqtt.password"}"\n'
    town.config.write_text(town.config.read_text().replace("tls = false\n", "tls = false\n" + login))
    result = town.run("--once")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "valby-skole: not published: timezone Europe/Copenhagen here, but the box's is Europe/London" in result.stderr
    assert "vanlose-skole: haldor.schedule/1" in result.stdout
