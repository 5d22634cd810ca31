"""USB card readers that type the card number as a keyboard (the commonest cheap ones).

The device is opened by its stable ``/dev/input/by-id/`` path and grabbed exclusively
(python-evdev), so the numbers never reach the console, a login prompt or the browser
on the screen. Key presses become characters, a line ends with Enter, and the line is
read as the serial-line readers read theirs (a canonical string, bare hex as ``uid:``
with ``byte_order``, ``pin:1234``), or, with ``number = "decimal"``, as the decimal
number many 125 kHz and MIFARE keyboard readers type (its four bytes as a ``uid:``).

Parsing is pure (key events in, reads out); the thread only moves events from the
device to the parser and reports a device that is gone, and tries again.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import struct
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any, Protocol

from haldor import cards

from .base import CardRead, PinRead, ReaderFault, ReaderRestored, ReaderStats, RepeatFilter, Sink, ThreadedReader
from .serial_readers import MAX_LINE, LineParser

log = logging.getLogger(__name__)

EV_KEY = 1
KEY_DOWN = 1
#: Linux input key codes (linux/input-event-codes.h) -> the character a reader means
KEYS: dict[int, str] = {
    **{code: str(digit) for code, digit in zip((11, 2, 3, 4, 5, 6, 7, 8, 9, 10), range(10), strict=True)},
    **{code: str(digit) for code, digit in zip((82, 79, 80, 81, 75, 76, 77, 71, 72, 73), range(10), strict=True)},  # keypad
    30: "A",
    48: "B",
    46: "C",
    32: "D",
    18: "E",
    33: "F",
    # letters of the prefixes a few readers type (uid:, em:, wg26:, pin:)
    25: "P",
    23: "I",
    49: "N",
    34: "G",
    22: "U",
    50: "M",
    17: "W",
    39: ":",  # the semicolon key, shifted on every layout a reader uses
}
ENTER = (28, 96)  # Enter, keypad Enter
NUMBERS = ("hex", "decimal")


class KeyParser:
    """Key-down events to reads, a line at a time."""

    def __init__(self, reader: str, *, byte_order: str = "as-read", number: str = "hex", repeat_s: float = 1.0) -> None:
        self.reader = reader
        self.number = number
        self.byte_order = byte_order
        self._line = LineParser(reader, byte_order=byte_order, repeat_s=repeat_s)
        self._typed: list[str] = []
        self._repeats = RepeatFilter(repeat_s)

    @property
    def stats(self) -> ReaderStats:
        return self._line.stats

    def feed(self, events: Iterable[tuple[int, int, int]], now: float) -> list[CardRead | PinRead]:
        """``(type, code, value)`` input events; only key-downs count."""
        out: list[CardRead | PinRead] = []
        for kind, code, value in events:
            if kind != EV_KEY or value != KEY_DOWN:
                continue
            if code in ENTER:
                text, self._typed = "".join(self._typed), []
                out += self._read(text, now)
            elif code in KEYS:
                self._typed.append(KEYS[code])
                if len(self._typed) > MAX_LINE:
                    self._line.feed(("".join(self._typed) + "\n").encode(), now)  # counted as garbled there
                    self._typed = []
        return out

    def _read(self, text: str, now: float) -> list[CardRead | PinRead]:
        if self.number == "decimal" and text.isdigit():
            self.stats.frames += 1
            value = int(text)
            if value >= 2**32:
                self.stats.garbled += 1
                log.warning("reader %s: a decimal number over 32 bits dropped (%d digits)", self.reader, len(text))
                return []
            card = cards.normalise(value.to_bytes(4, "big").hex().upper(), self.byte_order)
            if not self._repeats.fresh(card, now):
                self.stats.repeats += 1
                return []
            return [CardRead(self.reader, card)]
        return self._line.feed(text.encode() + b"\n", now)


class Device(Protocol):
    """What the reader needs of an input device (python-evdev's ``InputDevice``)."""

    fd: int

    def grab(self) -> None: ...
    def read(self) -> Iterable[Any]: ...
    def close(self) -> None: ...


class RecordedEvents:
    """Key events in the kernel's own ``input_event`` records, from a FIFO: a recording
    played back (tests, and machines without uinput), read exactly as the device's are."""

    RECORD = struct.Struct("llHHi")  # struct timeval, type, code, value

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # read-write: a FIFO never reads as ended
        self._rest = b""

    def grab(self) -> None:
        pass  # nothing else reads a recording

    def read(self) -> list[SimpleNamespace]:
        try:
            data = self._rest + os.read(self.fd, 4096)
        except BlockingIOError:
            return []
        whole = len(data) - len(data) % self.RECORD.size
        self._rest = data[whole:]
        return [
            SimpleNamespace(type=kind, code=code, value=value)
            for _, _, kind, code, value in self.RECORD.iter_unpack(data[:whole])
        ]

    def close(self) -> None:
        os.close(self.fd)


def key_records(text: str, *, enter: bool = True) -> bytes:
    """What a keyboard reader sends for ``text`` (key down and up, a sync after each), as
    ``input_event`` records: for recordings and tests."""
    codes = {ch: code for code, ch in KEYS.items() if code not in range(71, 83)}
    out = b""
    for code in [codes[ch] for ch in text.upper()] + ([ENTER[0]] if enter else []):
        for value in (KEY_DOWN, 0):
            out += RecordedEvents.RECORD.pack(0, 0, EV_KEY, code, value) + RecordedEvents.RECORD.pack(0, 0, 0, 0, 0)
    return out


def open_evdev(path: str) -> Device:
    """The device at ``path`` (python-evdev), or a recording when ``path`` is a FIFO."""
    if stat.S_ISFIFO(os.stat(path).st_mode):
        return RecordedEvents(path)
    try:
        import evdev  # only a site with a keyboard reader needs it
    except ImportError:
        raise OSError("python-evdev is not installed (pip install 'haldor[hid]')") from None
    device: Device = evdev.InputDevice(path)
    return device


class HidReader(ThreadedReader):
    """Reads a grabbed input device in its own thread and hands reads to ``sink``."""

    def __init__(
        self,
        reader: str,
        path: str,
        parser: KeyParser,
        sink: Sink,
        *,
        opener: Callable[[str], Device] = open_evdev,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(reader, parser, sink, retry_s=retry_s, clock=clock, kind="hid")
        self.path = path
        self._open = opener

    def _run(self) -> None:
        faulted = False
        while not self._stop.is_set():
            device = None
            try:
                device = self._open(self.path)
                device.grab()  # the numbers go to us alone, not to a console or the browser
            except OSError as exc:
                if device is not None:  # opened but taken by another: closed, or a handle leaks every retry
                    device.close()
                if not faulted:
                    self.sink(ReaderFault(self.id, f"keyboard reader {self.path}: {exc.strerror or exc}"))
                    faulted = True
                self._stop.wait(self.retry_s)
                continue
            if faulted:
                self.sink(ReaderRestored(self.id))
                faulted = False
            log.info("reader %s: keyboard reader %s open and grabbed", self.id, self.path)
            self.ready.set()
            try:
                self._pump(device)
            except OSError as exc:  # unplugged
                self.sink(ReaderFault(self.id, f"keyboard reader {self.path}: {exc.strerror or exc}"))
                faulted = True
            finally:
                self.ready.clear()
                device.close()

    def _pump(self, device: Device) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([device.fd], [], [], 0.2)
            if not readable:
                continue
            events = [(e.type, e.code, e.value) for e in device.read()]
            for read in self.parser.feed(events, self._clock()):
                self.sink(read)


def build_reader(r: Any, sink: Sink, factory: Any) -> HidReader:
    return HidReader(r.id, r.port, KeyParser(r.id, byte_order=r.byte_order, number=r.number), sink)
