"""The agent's network part: the broker link and the HTTP fallback, and what works through
them (remote documents and commands, the status, updates). `haldor run` imports it beside the
loop once the doors answer (:mod:`.door_first`); tests and tools attach it at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from haldor.access.controller import Controller
from haldor.clock import Clock
from haldor.config import Config
from haldor.errors import StoreError
from haldor.store import Store
from haldor.store.journal import Batch

from .link import Connected, Disconnected, MqttLink, Received
from .messages import HttpSchedule, ScheduleDone, UpdateRefused, UpdateStaged
from .remote import Remote
from .status import Seen, StatusTeller
from .storage_watch import StorageWatch
from .timekeeping import Timekeeper
from .updating import Updating

if TYPE_CHECKING:
    from .http_fallback import HttpFallback


class Network:
    """The remote side, updates and the status over one link (or none: offline boxes and
    tests), built from what the loop hands over."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        controller: Controller,
        clock: Clock,
        *,
        storage: StorageWatch,
        time: Timekeeper,
        link: MqttLink | None,
        fallback: HttpFallback | None,
        post: Callable[[Any], None],
        unwritten: list[Batch],
    ) -> None:
        self.link, self.fallback, self._clock = link, fallback, clock
        self.remote = Remote(cfg, store, controller, link, storage, time, unwritten, post, clock.now)
        #: the update command, and a new release's self-check
        self.updating = Updating(cfg, store, link, post, self.remote.command_result, clock.now())
        self.remote.updating = self.updating
        self.status = StatusTeller(cfg, store, clock.monotonic, time.floor, link)

    def handlers(self, connected: Callable[[Any, float], list]) -> dict[type, Callable[[Any, float], list]]:
        """The loop's handlers for what the network brings."""
        return {
            Received: self.remote.received,
            HttpSchedule: self.remote.http_schedule,
            ScheduleDone: self.remote.schedule_done,
            Connected: connected,
            Disconnected: lambda m, now: [],  # a lost broker changes nothing at the door
            UpdateStaged: self.updating.staged,
            UpdateRefused: self.updating.refused,
        }

    def start(self) -> None:
        if self.link is not None:
            self.link.start()
        if self.fallback is not None:
            self.fallback.start()

    def deadlines(self, kiosk: Any) -> list[float | None]:
        return [self.status.kiosk_due(kiosk), self.updating.next_at]

    def tick(self, now: float) -> list:
        """After every input: documents waiting, the self-check, an update's progress."""
        return self.remote.tick(now) + self.updating.poll(now)

    def stored(self, after: list, events: list[dict]) -> None:
        """A batch is committed: its results may be reported, its events sent."""
        self.remote.stored(after)
        if events and self.link is not None:
            self.link.kick()

    def tell(self, now: float, seen: Seen, kiosk: Any) -> bool:
        """The status, when due; True once a minute (the outbox's capacity is then enforced)."""
        return self.status.tell(now, seen, kiosk)

    def close(self, clean: bool) -> None:
        """After the doors are safe and the journal closed: the last status, or the Last Will."""
        if self.fallback is not None:
            self.fallback.stop()
        self.remote.close(clean=clean)
        if self.link is not None:
            final: dict[str, Any] | None
            try:
                final = self.status.document(self._clock.now())
                final["online"] = False
            except (sqlite3.Error, StoreError):
                final = None  # the Last Will says offline instead
            self.link.stop(final)
