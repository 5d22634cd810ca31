"""The bridge against the hostile inputs of issue 23: time and peak memory of one
`haldor bridge --dry-run` of two sites, the first given the hostile feed or workbook.

Each run is bounded (``--timeout``, and ``--memory-mb`` as ``ulimit -v``) so that the
code before the fix does not take the machine down. Peak memory is GNU time's maximum
resident set size (``wait4``): of the bridge, or of its largest child (a reading process).

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
    limit = memory_mb * 1024 * 1024

    def bound() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-m", "haldor", "bridge", "--config", str(config), "--dry-run"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, preexec_fn=bound, cwd=config.parent)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        _, status, usage = os.wait4(child.pid, 0)  # its rusage: the bridge and the children it waited for
        seconds = time.perf_counter() - started
        killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = stderr.strip().splitlines()
    said = [line for line in lines if "valby" in line or "Error" in line or "gym-a" in line or "credentials" in line]
    published = [line for line in stdout.splitlines() if " version " in line]
    return {
        "exit": child.returncode,
        "seconds": round(seconds, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "valby": (said[-1] if said else "")[:160],
        "published": [line.split(":")[0] for line in published],
        "credentials_read": max((line.count(",") + 1 for line in stdout.splitlines() if "added credentials" in line), default=0),
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
            result = measure(municipality(Path(tmp), case, args.code), args.code, args.timeout, args.memory_mb)
        print(json.dumps({"case": case, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
