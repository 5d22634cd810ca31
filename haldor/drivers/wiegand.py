"""Wiegand readers on two GPIO lines (D0, D1): cards of 26, 34 and 37 bits with their
parity checked, and keypad keys sent as 4-bit or 8-bit bursts, gathered into a PIN.

A frame ends when the lines have been quiet for ``gap_s``. Anything that does not
check out is counted as garbled and dropped: a noisy cable must never open a door.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice
from gpiozero.exc import GPIOZeroError

from haldor.errors import DriverError

from .base import CardRead, Keypad, PinRead, ReaderStats, RepeatFilter, Sink

log = logging.getLogger(__name__)

#: bit count -> (even-parity span, odd-parity span), as inclusive bit index ranges
_FORMATS = {
    26: ((0, 12), (13, 25)),
    34: ((0, 16), (17, 33)),
    37: ((0, 18), (18, 36)),
}
_KEYS = "0123456789*#"


def parse_card(bits: list[int]) -> str | None:
    """``wg<N>:<decimal>`` for a frame whose parity checks, else None."""
    fmt = _FORMATS.get(len(bits))
    if fmt is None:
        return None
    (e0, e1), (o0, o1) = fmt
    if sum(bits[e0 : e1 + 1]) % 2 != 0 or sum(bits[o0 : o1 + 1]) % 2 != 1:
        return None
    value = int("".join(map(str, bits[1:-1])), 2)
    return f"wg{len(bits)}:{value}"


def parse_key(bits: list[int]) -> str | None:
    """A keypad key from a 4-bit burst, or an 8-bit burst whose high nibble is the
    complement of the low one; None if it is neither."""
    if len(bits) == 8:
        high, low = int("".join(map(str, bits[:4])), 2), int("".join(map(str, bits[4:])), 2)
        if high != (~low & 0xF):
            return None
        bits = bits[4:]
    if len(bits) != 4:
        return None
    value = int("".join(map(str, bits)), 2)
    return _KEYS[value] if value < len(_KEYS) else None


class WiegandDecoder:
    """Bits in, cards and PINs out; pure apart from the time it is given."""

    def __init__(self, reader: str, sink: Sink, *, pin_timeout_s: float = 10.0, repeat_s: float = 1.0) -> None:
        self.reader = reader
        self.sink = sink
        self.stats = ReaderStats()
        self._bits: list[int] = []
        self._keypad = Keypad(pin_timeout_s)
        self._repeats = RepeatFilter(repeat_s)

    def bit(self, value: int) -> None:
        self._bits.append(value)

    def end_of_frame(self, now: float) -> None:
        bits, self._bits = self._bits, []
        if not bits:
            return
        self.stats.frames += 1
        if len(bits) in (4, 8):
            self._key(parse_key(bits), now)
            return
        card = parse_card(bits)
        if card is None:
            self.stats.garbled += 1
            log.warning(
                "reader %s: garbled Wiegand frame of %d bits dropped (%d so far)", self.reader, len(bits), self.stats.garbled
            )
            return
        if not self._repeats.fresh(card, now):
            self.stats.repeats += 1
            return
        self.sink(CardRead(self.reader, card))

    def _key(self, key: str | None, now: float) -> None:
        if key is None:
            self.stats.garbled += 1
            log.warning("reader %s: garbled keypad burst dropped", self.reader)
            return
        pin = self._keypad.key(key, now)
        if pin is not None:
            self.sink(PinRead(self.reader, pin))


class WiegandReader:
    """D0 and D1 idle high; each low pulse is a 0 (on D0) or a 1 (on D1)."""

    def __init__(
        self,
        reader: str,
        d0_pin: int,
        d1_pin: int,
        sink: Sink,
        *,
        factory,
        gap_s: float = 0.025,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = reader
        self.decoder = WiegandDecoder(reader, sink)
        self._gap_s = gap_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_bit = 0.0
        self._pending = threading.Event()
        self._stop = threading.Event()
        try:
            self._d0 = DigitalInputDevice(d0_pin, pull_up=True, pin_factory=factory)
            self._d1 = DigitalInputDevice(d1_pin, pull_up=True, pin_factory=factory)
        except GPIOZeroError as exc:
            raise DriverError(f"reader {reader}: {exc}") from exc
        self._d0.when_activated = lambda: self._bit(0)
        self._d1.when_activated = lambda: self._bit(1)
        self._thread = threading.Thread(target=self._frames, name=f"wiegand-{reader}", daemon=True)

    @property
    def stats(self) -> ReaderStats:
        return self.decoder.stats

    def start(self) -> None:
        self._thread.start()

    def _bit(self, value: int) -> None:
        with self._lock:
            self.decoder.bit(value)
            self._last_bit = self._clock()
        self._pending.set()

    def _frames(self) -> None:
        while not self._stop.is_set():
            if not self._pending.wait(0.5):
                continue
            with self._lock:
                quiet = self._clock() - self._last_bit
                if quiet >= self._gap_s:
                    self._pending.clear()
                    self.decoder.end_of_frame(self._clock())
                    continue
            self._stop.wait(self._gap_s - quiet)

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._d0.close()
        self._d1.close()


def encode_card(bits: int, value: int) -> list[int]:
    """The bits a reader sends for ``value`` in an N-bit format (for tests and the demo)."""
    (e0, e1), (o0, o1) = _FORMATS[bits]
    frame = [0] + [int(b) for b in format(value, f"0{bits - 2}b")] + [0]
    if len(frame) != bits:
        raise ValueError(f"{value} does not fit in {bits - 2} bits")
    frame[0] = sum(frame[e0 + 1 : e1 + 1]) % 2
    frame[-1] = 1 - sum(frame[o0:o1]) % 2
    return frame


def encode_key(key: str, bits: int = 4) -> list[int]:
    nibble = [int(b) for b in format(_KEYS.index(key), "04b")]
    if bits == 4:
        return nibble
    return [1 - b for b in nibble] + nibble


def build_reader(reader: Any, sink: Sink, factory: Any) -> WiegandReader:
    """The registry's ``wiegand``: D0 and D1 on two GPIO pins."""
    return WiegandReader(reader.id, reader.d0_pin, reader.d1_pin, sink, factory=factory)
