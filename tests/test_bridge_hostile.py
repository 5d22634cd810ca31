"""Issue 23, one bad file cannot stall the bridge: the attacker's feeds and workbooks given
to `haldor bridge --once` (a real process, real icalendar, recurring-ical-events and
openpyxl, a real Mosquitto). A bad feed costs its own site, with one line; the other
site is published in the same run.

Each run is bounded (``ulimit -v``, a timeout), so that the bridge before the fix fails
these tests instead of taking the machine down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from haldor.bridge import service, settings
from haldor.bridge.state import BridgeState
from haldor.bridge.worker import InputWorker, Shared, Timeout
from haldor.errors import HaldorError

from . import hostile_inputs
from .broker import Watcher
from .helpers import wait_for
from .test_bridge import FeedServer, Municipality
from .test_tools import ENV

CREDENTIALS = [
    ["id", "association", "card", "pin", "role", "sites"],
    ["c1", "a17", "04A1B2C3D4E5F6", "4821", "member", None],
    ["c2", "a18", "04AABBCCDD0011", None, "member", None],
    ["c9", None, "em:0A0B0C0D0E", None, "caretaker", "valby-skole vanlose-skole"],
]


@pytest.fixture
def town(tmp_path, broker):
    return Municipality(tmp_path, broker.port)


def bridge(town: Municipality, limits: str = "", memory_mb: int = 3072, timeout: float = 40) -> subprocess.CompletedProcess:
    """`haldor bridge --once` in its own process, within ``memory_mb`` and ``timeout``."""
    if limits:
        town.config.write_text(town.config.read_text() + f"[limits]\n{limits}")
    command = ["bash", "-c", f'ulimit -v {memory_mb * 1024}; exec "$@"', "bash", sys.executable, "-m", "haldor"]
    command += ["bridge", "--config", str(town.config), "--once"]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)


def schedule(broker, site: str) -> dict:
    """The site's retained snapshot on the broker, as a box would get it."""
    watcher = Watcher(broker.port, topics=f"haldor/v1/{site}/schedule")
    try:
        message = wait_for(lambda: [d for _, d, _ in list(watcher.messages) if d], timeout=10, what=f"{site}'s schedule")[0]
    finally:
        watcher.close()
    return json.loads(message["doc"])


def assert_refused_alone(town: Municipality, broker, result: subprocess.CompletedProcess, reason: str) -> None:
    """valby-skole refused with one line giving ``reason``; vanlose-skole published."""
    about_valby = [line for line in result.stderr.splitlines() if "valby-skole" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(about_valby) == 1 and reason in about_valby[0], result.stderr
    assert about_valby[0].endswith("valby-skole is kept as it was") and "gym-a.ics" in about_valby[0]
    assert "Traceback" not in result.stderr
    assert "vanlose-skole: haldor.schedule/1" in result.stdout and "valby-skole" not in result.stdout
    assert [b["id"].startswith("ics-") for b in schedule(broker, "vanlose-skole")["bookings"]] == [True]
    state = BridgeState(settings.load(town.config).state)
    assert state.published("valby-skole") is None
    state.close()


@pytest.mark.parametrize("rule", sorted(hostile_inputs.RULES))
def test_a_runaway_rule_refuses_its_own_site_at_the_cap(town, broker, rule):
    """Expanded whole before the cap was checked: 2.6 GB and minutes, no site published."""
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.recurring(hostile_inputs.RULES[rule], town.start))
    result = bridge(town)
    assert_refused_alone(town, broker, result, "more than 20000 bookings over the horizon (limits.feed_bookings")


def test_a_runaway_rule_after_an_empty_day_is_refused_before_an_instance_is_built(town, broker):
    """The window begins at midnight a day back: the walk, finding its first hours empty,
    took the next stretch days long and built 230,000 instances (444 MB) before it
    looked at the cap. Counted by dateutil first, it is refused within a small process."""
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.recurring("FREQ=SECONDLY", town.start))
    result = bridge(town, "read_memory_mb = 256\n")
    assert_refused_alone(town, broker, result, "more than 20000 bookings over the horizon (limits.feed_bookings")


def test_a_rule_within_the_cap_by_its_exdates_is_kept(town, broker):
    """24 instances less 5 EXDATEs under a cap of 20: the rule's count alone is over the
    cap, so the count that refuses early must take each EXDATE off, or refuse a good feed."""
    days = [town.start + timedelta(days=d) for d in (1, 3, 5, 7, 9)]
    exdate = "EXDATE;TZID=Europe/Copenhagen:" + ",".join(d.strftime(hostile_inputs.STAMP) for d in days)
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.recurring(f"FREQ=DAILY;COUNT=24\r\n{exdate}", town.start))
    result = bridge(town, "feed_bookings = 20\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(schedule(broker, "valby-skole")["bookings"]) == 19


def test_a_30_mb_feed_is_refused_before_it_is_parsed(town, broker):
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.large(town.start))
    result = bridge(town)
    assert_refused_alone(town, broker, result, "more than 8 MB (limits.feed_mb)")


def test_a_feed_that_takes_too_long_to_read_is_stopped(town, broker):
    """A second-by-second rule from a month ago: the rule is walked from its start, 2.6
    million instances before the horizon begins."""
    month_ago = town.start - timedelta(days=30)
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.recurring("FREQ=SECONDLY", month_ago))
    result = bridge(town, "feed_timeout_s = 1\n")
    assert_refused_alone(town, broker, result, "not read within 1 s (limits.feed_timeout_s)")


def test_a_feed_that_needs_too_much_memory_is_refused(town, broker):
    """The 30 MB feed let in (feed_mb), read in a process of 256 MB."""
    (town.dir / "gym-a.ics").write_bytes(hostile_inputs.large(town.start))
    result = bridge(town, "feed_mb = 64\nread_memory_mb = 256\n")
    assert_refused_alone(town, broker, result, "needs more than 256 MB to read (limits.read_memory_mb)")


def use_workbook(town: Municipality, rows=CREDENTIALS, **kw) -> None:
    hostile_inputs.xlsx(town.dir / "credentials.xlsx", rows, **kw)
    town.config.write_text(town.config.read_text().replace('"credentials.csv"', '"credentials.xlsx"'))


#: a municipality's members, 10,000 more rows: about 250 kB as .xlsx
MEMBERS = [*CREDENTIALS, *([f"m{i:05d}", "a17", f"uid:{0x05000000 + i:08X}", None, "member", None] for i in range(10_000))]


@pytest.mark.parametrize("dimension", ["A1:XFD1048576", "A1:F2"])
def test_a_workbooks_dimension_is_not_trusted(town, broker, dimension):
    """A1:XFD1048576 made every row 16,384 cells wide (a MemoryError, nothing published);
    a stale A1:F2 made it read one credential of 10,003."""
    use_workbook(town, MEMBERS, dimension=dimension)
    result = bridge(town, memory_mb=1024)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valby-skole: haldor.schedule/1" in result.stdout and "vanlose-skole: haldor.schedule/1" in result.stdout
    valby = [c["id"] for c in schedule(broker, "valby-skole")["credentials"]]
    assert len(valby) == 10_002 and valby[:2] == ["c1", "c9"] and valby[-1] == "m09999"
    assert [c["id"] for c in schedule(broker, "vanlose-skole")["credentials"]] == ["c2", "c9"]


@pytest.mark.parametrize(
    "rows, limits, problem",
    [
        (
            [*CREDENTIALS, ["c3", "a17", *[None] * 16381, "x"]],
            "",
            "credentials.xlsx:5: more than 256 columns (limits.sheet_columns)",
        ),
        (CREDENTIALS, "sheet_rows = 3\n", "credentials.xlsx: more than 3 rows (limits.sheet_rows)"),
    ],
)
def test_a_workbook_beyond_a_cap_is_refused_whole_in_one_line(town, broker, rows, limits, problem):
    """Sheets hold every site's data: a sheet refused refuses the run (nothing published)."""
    use_workbook(town, rows)
    result = bridge(town, limits)
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and problem in result.stderr, result.stderr


def test_a_workbook_that_needs_too_much_memory_is_refused_in_one_line(town):
    """A last row of ten million empty cells: 40 kB zipped."""
    use_workbook(town, empty_cells=10_000_000)
    result = bridge(town, "read_memory_mb = 256\n")
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"haldor: {town.dir / 'credentials.xlsx'}: needs more than 256 MB to read (limits.read_memory_mb)"
    ]


@pytest.mark.parametrize(
    "limits, refused, line",
    [
        (
            "site_bookings = 20\n",
            "valby-skole",
            "gym-a.ics: more than 20 bookings over the horizon with valby-skole's other feeds",
        ),
        ("run_bookings = 30\n", "vanlose-skole", "hal.ics: more than 0 bookings over the horizon with the run's other feeds"),
    ],
)
def test_a_sites_feeds_and_a_runs_share_their_caps(town, limits, refused, line):
    """valby-skole's feed gives 30 bookings, vanlose-skole's 1, read in that order."""
    town.config.write_text(town.config.read_text() + f"[limits]\n{limits}")
    said: list[str] = []
    assert service.run_once(settings.load(town.config), dry_run=True, say=said.append) == 1
    assert [s.split(":")[0] for s in said if " version " in s] == sorted({"valby-skole", "vanlose-skole"} - {refused})
    assert [s for s in said if refused in s and "kept as it was" in s] == [s for s in said if line in s]
    assert len([s for s in said if line in s]) == 1


def test_a_feed_over_http_beyond_its_size_is_refused_and_not_asked_for_again(town):
    server = FeedServer(b"BEGIN:VCALENDAR\r\n" + b"X-PADDING:" + b"x" * 2 * 2**20 + b"\r\nEND:VCALENDAR\r\n")
    try:
        town.config.write_text(town.config.read_text().replace('source = "gym-a.ics"', f'source = "{server.url}"'))
        town.config.write_text(town.config.read_text() + "[limits]\nfeed_mb = 1\n")
        said: list[str] = []
        assert service.run_once(settings.load(town.config), dry_run=True, say=said.append) == 1
        refused = [line for line in said if "valby-skole" in line]
        assert refused == [f"warning: {server.url}: more than 1 MB (limits.feed_mb): valby-skole is kept as it was"]
        assert len(server.requests) == 1  # asking again would cost as much
        assert any(line.startswith("vanlose-skole: haldor.schedule/1") for line in said)
    finally:
        server.close()


def test_starting_the_reader_process_keeps_the_signals_the_service_blocks():
    """The service waits for SIGTERM on one thread and blocks it on the others; starting the
    reader process (multiprocessing's resource tracker unblocks it) must not undo that, or a
    SIGTERM can land on the loop's thread and end the bridge without its goodbye."""
    seen: list[set[int]] = []

    def loop() -> None:
        worker = InputWorker(memory_mb=256)
        try:
            assert worker.call("a sum", Timeout(10, "limits.feed_timeout_s"), sum, [1, 2]) == 3
            seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
        finally:
            worker.close()

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        thread = threading.Thread(target=loop)
        thread.start()
        thread.join(30)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert seen and {signal.SIGTERM, signal.SIGINT} <= seen[0]


def test_a_shared_argument_goes_to_the_reading_process_once_per_process():
    """The associations' names went with each of 2,000 feeds (200 kB pickled each at 1,000
    sites); now once. The child keeps what it was sent: a change in this process is not
    seen by it until the child is replaced, and then it is sent again."""
    worker = InputWorker(memory_mb=1024)  # a child past a quarter of its bound is replaced after each input
    try:
        names = Shared([1, 2])
        timeout = Timeout(10, "limits.feed_timeout_s")
        assert worker.call("a sum", timeout, sum, names) == 3
        names.value.append(4)  # not sent again: the child sums what it holds
        assert worker.call("a sum", timeout, sum, names) == 3
        with pytest.raises(HaldorError):  # an input the child fails on replaces it
            worker.call("a bad one", timeout, int, "x")
        assert worker.call("a sum", timeout, sum, names) == 7
    finally:
        worker.close()
