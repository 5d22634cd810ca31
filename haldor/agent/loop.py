"""Builds the agent from the configuration and runs its one decision loop.

Every input (a read, a contact edge, a button, a fire input, a command, the passing
of time) becomes a message on one queue, handled in order by one thread. Library
callbacks only put messages on the queue.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable

from haldor import __version__
from haldor import cards
from haldor import clock as clocks
from haldor.access import checkin, commands, envelope, reserve
from haldor.access.controller import Controller, DoorSpec, Emit, Entered, Feedback, Lock, ModesChanged
from haldor.access.envelope import open_envelope
from haldor.access.journal import Batch, Journal, StorageChanged, Stored
from haldor.access.store import DB_NAME, Store
from haldor.config import Config
from haldor.drivers.base import CardRead, PinRead, ReaderFault, ReaderRestored
from haldor.errors import DocumentError, StoreError
from haldor.protocol import Event, Role, Schema

from . import inflight
from .budget import ReportBudget
from .http_fallback import HttpFallback, HttpSchedule
from .inbox import Inbox
from .link import Connected, Disconnected, MqttLink, Received
from .hardware import Hardware
from .messages import (OVERLAID, AnyVersion, CheckedIn, Command, ContactChanged, ExitPressed, FireChanged, Forget,
                       Publish, Remembered, Reported, ScheduleDone, Stop, Tick)
from .notify import Notifier
from .site import open_store, policy_of
from .schedule_worker import ScheduleWorker, Site

log = logging.getLogger(__name__)

LAST_SEEN_EVERY_S = 60.0
STATUS_EVERY_S = 60.0
REPORTS_EVERY_S = 30.0
KIOSK_EVERY_S = 5.0  # the kiosk calls the agent offline after 15 s without a word
PURGE_EVERY_S = 3600.0
DISK_CHECK_EVERY_S = 10.0
SECRET_REPLACED = "device secret replaced: cards and PINs are unknown until the snapshot is hashed anew"
#: a schedule the store could not take is asked for again after this long
RESYNC_AFTER_FAILURE_S = 300.0
#: how long a stopping agent waits for storage to take what waits in memory
FLUSH_ON_STOP_S = 5.0


# --- the agent --------------------------------------------------------------------------


class Agent:
    def __init__(self, cfg: Config, store: Store, hardware: Hardware, clock: clocks.Clock | None = None,
                 inbox: queue.Queue | Inbox | None = None, link: MqttLink | None = None,
                 fallback: HttpFallback | None = None, kiosk: Any = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.hw = hardware
        self.clock = clock or clocks.SystemClock()
        #: the one queue; the hardware was built to post to it
        self.inbox: queue.Queue | Inbox = inbox if inbox is not None else Inbox()
        self.reader_doors = {r.id: r.door or None for r in cfg.readers}
        #: reader -> the reason of its latest fault, while it lasts
        self.reader_faults: dict[str, str] = {}
        self.controller = Controller(
            [DoorSpec(d.id, d.unlock_s, d.held_open_s, d.fail, bool(d.fire_pin)) for d in cfg.doors],
            max_denials=cfg.policy["max_denials"],
            denial_lockout_s=cfg.policy["denial_lockout_s"],
        )
        self.clock_trusted = True
        self._listeners: list[Callable[[list[dict]], None]] = []
        self._next_last_seen = 0.0
        self.running = threading.Event()
        self.link = link
        self.fallback = fallback
        self.keys = cfg.trusted_keys
        self._started_mono = self.clock.monotonic()
        self._status_key: Any = None
        self._next_status = 0.0
        self._next_purge = 0.0
        self._next_reports = 0.0
        self.kiosk = kiosk
        self._kiosk_key: Any = None
        self._next_kiosk = 0.0
        self.notifier = notifier or Notifier({})
        self._worker: ScheduleWorker | None = None
        self._next_watchdog = 0.0
        #: the loop's writes, made beside it (its own connection)
        self.journal = Journal(open_store(cfg), self.post, clock=self.clock.now)
        #: batches submitted and not yet committed: what the store does not show yet
        self._unwritten: list[Batch] = []
        self.guard = inflight.InflightGuard(Path(cfg.data_dir) / "inflight")
        self._last_seen: float | None = None
        #: why the store could not be read, while that lasts
        self._read_fault: str | None = None
        self._resync_at: float | None = None
        #: the disk is (almost) full: why, while it lasts
        self._disk_low: str | None = None
        self._reserving = threading.Event()  # the reserve file is being written
        #: the device secret changed: the schedule's hashes wait for a snapshot (Store.rehash_needed)
        self._rehash_needed = False
        #: the database was recovered from its good copy at start (recovery.check): a snapshot is asked for
        self._recovered: str | None = None
        self._next_disk_check = 0.0
        #: how many refusals of unreadable messages are reported one by one, a kind each
        self._refusals = {"cmd": ReportBudget(), "schedule": ReportBudget()}
        self._db_path = Path(store.data_dir or cfg.data_dir) / DB_NAME
        self._db_file = _file_id(self._db_path)
        #: why the agent stopped to be started again (run_forever's exit status 75), or None
        self.restart_for: str | None = None

    # -- outside world ------------------------------------------------------------------

    def post(self, message: Any) -> None:
        """Thread-safe: hand a message to the decision loop."""
        self.inbox.put(message)

    def subscribe(self, listener: Callable[[list[dict]], None]) -> None:
        """Called from the loop with each batch of events, after they were committed."""
        self._listeners.append(listener)

    # -- the loop ---------------------------------------------------------------------

    def start(self) -> None:
        now = self.clock.now()
        self.journal.start()
        last_seen = self._last_seen = self.store.meta("last_seen")
        self.clock_trusted = clocks.trusted(now, last_seen, self.clock.synchronized())
        for door_id, contact in self.hw.contacts.items():
            self.controller.doors[door_id].open = not contact.active
        effects = self.controller.start(now, self.store.meta("lasting"))
        self._recovered = self.store.meta("recovered")
        if self._recovered:  # recovery.check put the last good copy in place of a broken database
            effects.append(Emit(Event.STORAGE_FAULT, reason=self._recovered))
            effects.append(Forget("recovered"))
        self._rehash_needed = self.store.rehash_needed
        if self._rehash_needed:
            why = SECRET_REPLACED
            log.error("device secret replaced: the stored card and PIN hashes no longer match; a snapshot is requested")
            effects.append(Emit(Event.STORAGE_FAULT, reason=why))
        if not self.clock_trusted:
            effects.append(Emit(Event.CLOCK_UNTRUSTED, reason="clock is behind the last time seen and not synchronised"))
            log.warning("clock untrusted: booking-based access refused until time sync")
        self._carry_out(effects, now)
        self._save_last_seen(now)
        self.hw.start()
        if self.link is not None:
            self.link.start()
        if self.fallback is not None:
            self.fallback.start()
        self.running.set()
        self.notifier.ready(f"{len(self.cfg.doors)} door(s) under control")
        self._ping(self.clock.monotonic())
        log.info("agent started for site %s with %d door(s)", self.cfg.site_id, len(self.cfg.doors))

    def run(self) -> None:
        """Handle messages until Stop. Whatever ends the loop, the locks go to their safe state."""
        stopped = False
        try:
            self.start()
            while True:
                message = self._next_message()
                if isinstance(message, Stop):
                    stopped = True
                    break
                self.handle(message)
        finally:
            self.running.clear()
            self.notifier.stopping()
            self.hw.close()
            log.info("agent stopped; locks in their safe state")
            self.journal.close(FLUSH_ON_STOP_S)
            if self.fallback is not None:
                self.fallback.stop()
            if self._worker is not None:
                self._worker.close()
            if stopped:  # a clean stop is no crash: what was being handled is not held against it
                self.guard.forget_unfinished()
            if self.link is not None:
                try:
                    final = self.status_doc(self.clock.now())
                    final["online"] = False
                except (sqlite3.Error, StoreError):
                    final = None  # the Last Will says offline instead
                self.link.stop(final)

    def _next_message(self) -> Any:
        now = self.clock.now()
        deadlines = [d for d in (self.controller.next_deadline(), self._next_reports, self._next_disk_check,
                                 self._next_kiosk if self.kiosk is not None else None) if d is not None]
        waits = [d - now for d in deadlines] + [LAST_SEEN_EVERY_S]
        if self.notifier.interval_s is not None:
            waits.append(self._next_watchdog - self.clock.monotonic())
        timeout = max(0.0, min(waits))
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return Tick()

    def handle(self, message: Any) -> None:
        """One input, in order. Storage that cannot be read drops the input (logged, in
        the status); it never ends the loop."""
        try:
            self._handle(message)
        except (sqlite3.Error, StoreError) as exc:
            if self._read_fault is None:
                log.error("storage: cannot read (%s); %s dropped", exc, type(message).__name__)
            self._read_fault = str(exc)
            if isinstance(message, (CardRead, PinRead)) and message.reader in self.hw.indicators:
                self.hw.indicators[message.reader].denied()
        else:
            if self._read_fault is not None:
                log.warning("storage can be read again")
                self._read_fault = None
        self._ping(self.clock.monotonic())

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every write so far is committed, and report it (for the step-by-step
        tests and tools; the running loop does this by itself). Other messages stay queued."""
        self.journal.flush(timeout)
        kept = []
        while True:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(message, (Stored, StorageChanged)):
                self.handle(message)
            else:
                kept.append(message)
        for message in kept:
            self.inbox.put(message)

    def _handle(self, message: Any) -> None:
        now = self.clock.now()
        c = self.controller
        effects: list = []
        self._check_clock(now, effects)  # before deciding: a synchronised clock counts at once
        if isinstance(message, (CardRead, PinRead)):
            effects += self._presented(message, now)
        elif isinstance(message, ContactChanged):
            effects += c.contact(now, message.door, message.open)
        elif isinstance(message, ExitPressed):
            effects += c.exit_request(now, message.door)
        elif isinstance(message, FireChanged):
            effects += c.fire_alarm(now, message.door, message.active)
        elif isinstance(message, ReaderFault):
            log.warning("reader %s fault: %s", message.reader, message.reason)
            self.reader_faults[message.reader] = message.reason
            effects += [Emit(Event.READER_FAULT, reader=message.reader, reason=message.reason)]
        elif isinstance(message, ReaderRestored):
            if self.reader_faults.pop(message.reader, None) is not None:
                log.info("reader %s works again", message.reader)
        elif isinstance(message, Command):
            effects += c.command(now, message.action, message.door, message.duration_s)
        elif isinstance(message, Received):
            effects += self._received(message, now)
        elif isinstance(message, HttpSchedule):
            self._schedule_worker().submit(message.payload, lambda outcome: self.post(ScheduleDone(outcome, None)))
        elif isinstance(message, ScheduleDone):
            effects += self._schedule_done(message, now)
        elif isinstance(message, Stored):
            self._stored(message)
        elif isinstance(message, Connected):
            self._status_key = None  # a fresh connection hears the status at once
            if self.store.version is None or self._rehash_needed or self._recovered:
                self._request_sync()
                self._recovered = None
        elif not isinstance(message, (Tick, Disconnected, StorageChanged)):  # a lost broker changes nothing at the door
            log.error("unknown message %r ignored", message)
        if isinstance(message, StorageChanged) or now >= self._next_disk_check:
            effects += self._check_disk(now) + self._check_files()
        effects += c.tick(now) + self._unreported_refusals(now)
        self._carry_out(effects, now)
        if now >= self._next_last_seen:
            self._save_last_seen(now)
        self._housekeeping(now)

    def _ping(self, mono: float) -> None:
        """The watchdog hears from the loop only when the loop has just done its work."""
        if self.notifier.interval_s is not None and mono >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = mono + self.notifier.interval_s

    # -- the broker's side ------------------------------------------------------------

    def _received(self, message: Received, now: float) -> list:
        """A document from the broker. It is acknowledged once handled, whatever the
        outcome, so it is never delivered again; a crash before that has the broker
        deliver it again, and the poison guard refuses it if it keeps doing so."""
        topics = self.link.topics if self.link else None
        key = inflight.digest(message.topic, message.payload)
        schedule = bool(topics and message.topic in (topics.schedule, topics.delta))
        command = bool(topics and message.topic == topics.cmd)
        if (schedule or command) and not self.guard.begin(key):
            self._ack(message, key)
            if not self.guard.first_refusal(key):
                return []
            reason = "poison: the agent stopped while handling this message before; refused"
            if schedule:
                return [Emit(Event.SYNC_REJECTED, reason=reason)]
            return self._unreadable_command(message.payload, "poison", now)
        if schedule:
            # applied beside the loop; acknowledged when it is done (ScheduleDone)
            self._schedule_worker().submit(message.payload, lambda outcome: self.post(ScheduleDone(outcome, message)))
            return []
        effects: list = []
        if command:
            try:
                effects = self._command(message.payload, now)
            except (sqlite3.Error, StoreError):
                raise  # the store, not the command: handle() reports it
            except Exception as exc:  # a command that trips the code is still only a bad command
                log.exception("command refused: it broke the parser")
                effects = self._unreadable_command(message.payload, f"malformed command ({type(exc).__name__})", now)
        else:
            log.warning("message on unexpected topic %s ignored", message.topic)
        self._ack(message, key)
        return effects

    def _ack(self, message: Received, key: str | None = None) -> None:
        if self.link is not None:
            self.link.ack(message)
        self.guard.end(key or inflight.digest(message.topic, message.payload))

    def _schedule_worker(self) -> ScheduleWorker:
        if self._worker is None:
            cfg = self.cfg
            self._worker = ScheduleWorker(Site(str(cfg.data_dir), cfg.site_id, cfg.site["timezone"], policy_of(cfg),
                                               dict(cfg.trust["keys"]), cfg.trust["require_signature"],
                                               tuple(d.id for d in cfg.doors), envelope.MAX_DOCUMENT_BYTES,
                                               self.store.secret_fingerprint), self.clock.now)
        return self._worker

    def _schedule_done(self, done: ScheduleDone, now: float) -> list:
        """The worker's outcome, reported here: an event for every outcome but an ignored one."""
        outcome = done.outcome
        effects: list = []
        if outcome.status == "applied":
            self._rehash_needed = self.store.rehash_needed
        if outcome.status == "gap":
            self._request_sync()
        elif outcome.status == "failed":  # the store could not take it: ask again later
            effects += self._check_files()  # deleted under the agent, maybe: put right at once
            if effects:
                self._request_sync()
            else:
                self._resync_at = now + RESYNC_AFTER_FAILURE_S
        if done.message is not None:
            self._ack(done.message)
        if outcome.status == "rejected" and not self._refusals["schedule"].allow(now):
            return effects
        event = outcome.event()
        return effects + ([] if event is None else [Emit(event["type"], reason=event["reason"], extra=event.get("extra"))])

    def _request_sync(self) -> None:
        if self.link is not None:
            self.link.publish(self.link.topics.sync_request, {"site": self.cfg.site_id, "have_version": self.store.version})
            log.info("asked for a schedule snapshot (have version %s)", self.store.version)

    def _command(self, payload: bytes, now: float) -> list:
        """PROTOCOL 4: every command, done or refused, gets one result and one event."""
        try:
            cmd = commands.parse_command(open_envelope(payload, self.keys, self.cfg.trust["require_signature"],
                                                       max_bytes=commands.MAX_COMMAND_BYTES))
        except DocumentError as exc:
            return self._unreadable_command(payload, str(exc), now)
        digest = hashlib.sha256(payload).hexdigest()
        if cmd.site == self.cfg.site_id:
            answered = self._command_answered(cmd.id)
            if answered is not None and answered.get("digest") == digest:
                # the same message delivered again: its result may never have reached the broker
                log.info("command %s delivered again: its result is sent again", cmd.id)
                return [Publish("cmd_result", answered["result"])]
        why = commands.refusal(cmd, site=self.cfg.site_id, doors=self.controller.doors, now=now,
                               seen=self._command_seen(cmd.id))
        effects = self._command_effects(cmd, why, now)
        if cmd.site == self.cfg.site_id:
            result = next(e.doc for e in effects if isinstance(e, Publish) and e.topic == "cmd_result")
            effects.insert(0, Remembered(cmd.id, cmd.expires_at, {"digest": digest, "result": result}))
        return effects

    def _command_effects(self, cmd: commands.CommandDoc, why: str | None, now: float) -> list:
        effects: list = []
        if why is not None:
            return self._command_result(cmd.id, cmd.action, cmd.door, why, now)
        log.info("command %s: %s %s by %s", cmd.id, cmd.action, cmd.door or "", cmd.by)
        if cmd.action == "resync":
            self._request_sync()
        elif cmd.action == "reset_version":
            # the mark is stored before the request for a snapshot goes out
            effects += [AnyVersion(), Publish("sync_request", {"site": self.cfg.site_id, "have_version": None})]
            log.warning("reset_version: the next snapshot is applied whatever its version")
        else:
            effects += self.controller.command(now, cmd.action, cmd.door, cmd.duration_s)
        return effects + self._command_result(cmd.id, cmd.action, cmd.door, None, now)

    def _command_answered(self, command_id: str) -> dict | None:
        """What a command was answered with (``digest``, ``result``): stored, or on its way to the store."""
        for batch in self._unwritten:
            for e in batch.after:
                if isinstance(e, Remembered) and e.command == command_id:
                    return e.result
        return self.store.command_result(command_id)

    def _command_seen(self, command_id: str) -> bool:
        """Seen before: stored, or remembered by a write still on its way to the store."""
        return (any(isinstance(e, Remembered) and e.command == command_id for b in self._unwritten for e in b.after)
                or self.store.command_seen(command_id))

    def _unreadable_command(self, payload: bytes, error: str, now: float) -> list:
        """A command that cannot be read or trusted: answered, unless a flood of them is (budget)."""
        if not self._refusals["cmd"].allow(now):
            return []
        return self._command_result(commands.claimed_id(payload), None, None, error, now)

    def _unreported_refusals(self, now: float) -> list:
        """Once a minute is over: how many refusals a flood had, in one event for each kind."""
        effects: list = []
        if n := self._refusals["cmd"].overdue(now):
            why = f"{n} more unreadable commands in a minute, refused without a result each (a flood?)"
            log.warning(why)
            effects.append(Emit(Event.COMMAND_RESULT, reason=why, extra={"command": None, "action": None, "ok": False,
                                                                     "unreported": n}))
        if n := self._refusals["schedule"].overdue(now):
            why = f"{n} more schedule documents in a minute, rejected without an event each (a flood?)"
            log.warning(why)
            effects.append(Emit(Event.SYNC_REJECTED, reason=why, extra={"unreported": n}))
        return effects

    def _command_result(self, cmd_id: str | None, action: str | None, door: str | None, error: str | None, now: float) -> list:
        if error is not None:
            log.warning("command %s refused: %s", cmd_id, error)
        result = {"id": cmd_id, "ok": error is None, "error": error, "at": self.store.iso(now)}
        # the result goes out after the event is stored: see _carry_out
        return [Emit(Event.COMMAND_RESULT, door=door, reason=error, extra={"command": cmd_id, "action": action, "ok": error is None}),
                Publish("cmd_result", result)]

    def kiosk_status(self, now: float) -> dict[str, Any]:
        """The status for the screen: light enough to send every few seconds."""
        return {"at": now, "online": True, "schedule_version": self.store.version, "clock_trusted": self.clock_trusted,
                "mode": self.controller.mode, "doors": self.controller.status(),
                "reader_faults": [{"reader": r, "door": self.reader_doors.get(r)} for r in sorted(self.reader_faults)],
                "storage": self.storage_status()}

    def _check_disk(self, now: float) -> list:
        """Keep the reserve while the disk has room; say so once when it has not. Only
        looks here (two stat calls); the reserve is written by a thread of its own, since
        writing and syncing megabytes on an SD card is no work for the decision loop."""
        self._next_disk_check = now + DISK_CHECK_EVERY_S
        data_dir = self.cfg.data_dir
        try:
            free = reserve.free_bytes(data_dir)
            if reserve.present(data_dir) or free >= 2 * reserve.SIZE:
                if not reserve.present(data_dir) and not self._reserving.is_set():
                    self._reserving.set()
                    threading.Thread(target=lambda: (reserve.keep(data_dir), self._reserving.clear()),
                                     name="reserve", daemon=True).start()
                if self._disk_low is not None:
                    log.warning("disk has room again")
                self._disk_low = None
                return []
        except OSError as exc:
            free, why = 0, f"disk cannot be checked: {exc}"
        else:
            why = f"disk almost full: {free // 1024} kB free"
        first = self._disk_low is None
        self._disk_low = why
        return [Emit(Event.STORAGE_FAULT, reason=why, extra={"storage": {"free_bytes": free}})] if first else []

    def _check_files(self) -> list:
        """The store's files are the agent's alone; a person or a script deleting them while
        it runs is put right: a deleted device secret is written back (the hashes were made
        with it), a deleted or replaced database makes the agent stop to be started again
        (systemd), after saving what it still has open in the deleted one's place."""
        try:
            if self.store.keep_secret():
                why = "device secret was deleted while the agent ran: written back"
                log.error(why)
                return [Emit(Event.STORAGE_FAULT, reason=why)]
            if self._db_file is not None and _file_id(self._db_path) != self._db_file and self.restart_for is None:
                gone = not self._db_path.exists()
                self.restart_for = "haldor.db was deleted while the agent ran" if gone else \
                    "haldor.db was replaced while the agent ran"
                log.error("%s: the agent stops to be started again%s", self.restart_for,
                          " (what it had open is saved in its place)" if gone else "")
                self.post(Stop())
        except (OSError, StoreError) as exc:
            log.error("data folder cannot be checked: %s", exc)
        return []

    def storage_status(self) -> dict[str, Any]:
        """Whether the store takes writes and can be read; what waits in memory meanwhile.
        ``since`` is an instant (seconds); the status document gives it as RFC 3339."""
        health = self.journal.health()
        if self._read_fault is not None:
            health.update(ok=False, fault=health["fault"] or f"cannot read: {self._read_fault}")
        if self._disk_low is not None:
            health.update(ok=False, fault=health["fault"] or self._disk_low)
        if self._rehash_needed:
            health.update(ok=False, fault=health["fault"] or SECRET_REPLACED)
        health["cards_work"] = not self._rehash_needed
        return health

    def readers_status(self) -> dict[str, dict[str, Any]]:
        return {r: {"ok": r not in self.reader_faults, "fault": self.reader_faults.get(r)} for r in self.reader_doors}

    def status_doc(self, now: float) -> dict[str, Any]:
        """PROTOCOL 6."""
        last_sync = self.store.meta("last_sync")
        storage = self.storage_status()
        return {
            "schema": Schema.STATUS, "site": self.cfg.site_id, "online": True, "at": self.store.iso(now),
            "agent_version": __version__, "schedule_version": self.store.version,
            "last_sync": None if last_sync is None else self.store.iso(last_sync),
            "clock_trusted": self.clock_trusted, "mode": self.controller.mode, "doors": self.controller.status(),
            "readers": self.readers_status(),
            "storage": {**storage, "since": storage["since"] and self.store.iso(storage["since"])},
            "outbox": {**self.store.outbox_stats(), "capacity": self.cfg.sync["outbox_capacity"]}, "uptime_s": int(self.clock.monotonic() - self._started_mono),
        }

    def _housekeeping(self, now: float) -> None:
        if now >= self._next_reports:
            self._next_reports = now + REPORTS_EVERY_S
            self._reports(now)
        # what the status shows, read once: a change of it is told at once, to the kiosk and the broker
        storage = self.storage_status()
        key = (self.store.version, self.clock_trusted, self.controller.mode, repr(self.controller.status()),
               repr(self.reader_faults), storage["ok"], storage["fault"])
        if self.kiosk is not None:
            if key != self._kiosk_key or now >= self._next_kiosk:
                self.kiosk.status(self.kiosk_status(now))
                self._kiosk_key = key
                self._next_kiosk = now + KIOSK_EVERY_S
        if now >= self._next_status:  # once a minute, whether or not there is a broker
            self._submit(Batch(writes=[self._enforce_capacity]))
        if self._resync_at is not None and now >= self._resync_at:
            self._resync_at = None
            self._request_sync()
        if self.link is not None:
            self.link.kick()
            if key != self._status_key or now >= self._next_status:
                if self.link.publish_status(self.status_doc(now)):
                    self._status_key = key
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
        if now >= self._next_purge:
            self._submit(Batch(writes=[lambda s, before=now - self.cfg.privacy["event_retention_days"] * 86400:
                                       self._purge(s, before)]))
            self._next_purge = now + PURGE_EVERY_S

    def _enforce_capacity(self, store: Store) -> None:
        dropped = store.enforce_capacity(self.cfg.sync["outbox_capacity"])
        if dropped:
            log.warning("outbox full: dropped the %d oldest door.opened/door.closed events", dropped)

    def _purge(self, store: Store, before: float) -> None:
        purged = store.purge_delivered(before)
        if purged:
            log.info("purged %d delivered events older than %d days", purged, self.cfg.privacy["event_retention_days"])

    def _presented(self, read: CardRead | PinRead, now: float) -> list:
        door = self.reader_doors.get(read.reader)
        if door is None:
            return self._checkin(read, now)
        if isinstance(read, CardRead):
            facts = self.store.facts(door, now, card=read.card)
        else:
            facts = self.store.facts(door, now, pin=read.pin)
        facts = self._with_unwritten_leaders(facts)
        decision, effects = self.controller.present(now, read.reader, facts, pin=isinstance(read, PinRead), clock_trusted=self.clock_trusted)
        log.info("%s at %s: %s%s (credential %s, booking %s)", "PIN" if isinstance(read, PinRead) else "card", read.reader,
                 "granted" if decision.granted else "denied", "" if decision.granted else f" {decision.reason}",
                 decision.credential, decision.booking)
        return effects

    def _with_unwritten_leaders(self, facts):
        """A leader's entry still on its way to the store already admits the members (leader_first)."""
        leaders = {e.booking for e in self._unwritten_effects() if isinstance(e, (Entered, CheckedIn)) and e.role == Role.LEADER}
        if not leaders or not any(b.id in leaders and not b.leader_present for b in facts.bookings):
            return facts
        return dataclasses.replace(facts, bookings=tuple(
            dataclasses.replace(b, leader_present=True) if b.id in leaders else b for b in facts.bookings))

    def _with_unwritten_checkins(self, facts: checkin.CheckinFacts) -> checkin.CheckinFacts:
        """A check-in still on its way to the store counts: a second badge is "already"."""
        ids = {c.id for c in facts.credentials}
        done = {e.booking for e in self._unwritten_effects() if isinstance(e, CheckedIn) and e.credential in ids}
        if not done:
            return facts
        return dataclasses.replace(facts, bookings=tuple(
            dataclasses.replace(b, checked_in=True) if b.id in done else b for b in facts.bookings))

    def _checkin(self, read: CardRead | PinRead, now: float) -> list:
        """A badge at the kiosk reader (a reader with no door)."""
        pin = isinstance(read, PinRead)
        facts = self.store.checkin_facts(now, pin=read.pin) if pin else self.store.checkin_facts(now, card=read.card)
        facts = self._with_unwritten_checkins(facts)
        answer = checkin.decide_checkin(now, facts, pin=pin, clock_trusted=self.clock_trusted)
        log.info("%s at kiosk reader %s: %s (credential %s, booking %s)", "PIN" if pin else "card", read.reader,
                 answer.outcome, answer.credential, answer.booking)
        effects: list = []
        if answer.outcome == checkin.CHECKED_IN:
            effects += [CheckedIn(answer.booking, answer.credential, answer.role),
                        Emit(Event.CHECKIN, reader=read.reader, credential=answer.credential, booking=answer.booking)]
        effects.append(Feedback(read.reader, answer.welcome))
        if self.kiosk is not None:
            self.kiosk.answer(kiosk_answer(answer, read, now))
        return effects

    def _reports(self, now: float) -> None:
        """No-show and usage, each exactly once: the event and the mark in one transaction."""
        since = self.store.meta("reports_since")
        if since is None:
            return
        pending = self._unwritten_effects()
        if any(isinstance(e, (Entered, CheckedIn)) for e in pending):
            return  # an entry or check-in on its way to the store would change the verdict: next round
        effects: list = []
        unwritten = {(e.kind, e.booking) for e in pending if isinstance(e, Reported)}
        for kind, record in checkin.due_reports(now, self.store.booking_records(now, since), self.store.policy.no_show_after_min):
            if (kind, record.id) in unwritten:
                continue
            if kind == "no_show":
                effects.append(Emit(Event.BOOKING_NO_SHOW, booking=record.id))
            else:
                usage = checkin.usage_of(record)
                if usage["first_entry"] is not None:
                    usage["first_entry"] = self.store.iso(usage["first_entry"])
                usage["start"] = self.store.iso(usage["start"])
                effects.append(Emit(Event.BOOKING_USAGE, booking=record.id, extra={"usage": usage}))
            effects.append(Reported(kind, record.id))
        if effects:
            self._carry_out(effects, now)

    def _check_clock(self, now: float, effects: list) -> None:
        if not self.clock_trusted and clocks.trusted(now, self._last_seen, self.clock.synchronized()):
            self.clock_trusted = True
            effects.append(Emit(Event.CLOCK_TRUSTED))
            log.info("clock trusted again")

    def _save_last_seen(self, now: float) -> None:
        if self.clock_trusted:
            self._last_seen = now
            self._submit(Batch(writes=[lambda s: s.set_meta("last_seen", now)]))
        self._next_last_seen = now + LAST_SEEN_EVERY_S

    def _carry_out(self, effects: list, now: float) -> None:
        """Locks and feedback at once (someone is at the door); what is to be stored goes
        to the journal, and what reports it (listeners, results) waits for its commit."""
        for e in effects:
            if isinstance(e, Lock):
                self.hw.locks[e.door].set_unlocked(e.unlocked)
        for e in effects:
            if isinstance(e, Feedback) and e.reader in self.hw.indicators:
                indicator = self.hw.indicators[e.reader]
                indicator.granted() if e.granted else indicator.denied()
        kept = [e for e in effects if not isinstance(e, (Lock, Feedback))]
        if not kept:
            return
        batch = Batch(events=[e.as_event(now) for e in kept if isinstance(e, Emit)],
                      after=[e for e in kept if not isinstance(e, Emit)])
        for e in kept:
            if isinstance(e, Entered):
                batch.writes.append(lambda s, e=e: s.note_entry(e.booking, e.role, now))
            elif isinstance(e, CheckedIn):
                batch.writes.append(lambda s, e=e: s.note_checkin(e.booking, e.credential, e.role, now))
            elif isinstance(e, Reported):
                batch.writes.append(lambda s, e=e: s.mark_reported(e.kind, e.booking, now))
            elif isinstance(e, Remembered):
                batch.writes.append(lambda s, e=e: s.remember_command(e.command, e.expires_at, now, e.result))
            elif isinstance(e, AnyVersion):
                batch.writes.append(lambda s: s.accept_any_version())
            elif isinstance(e, Forget):
                batch.writes.append(lambda s, e=e: s.set_meta(e.key, None))
        if any(isinstance(e, ModesChanged) for e in kept):
            lasting, mode = self.controller.lasting_state(), self.controller.mode
            batch.writes.append(lambda s: (s.set_meta("lasting", lasting), s.set_meta("mode", mode)))
        self._submit(batch)

    def _submit(self, batch: Batch) -> None:
        if any(isinstance(e, OVERLAID) for e in batch.after):  # what the store's answers must be read with
            self._unwritten.append(batch)
        self.journal.submit(batch)

    def _stored(self, message: Stored) -> None:
        """A batch is committed: now it may be reported."""
        try:
            self._unwritten.remove(message.batch)
        except ValueError:
            pass
        for e in message.batch.after:
            if isinstance(e, Publish) and self.link is not None:
                self.link.publish(getattr(self.link.topics, e.topic), e.doc)
        if message.events:
            if self.link is not None:
                self.link.kick()
            for listener in self._listeners:
                listener(message.events)

    def _unwritten_effects(self) -> list:
        return [e for b in self._unwritten for e in b.after]


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def kiosk_answer(answer: checkin.CheckinAnswer, read: CardRead | PinRead, now: float) -> dict[str, Any]:
    """What the kiosk shows for a badge at its reader. Ids only: the kiosk looks up the
    names. An unknown card's number is shown for enrolment; it is never stored."""
    doc: dict[str, Any] = {"at": now, "outcome": answer.outcome, "reader": read.reader, "association": answer.association,
                           "booking": answer.booking, "starts_at": answer.starts_at, "role": answer.role}
    if answer.outcome == checkin.UNKNOWN_CARD and isinstance(read, CardRead):
        doc["card"] = read.card
        doc["card_reversed"] = cards.reversed_uid(read.card)
    return doc
