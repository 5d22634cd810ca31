"""Simulated OSDP readers: libosdp's peripheral-device side on the far end of a
pseudo-terminal, for tests, the bench and the demo. Several readers share one bus
the way they share a pair of RS-485 wires: each hears every byte and answers to its
own address.
"""

from __future__ import annotations

import os
import pty
import threading
import tty
from dataclasses import dataclass, field
from typing import Any

import osdp_sys

from .wiegand import encode_card


def open_bus() -> tuple[str, int]:
    """A raw pseudo-terminal pair: the path the control panel opens, and our end."""
    controller, far = pty.openpty()
    tty.setraw(controller)
    tty.setraw(far)
    return os.ttyname(far), controller


class _Channel:
    """One reader's ear on the shared bus."""

    id = 1

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.inbound = bytearray()
        self.lock = threading.Lock()

    def read(self, max_bytes: int) -> bytes:
        with self.lock:
            data = bytes(self.inbound[:max_bytes])
            del self.inbound[:max_bytes]
        return data

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, bytes(buf))
        except OSError:
            return 0

    def flush(self) -> None:
        with self.lock:
            self.inbound.clear()


@dataclass
class SimulatedReader:
    """A reader on the bus. ``key`` None = factory new: it knows only the default key."""

    address: int
    key: bytes | None = None
    #: False: a reader that ignores Secure Channel set-up (libosdp's own reader
    #: always offers it, so the bus drops the challenge before it hears it)
    offers_sc: bool = True
    #: LED and buzzer commands it was sent, newest last
    commands: list[dict] = field(default_factory=list)
    silent: bool = False
    _ctx: Any = None  # libosdp's PeripheralDevice
    _channel: _Channel | None = None

    def _start(self, fd: int) -> None:
        self._channel = _Channel(fd)
        caps = [
            {"function_code": osdp_sys.CAP_READER_LED_CONTROL, "compliance_level": 1, "num_items": 1},
            {"function_code": osdp_sys.CAP_READER_AUDIBLE_OUTPUT, "compliance_level": 1, "num_items": 1},
            {"function_code": osdp_sys.CAP_CARD_DATA_FORMAT, "compliance_level": 1, "num_items": 1},
        ]
        info = {
            "name": f"sim-{self.address}",
            "address": self.address,
            "flags": 0,
            "scbk": self.key,
            "channel": self._channel,
            "version": 1,
            "model": 2,
            "vendor_code": 0x48414C,
            "serial_number": 1000 + self.address,
            "firmware_version": 0x010000,
        }
        self._ctx = osdp_sys.PeripheralDevice(info, capabilities=caps)
        self._ctx.set_command_callback(self._command)

    def _command(self, command: dict):
        if command.get("command") == osdp_sys.CMD_KEYSET:
            self.key = bytes(command["data"])  # a real reader keeps it in flash
        else:
            self.commands.append(dict(command))
        return 0, None

    @property
    def secure(self) -> bool:
        return bool(self._ctx.is_sc_active())

    def present_uid(self, uid_hex: str) -> None:
        data = bytes.fromhex(uid_hex)
        self._submit(
            {
                "event": osdp_sys.EVENT_CARDREAD,
                "reader_no": 0,
                "direction": 0,
                "format": osdp_sys.CARD_FMT_RAW_UNSPECIFIED,
                "length": len(data) * 8,
                "data": data,
            }
        )

    def present_wiegand(self, bits: list[int]) -> None:
        value = int("".join(map(str, bits)), 2) << (-len(bits) % 8)
        data = value.to_bytes((len(bits) + 7) // 8, "big")
        self._submit(
            {
                "event": osdp_sys.EVENT_CARDREAD,
                "reader_no": 0,
                "direction": 0,
                "format": osdp_sys.CARD_FMT_RAW_WIEGAND,
                "length": len(bits),
                "data": data,
            }
        )

    def present_text(self, card: str) -> None:
        """A card the reader reports as text (the ASCII card format)."""
        self._submit(
            {
                "event": osdp_sys.EVENT_CARDREAD,
                "reader_no": 0,
                "direction": 0,
                "format": osdp_sys.CARD_FMT_ASCII,
                "length": len(card),
                "data": card.encode("ascii"),
            }
        )

    def present(self, frame: str) -> None:
        """A canonical card string or ``pin:<digits>``, as the reader would send it."""
        if frame.startswith("pin:"):
            self.type_keys(frame[4:] + "#")
        elif frame.startswith("uid:"):
            self.present_uid(frame[4:])
        elif frame.startswith("wg"):
            bits, value = frame[2:].split(":")
            self.present_wiegand(encode_card(int(bits), int(value)))
        else:
            self.present_text(frame)

    def type_keys(self, keys: str) -> None:
        self._submit({"event": osdp_sys.EVENT_KEYPRESS, "reader_no": 0, "data": keys.encode("ascii")})

    def tamper(self, active: bool) -> None:
        self._submit(
            {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_LOCAL, "report": bytes([1 if active else 0, 0])}
        )

    def _submit(self, event: dict) -> None:
        if self._ctx.submit_event(event) is False:
            raise RuntimeError(f"reader {self.address} refused the event")


def _packets(buffer: bytearray) -> list[bytes]:
    """Whole packets (and any bytes between them) taken from the front of ``buffer``."""
    out = []
    while True:
        start = buffer.find(0x53)
        if start < 0:
            if buffer:
                out.append(bytes(buffer))
                buffer.clear()
            return out
        if len(buffer) < start + 4:
            return out
        length = buffer[start + 2] | buffer[start + 3] << 8
        end = start + max(length, 1)
        if len(buffer) < end:
            return out
        out.append(bytes(buffer[:end]))
        del buffer[:end]


def _is_challenge(packet: bytes, address: int) -> bool:
    """A control panel's CHLNG (the first step of Secure Channel) to ``address``."""
    som = packet.find(0x53)
    p = packet[som:]
    return len(p) > 6 and p[1] & 0x7F == address and bool(p[4] & 0x08) and p[6] == 0x11


class SimulatedBus:
    """The far end of one pseudo-terminal, with readers on it, run by one thread."""

    def __init__(self, readers: list[SimulatedReader]) -> None:
        osdp_sys.set_loglevel(osdp_sys.LOG_ERROR)  # libosdp's chatter goes to stdout and stderr
        self.port, self._fd = open_bus()
        os.set_blocking(self._fd, False)
        self.readers = {r.address: r for r in readers}
        self._lock = threading.Lock()
        for r in readers:
            r._start(self._fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osdp-sim", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __enter__(self) -> SimulatedBus:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reader(self, address: int) -> SimulatedReader:
        return self.readers[address]

    def replace(self, reader: SimulatedReader) -> SimulatedReader:
        """Another device at the same address: a reader switched off and on (give it
        the key it kept) or swapped for a new one."""
        with self._lock:
            reader._start(self._fd)
            self.readers[reader.address] = reader
        return reader

    def _run(self) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            try:
                pending += os.read(self._fd, 4096)
            except BlockingIOError:
                pass
            except OSError:
                return
            with self._lock:
                for packet in _packets(pending):
                    for r in self.readers.values():
                        if not r.silent and not (not r.offers_sc and _is_challenge(packet, r.address)):
                            channel = r._channel
                            assert channel is not None  # started with the bus
                            with channel.lock:
                                channel.inbound += packet
                for r in self.readers.values():
                    if not r.silent:
                        r._ctx.refresh()
            self._stop.wait(0.002)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        os.close(self._fd)
