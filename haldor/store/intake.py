"""Receiving a schedule document: open the envelope, validate, apply, record the outcome.

One path for every source (a file given to `haldor schedule load`, MQTT, HTTP), so
a document is treated the same wherever it came from.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import sqlite3
from collections.abc import Collection, Mapping
from typing import Any, BinaryIO

from nacl.public import PrivateKey

from haldor.access.damage import damaged
from haldor.access.envelope import open_document
from haldor.access.schedule import DELTA_SCHEMA, SNAPSHOT_SCHEMA, VERSION_JUMP_WARNING, door_warnings, parse_document
from haldor.access.schedule_stream import SnapshotReader, head, streamable
from haldor.errors import DocumentError, StoreError
from haldor.protocol import Event
from haldor.records import record

from .database import DB_NAME, Store
from .recovery import save_good_copy
from .schedule_tables import ApplyResult, GapError

log = logging.getLogger(__name__)


@record
class Outcome:
    status: str  # "applied" | "stale" | "other_site" | "empty" | "rejected" | "gap" | "failed"
    message: str
    version: int | None = None
    #: applied, but something in it cannot work as meant (PROTOCOL extension: sync.applied's ``warnings``)
    warnings: tuple[str, ...] = ()
    #: its event is already stored (an applied document's, committed with it)
    reported: bool = False
    #: failed for a reason that may be gone at once (the worker process died): asked for again now
    again: bool = False
    #: failed because the store could not take it (a full disk, a lock held too long): worth another try
    retry: bool = False
    #: failed because the database is damaged (:mod:`.damage`): SQLite's words
    damaged: str | None = None

    @property
    def changed(self) -> bool:
        return self.status == "applied"

    def event(self) -> dict[str, Any] | None:
        """The event that reports this outcome (PROTOCOL 5); none for an ignored one, or
        one whose event is stored already."""
        if self.reported:
            return None
        if self.status == "applied":
            event: dict[str, Any] = {"type": Event.SYNC_APPLIED, "reason": self.message.removeprefix("applied ")}
            if self.warnings:
                event["extra"] = {"warnings": list(self.warnings)}
            return event
        if self.status in ("rejected", "gap", "failed"):
            return {"type": Event.SYNC_REJECTED, "reason": self.message}
        return None


def receive(
    store: Store,
    payload: bytes | str | BinaryIO,
    *,
    keys: Mapping[str, Any],
    require_signature: bool,
    now: float,
    doors: Collection[str] | None = None,
    site_key: PrivateKey | None = None,
    plain: bool = True,
) -> Outcome:
    """Apply ``payload`` or reject it whole, and store the event that says which."""
    outcome = process(
        store, payload, keys=keys, require_signature=require_signature, now=now, doors=doors, site_key=site_key, plain=plain
    )
    event = outcome.event()
    if event is not None:
        store.outbox.append([event], now)
    return outcome


def process(
    store: Store,
    payload: bytes | str | BinaryIO,
    *,
    keys: Mapping[str, Any],
    require_signature: bool,
    now: float,
    doors: Collection[str] | None = None,
    max_bytes: int | None = None,
    site_key: PrivateKey | None = None,
    plain: bool = True,
) -> Outcome:
    """Apply ``payload`` or reject it whole. Never raises: whatever goes wrong with the
    document is a rejection, whatever goes wrong with the store is a failure (the
    schedule in force stays either way). The caller reports :meth:`Outcome.event`.
    ``doors``: this box's doors, to warn about rooms and doors that do not meet.
    ``site_key`` opens a sealed document; without ``plain`` one in clear is refused."""
    try:
        done = _apply(store, payload, keys, require_signature, now, doors, max_bytes, site_key, plain)
    except GapError as exc:
        message = f"{exc}; a snapshot is needed"
        log.warning("schedule gap: %s", message)
        return Outcome("gap", message)
    except DocumentError as exc:
        log.warning("schedule rejected: %s", exc)
        return Outcome("rejected", str(exc))
    except (StoreError, sqlite3.Error, OSError) as exc:
        log.error("schedule not applied, storage failed: %s", exc)
        broken = damaged(exc)
        return Outcome("failed", f"storage: {exc}; the schedule in force stays", retry=broken is None, damaged=broken)
    except Exception as exc:  # a document that trips the validator is still only a bad document
        log.exception("schedule rejected: it broke the validator")
        return Outcome("rejected", f"malformed document ({type(exc).__name__})")
    if isinstance(done, Outcome):
        return done
    result, applied = done
    if result.status == "applied" and applied is not None:
        if result.kind == "snapshot":
            _save_good_copy(store)
        log.info("schedule applied: %s %s%s", result.kind, result.version, "".join(f"; warning: {w}" for w in applied.warnings))
        return dataclasses.replace(applied, reported=True)
    log.info("schedule ignored: %s %s %s", result.kind, result.version, result.detail)
    return Outcome(result.status, f"ignored {result.kind} {result.version}: {result.detail}", result.version)


def _apply(
    store: Store,
    payload: bytes | str | BinaryIO,
    keys: Mapping[str, Any],
    require_signature: bool,
    now: float,
    doors: Collection[str] | None,
    max_bytes: int | None,
    site_key: PrivateKey | None,
    plain: bool,
) -> Outcome | tuple[ApplyResult, Outcome | None]:
    """An outcome when there is nothing to apply; else what the store did, and the outcome
    its transaction reported (the schedule and the event that says so commit together)."""
    if _empty(payload):  # how MQTT clears a retained message: nothing to apply, nothing wrong
        return Outcome("empty", "ignored an empty payload (a retained message cleared)")
    opened = open_document(payload, keys, require_signature, max_bytes=max_bytes, site_key=site_key, plain=plain)
    text = opened.source()
    first = None if text is None else head(text)
    raw = first if streamable(first) else opened.parsed()
    ignored = _ignorable(store, raw)
    if ignored is not None:
        log.info("schedule ignored: %s", ignored.message)
        return ignored
    noted: list[Outcome] = []

    def report(result: ApplyResult, before: int | None) -> list[dict[str, Any]]:
        """Inside the apply's transaction: the schedule and the event that says so, together."""
        warnings = _warnings(store, result.version, before, doors)
        noted.append(Outcome("applied", f"applied {result.kind} {result.version}", result.version, tuple(warnings)))
        return [e for e in [noted[0].event()] if e is not None]

    if first is not None and raw is first and text is not None:  # a snapshot read and applied item by item
        reader = SnapshotReader(opened.source() or "")
        del opened, text
        result = store.schedule.apply_stream(reader, raw["site"], raw["version"], now, report)
    else:
        result = store.schedule.apply(parse_document(raw), now, report)
    return result, (noted[0] if noted else None)


def _empty(payload: bytes | str | BinaryIO) -> bool:
    if isinstance(payload, (bytes, str)):
        return not payload
    empty = payload.seek(0, io.SEEK_END) == 0
    payload.seek(0)
    return empty


def _save_good_copy(store: Store) -> None:
    """The copy a corrupt database is recovered from (:mod:`recovery`); a failure costs only the copy."""
    if store.data_dir is None:
        return
    try:
        save_good_copy(store.db.conn, store.data_dir / DB_NAME)
    except (OSError, sqlite3.Error) as exc:
        log.warning("no good copy of the database saved: %s", exc)


def _warnings(store: Store, version: int, before: int | None, doors: Collection[str] | None) -> list[str]:
    warnings = []
    if before is not None and version - before >= VERSION_JUMP_WARNING:
        warnings.append(
            f"version jumped from {before} to {version}: every later document must be greater; "
            "if that was a mistake, send the reset_version command and then a snapshot"
        )
    if doors is not None:
        try:
            warnings += door_warnings(store.schedule.room_doors(), doors)
        except sqlite3.Error as exc:  # applied all the same; the warnings are a courtesy
            log.warning("door warnings not computed: %s", exc)
    return warnings


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
    stale = store.schedule.why_stale(kind, version)
    if stale is not None:
        return Outcome("stale", f"ignored {kind} {version}: {stale}", version)
    return None
