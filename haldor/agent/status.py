"""What the agent tells about itself: the status document (PROTOCOL 6) for the broker
and the lighter one for the screen, each sent at once when what it shows changes, and
every so often anyway."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from haldor import __version__
from haldor.access import sealing
from haldor.config import Config
from haldor.errors import StoreError
from haldor.protocol import Schema

from .periodic import Every
from .site import site_key

if TYPE_CHECKING:
    from .loop import Agent

log = logging.getLogger(__name__)
STATUS_EVERY_S = 60.0
KIOSK_EVERY_S = 5.0  # the kiosk calls the agent offline after 15 s without a word


class StatusTeller:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._started_mono = agent.clock.monotonic()
        self._minute = Every(STATUS_EVERY_S)
        self._kiosk = Every(KIOSK_EVERY_S)
        self._status_key: Any = None
        self._kiosk_key: Any = None
        self.site_key = _site_key_text(agent.cfg)

    def heard_again(self) -> None:
        """A fresh connection to the broker: the status goes out at once."""
        self._status_key = None

    def kiosk_due(self) -> float | None:
        return self._kiosk.next_at if self.agent.kiosk is not None else None

    def tell(self, now: float) -> bool:
        """Send what changed, or is due. True once a minute (for the loop's minutely jobs)."""
        a = self.agent
        # what the status shows, read once: a change of it is told at once, to the kiosk and the broker
        storage = a.storage.status()
        key = (
            a.store.version,
            a.clock_trusted,
            a.controller.mode,
            repr(a.controller.status()),
            repr(a.reader_faults),
            storage["ok"],
            storage["fault"],
        )
        if a.kiosk is not None and (key != self._kiosk_key or self._kiosk.pending(now)):
            a.kiosk.status(self.kiosk_document(now))
            self._kiosk_key = key
            self._kiosk.next_at = now + KIOSK_EVERY_S
        minute = self._minute.pending(now)
        if a.link is not None:
            a.link.kick()
            if key != self._status_key or minute:
                if a.link.publish_status(self.document(now)):
                    self._status_key = key
        return self._minute.due(now)

    def readers(self) -> dict[str, dict[str, Any]]:
        faults = self.agent.reader_faults
        return {r: {"ok": r not in faults, "fault": faults.get(r)} for r in self.agent.reader_doors}

    def document(self, now: float) -> dict[str, Any]:
        """PROTOCOL 6."""
        a = self.agent
        store = a.store
        last_sync = store.meta("last_sync")
        storage = a.storage.status()
        return {
            "schema": Schema.STATUS,
            "site": a.cfg.site_id,
            "online": True,
            "at": store.iso(now),
            "agent_version": __version__,
            "schedule_version": store.version,
            "last_sync": None if last_sync is None else store.iso(last_sync),
            "clock_trusted": a.clock_trusted,
            "time_floor": None if (floor := a.time.floor()) is None else store.iso(floor),
            "mode": a.controller.mode,
            "doors": a.controller.status(),
            "readers": self.readers(),
            "storage": {**storage, "since": storage["since"] and store.iso(storage["since"])},
            "outbox": {**store.outbox.stats(), "capacity": a.cfg.sync["outbox_capacity"]},
            "uptime_s": int(a.clock.monotonic() - self._started_mono),
            "site_key": self.site_key,
            "timezone": store.timezone,
            "names": self.names(),
        }

    def names(self) -> dict[str, Any]:
        """The site's, its rooms' and doors' display names, so the fleet shows names and
        not ids (no person is ever named)."""
        cfg = self.agent.cfg
        return {
            "site": cfg.site["name"] or cfg.site_id,
            "rooms": self.agent.store.names("rooms"),
            "doors": {d.id: d.name or d.id for d in cfg.doors},
        }

    def kiosk_document(self, now: float) -> dict[str, Any]:
        """The status for the screen: light enough to send every few seconds."""
        a = self.agent
        return {
            "at": now,
            "online": True,
            "schedule_version": a.store.version,
            "clock_trusted": a.clock_trusted,
            "mode": a.controller.mode,
            "doors": a.controller.status(),
            "reader_faults": [{"reader": r, "door": a.reader_doors.get(r)} for r in sorted(a.reader_faults)],
            "storage": a.storage.status(),
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
