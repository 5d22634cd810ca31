"""A card or PIN at a reader, as the loop takes it: at a door's reader the pure core
decides; at the kiosk's reader (no door) it is a check-in. And which readers are at
fault, for the status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from haldor.access.controller import Controller, Emit
from haldor.config import Config
from haldor.drivers.base import CardRead, PinRead, ReaderFault, ReaderRestored
from haldor.protocol import Event
from haldor.store import Store

from . import activity

log = logging.getLogger("haldor.agent.loop")


class Presenting:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        controller: Controller,
        kiosk: Callable[[], Any],
        pending: Callable[[], list],
        trusted: Callable[[], bool],
    ) -> None:
        self.store, self.controller = store, controller
        self.kiosk = kiosk  # the screen the agent pushes to (set after the start in tests)
        self.pending, self.trusted = pending, trusted
        self.reader_doors = {r.id: r.door or None for r in cfg.readers}
        self.enrolment = activity.Enrolment()
        #: reader -> the reason of its latest fault, while it lasts
        self.faults: dict[str, str] = {}

    def presented(self, read: CardRead | PinRead, now: float) -> list:
        door = self.reader_doors.get(read.reader)
        pending = self.pending()
        if door is None:
            return activity.check_in(
                self.store,
                read,
                now,
                clock_trusted=self.trusted(),
                pending=pending,
                kiosk=self.kiosk(),
                enrolment=self.enrolment,
                controller=self.controller,
            )
        if isinstance(read, CardRead):
            facts = self.store.schedule.facts(door, now, card=read.card)
        else:
            facts = self.store.schedule.facts(door, now, pin=read.pin)
        facts = activity.with_unwritten_leaders(facts, pending)
        decision, effects = self.controller.present(
            now, read.reader, facts, pin=isinstance(read, PinRead), clock_trusted=self.trusted()
        )
        log.info(
            "%s at %s: %s%s (credential %s, booking %s)",
            "PIN" if isinstance(read, PinRead) else "card",
            read.reader,
            "granted" if decision.granted else "denied",
            "" if decision.granted else f" {decision.reason}",
            decision.credential,
            decision.booking,
        )
        return effects

    def fault(self, message: ReaderFault, now: float) -> list:
        log.warning("reader %s fault: %s", message.reader, message.reason)
        self.faults[message.reader] = message.reason
        return [Emit(Event.READER_FAULT, reader=message.reader, reason=message.reason)]

    def restored(self, message: ReaderRestored, now: float) -> list:
        if self.faults.pop(message.reader, None) is not None:
            log.info("reader %s works again", message.reader)
        return []
