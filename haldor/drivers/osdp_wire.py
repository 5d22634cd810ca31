"""OSDP on the wire, beside libosdp: the serial channel it talks through, which reader
answered (from the bytes), and the pure parts (a card read as a canonical string,
keypad data as keys, why a reader is offline). No thread and no library state here."""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Callable
from typing import Any

import osdp_sys
import serial

from haldor import cards

from .wiegand import parse_card

log = logging.getLogger(__name__)

UID_BYTES = (4, 7, 10)
REFRESH_EVERY_S = 0.005


# --- pure parts -------------------------------------------------------------------------


def card_from_event(event: dict[str, Any], byte_order: str = "as-read") -> str:
    """The canonical card string (PROTOCOL 7) of an OSDP card read.

    Raw reads of whole 4, 7 or 10 bytes are ISO 14443 UIDs; other raw reads and
    Wiegand-formatted ones must be Wiegand frames whose parity checks.
    """
    data: bytes = event.get("data") or b""
    if event.get("format") == osdp_sys.CARD_FMT_ASCII:
        return cards.normalise(data.decode("ascii", "replace"), byte_order)
    length = int(event.get("length") or 0)
    if not 0 < length <= len(data) * 8:
        raise cards.CardFormatError(f"{length} bits announced, {len(data)} bytes sent")
    if event.get("format") == osdp_sys.CARD_FMT_RAW_UNSPECIFIED and length % 8 == 0 and length // 8 in UID_BYTES:
        return cards.uid_from_hex(data[: length // 8].hex(), byte_order)
    bits = [(data[i // 8] >> (7 - i % 8)) & 1 for i in range(length)]
    card = parse_card(bits)
    if card is None:
        raise cards.CardFormatError(f"a {length}-bit read that is neither a UID nor a Wiegand frame with good parity")
    return card


def keys_of(data: bytes) -> list[str]:
    """Keypad bytes as keys: ASCII digits, ``*`` (or DEL) clears, ``#`` (or CR) enters."""
    out = []
    for byte in data:
        ch = chr(byte)
        if ch.isdigit() or ch in "*#":
            out.append(ch)
        elif byte == 0x7F:
            out.append("*")
        elif byte == 0x0D:
            out.append("#")
    return out


def diagnose(*, was_online: bool, answered: bool, offers_sc: bool, where: str) -> str:
    """Why a reader is offline, from what was seen since its link was last started:
    whether it came online, whether it answered at all, what it said it can do."""
    if was_online:
        return f"stopped answering ({where})"
    if not answered:
        return f"not answering ({where})"
    if not offers_sc:
        return "does not offer OSDP Secure Channel; enable it in the reader, it is never used in clear"
    return (
        "Secure Channel failed: the reader has another key or does not do Secure Channel "
        "(install_mode gives a new reader its key)"
    )


class ReplyWatch:
    """When each address last answered, from the bytes the control panel reads.

    Packets are framed by their length and kept only when their CRC or checksum
    holds, so card data or noise cannot pass for a reader's answer.
    """

    SOM = 0x53
    MAX_PACKET = 256  # libosdp's packet buffer

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.packets = 0
        self._buffer = bytearray()

    def feed(self, data: bytes, now: float) -> None:
        buf = self._buffer
        buf += data
        while True:
            start = buf.find(self.SOM)
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 4:
                return
            length = buf[2] | buf[3] << 8
            if not 7 <= length <= self.MAX_PACKET:
                del buf[:1]
                continue
            if len(buf) < length:
                return
            packet = bytes(buf[:length])
            if self._intact(packet):
                self.packets += 1
                if packet[1] & 0x80:
                    self.last[packet[1] & 0x7F] = now
                del buf[:length]
            else:
                del buf[:1]

    @staticmethod
    def _intact(packet: bytes) -> bool:
        if packet[4] & 0x04:  # CRC-16 (AUG-CCITT), little-endian
            return binascii.crc_hqx(packet[:-2], 0x1D0F) == packet[-2] | packet[-1] << 8
        return sum(packet) & 0xFF == 0


# --- the serial port ---------------------------------------------------------------------


class SerialChannel:
    """The bus as libosdp sees it. A port that fails is closed and reopened by the bus;
    meanwhile reads are empty and writes go nowhere, so libosdp sees silent readers."""

    id = 1  # one channel per control panel: every reader on it shares the bus

    def __init__(self, port: str, baudrate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baudrate = baudrate
        self.error: str | None = None
        self.watch = ReplyWatch()
        self._clock = clock
        self._serial: serial.Serial | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> bool:
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.error = str(exc)
            return False
        self.error = None
        return True

    def _failed(self, exc: Exception) -> None:
        self.error = str(exc)
        self.close()

    def read(self, max_bytes: int) -> bytes:
        if self._serial is None:
            return b""
        try:
            data = self._serial.read(max_bytes)
        except Exception as exc:  # libosdp calls this: nothing may raise into it (termios.error is no OSError)
            self._failed(exc)
            return b""
        if data:
            self.watch.feed(data, self._clock())
        return data

    def write(self, buf: bytes) -> int:
        if self._serial is None:
            return len(buf)
        try:
            return self._serial.write(bytes(buf)) or 0
        except Exception as exc:
            self._failed(exc)
            return len(buf)

    def flush(self) -> None:
        if self._serial is not None:
            try:
                self._serial.reset_input_buffer()
            except Exception as exc:
                self._failed(exc)

    def close(self) -> None:
        s, self._serial = self._serial, None
        if s is not None:
            try:
                s.close()
            except Exception:  # closing a vanished port may fail too
                pass


# --- one reader's state, kept by the bus thread ------------------------------------------
