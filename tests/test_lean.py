"""The agent's runtime stays lean: what a small Pi pays for at every start of `haldor run`
is what it uses (issue 12: idle memory and import time beside their floors in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys

#: libraries the agent does not import unless a configuration asks for them: httpx (only
#: with [sync] http_url), sqlite-utils (never: the store's schema grows by SQL steps),
#: cryptography (signatures are checked with PyNaCl), libosdp (only with OSDP readers)
KEPT_OUT = ("httpx", "sqlite_utils", "click", "cryptography", "osdp")


def test_the_agent_s_entry_imports_none_of_the_heavy_libraries():
    code = "import json, sys, haldor.agent.run; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout))
    assert [name for name in KEPT_OUT if name in loaded] == []


def test_a_store_is_made_and_opened_without_sqlite_utils(tmp_path):
    """The store's schema grows by SQL steps (issue 25: one migration runner): neither making
    a store nor opening it again loads sqlite-utils."""
    code = f"""
import json, sys
from haldor.store import Store
Store.open({str(tmp_path)!r}, "s").close()
made = "sqlite_utils" in sys.modules
for name in [m for m in sys.modules if m.startswith("sqlite_utils")]:
    del sys.modules[name]
Store.open({str(tmp_path)!r}, "s").close()
print(json.dumps([made, "sqlite_utils" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == [False, False]


def test_the_schedule_worker_is_imported_when_the_first_document_comes():
    """multiprocessing and the worker cost every start 14 ms before the doors answered,
    for documents that come minutes later, or not at all after a power cut."""
    code = "import json, sys, haldor.cli, haldor.agent.run; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout))
    assert [name for name in ("multiprocessing", "concurrent.futures", "haldor.agent.schedule_worker") if name in loaded] == []


def test_the_simulated_readers_are_imported_only_when_mock_pins_are_built(tmp_path):
    """Issue 27: a box with real pins never loads the simulated readers of a trial; the
    hardware built on mock pins does."""
    code = """
import json, sys
import haldor.cli, haldor.agent.run
before = "haldor.drivers.simulated" in sys.modules
from gpiozero.pins.mock import MockFactory
from haldor.agent.hardware import build_hardware
from haldor import config
cfg = config.parse({"site": {"id": "s", "data_dir": sys.argv[1]}, "doors": [{"id": "main", "lock_pin": 17}],
                    "readers": [{"id": "main-in", "door": "main", "port": "/dev/null"}]})
hw = build_hardware(cfg, lambda message: None, MockFactory())
hw.close()
print(json.dumps([before, "haldor.drivers.simulated" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False, capture_output=True, text=True)
    assert json.loads(out.stdout) == [False, True], out.stderr
