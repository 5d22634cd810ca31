"""Builders for documents and configurations used across the tests."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CPH = ZoneInfo("Europe/Copenhagen")
SITE = "valby-skole"
CARD = "uid:04A1B2C3D4E5F6"
LEADER_CARD = "uid:04AABBCCDD0011"
CARETAKER_CARD = "em:0A0B0C0D0E"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> float:
    return datetime(y, m, d, hh, mm, tzinfo=CPH).timestamp()


def snapshot(version: int = 42, **changes: Any) -> dict[str, Any]:
    """The PROTOCOL 2 example, with a leader and a caretaker added."""
    doc = {
        "schema": "haldor.schedule/1",
        "site": SITE,
        "version": version,
        "generated_at": "2026-11-25T06:00:00Z",
        "timezone": "Europe/Copenhagen",
        "policy": {"grace_before_min": 15, "grace_after_min": 15, "no_show_after_min": 20, "leader_first": False},
        "rooms": [
            {"id": "gym-a", "name": "Gymnastiksal A", "doors": ["main", "gym-a"]},
            {"id": "gym-b", "name": "Gymnastiksal B", "doors": ["main", "gym-b"]},
        ],
        "associations": [{"id": "a17", "name": "Valby Volley"}, {"id": "a18", "name": "Valby Badminton"}],
        "credentials": [
            {
                "id": "c1001",
                "card": CARD,
                "pin": "4821",
                "association": "a17",
                "role": "member",
                "valid_from": None,
                "valid_until": "2027-06-30T23:59:59+02:00",
            },
            {
                "id": "c1002",
                "card": LEADER_CARD,
                "pin": None,
                "association": "a17",
                "role": "leader",
                "valid_from": None,
                "valid_until": None,
            },
            {
                "id": "c9000",
                "card": CARETAKER_CARD,
                "pin": "909090",
                "association": None,
                "role": "caretaker",
                "valid_from": None,
                "valid_until": None,
            },
        ],
        "bookings": [
            {
                "id": "b881",
                "room": "gym-a",
                "association": "a17",
                "title": "Volleyball U14",
                "start": "2026-11-25T17:00:00+01:00",
                "end": "2026-11-25T19:00:00+01:00",
                "status": "approved",
                "pin": None,
                "unlocked_during": False,
            },
        ],
        "closures": [
            {"room": None, "start": "2026-12-21T00:00:00+01:00", "end": "2027-01-03T00:00:00+01:00", "reason": "Juleferie"}
        ],
    }
    doc.update(copy.deepcopy(changes))
    return doc


def booking(bid: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    b = {
        "id": bid,
        "room": "gym-a",
        "association": "a17",
        "title": "Træning",
        "start": start,
        "end": end,
        "status": "approved",
        "pin": None,
        "unlocked_during": False,
    }
    b.update(extra)
    return b


def write_config(path: Path, data_dir: Path, extra: str = "", doors: str | None = None) -> Path:
    doors = (
        doors
        if doors is not None
        else """
[[doors]]
id = "main"
lock_pin = 17
contact_pin = 27
exit_pin = 22

[[doors]]
id = "gym-a"
lock_pin = 18
"""
    )
    path.write_text(f"""
[site]
id = "{SITE}"
data_dir = "{data_dir}"

[trust]
require_signature = false

[gpio]
pin_factory = "mock"
{extra}
{doors}
""")
    return path


def dump(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Wait until ``condition()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        event.wait(0.005)


MAIN_DOOR = """
[[doors]]
id = "main"
lock_pin = 17
"""


def site_config(
    path: Path,
    data_dir: Path,
    *,
    port: int | None = None,
    mqtt: str | None = None,
    keys: dict[str, str] | None = None,
    extra: str = "",
    doors: str = MAIN_DOOR,
    plain: bool = True,
    command_keys: dict[str, str] | None = None,
) -> Path:
    """A site on mock pins. With ``port`` (or a whole ``mqtt`` body) a broker on
    loopback; with ``keys`` signatures are required, without them not; ``plain``:
    schedules in clear are taken (most tests), else only sealed ones."""
    if mqtt is None and port is not None:
        mqtt = f"port = {port}\ntls = false"
    broker = f'[mqtt]\nhost = "127.0.0.1"\n{mqtt}\n' if mqtt is not None else ""
    if keys:
        trust = "keys = { " + ", ".join(f'"{kid}" = "{key}"' for kid, key in keys.items()) + " }"
        trust += f"\nplain_documents = {'true' if plain else 'false'}"
        if command_keys:
            trust += "\ncommand_keys = { " + ", ".join(f'"{kid}" = "{key}"' for kid, key in command_keys.items()) + " }"
    else:
        trust = "require_signature = false"
    path.write_text(
        f'[site]\nid = "{SITE}"\ndata_dir = "{data_dir}"\n{broker}\n[trust]\n{trust}\n\n'
        f'[gpio]\npin_factory = "mock"\n{extra}\n{doors}'
    )
    return path


def with_members(version: int, count: int = 60_000) -> dict[str, Any]:
    """The sample snapshot and ``count`` more members: an apply that takes a while."""
    doc = snapshot(version)
    doc["credentials"] += [
        {
            "id": f"x{i}",
            "card": f"uid:{0x04000000000000 + i:014X}",
            "pin": None,
            "association": "a17",
            "role": "member",
            "valid_from": None,
            "valid_until": None,
        }
        for i in range(count)
    ]
    return doc
