"""The releases a box holds beside its base install, in ``<data_dir>/releases/`` (the only
folder systemd lets the agent write): one folder per version, ``current`` naming the one
to run, ``pending`` while a new one has not yet passed its self-check, and ``rolled_back``
saying why one was given up, until the release before it has reported it. Once a release
has passed, the folders of the others but the one it came from are removed
(:func:`prune`): a box updated every month would otherwise fill its card.

Every file is a small JSON document written whole to a temporary name and renamed, so a
power cut leaves either the old one or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOLDER = "releases"
CURRENT = "current"
PENDING = "pending"
ROLLED_BACK = "rolled_back"


def folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / FOLDER


def read(data_dir: str | Path, name: str) -> dict[str, Any] | None:
    """One of the pointer files, or None when it is missing or unreadable (a box whose
    pointer is broken runs its base install, never nothing)."""
    try:
        doc = json.loads((folder(data_dir) / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("%s: unreadable (%s): ignored", folder(data_dir) / name, exc)
        return None
    return doc if isinstance(doc, dict) else None


def present(data_dir: str | Path, name: str) -> bool:
    """The pointer file is there, readable or not."""
    return (folder(data_dir) / name).exists()


def write(data_dir: str | Path, name: str, doc: dict[str, Any] | None) -> None:
    """Written whole and renamed into place; None removes it."""
    path = folder(data_dir) / name
    if doc is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def release(version: str, path: str | Path) -> dict[str, str]:
    """What ``current`` holds: a version and where it is unpacked."""
    return {"version": version, "path": str(path)}


def stage(data_dir: str | Path, to: dict[str, str], came_from: dict[str, str] | None, **about: Any) -> None:
    """The switch to a new release: the marker first (so a start that finds ``current``
    changed always finds the way back), then ``current``."""
    write(data_dir, PENDING, {"from": came_from, "to": to, "starts": 0, "staged_at": time.time(), **about})
    write(data_dir, CURRENT, to)


def roll_back(data_dir: str | Path, why: str) -> dict[str, Any] | None:
    """The pending release given up: ``current`` back to the one before it (none: the base
    install), and why, for the one before to report. Returns the record, or None when
    nothing was pending."""
    pending = read(data_dir, PENDING)
    if pending is None:
        return None
    came_from, to = (pending.get(k) if isinstance(pending.get(k), dict) else None for k in ("from", "to"))
    record = {
        "command": pending.get("command"),
        "from": (came_from or {}).get("version"),
        "to": (to or {}).get("version"),
        "why": why,
        "at": time.time(),
    }
    write(data_dir, ROLLED_BACK, record)
    write(data_dir, CURRENT, came_from)
    write(data_dir, PENDING, None)
    log.error("update to %s rolled back to %s: %s", record["to"], record["from"] or "the base install", why)
    return record


def confirm(data_dir: str | Path) -> dict[str, Any] | None:
    """The running release passed its self-check: the marker goes, the switch stays."""
    pending = read(data_dir, PENDING)
    write(data_dir, PENDING, None)
    return pending


def prune(data_dir: str | Path, keep: set[str]) -> list[str]:
    """The release folders not in ``keep`` removed (a release given up, those before the one
    the running release came from); the pointers, a download and an unpacking under way
    (hidden names) are left alone. A folder the disk will not remove is logged and tried
    again at the next release's confirmation. Returns the versions removed."""
    removed: list[str] = []
    keep = keep | {str((read(data_dir, CURRENT) or {}).get("version"))}
    try:
        entries = sorted(folder(data_dir).iterdir())
    except OSError as exc:
        log.error("%s: not read (%s): no old release removed", folder(data_dir), exc)
        return removed
    for entry in entries:
        if entry.name.startswith(".") or entry.name in keep or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            shutil.rmtree(entry)
        except OSError as exc:
            log.error("release %s in %s not removed: %s", entry.name, entry, exc)
            continue
        removed.append(entry.name)
    if removed:
        log.info("old releases removed: %s", ", ".join(removed))
    return removed
