"""The agent's one decision loop.

Every input (a read, a contact edge, a button, a fire input, a command, the passing
of time) becomes a message on one inbox, handled in order by one thread: a table says
which handler takes which message, and each handler returns effects (the pure core's
:mod:`haldor.access.controller` makes most of them). Locks and LEDs move at once; what
is to be stored goes to the journal, and what reports it waits for the commit.
Library callbacks only post messages.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from haldor import clock as clocks
from haldor.access.controller import Controller, DoorSpec, Emit, Feedback, Lock
from haldor.access.damage import damaged
from haldor.config import Config
from haldor.drivers.base import CardRead, PinRead, ReaderFault, ReaderRestored
from haldor.errors import StoreError
from haldor.protocol import Event
from haldor.store import Store
from haldor.store.journal import Batch, Journal, StorageChanged, Stored

from . import activity
from .door_first import Later, Loaded
from .hardware import Hardware
from .inbox import Inbox
from .messages import OVERLAID, Command, ContactChanged, ExitPressed, FireChanged, Forget, Stop, Tick, batch_of
from .notify import Notifier
from .periodic import Every
from .presenting import Presenting
from .site import guessing_limits, open_store
from .storage_watch import StorageWatch
from .timekeeping import LAST_SEEN_EVERY_S, Timekeeper

if TYPE_CHECKING:  # the network part is imported beside the loop (door-first); httpx only for [sync] http_url
    from .http_fallback import HttpFallback
    from .link import Connected, MqttLink
    from .network import Network
    from .status import Seen

#: the network part's link, fallback and kiosk feed, built by `haldor run` once its modules are loaded
NetworkParts = Callable[[], "tuple[MqttLink | None, HttpFallback | None, Any]"]

log = logging.getLogger(__name__)

REPORTS_EVERY_S = 30.0
PURGE_EVERY_S = 3600.0
#: how long a stopping agent waits for storage to take what waits in memory
FLUSH_ON_STOP_S = 5.0

Handler = Callable[[Any, float], list]


class Agent:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        hardware: Hardware,
        clock: clocks.Clock | None = None,
        inbox: queue.Queue | Inbox | None = None,
        link: MqttLink | None = None,
        fallback: HttpFallback | None = None,
        kiosk: Any = None,
        notifier: Notifier | None = None,
        network: NetworkParts | None = None,
    ) -> None:
        """``network``: door-first (`haldor run`): the network part is built by it once its
        modules are loaded beside the running loop; else it is attached at once, over ``link``."""
        self.cfg, self.store, self.hw = cfg, store, hardware
        self.clock = clock or clocks.SystemClock()
        #: the one queue; the hardware was built to post to it
        self.inbox: queue.Queue | Inbox = inbox if inbox is not None else Inbox()
        self.kiosk = kiosk
        self.notifier = notifier or Notifier({})
        self.running = threading.Event()
        #: set once the network part is attached: after the doors answer (door-first)
        self.attached = threading.Event()
        self.controller = Controller(
            [DoorSpec(d.id, d.unlock_s, d.held_open_s, d.fail) for d in cfg.doors],
            guessing=guessing_limits(cfg),
        )
        self.time = Timekeeper(self.clock, store)
        self._listeners: list[Callable[[list[dict]], None]] = []
        #: the loop's writes, made beside it (its own connection)
        self.journal = Journal(open_store(cfg), self.post, clock=self.clock.now)
        #: batches submitted and not yet committed: what the store does not show yet
        self._unwritten: list[Batch] = []
        self.storage = StorageWatch(cfg.data_dir, store, self.journal, self.post)
        self.readers = Presenting(
            cfg, store, self.controller, lambda: self.kiosk, self._unwritten_effects, lambda: self.clock_trusted
        )
        #: the database was recovered from its good copy at start (recovery.check): a snapshot is asked for
        self._recovered: str | None = None
        first = 0.0 if network is None else None  # door-first: reports and purges wait for the network part
        self._every = {"last_seen": Every(LAST_SEEN_EVERY_S), "reports": Every(REPORTS_EVERY_S, first_at=first)}
        self._every["purge"] = Every(PURGE_EVERY_S, first_at=first)
        self._next_watchdog = 0.0  # on the monotonic clock; the interval is the notifier's (systemd's WatchdogSec)
        #: which handler takes which message (each returns the effects to carry out)
        self.handlers = self._handler_table()
        #: the remote side, updates and the status; None until attached (door-first)
        self.net: Network | None = None
        #: door-first: the network part still to be loaded and built
        self.later = Later(network, self.clock.monotonic) if network is not None else None
        self.unloaded: str | None = None  # why the network part did not load (the agent then stops)
        if network is None:
            self._attach(link, fallback, kiosk)

    def _attach(self, link: MqttLink | None, fallback: HttpFallback | None, kiosk: Any) -> Network:
        from .network import Network

        self.kiosk = kiosk
        self.net = Network(
            self.cfg, self.store, self.controller, self.clock, storage=self.storage, time=self.time, link=link,
            fallback=fallback, post=self.post, unwritten=self._unwritten,
        )  # fmt: skip
        self.net.status.seen = self._seen()
        self.handlers.update(self.net.handlers(self._connected))
        for job in (self._every["reports"], self._every["purge"]):
            job.next_at = 0.0 if job.next_at is None else job.next_at
        self.attached.set()
        return self.net

    def _handler_table(self) -> dict[type, Handler]:
        c = self.controller
        return {
            CardRead: self.readers.presented,
            PinRead: self.readers.presented,
            ContactChanged: lambda m, now: c.contact(now, m.door, m.open),
            ExitPressed: lambda m, now: c.exit_request(now, m.door),
            FireChanged: lambda m, now: c.fire_alarm(now, m.door, m.active),
            ReaderFault: self.readers.fault,
            ReaderRestored: self.readers.restored,
            Command: lambda m, now: c.command(now, m.action, m.door, m.duration_s),
            Stored: self._stored,
            Tick: _nothing,
            StorageChanged: lambda m, now: self.storage.found_damage(m.damage),
            Loaded: self._loaded,
        }

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
        self.time.start(now)
        for door_id, contact in self.hw.contacts.items():
            self.controller.doors[door_id].open = not contact.active
        for door_id, fire in self.hw.fires.items():  # an alarm on before the start has no edge
            self.controller.doors[door_id].fire = fire.active
        effects: list[Any] = list(self.controller.start(now, self.store.meta("lasting")))
        self._recovered = self.store.meta("recovered")
        if self._recovered:  # recovery.check put the last good copy in place of a broken database
            effects += [Emit(Event.STORAGE_FAULT, reason=self._recovered), Forget("recovered")]
            self.storage.recovered = self._recovered
        effects += self.storage.start()
        if not self.clock_trusted:
            effects.append(Emit(Event.CLOCK_UNTRUSTED, reason="clock is behind the last time seen and not synchronised"))
            log.warning("clock untrusted: booking-based access refused until time sync")
        self._carry_out(effects, now)
        self._save_last_seen(now)
        self.hw.start()
        if self.net is not None:
            self.net.start()
        elif self.later is not None:
            self.later.start()
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
            try:  # deleted just before the stop: the hashes were made with it
                self.store.keep_secret()
            except (OSError, StoreError) as exc:
                log.error("device secret not kept: %s", exc)
            self.journal.close(0.0 if self.storage.damage else FLUSH_ON_STOP_S)
            if self.net is not None:  # a stop before it was attached: nothing was said on the network
                self.net.close(clean=stopped)

    def _next_message(self) -> Any:
        now = self.clock.now()
        deadlines = [
            d
            for d in (
                self.controller.next_deadline(),
                self._every["reports"].next_at,
                self.storage.checks.next_at,
                *(self.net.deadlines(self.kiosk) if self.net is not None else ()),
            )
            if d is not None
        ]
        waits = [d - now for d in deadlines] + [LAST_SEEN_EVERY_S]
        if self.notifier.interval_s is not None:
            waits.append(self._next_watchdog - self.clock.monotonic())
        if self.later is not None and self.later.wait_s is not None:
            waits.append(self.later.wait_s)
        timeout, idle_s = max(0.0, min(waits)), None
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            message, idle_s = Tick(), timeout
        if self.later is not None:
            self.later.heard(idle_s, self.post)
        return message

    def handle(self, message: Any) -> None:
        """One input, in order. Storage that cannot be read drops the input (logged, in
        the status); it never ends the loop."""
        try:
            self._handle(message)
        except (sqlite3.Error, StoreError) as exc:
            self.storage.read_failed(exc, type(message).__name__)
            self.storage.found_damage(damaged(exc))
            if isinstance(message, (CardRead, PinRead)) and message.reader in self.hw.indicators:
                self.hw.indicators[message.reader].denied()
        else:
            self.storage.read_worked()
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
        effects = self._check_clock(now)  # before deciding: a synchronised clock counts at once
        handler = self.handlers.get(type(message))
        if handler is None:
            log.error("unknown message %r ignored", message)
        else:
            effects += handler(message, now)
        effects += self.storage.check(now, changed=isinstance(message, StorageChanged))
        effects += self.controller.tick(now)
        if self.net is not None:
            effects += self.net.tick(now)
        self._carry_out(effects, now)
        if self._every["last_seen"].pending(now):
            self._save_last_seen(now)
        self._housekeeping(now)

    def _ping(self, mono: float) -> None:
        """The watchdog hears from the loop only when the loop has just done its work, on a sound store."""
        if self.notifier.interval_s is not None and mono >= self._next_watchdog and self.storage.damage is None:
            self.notifier.watchdog()
            self._next_watchdog = mono + self.notifier.interval_s

    # -- handlers -----------------------------------------------------------------------

    def _loaded(self, message: Loaded, now: float) -> list:
        """Door-first: the network part's modules are loaded: it is built, attached and started."""
        if self.later is None:  # attached already, or the agent stops
            return []
        later, self.later = self.later, None
        self.unloaded = later.built(message, self._attach)
        if self.unloaded is not None:  # a box that serves its doors but never reports would be silent
            self.net = None
            log.error("the network part did not load (%s): stopping", self.unloaded)
            self.post(Stop())
        else:
            log.info("network part attached")
        return []

    def _seen(self) -> Seen:
        """What the status shows of the loop's state, handed to it after every input."""
        from .status import Seen

        return Seen(
            self.clock_trusted, self.controller.mode, self.controller.status(), dict(self.readers.faults), self.storage.status()
        )

    def _connected(self, message: Connected, now: float) -> list:
        assert self.net is not None  # only its link says so
        self.net.status.heard_again()  # a fresh connection hears the status at once
        if self.store.version is None or self.storage.rehash_needed or self._recovered:
            self.net.remote.request_sync()
            self._recovered = None
        return []

    def _stored(self, message: Stored, now: float) -> list:
        """A batch is committed: now it may be reported."""
        try:
            self._unwritten.remove(message.batch)
        except ValueError:
            pass
        if self.net is not None:
            self.net.stored(message.batch.after, message.events)
        if message.events:
            for listener in self._listeners:
                listener(message.events)
        return []

    # -- time ---------------------------------------------------------------------------

    @property
    def clock_trusted(self) -> bool:
        return self.time.trusted

    def _check_clock(self, now: float) -> list:
        if self.time.regained(now):
            self._save_last_seen(now)  # and watching bookings from now
            return [Emit(Event.CLOCK_TRUSTED)]
        return []

    def _save_last_seen(self, now: float) -> None:
        writes = self.time.mark(now)
        if writes:
            self._submit(Batch(writes=writes))
        self._every["last_seen"].next_at = now + LAST_SEEN_EVERY_S

    def _housekeeping(self, now: float) -> None:
        if self.time.should_watch():
            self._save_last_seen(now)  # the first schedule came: watching its bookings from now
        if self._every["reports"].due(now):
            effects = activity.due_reports(self.store, now, self._unwritten_effects(), self.time.watching(now))
            if effects:
                self._carry_out(effects, now)
        if self.net is not None and self.net.tell(now, self._seen(), self.kiosk):  # once a minute, broker or not
            capacity = self.cfg.sync.outbox_capacity
            self._submit(Batch(writes=[lambda s: s.outbox.enforce_capacity(capacity)]))
        if self._every["purge"].due(now):
            before = now - self.cfg.privacy.event_retention_days * 86400
            self._submit(
                Batch(writes=[lambda s: s.outbox.purge_delivered(before), lambda s: s.activity.forget_observed(now - 3 * 86400)])
            )

    # -- effects ------------------------------------------------------------------------

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
        if kept:
            self._submit(batch_of(kept, now, self.controller))

    def _submit(self, batch: Batch) -> None:
        if any(isinstance(e, OVERLAID) for e in batch.after):  # what the store's answers must be read with
            self._unwritten.append(batch)
        self.journal.submit(batch)

    def _unwritten_effects(self) -> list:
        return [e for b in self._unwritten for e in b.after]


def _nothing(message: Any, now: float) -> list:
    return []
