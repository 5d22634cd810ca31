"""Card readers on a serial port (pyserial): line-based readers and the RDM6300.

Parsing is pure (bytes in, reads out) so it is tested on its own; the reader thread
only moves bytes from the port to the parser and reports a port that fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from haldor import cards

from .base import CardRead, PinRead, ReaderFault, ReaderRestored, ReaderStats, RepeatFilter, Sink, ThreadedReader

log = logging.getLogger(__name__)

MAX_LINE = 64
STX, ETX = 0x02, 0x03


class LineParser:
    """One card per line: a canonical string, bare hex (read as ``uid:``), or ``pin:1234``."""

    def __init__(self, reader: str, *, byte_order: str = "as-read", repeat_s: float = 1.0) -> None:
        self.reader = reader
        self.byte_order = byte_order
        self.stats = ReaderStats()
        self._buffer = b""
        self._repeats = RepeatFilter(repeat_s)

    def feed(self, data: bytes, now: float) -> list[CardRead | PinRead]:
        out: list[CardRead | PinRead] = []
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE:
            self._garbled("line too long", self._buffer)
            self._buffer = b""
        for raw in lines:
            text = raw.rstrip(b"\r").strip()
            if not text:
                continue
            self.stats.frames += 1
            read = self._parse(text)
            if read is None:
                continue
            if isinstance(read, CardRead) and not self._repeats.fresh(read.card, now):
                self.stats.repeats += 1
                continue
            out.append(read)
        return out

    def _parse(self, raw: bytes) -> CardRead | PinRead | None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._garbled("not ASCII", raw)
            return None
        if text.lower().startswith("pin:"):
            digits = text[4:].strip()
            if not digits.isdigit():
                self._garbled("PIN is not digits", raw)
                return None
            return PinRead(self.reader, digits)
        try:
            return CardRead(self.reader, cards.normalise(text, self.byte_order))
        except cards.CardFormatError as exc:
            self._garbled(str(exc), raw)
            return None

    def _garbled(self, why: str, raw: bytes) -> None:
        self.stats.garbled += 1
        # the bytes may be a card number: log only their length
        log.warning("reader %s: garbled line dropped (%s, %d bytes; %d so far)", self.reader, why, len(raw), self.stats.garbled)
        return None


class Rdm6300Parser:
    """RDM6300 (125 kHz EM4100): ``STX, 10 hex data, 2 hex checksum, ETX``; the checksum
    is the XOR of the five data bytes. The reader repeats the frame while a tag is held."""

    FRAME = 14

    def __init__(self, reader: str, *, repeat_s: float = 1.0) -> None:
        self.reader = reader
        self.stats = ReaderStats()
        self._buffer = b""
        self._repeats = RepeatFilter(repeat_s)

    def feed(self, data: bytes, now: float) -> list[CardRead]:
        out: list[CardRead] = []
        self._buffer += data
        while True:
            start = self._buffer.find(bytes([STX]))
            if start < 0:
                if self._buffer:
                    self._garbled("bytes outside a frame")
                self._buffer = b""
                return out
            if start > 0:
                self._garbled("bytes outside a frame")
                self._buffer = self._buffer[start:]
            if len(self._buffer) < self.FRAME:
                return out
            frame, self._buffer = self._buffer[: self.FRAME], self._buffer[self.FRAME :]
            self.stats.frames += 1
            card = self._card(frame)
            if card is None:
                continue
            if not self._repeats.fresh(card, now):
                self.stats.repeats += 1
                continue
            out.append(CardRead(self.reader, card))

    def _card(self, frame: bytes) -> str | None:
        if frame[-1] != ETX:
            self._garbled("no ETX")
            return None
        try:
            text = frame[1:13].decode("ascii").upper()
            raw = bytes.fromhex(text)
        except (UnicodeDecodeError, ValueError):
            self._garbled("not hex")
            return None
        check = 0
        for byte in raw[:5]:
            check ^= byte
        if check != raw[5]:
            self._garbled("checksum")
            return None
        return "em:" + text[:10]

    def _garbled(self, why: str) -> None:
        self.stats.garbled += 1
        log.warning("reader %s: garbled RDM6300 data dropped (%s; %d so far)", self.reader, why, self.stats.garbled)
        return None


def rdm6300_frame(tag_hex: str) -> bytes:
    """The bytes an RDM6300 sends for a 10-hex-digit tag (for tests and the demo)."""
    raw = bytes.fromhex(tag_hex)
    check = 0
    for byte in raw:
        check ^= byte
    return bytes([STX]) + (tag_hex.upper() + f"{check:02X}").encode() + bytes([ETX])


class SerialReader(ThreadedReader):
    """Reads a serial port in its own thread and hands reads to ``sink``.

    A port that cannot be opened or fails is reported once as a fault and retried.
    """

    def __init__(
        self,
        reader: str,
        port: str,
        baudrate: int,
        parser: LineParser | Rdm6300Parser,
        sink: Sink,
        *,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(reader, parser, sink, retry_s=retry_s, clock=clock, kind="serial")
        self.port = port
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        #: held while the port is closed, so that ``close`` never wakes a port already closed
        self._port_lock = threading.Lock()

    def close(self) -> None:
        """Stop at once: a read waiting on the port is woken (pyserial's abort pipe), not waited out."""
        self._stop.set()
        with self._port_lock:
            port = self._serial
            if port is not None:
                try:
                    port.cancel_read()
                except (AttributeError, OSError):  # a port of another kind (a URL) ends at its read's timeout
                    pass
        super().close()

    def _run(self) -> None:
        faulted = False
        while not self._stop.is_set():
            try:
                self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.2)
                if faulted:
                    log.info("reader %s: port %s is back", self.id, self.port)
                    self.sink(ReaderRestored(self.id))
                else:
                    log.info("reader %s: port %s open", self.id, self.port)
                faulted = False
                self.ready.set()
                while not self._stop.is_set():
                    data = self._serial.read(self._serial.in_waiting or 1)
                    if data:
                        for read in self.parser.feed(data, self._clock()):
                            self.sink(read)
            except (serial.SerialException, OSError) as exc:
                if self._stop.is_set():
                    break
                if not faulted:
                    faulted = True
                    self.sink(ReaderFault(self.id, f"serial port {self.port}: {exc}"))
                self._stop.wait(self.retry_s)
            finally:
                self.ready.clear()
                with self._port_lock:
                    if self._serial is not None:
                        try:
                            self._serial.close()
                        except Exception:  # closing a vanished port may fail too
                            pass
                        self._serial = None


def build_line_reader(reader: Any, sink: Sink, factory: Any = None) -> SerialReader:
    """A reader that types card strings or PINs as lines (the registry's ``serial-line``)."""
    return SerialReader(reader.id, reader.port, reader.baudrate, LineParser(reader.id, byte_order=reader.byte_order), sink)


def build_rdm6300_reader(reader: Any, sink: Sink, factory: Any = None) -> SerialReader:
    """An RDM6300 125 kHz module's frames (the registry's ``rdm6300``)."""
    return SerialReader(reader.id, reader.port, reader.baudrate, Rdm6300Parser(reader.id), sink)
