"""The bridge against the hostile inputs of issue 23: time and peak memory of one
`haldor bridge --dry-run` of two sites, the first given the hostile feed or workbook.

Each run is bounded (``--timeout``, and ``--memory-mb`` as ``ulimit -v``) so that the
code before the fix does not take the machine down. Peak memory is GNU time's maximum
resident set size (``wait4``): of the bridge, or of its largest child (a reading process).

Its floor, run after each case in the same way and written here without any of Haldor's
code: Python with icalendar, recurring-ical-events and openpyxl reading the same inputs as
plainly as they can be read (the good site's feed expanded over the horizon, the sheet's
rows up to the cap), the hostile input refused as cheaply as the same libraries allow (a
feed over 8 MB by its size; a rule counted lazily to one past the cap; a workbook read
row by row, its claimed dimension ignored). A case where the figure is far above its
floor is work the bridge does that refusing does not need.

    python bench/bench_bridge_hostile.py                       # this checkout
    python bench/bench_bridge_hostile.py --code /tmp/haldor-main --timeout 150
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import hostile_inputs  # noqa: E402

CPH = ZoneInfo("Europe/Copenhagen")
CASES = (
    "secondly-count",
    "secondly",
    "minutely",
    "secondly-since-last-month",  # walked from its start: stopped by limits.feed_timeout_s, not by the cap
    "large-feed",
    "xlsx-huge-dimension",
    "xlsx-stale-dimension",
)
CREDENTIALS = ["id", "association", "card", "pin", "role", "sites"]

#: the floor: the same inputs read and refused as plainly as the libraries allow (no Haldor code)
FLOOR = r"""
import csv, os, sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
import icalendar, openpyxl, recurring_ical_events
root, sheet = sys.argv[1], sys.argv[2]
CAP, FEED_MB, ROWS, COLUMNS = 20_000, 8, 300_000, 256
now = datetime.now(ZoneInfo("Europe/Copenhagen"))
start, end = now - timedelta(days=1), now + timedelta(days=365)

def feed(name):
    path = os.path.join(root, name)
    if os.path.getsize(path) > FEED_MB * 1024 * 1024:
        return f"{name}: more than {FEED_MB} MB"
    with open(path, "rb") as f:
        query = recurring_ical_events.of(icalendar.Calendar.from_ical(f.read()))
    taken = 0
    for event in query.after(start):
        if event["DTSTART"].dt >= end:
            break
        taken += 1
        if taken > CAP:
            return f"{name}: more than {CAP} bookings"
    return f"{name}: {taken} bookings"

def rows():
    path = os.path.join(root, sheet)
    if sheet.endswith(".csv"):
        with open(path, newline="") as f:
            return sum(1 for _ in csv.reader(f, delimiter=";"))
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    book.active.reset_dimensions()
    n = 0
    for row in book.active.iter_rows(values_only=True, max_col=COLUMNS + 1):
        n += 1
        if n > ROWS or any(v is not None for v in row[COLUMNS:]):
            return -1
    return n

print(feed("hal.ics"), feed("gym-a.ics"), rows(), file=sys.stderr)
"""


def municipality(root: Path, case: str, code: Path) -> Path:
    """Two sites; valby-skole's feed or the credentials workbook is the hostile input."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run(
        [sys.executable, "-m", "haldor", "keygen", "bookings", "--dir", str(root)],
        env=env,
        check=True,
        capture_output=True,
        cwd=root,
    )
    (root / "associations.csv").write_text("id;name\na17;Valby Volley\na18;Valby Badminton\n")
    (root / "rooms.csv").write_text("site;id;name;doors\nvalby-skole;gym-a;A;main\nvanlose-skole;hal;Hallen;main\n")
    start = datetime.now(CPH).replace(minute=0, second=0, microsecond=0)
    good = hostile_inputs.recurring("FREQ=WEEKLY;COUNT=30", start).replace(b"a17", b"a18")
    (root / "hal.ics").write_bytes(good)
    (root / "gym-a.ics").write_bytes(hostile_inputs.recurring("FREQ=WEEKLY;COUNT=30", start))
    if case in hostile_inputs.RULES:
        (root / "gym-a.ics").write_bytes(hostile_inputs.recurring(hostile_inputs.RULES[case], start))
    elif case == "secondly-since-last-month":
        (root / "gym-a.ics").write_bytes(hostile_inputs.recurring("FREQ=SECONDLY", start - timedelta(days=30)))
    elif case == "large-feed":
        (root / "gym-a.ics").write_bytes(hostile_inputs.large(start))
    rows = [CREDENTIALS] + [[f"c{i}", "a17", f"uid:{0x04000000 + i:08X}", None, "member", None] for i in range(20_000)]
    sheet = "credentials.csv"
    if case.startswith("xlsx"):
        sheet = "credentials.xlsx"
        hostile_inputs.xlsx(root / sheet, rows, "A1:XFD1048576" if case == "xlsx-huge-dimension" else "A1:F2")
    else:
        (root / sheet).write_text("\n".join(";".join("" if v is None else str(v) for v in row) for row in rows) + "\n")
    (root / "bridge.toml").write_text(
        '[bridge]\nkey = "bookings.key"\nstate = "state.db"\n'
        f'[sheets]\nassociations = "associations.csv"\ncredentials = "{sheet}"\nrooms = "rooms.csv"\n'
        '[[sites]]\nid = "valby-skole"\nplain = true\n[[sites]]\nid = "vanlose-skole"\nplain = true\n'
        '[[feeds]]\nsite = "valby-skole"\nroom = "gym-a"\nsource = "gym-a.ics"\n'
        '[[feeds]]\nsite = "vanlose-skole"\nroom = "hal"\nsource = "hal.ics"\n'
    )
    return root / "bridge.toml"


def measure(config: Path, code: Path, timeout: float, memory_mb: int) -> dict:
    command = [sys.executable, "-m", "haldor", "bridge", "--config", str(config), "--dry-run"]
    done = run_bounded(command, config.parent, {**os.environ, "PYTHONPATH": str(code)}, timeout, memory_mb)
    lines = done["stderr"].strip().splitlines()
    said = [line for line in lines if "valby" in line or "Error" in line or "gym-a" in line or "credentials" in line]
    stdout = done["stdout"]
    published = [line for line in stdout.splitlines() if " version " in line]
    return {
        "exit": done["exit"],
        "seconds": done["seconds"],
        "peak_mb": done["peak_mb"],
        "valby": (said[-1] if said else "")[:160],
        "published": [line.split(":")[0] for line in published],
        "credentials_read": max((line.count(",") + 1 for line in stdout.splitlines() if "added credentials" in line), default=0),
    }


def measure_floor(config: Path, timeout: float, memory_mb: int) -> dict:
    script = config.parent / "floor_hostile.py"
    script.write_text(FLOOR)
    sheet = "credentials.xlsx" if (config.parent / "credentials.xlsx").exists() else "credentials.csv"
    command = [sys.executable, str(script), str(config.parent), sheet]
    done = run_bounded(command, config.parent, dict(os.environ), timeout, memory_mb)
    return {"floor_seconds": done["seconds"], "floor_peak_mb": done["peak_mb"], "floor_said": done["stderr"].strip()[-160:]}


def run_bounded(command: list[str], cwd: Path, env: dict, timeout: float, memory_mb: int) -> dict:
    """Wall time, peak RSS (of it or its largest child) and what it said, of ``command``
    bounded in time and address space."""
    limit = memory_mb * 1024 * 1024

    def bound() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, preexec_fn=bound, cwd=cwd)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        _, status, usage = os.wait4(child.pid, 0)  # its rusage: the command and the children it waited for
        seconds = time.perf_counter() - started
        killer.cancel()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    exit_code = os.waitstatus_to_exitcode(status)
    return {
        "exit": exit_code,
        "seconds": round(seconds, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "stdout": stdout,
        "stderr": stderr,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, default=ROOT, help="the checkout whose bridge runs (PYTHONPATH; run from elsewhere)")
    p.add_argument("--timeout", type=float, default=150)
    p.add_argument("--memory-mb", type=int, default=4096, help="ulimit -v for the whole run")
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    args = p.parse_args(argv)
    for case in args.cases:
        with tempfile.TemporaryDirectory(prefix="haldor-hostile-") as tmp:
            town = municipality(Path(tmp), case, args.code)
            result = measure(town, args.code, args.timeout, args.memory_mb)
            floor = measure_floor(town, args.timeout, args.memory_mb)  # after: a warm page cache is the floor's gain
        ratio = round(result["seconds"] / floor["floor_seconds"], 2) if floor["floor_seconds"] else None
        print(json.dumps({"case": case, **result, **floor, "ratio_seconds": ratio}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
