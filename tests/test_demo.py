"""`haldor demo`: the prompt, driven through a pipe, against the real agent on mock pins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime

from haldor.access.schedule import parse_document
from haldor.demo import lay_around, sample_text

from .helpers import ts


def _demo(tmp_path, lines: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "haldor", "demo", "--data-dir", str(tmp_path / "demo")],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_demo_answers_cards_and_pins_with_decision_reason_and_lock(tmp_path):
    result = _demo(
        tmp_path,
        [
            "04A1B2C3D4E5F6",
            "em:0A0B0C0D0E",
            "uid:11223344",
            "uid:04998877",
            "2468",
            "1234",
            "uid:DEADBEEF",
            "gym-a 4821",
            "not-a-card",
            "nowhere 1234",
            "q",
        ],
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    answers = [line.strip() for line in out.splitlines() if line.startswith("  ADGANG") or line.startswith("  AFVIST")]
    assert [a.split("[")[-1].rstrip("]") if "AFVIST" in a else "granted" for a in answers] == [
        "granted",
        "outside_window",
        "closed",
        "expired",
        "granted",
        "wrong_pin",
        "unknown_card",
        "granted",
    ]
    assert "[ÅBEN] Hovedindgang: låst op / unlocked" in out
    assert "[ÅBEN] Gymnastiksal A" in out
    assert "Hverken kort eller PIN-kode / Neither a card nor a PIN: not-a-card" in out
    assert "Ukendt dør / Unknown door: nowhere" in out
    assert out.rstrip().endswith("Demo slut; alle låse i sikker tilstand / Demo over; every lock in its safe state")
    assert "04A1B2C3D4E5F6" not in result.stderr  # no card number in the logs


def test_every_example_the_demo_prints_works_as_it_says(tmp_path):
    """The prompt's own examples: a door first, then a card or PIN."""
    first = _demo(tmp_path, ["q"])
    examples = re.findall(r"'([a-z-]+ [0-9]+)'", first.stdout)
    assert examples, first.stdout
    again = _demo(tmp_path, [*examples, "q"])
    answers = [line.strip() for line in again.stdout.splitlines() if line.startswith(("  ADGANG", "  AFVIST"))]
    assert len(answers) == len(examples) and all(a.startswith("ADGANG") for a in answers), answers


def test_the_demo_runs_again_in_the_same_data_directory(tmp_path):
    assert _demo(tmp_path, ["q"]).returncode == 0
    again = _demo(tmp_path, ["04A1B2C3D4E5F6"])  # end of input ends the demo too
    assert again.returncode == 0, again.stderr
    assert "ADGANG GIVET" in again.stdout


def test_the_sample_schedule_is_laid_around_the_present_half_hour():
    sample = json.loads(sample_text("schedule.json"))
    for now in (ts("2026-11-25T13:56:00+01:00"), ts("2027-03-28T01:40:00+01:00"), ts("2027-10-31T02:10:00+01:00")):
        doc = lay_around(sample, now)
        parse_document(doc)  # still a valid snapshot
        volley = next(b for b in doc["bookings"] if b["id"] == "b881")
        start, end = (datetime.fromisoformat(volley[k]).timestamp() for k in ("start", "end"))
        assert start <= now < end
        assert end - start == 2 * 3600  # its real duration, also across a daylight-saving change
        assert datetime.fromisoformat(doc["generated_at"]).tzinfo is not None
        assert doc["version"] == int(now)
