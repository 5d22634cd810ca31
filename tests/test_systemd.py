"""The unit files pass `systemd-analyze verify` (with the install path pointed at this venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "systemd").glob("*.service"))
HALDOR = str(Path(sys.executable).with_name("haldor"))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_verifies_cleanly(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/haldor/bin/haldor", HALDOR))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    user = ["--user"] if "graphical-session.target" in unit.read_text() else []
    result = subprocess.run([analyze, "verify", *user, str(copy)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_agent_unit_restarts_and_stops_in_time():
    text = (ROOT / "systemd" / "haldor-agent.service").read_text()
    assert "Restart=always" in text and "StateDirectory=haldor" in text and "NoNewPrivileges=yes" in text
    # within a second, whatever the exit status: 74 (a damaged database) and 75 (a deleted one) ask for it
    assert "\nRestartSec=1\n" in text and "RestartPreventExitStatus" not in text


@pytest.mark.parametrize("name", ["haldor-bridge.service", "haldor-fleet.service"])
def test_the_municipal_units_are_hardened(tmp_path, name):
    """They hold the booking or command key, members' cards and the access log: `systemd-analyze security`
    must rate each at most "OK" (below 4.0)."""
    analyze = shutil.which("systemd-analyze")
    copy = tmp_path / name
    copy.write_text((ROOT / "systemd" / name).read_text().replace("/opt/haldor/bin/haldor", HALDOR))
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=40", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_units_point_to_documentation_the_install_creates_and_need_no_curl():
    """The README installs this repository in /opt/haldor/src."""
    for unit in UNITS:
        text = unit.read_text()
        for doc in (line.split("=", 1)[1] for line in text.splitlines() if line.startswith("Documentation=")):
            assert doc.startswith("file:///opt/haldor/src/"), (unit.name, doc)
            assert (ROOT / doc.removeprefix("file:///opt/haldor/src/")).exists(), (unit.name, doc)
        assert "curl" not in text and ":8080" not in text, unit.name  # the port is the configuration's
