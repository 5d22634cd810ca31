"""OSDP readers (IEC 60839-11-5) on an RS-485 bus, with Secure Channel, through libosdp.

One control panel per serial port serves every reader on that bus by its address.
libosdp keeps the link (polling, Secure Channel, retries); this module turns what it
reports into reads and faults, and holds the rules libosdp leaves to us:

- Secure Channel is enforced. Only a reader in install mode may be reached with the
  well-known default key, and only to be given its own key; install mode ends by
  itself once the reader works with that key, and stays ended after a restart.
- A read from a reader without Secure Channel is dropped, never used in clear.
- A reader that stops answering, fails Secure Channel or reports tamper becomes a
  ``ReaderFault``; when it works again, a ``ReaderRestored``.

Everything libosdp calls back runs in this bus's one thread, as does everything
that touches the library: the decision loop only queues LED and buzzer commands.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import osdp_sys

from haldor import cards, osdp_keys
from haldor.records import record

from .base import CardRead, Keypad, PinRead, ReaderFault, ReaderRestored, ReaderStats, RepeatFilter, Sink
from .osdp_wire import REFRESH_EVERY_S, SerialChannel, card_from_event, diagnose, keys_of

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 0.2


@record
class Timings:
    """How long the control panel gives a reader before it says what is wrong. The
    defaults are for a real bus; tests pass shorter ones."""

    #: a reader that is online but without Secure Channel for this long has refused it
    sc_grace_s: float = 3.0
    #: replies come every 50 ms or so; a reader silent this long has stopped answering,
    #: well before libosdp gives up on it
    silent_s: float = 1.5
    #: a reader not online this long after its link started is reported (libosdp gives up after 8 s)
    offline_s: float = 8.0
    #: a link given up is started again after this long, doubling up to retry_max_s
    retry_min_s: float = 2.0
    retry_max_s: float = 30.0


@record
class OsdpReaderSpec:
    id: str
    address: int
    key: bytes = field(repr=False)
    #: true only while the reader has not yet accepted ``key``
    install_mode: bool = False
    byte_order: str = "as-read"


@dataclass
class _Pd:
    spec: OsdpReaderSpec
    index: int
    install_mode: bool
    keypad: Keypad = field(default_factory=Keypad)
    repeats: RepeatFilter = field(default_factory=RepeatFilter)
    stats: ReaderStats = field(default_factory=ReaderStats)
    online: bool = False
    secure: bool = False  # Secure Channel up with this reader's own key
    was_online: bool = False  # since the last (re)start of its link
    online_since: float = 0.0
    link_started: float = 0.0  # when its link was last (re)started
    insecure_since: float | None = None
    gave_up_at: float | None = None  # libosdp declared it offline
    retry_s: float = 2.0
    restarting: bool = False
    faults: dict[str, str] = field(default_factory=dict)


class OsdpBus:
    """The control panel for the readers on one serial port."""

    def __init__(
        self,
        port: str,
        baudrate: int,
        readers: list[OsdpReaderSpec],
        sink: Sink,
        *,
        record: osdp_keys.InstallRecord | None = None,
        clock: Callable[[], float] = time.monotonic,
        timings: Timings = Timings(),
    ) -> None:
        self.timings = timings
        self.id = f"osdp:{port}"
        self.port = port
        self.sink = sink
        self.record = record
        self._clock = clock
        self.channel = SerialChannel(port, baudrate, clock)
        self.pds = {spec.id: _Pd(spec, i, spec.install_mode) for i, spec in enumerate(readers)}
        for pd in self.pds.values():
            pd.retry_s = timings.retry_min_s
        self._by_index = list(self.pds.values())
        self._commands: queue.SimpleQueue[tuple[int, dict]] = queue.SimpleQueue()
        self._port_fault = False
        self._next_open = 0.0
        self._stop = threading.Event()
        #: set once every reader on the bus has Secure Channel up (for tests and the bench)
        self.all_secure = threading.Event()
        osdp_sys.set_loglevel(osdp_sys.LOG_ERROR)
        infos = []
        for spec in readers:
            flags = osdp_sys.FLAG_ENABLE_NOTIFICATION
            if spec.install_mode:
                log.warning(
                    "reader %s: OSDP install mode: the reader may be reached with the well-known default key "
                    "to be given its own; this ends when it works with its own key",
                    spec.id,
                )
            else:
                flags |= osdp_sys.FLAG_ENFORCE_SECURE
            infos.append({"name": spec.id, "address": spec.address, "flags": flags, "scbk": spec.key, "channel": self.channel})
        self._ctx = osdp_sys.ControlPanel(infos)
        self._ctx.set_event_callback(self._on_event)
        self._thread = threading.Thread(target=self._run, name=f"osdp-{port}", daemon=True)

    # -- outside world ------------------------------------------------------------------

    def start(self) -> None:
        started = self._clock()
        for pd in self._by_index:
            pd.link_started = started
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.channel.close()

    def indicator(self, reader: str) -> OsdpIndicator:
        return OsdpIndicator(self, self.pds[reader].index)

    def submit(self, index: int, command: dict) -> None:
        """Thread-safe: a command for one reader, sent by the bus thread."""
        self._commands.put((index, command))

    def stats(self, reader: str) -> ReaderStats:
        return self.pds[reader].stats

    # -- the bus thread ----------------------------------------------------------------

    def _run(self) -> None:
        next_supervision = 0.0
        while not self._stop.is_set():
            now = self._clock()
            try:
                if not self.channel.is_open and now >= self._next_open:
                    self._open_port(now)
                self._ctx.refresh()
                while True:
                    try:
                        index, command = self._commands.get_nowait()
                    except queue.Empty:
                        break
                    if self._by_index[index].online:
                        self._ctx.submit_command(index, command)
                if now >= next_supervision:
                    next_supervision = now + SUPERVISE_EVERY_S
                    self._supervise(now)
            except Exception:  # the bus must go on: a fault here is logged, not fatal
                log.exception("OSDP bus %s", self.port)
                self._stop.wait(1.0)
            self._stop.wait(REFRESH_EVERY_S)

    def _open_port(self, now: float) -> None:
        if self.channel.open():
            if self._port_fault:
                log.info("OSDP bus %s: port is back", self.port)
            self._port_fault = False
            return
        self._next_open = now + self.timings.retry_min_s
        if not self._port_fault:
            self._port_fault = True
            for pd in self._by_index:
                self._fault(pd, "port", f"serial port {self.port}: {self.channel.error}")

    def _on_event(self, index: int, event: dict) -> int:
        """libosdp's callback, inside ``refresh``: must not raise into C."""
        try:
            self._event(self._by_index[index], event, self._clock())
        except Exception:
            log.exception("OSDP event from reader %s", self._by_index[index].spec.id)
        return 0

    def _event(self, pd: _Pd, event: dict, now: float) -> None:
        kind = event.get("event")
        if kind == osdp_sys.EVENT_NOTIFICATION:
            self._notification(pd, event, now)
        elif kind in (osdp_sys.EVENT_CARDREAD, osdp_sys.EVENT_KEYPRESS):
            pd.stats.frames += 1
            if not pd.secure:
                pd.stats.garbled += 1
                log.warning("reader %s: read without Secure Channel ignored", pd.spec.id)
                return
            if kind == osdp_sys.EVENT_CARDREAD:
                self._card(pd, event, now)
            else:
                for key in keys_of(event.get("data") or b""):
                    pin = pd.keypad.key(key, now)
                    if pin is not None:
                        self.sink(PinRead(pd.spec.id, pin))
        elif kind == osdp_sys.EVENT_STATUS and event.get("type") == osdp_sys.STATUS_REPORT_LOCAL:
            report = bytes(event.get("report") or b"")
            tamper = len(report) > 0 and report[0] != 0
            power = len(report) > 1 and report[1] != 0
            self._set(pd, "tamper", "tamper: the reader was opened or removed" if tamper else None)
            self._set(pd, "power", "power failure at the reader" if power else None)

    def _card(self, pd: _Pd, event: dict, now: float) -> None:
        try:
            card = card_from_event(event, pd.spec.byte_order)
        except (cards.CardFormatError, ValueError) as exc:
            pd.stats.garbled += 1
            # the data may be a card number: log only its size
            log.warning("reader %s: garbled OSDP card read dropped (%s; %d so far)", pd.spec.id, exc, pd.stats.garbled)
            return
        if not pd.repeats.fresh(card, now):
            pd.stats.repeats += 1
            return
        self.sink(CardRead(pd.spec.id, card))

    def _notification(self, pd: _Pd, event: dict, now: float) -> None:
        kind = event.get("type")
        if kind == osdp_sys.EVENT_NOTIFICATION_SC_STATUS:
            pd.secure = bool(event.get("arg0")) and not event.get("arg1")
        elif kind == osdp_sys.EVENT_NOTIFICATION_PD_STATUS:  # whether it is online now, _supervise reads
            if event.get("arg0"):
                pd.was_online = True
                pd.gave_up_at = None
            elif not pd.restarting:
                pd.gave_up_at = now

    def _supervise(self, now: float) -> None:
        status, sc = self._ctx.status(), self._ctx.sc_status()
        for pd in self._by_index:
            i = pd.index
            online = bool(status >> i & 1)
            if online and not pd.online:
                pd.online_since = now
            pd.online = online
            if not (sc >> i & 1):
                pd.secure = False
            if pd.restarting:
                if not self._ctx.is_pd_enabled(i):
                    self._ctx.enable_pd(i)
                    pd.restarting = False
                    pd.was_online = False
                    pd.link_started = now
                continue
            heard = self.channel.watch.last.get(pd.spec.address, 0.0)
            t = self.timings
            if pd.online and now - max(heard, pd.online_since) > t.silent_s:
                self._fault(pd, "link", f"stopped answering (OSDP address {pd.spec.address} on {self.port})")
            elif pd.online and pd.secure:
                pd.insecure_since = None
                pd.retry_s = t.retry_min_s
                self._set(pd, "link", None)
                self._set(pd, "port", None)
                if pd.install_mode:
                    self._end_install_mode(pd)
            elif pd.online:
                pd.insecure_since = pd.insecure_since or now
                if now - pd.insecure_since >= t.sc_grace_s:
                    self._fault(pd, "link", "refuses OSDP Secure Channel; its reads are ignored")
            elif pd.gave_up_at is not None and self.channel.is_open:
                self._fault(pd, "link", self._diagnosis(pd))
                if now - pd.gave_up_at >= pd.retry_s:
                    # libosdp waits minutes before it tries again; a reader back on its cable should not
                    pd.gave_up_at = None
                    pd.retry_s = min(pd.retry_s * 2, t.retry_max_s)
                    pd.restarting = True
                    self._ctx.disable_pd(i)
            elif self.channel.is_open and not pd.was_online and now - pd.link_started >= t.offline_s:
                self._fault(pd, "link", self._diagnosis(pd))  # before libosdp gives up on it
        if all(pd.online and pd.secure for pd in self._by_index):
            self.all_secure.set()
        else:
            self.all_secure.clear()

    def _diagnosis(self, pd: _Pd) -> str:
        answered = self.channel.watch.last.get(pd.spec.address, -1.0) >= pd.link_started
        compliance, _ = self._ctx.check_capability(pd.index, osdp_sys.CAP_COMMUNICATION_SECURITY)
        where = f"OSDP address {pd.spec.address} on {self.port}"
        return diagnose(was_online=pd.was_online, answered=answered, offers_sc=compliance > 0, where=where)

    def _end_install_mode(self, pd: _Pd) -> None:
        self._ctx.set_flag(pd.index, osdp_sys.FLAG_ENFORCE_SECURE)
        pd.install_mode = False
        if self.record is not None:
            self.record.mark(pd.spec.id, pd.spec.key)
        log.warning(
            "reader %s: works with its own key; install mode ended (remove install_mode from the configuration)", pd.spec.id
        )

    def _set(self, pd: _Pd, kind: str, reason: str | None) -> None:
        if reason is not None:
            self._fault(pd, kind, reason)
        elif pd.faults.pop(kind, None) is not None:
            log.info("reader %s: %s cleared", pd.spec.id, kind)
            if not pd.faults:
                self.sink(ReaderRestored(pd.spec.id))

    def _fault(self, pd: _Pd, kind: str, reason: str) -> None:
        if pd.faults.get(kind) == reason:
            return
        pd.faults[kind] = reason
        self.sink(ReaderFault(pd.spec.id, reason))


class OsdpIndicator:
    """Granted / denied shown by the reader's own LED and beeper, over OSDP."""

    def __init__(self, bus: OsdpBus, index: int) -> None:
        self.bus = bus
        self.index = index

    def _show(self, color: int, beeps: int) -> None:
        self.bus.submit(
            self.index,
            {
                "command": osdp_sys.CMD_LED,
                "reader": 0,
                "led_number": 0,
                "control_code": 1,
                "temporary": True,
                "on_count": 5 if beeps == 1 else 2,
                "off_count": 0 if beeps == 1 else 2,
                "on_color": color,
                "off_color": osdp_sys.LED_COLOR_NONE,
                "timer_count": 15,
            },
        )
        self.bus.submit(
            self.index,
            {
                "command": osdp_sys.CMD_BUZZER,
                "reader": 0,
                "control_code": 2,
                "on_count": 2 if beeps == 1 else 1,
                "off_count": 1,
                "rep_count": beeps,
            },
        )

    def granted(self) -> None:
        self._show(osdp_sys.LED_COLOR_GREEN, 1)

    def denied(self) -> None:
        self._show(osdp_sys.LED_COLOR_RED, 3)

    def close(self) -> None:
        pass
