"""What the agent tells about itself: the status document (PROTOCOL 6) for the broker
and the lighter one for the screen, each sent at once when what it shows changes, and
every so often anyway. The loop hands it what it shows (:class:`Seen`) after every
input; the rest comes from the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import field
from typing import Any

from haldor import __version__
from haldor.access import sealing
from haldor.config import Config
from haldor.errors import StoreError
from haldor.protocol import Mode, Schema
from haldor.records import record
from haldor.store import Store

from .periodic import Every
from .site import site_key

log = logging.getLogger(__name__)
STATUS_EVERY_S = 60.0
KIOSK_EVERY_S = 5.0  # the kiosk calls the agent offline after 15 s without a word


@record
class Seen:
    """The agent's state as the status shows it, handed over by the loop."""

    clock_trusted: bool = True
    mode: str = Mode.NORMAL
    doors: dict[str, dict[str, Any]] = field(default_factory=dict)
    reader_faults: dict[str, str] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=lambda: {"ok": True, "fault": None, "since": None})


class StatusTeller:
    def __init__(
        self, cfg: Config, store: Store, monotonic: Callable[[], float], floor: Callable[[], float | None], link: Any = None
    ) -> None:
        self.cfg, self.store, self.link = cfg, store, link
        self._monotonic, self._floor = monotonic, floor
        self._started_mono = monotonic()
        self.reader_doors = {r.id: r.door or None for r in cfg.readers}
        self.seen = Seen()
        self._minute = Every(STATUS_EVERY_S)
        self._kiosk = Every(KIOSK_EVERY_S)
        self._status_key: Any = None
        self._kiosk_key: Any = None
        self.site_key = _site_key_text(cfg)

    def heard_again(self) -> None:
        """A fresh connection to the broker: the status goes out at once."""
        self._status_key = None

    def kiosk_due(self, kiosk: Any) -> float | None:
        return self._kiosk.next_at if kiosk is not None else None

    def tell(self, now: float, seen: Seen, kiosk: Any = None) -> bool:
        """Send what changed, or is due. True once a minute (for the loop's minutely jobs)."""
        self.seen = seen
        # a change of what the status shows is told at once, to the kiosk and the broker
        key = (
            self.store.version,
            seen.clock_trusted,
            seen.mode,
            repr(seen.doors),
            repr(seen.reader_faults),
            seen.storage["ok"],
            seen.storage["fault"],
        )
        if kiosk is not None and (key != self._kiosk_key or self._kiosk.pending(now)):
            kiosk.status(self.kiosk_document(now))
            self._kiosk_key = key
            self._kiosk.next_at = now + KIOSK_EVERY_S
        minute = self._minute.pending(now)
        if self.link is not None:
            self.link.kick()
            # built only for a broker that is there: offline, the document (ten reads, one of them
            # counting every event not yet delivered) would be made after every input for nothing
            if (key != self._status_key or minute) and self.link.connected.is_set():
                if self.link.publish_status(self.document(now)):
                    self._status_key = key
        return self._minute.due(now)

    def readers(self) -> dict[str, dict[str, Any]]:
        faults = self.seen.reader_faults
        return {r: {"ok": r not in faults, "fault": faults.get(r)} for r in self.reader_doors}

    def document(self, now: float) -> dict[str, Any]:
        """PROTOCOL 6."""
        store, seen = self.store, self.seen
        last_sync = store.meta("last_sync")
        storage = seen.storage
        return {
            "schema": Schema.STATUS,
            "site": self.cfg.site_id,
            "online": True,
            "at": store.iso(now),
            "agent_version": __version__,
            "schedule_version": store.version,
            "last_sync": None if last_sync is None else store.iso(last_sync),
            "clock_trusted": seen.clock_trusted,
            "time_floor": None if (floor := self._floor()) is None else store.iso(floor),
            "mode": seen.mode,
            "doors": seen.doors,
            "readers": self.readers(),
            "storage": {**storage, "since": storage["since"] and store.iso(storage["since"])},
            "outbox": {**store.outbox.stats(), "capacity": self.cfg.sync.outbox_capacity},
            "uptime_s": int(self._monotonic() - self._started_mono),
            "site_key": self.site_key,
            "timezone": store.timezone,
            "names": self.names(),
        }

    def names(self) -> dict[str, Any]:
        """The site's, its rooms' and doors' display names, so the fleet shows names and
        not ids (no person is ever named)."""
        cfg = self.cfg
        return {
            "site": cfg.site.name or cfg.site_id,
            "rooms": self.store.names("rooms"),
            "doors": {d.id: d.name or d.id for d in cfg.doors},
        }

    def kiosk_document(self, now: float) -> dict[str, Any]:
        """The status for the screen: light enough to send every few seconds."""
        seen = self.seen
        return {
            "at": now,
            "online": True,
            "schedule_version": self.store.version,
            "clock_trusted": seen.clock_trusted,
            "mode": seen.mode,
            "doors": seen.doors,
            "reader_faults": [{"reader": r, "door": self.reader_doors.get(r)} for r in sorted(seen.reader_faults)],
            "storage": seen.storage,
        }


def _site_key_text(cfg: Config) -> str | None:
    """The public key schedules are sealed to, made at first start: in the status so the
    booking system can be told it (compare it with ``haldor keygen --site`` on the box).
    A disk that cannot take it does not keep the doors from working."""
    try:
        return sealing.public_text(site_key(cfg))
    except (StoreError, OSError) as exc:
        log.error("no site key: sealed schedules cannot be opened: %s", exc)
        return None
