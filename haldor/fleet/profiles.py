"""The hardware profiles a site is enrolled with: a small fixed list of named ways a box
is wired, each the ``[[doors]]`` and ``[[readers]]`` tables its configuration gets. An
installer wires a box as its profile says (the pins and ports of config/haldor.toml),
so nobody types a pin number at enrolment. A relative ``scbk_file`` is the box's data
folder's."""

from __future__ import annotations

from typing import Any

from haldor.records import record

MAIN_DOOR = {
    "id": "main",
    "name": "Hovedindgang",
    "lock_pin": 17,
    "fail": "secure",
    "unlock_s": 5,
    "contact_pin": 27,
    "exit_pin": 22,
    "held_open_s": 60,
}
MAIN_WIEGAND = {"id": "main-in", "type": "wiegand", "door": "main", "d0_pin": 5, "d1_pin": 6, "led_pin": 13, "buzzer_pin": 19}
GYM_DOOR = {
    "id": "gym-a",
    "name": "Gymnastiksal",
    "lock_pin": 23,
    "fail": "safe",
    "unlock_s": 5,
    "contact_pin": 24,
    "held_open_s": 120,
    "fire_pin": 25,
}
GYM_OSDP = {
    "id": "gym-a-in",
    "type": "osdp",
    "door": "gym-a",
    "port": "/dev/ttyUSB1",
    "baudrate": 9600,
    "address": 1,
    "scbk_file": "osdp/gym-a-in.key",
    "install_mode": True,
}
CHECKIN = {"id": "kiosk", "type": "serial-line", "port": "/dev/ttyUSB0", "baudrate": 9600}


@record
class Profile:
    name: str
    #: what the operator reads, Danish and English
    label: dict[str, str]
    doors: tuple[dict[str, Any], ...]
    readers: tuple[dict[str, Any], ...]


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "main-strike-wiegand",
            {"da": "Hoveddør med el-slutblik + Wiegand-læser", "en": "Main door with strike + Wiegand reader"},
            (MAIN_DOOR,),
            (MAIN_WIEGAND,),
        ),
        Profile(
            "main-gym-osdp-checkin",
            {
                "da": "Hoveddør med el-slutblik + Wiegand-læser, gymnastiksal med magnetlås + OSDP-læser, check-in-læser",
                "en": "Main door with strike + Wiegand reader, gym door with magnetic lock + OSDP reader, check-in reader",
            },
            (MAIN_DOOR, GYM_DOOR),
            (MAIN_WIEGAND, GYM_OSDP, CHECKIN),
        ),
    )
}
