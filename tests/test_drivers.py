"""Drivers against real parts: gpiozero's mock pins and serial readers on a pty."""

import dataclasses
import os
import queue
import tty

import pytest
from gpiozero.pins.mock import MockFactory

from haldor import cards, config
from haldor.agent.hardware import build_hardware
from haldor.drivers.base import CardRead, PinRead, ReaderFault
from haldor.drivers.fakes import FakeLock
from haldor.drivers.gpio import DebouncedInput, GpioLock
from haldor.drivers.serial_readers import LineParser, Rdm6300Parser, SerialReader, rdm6300_frame
from haldor.drivers.wiegand import WiegandDecoder, WiegandReader, encode_card, encode_key
from haldor.errors import ConfigError

from .helpers import site_config, wait_for


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


# --- canonical cards -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, order, canonical",
    [
        ("04A1B2C3D4E5F6", "as-read", "uid:04A1B2C3D4E5F6"),
        ("04a1b2c3d4e5f6", "as-read", "uid:04A1B2C3D4E5F6"),
        ("4A1B2C3D4E5F6", "as-read", "uid:04A1B2C3D4E5F6"),  # the leading zero a reader dropped
        ("F6E5D4C3B2A104", "reversed", "uid:04A1B2C3D4E5F6"),
        ("uid:F6E5D4C3B2A104", "reversed", "uid:04A1B2C3D4E5F6"),
        ("A1B2C3", "as-read", "uid:00A1B2C3"),
        ("04:A1:B2:C3", "as-read", "uid:04A1B2C3"),
        ("em:0a0b0c0d0e", "as-read", "em:0A0B0C0D0E"),
        ("WG26:08405024", "as-read", "wg26:8405024"),
    ],
)
def test_the_same_card_gives_the_same_string_on_every_reader(text, order, canonical):
    assert cards.normalise(text, order) == canonical
    assert cards.is_canonical(canonical)


@pytest.mark.parametrize("text", ["", "xyz", "04A1B2C3D4E5F6A1B2C3D4E5", "em:123", "wg26:abc"])
def test_not_a_card(text):
    with pytest.raises(cards.CardFormatError):
        cards.normalise(text)


def test_reversed_uid_for_enrolment_help():
    assert cards.reversed_uid("uid:04A1B2C3") == "uid:C3B2A104"
    assert cards.reversed_uid("em:0A0B0C0D0E") is None


# --- lock outputs: one contract for the real driver and the fake -------------------------


def _gpio_lock(factory, fail, active_high=True):
    pin = factory.pin(17)
    if not active_high:
        pin.drive_high()  # the relay board's pull-up holds an active-low input inactive
        pin.clear_states()
    return GpioLock(17, active_high=active_high, fail=fail, factory=factory)


@pytest.mark.parametrize("make", [lambda f, fail: _gpio_lock(f, fail), lambda f, fail: FakeLock(fail)], ids=["gpio", "fake"])
@pytest.mark.parametrize("fail", ["secure", "safe"])
def test_lock_contract(factory, make, fail):
    lock = make(factory, fail)
    assert lock.unlocked == (fail == "safe")  # created in the safe state
    lock.set_unlocked(False)
    assert not lock.unlocked
    lock.set_unlocked(True)
    assert lock.unlocked
    lock.close()
    assert lock.unlocked == (fail == "safe")  # left in the safe state


@pytest.mark.parametrize("active_high", [True, False])
def test_lock_output_polarity_and_no_pulse_when_created(factory, active_high):
    lock = _gpio_lock(factory, "secure", active_high)
    pin = factory.pin(17)
    inactive = not active_high
    assert [s.state for s in pin.states] == [inactive]
    lock.set_unlocked(True)
    assert pin.state == active_high
    lock.close()
    assert pin.state == inactive


# --- debounced inputs --------------------------------------------------------------------


def test_bouncing_contact_reports_one_change(factory):
    changes = queue.Queue()
    contact = DebouncedInput(27, changes.put, factory=factory, debounce_s=0.02)
    pin = factory.pin(27)
    for _ in range(5):  # a contact bouncing as it closes
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    assert changes.get(timeout=2) is True
    assert contact.active
    # a glitch shorter than the debounce time changes nothing
    pin.drive_high()
    pin.drive_low()
    pin.drive_high()
    assert changes.get(timeout=2) is False
    assert changes.empty()
    contact.close()


# --- Wiegand -----------------------------------------------------------------------------


def _send(factory, bits, reader=None, d0=5, d1=6):
    """Pulse the lines as a reader does; with ``reader``, wait until it has taken the frame
    (a person needs longer than the inter-frame gap between two keys)."""
    frames = reader.stats.frames if reader else 0
    for b in bits:
        pin = factory.pin(d1 if b else d0)
        pin.drive_low()
        pin.drive_high()
    if reader:
        wait_for(lambda: reader.stats.frames > frames, what="the frame to end")


def test_wiegand_reader_on_mock_pins(factory):
    reads = queue.Queue()
    reader = WiegandReader("main-out", 5, 6, reads.put, factory=factory)
    reader.start()
    try:
        _send(factory, encode_card(26, 8405024))
        assert reads.get(timeout=2) == CardRead("main-out", "wg26:8405024")
        bad = encode_card(26, 8405024)
        bad[3] ^= 1
        _send(factory, bad, reader)
        for key in "4821#":
            _send(factory, encode_key(key, 8), reader)
        assert reads.get(timeout=2) == PinRead("main-out", "4821")
        assert reader.stats.garbled == 1
    finally:
        reader.close()


@pytest.mark.parametrize("bits, value", [(26, 8405024), (34, 4294967295), (37, 34359738367), (37, 12345)])
def test_wiegand_formats(bits, value):
    out = []
    d = WiegandDecoder("r", out.append)
    for b in encode_card(bits, value):
        d.bit(b)
    d.end_of_frame(0.0)
    assert out == [CardRead("r", f"wg{bits}:{value}")]


def test_wiegand_garbled_frames_are_counted_and_dropped():
    out = []
    d = WiegandDecoder("r", out.append)
    frames = [[1] * 25, encode_card(26, 1)[:-1] + [1 - encode_card(26, 1)[-1]], [1, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]]
    for frame in frames:
        for b in frame:
            d.bit(b)
        d.end_of_frame(0.0)
    assert out == [] and d.stats.garbled == 4


def test_wiegand_keypad_clear_and_timeout():
    out = []
    d = WiegandDecoder("r", out.append, pin_timeout_s=10)

    def key(k, t):
        for b in encode_key(k):
            d.bit(b)
        d.end_of_frame(t)

    for i, k in enumerate("12*4821#"):
        key(k, i)
    assert out == [PinRead("r", "4821")]
    key("9", 100)
    key("1", 120)  # 20 s later: the 9 is forgotten
    key("#", 121)
    assert out[-1] == PinRead("r", "1")


def test_wiegand_card_held_is_read_once():
    out = []
    d = WiegandDecoder("r", out.append, repeat_s=1.0)
    for t in (0.0, 0.3, 0.6, 2.0):
        for b in encode_card(26, 42):
            d.bit(b)
        d.end_of_frame(t)
    assert out == [CardRead("r", "wg26:42")] * 2 and d.stats.repeats == 2


# --- serial readers ----------------------------------------------------------------------


def test_line_parser():
    p = LineParser("k", byte_order="reversed")
    reads = p.feed(b"F6E5D4C3B2A104\r\npin:4821\n\xff\xfe\nhello\nuid:04", 0.0)
    assert reads == [CardRead("k", "uid:04A1B2C3D4E5F6"), PinRead("k", "4821")]
    assert p.stats.garbled == 2
    assert p.feed(b"A1B2C3\n", 0.1) == [CardRead("k", "uid:C3B2A104")]
    assert p.feed(b"x" * 100, 0.2) == [] and p.stats.garbled == 3


def test_rdm6300_parser_checks_checksum_and_suppresses_repeats():
    p = Rdm6300Parser("r", repeat_s=1.0)
    frame = rdm6300_frame("0A0B0C0D0E")
    assert p.feed(frame[:5], 0.0) == []
    assert p.feed(frame[5:], 0.0) == [CardRead("r", "em:0A0B0C0D0E")]
    assert p.feed(frame * 3, 0.5) == []  # held on the reader
    corrupt = frame[:10] + b"F" + frame[11:]
    assert p.feed(b"\x00\x00" + corrupt, 1.0) == []
    assert p.stats.garbled == 2
    assert p.feed(frame, 1.4) == []  # still held: each repeat extends the presentation
    assert p.feed(frame, 3.5) == [CardRead("r", "em:0A0B0C0D0E")]


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    tty.setraw(master)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("kind", ["serial-line", "rdm6300"])
def test_serial_reader_on_a_pty(pty_port, kind):
    master, path = pty_port
    reads = queue.Queue()
    parser = LineParser("kiosk") if kind == "serial-line" else Rdm6300Parser("kiosk")
    reader = SerialReader("kiosk", path, 9600, parser, reads.put)
    reader.start()
    try:
        wait_for(reader.ready.is_set, what="the port to open")  # opening flushes what came before
        payload = b"04A1B2C3D4E5F6\r\n" if kind == "serial-line" else rdm6300_frame("0A0B0C0D0E")
        os.write(master, payload)
        expected = "uid:04A1B2C3D4E5F6" if kind == "serial-line" else "em:0A0B0C0D0E"
        assert reads.get(timeout=3) == CardRead("kiosk", expected)
    finally:
        reader.close()


def test_a_serial_reader_stops_at_once_without_waiting_out_its_read(pty_port, monkeypatch):
    """A stop wakes the read waiting on the port: with a read that would wait for ever
    (no timeout), the thread has ended when ``close`` returns."""
    from haldor.drivers import serial_readers

    opened = serial_readers.serial.serial_for_url
    monkeypatch.setattr(serial_readers.serial, "serial_for_url", lambda *a, **kw: opened(*a, **{**kw, "timeout": None}))
    master, path = pty_port
    reader = SerialReader("kiosk", path, 9600, LineParser("kiosk"), queue.Queue().put)
    reader.start()
    wait_for(reader.ready.is_set, what="the port to open")
    reader.close()
    assert not reader._thread.is_alive()


def test_missing_port_is_a_fault_reported_once(tmp_path):
    reads = queue.Queue()
    reader = SerialReader("gone", str(tmp_path / "ttyUSB9"), 9600, LineParser("gone"), reads.put, retry_s=0.01)
    reader.start()
    try:
        fault = reads.get(timeout=3)
        assert isinstance(fault, ReaderFault) and fault.reader == "gone"
        wait_for(lambda: reader._stop.wait(0.05) or True, what="a few retries")
        assert reads.empty()
    finally:
        reader.close()


def test_each_reader_type_is_built_by_its_registry_entry_and_an_unknown_one_is_refused(tmp_path):
    """No type silently becomes another: the registry builds what it names, or the build stops."""
    master, slave = os.openpty()
    try:
        cfg = config.load(
            site_config(
                tmp_path / "haldor.toml",
                tmp_path / "data",
                extra=f"""
[[readers]]
id = "lines"
type = "serial-line"
port = "{os.ttyname(slave)}"
[[readers]]
id = "rdm"
type = "rdm6300"
port = "{os.ttyname(slave)}"
[[readers]]
id = "wg"
type = "wiegand"
d0_pin = 5
d1_pin = 6
""",
            )
        )
        hw = build_hardware(cfg, lambda message: None, MockFactory())
        try:
            parsers = {r.id: type(getattr(r, "parser", r)).__name__ for r in hw.readers}
            assert parsers == {"lines": "LineParser", "rdm": "Rdm6300Parser", "wg": "WiegandReader"}
        finally:
            hw.close()
        odd = dataclasses.replace(cfg, readers=(dataclasses.replace(cfg.readers[0], type="magic"),))
        with pytest.raises(ConfigError, match="unknown reader type 'magic'"):
            build_hardware(odd, lambda message: None, MockFactory())
    finally:
        os.close(master)
        os.close(slave)
