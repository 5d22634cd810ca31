"""USB readers that type as a keyboard: key events to cards, and a badge through the whole
agent to `access.granted`, from recorded key events in a FIFO (the kernel's own
`input_event` records) and, where the machine has /dev/uinput, from a virtual keyboard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haldor.agent.messages import Stop
from haldor.drivers.base import CardRead, PinRead
from haldor.drivers.hid_reader import EV_KEY, KeyParser, RecordedEvents, key_records

from .helpers import CARD, wait_for
from .rig import Rig, running


def _events(text: str) -> list[tuple[int, int, int]]:
    data = key_records(text)
    return [(kind, code, value) for _, _, kind, code, value in RecordedEvents.RECORD.iter_unpack(data)]


def test_key_events_become_cards_and_pins():
    parser = KeyParser("hid-in")
    assert parser.feed(_events("04A1B2C3D4E5F6"), 0.0) == [CardRead("hid-in", "uid:04A1B2C3D4E5F6")]
    assert parser.feed(_events("04A1B2C3D4E5F6"), 0.5) == []  # held to the reader: one read
    assert parser.feed(_events("pin:4821"), 1.0) == [PinRead("hid-in", "4821")]
    assert parser.feed(_events("em:0A0B0C0D0E"), 2.0) == [CardRead("hid-in", "em:0A0B0C0D0E")]
    assert parser.feed(_events("pin:12A"), 3.0) == [] and parser.stats.garbled == 1  # a PIN of letters: dropped
    # a line typed in two halves, key-ups and syncs between: still one card
    half = len(key_records("04A1B2C3")) // 2
    events = _events("04A1B2C3")
    assert parser.feed(events[: half // RecordedEvents.RECORD.size], 4.0) == []
    assert parser.feed(events[half // RecordedEvents.RECORD.size :], 4.0) == [CardRead("hid-in", "uid:04A1B2C3")]


def test_a_reader_that_types_decimal_numbers():
    parser = KeyParser("hid-in", number="decimal")
    assert parser.feed(_events("0077777777"), 0.0) == [CardRead("hid-in", "uid:04A2CB71")]
    reversed_order = KeyParser("hid-in", number="decimal", byte_order="reversed")
    assert reversed_order.feed(_events("0077777777"), 0.0) == [CardRead("hid-in", "uid:71CBA204")]
    assert parser.feed(_events("99999999999"), 1.0) == [] and parser.stats.garbled == 1  # more than 32 bits
    assert parser.feed([(EV_KEY, 2, 2)] * 5, 2.0) == []  # auto-repeat is not typing


def _hid_rig(tmp_path: Path, device: Path) -> Rig:
    return Rig(
        tmp_path,
        reader=False,
        readers=f"""
[[readers]]
id = "hid-in"
type = "hid"
door = "main"
port = "{device}"
""",
    )


def test_a_badge_at_a_keyboard_reader_opens_the_door(tmp_path):
    fifo = tmp_path / "usb-Card_Reader-event-kbd"
    os.mkfifo(fifo)
    r = _hid_rig(tmp_path, fifo)
    try:
        agent = r.agent()
        thread = running(agent)
        try:
            wait_for(agent.hw.readers[0].ready.is_set, what="keyboard reader open")
            fd = os.open(fifo, os.O_WRONLY)
            os.write(fd, key_records(CARD.removeprefix("uid:")))
            granted = wait_for(lambda: r.events("access.granted"), what="access granted")[0]
            assert (granted["reader"], granted["door"], granted["credential"]) == ("hid-in", "main", "c1001")
            os.close(fd)
        finally:
            agent.post(Stop())
            thread.join(5)
    finally:
        r.close()


def test_a_missing_keyboard_reader_is_a_fault(tmp_path):
    r = _hid_rig(tmp_path, tmp_path / "not-plugged-in")
    try:
        agent = r.agent()
        thread = running(agent)
        try:
            fault = wait_for(lambda: r.events("reader.fault"), what="reader fault")[0]
            assert fault["reader"] == "hid-in" and "not-plugged-in" in fault["reason"]
        finally:
            agent.post(Stop())
            thread.join(5)
    finally:
        r.close()


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK), reason="no /dev/uinput on this machine (recorded events cover it)")
def test_a_virtual_keyboard_is_grabbed_and_read(tmp_path):
    from evdev import UInput, ecodes

    from haldor.drivers.hid_reader import KEYS

    keyboard = UInput({ecodes.EV_KEY: [*KEYS, 28]}, name="haldor-test-reader")
    r = _hid_rig(tmp_path, Path(keyboard.device.path))
    try:
        agent = r.agent()
        thread = running(agent)
        try:
            wait_for(agent.hw.readers[0].ready.is_set, what="virtual keyboard grabbed")
            for _, _, kind, code, value in RecordedEvents.RECORD.iter_unpack(key_records(CARD.removeprefix("uid:"))):
                if kind == EV_KEY:
                    keyboard.write(kind, code, value)
                    keyboard.syn()
            wait_for(lambda: r.events("access.granted"), what="access granted")
        finally:
            agent.post(Stop())
            thread.join(5)
    finally:
        keyboard.close()
        r.close()
