"""Receiving a schedule document: open the envelope, validate, apply, record the outcome.

One path for every source (a file given to `haldor schedule load`, MQTT, HTTP), so
a document is treated the same wherever it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from haldor.errors import DocumentError

from .envelope import open_envelope
from .schedule import DELTA_SCHEMA, SNAPSHOT_SCHEMA, parse_document
from .store import GapError, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "applied" | "stale" | "other_site" | "rejected" | "gap"
    message: str
    version: int | None = None

    @property
    def changed(self) -> bool:
        return self.status == "applied"


def receive(store: Store, payload: bytes | str, *, keys: Mapping[str, Any], require_signature: bool, now: float) -> Outcome:
    """Apply ``payload`` or reject it whole; either way the outcome is an event."""
    try:
        raw = open_envelope(payload, keys, require_signature)
        ignored = _ignorable(store, raw)
        if ignored is not None:
            log.info("schedule ignored: %s", ignored.message)
            return ignored
        doc = parse_document(raw)
        result = store.apply(doc, now)
    except GapError as exc:
        message = f"{exc}; a snapshot is needed"
        store.append_events([{"type": "sync.rejected", "reason": message}], now)
        log.warning("schedule gap: %s", message)
        return Outcome("gap", message)
    except DocumentError as exc:
        store.append_events([{"type": "sync.rejected", "reason": str(exc)}], now)
        log.warning("schedule rejected: %s", exc)
        return Outcome("rejected", str(exc))
    if result.status == "applied":
        store.append_events([{"type": "sync.applied", "reason": f"{result.kind} {result.version}"}], now)
        log.info("schedule applied: %s %s", result.kind, result.version)
        return Outcome("applied", f"applied {result.kind} {result.version}", result.version)
    log.info("schedule ignored: %s %s %s", result.kind, result.version, result.detail)
    return Outcome(result.status, f"ignored {result.kind} {result.version}: {result.detail}", result.version)


def _ignorable(store: Store, raw: Any) -> Outcome | None:
    """The retained snapshot arrives again on every reconnect: a look at its site and
    version spares validating 25 MB to learn that it is the one already applied."""
    if not isinstance(raw, dict):
        return None
    site, version = raw.get("site"), raw.get("version")
    if not isinstance(site, str) or type(version) is not int or raw.get("schema") not in (SNAPSHOT_SCHEMA, DELTA_SCHEMA):
        return None
    kind = "snapshot" if raw["schema"] == SNAPSHOT_SCHEMA else "delta"
    if site != store.site:
        return Outcome("other_site", f"ignored {kind} {version}: for site {site!r}", version)
    current = store.version
    if current is not None and version <= current:
        return Outcome("stale", f"ignored {kind} {version}: version {version} <= applied {current}", version)
    return None
