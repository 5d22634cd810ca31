"""A corrupt, empty or missing database is noticed at start and replaced by the last good copy.

After each applied snapshot the store is copied beside itself (SQLite's backup API, so
the copy is consistent while the agent runs; it holds hashes and ids only). At start the
agent checks its database (`PRAGMA quick_check`). A file that fails is moved aside for
inspection, never deleted, and the copy takes its place; so does a 0-byte or missing
database on a box that had a copy, instead of starting silently with no schedule. The
agent then says so (log, ``storage.fault``) and asks for a fresh snapshot: deltas applied
after the copy are gone.

``PRAGMA quick_check`` reads the whole file (1.8 s cold at 300,000 credentials): `haldor
run` leaves it out of the start (``integrity=False``) and runs it (:func:`integrity`) once
the doors answer; damage it finds stops the agent like damage found by any read, and
the next start says "database corrupt" as this one would have.

A database found damaged while the agent runs (:mod:`.damage`) is left to the same
start: the agent writes :data:`DAMAGED_MARK` and stops, and the start sets the file
aside even when it now looks sound (SQLite drops a ``-wal`` it cannot read, and with it
what the ``-wal`` held, silently).

``seq`` never goes back: the copy's event counter is raised to the highest ``seq`` the
moved-aside file still shows, when it can be read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GOOD_COPY = "haldor.good.db"
#: the last seq the journal wrote (:meth:`haldor.store.journal.Journal._mark`)
SEQ_MARK = "seq"
#: what a running agent found damaged (:func:`mark_damaged`); the next start recovers
DAMAGED_MARK = "damaged"
#: how a failed integrity check begins its words; a mark saying so is said as it is
CORRUPT = "database corrupt"


def good_copy(db_path: Path) -> Path:
    return db_path.with_name(GOOD_COPY)


def save_good_copy(conn: sqlite3.Connection, db_path: Path) -> None:
    """Copy the database beside itself, atomically (a power cut leaves the old copy)."""
    target = good_copy(db_path)
    partial = target.with_suffix(".db.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dest = sqlite3.connect(partial)
    try:
        conn.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")  # one file, nothing beside it
    finally:
        dest.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)


def check(db_path: Path, *, integrity: bool = True) -> str | None:
    """Check the database at start; replace it by the good copy when it is unusable.
    Returns what was wrong and what was done, or None when the database is fine.
    ``integrity`` False: all but ``PRAGMA quick_check`` (:func:`integrity` runs it later)."""
    message = _check(db_path, _damage_found(db_path), integrity)
    db_path.with_name(DAMAGED_MARK).unlink(missing_ok=True)  # only now: a start that fails before tries again
    return message


def integrity(db_path: Path) -> str | None:
    """``PRAGMA quick_check`` of the database in use: what is wrong in the words the start
    would have used, or None when it is sound (or busy)."""
    problem = _problem(db_path)
    return None if problem is None else f"{CORRUPT} ({problem})"


def _check(db_path: Path, found: str | None, integrity: bool = True) -> str | None:
    copy = good_copy(db_path)
    missing = not db_path.exists() or db_path.stat().st_size == 0
    if missing:
        if not copy.exists():
            return None  # a new box: nothing to recover
        why = "database missing" if not db_path.exists() else "database empty (0 bytes)"
        # a -wal left behind would be replayed over the copy put in its place
        leftovers = any(Path(f"{db_path}{s}").exists() for s in ("", "-wal", "-shm"))
        aside = _move_aside(db_path) if leftovers else None
    else:
        # a store whose meta cannot be read is checked whole here: the doors cannot start on it
        problem = _problem(db_path) if not found and (integrity or not _meta_readable(db_path)) else None
        if found:
            why = found if found.startswith(CORRUPT) else f"database damaged while the agent ran ({found})"
        elif problem is None:
            lost = _schedule_lost(db_path, copy)
            if lost is None:
                return None
            why = lost
        else:
            why = f"database corrupt ({problem})"
        aside = _move_aside(db_path)
    last_seq = max(filter(None, [_last_seq(aside) if aside is not None else None, _seq_mark(db_path)]), default=None)
    copy_problem = _problem(copy) if copy.exists() else None
    if copy_problem is not None:  # damaged too: restoring it would fail at every start
        done = f"no good copy (it is damaged too: {copy_problem}; kept as {_move_aside(copy).name}): starting empty"
    elif copy.exists():
        done = f"restored from the copy of {time.strftime('%Y-%m-%d %H:%M', time.localtime(copy.stat().st_mtime))}"
    else:
        done = "no good copy: starting empty"
    if aside is not None:
        done += f"; the damaged file is kept as {aside.name}"
    message = f"{why}: {done}; a snapshot is requested"
    log.error("%s: %s", db_path, message)
    if copy.exists():
        _restore(copy, db_path, last_seq, message)
    return message


def mark_damaged(db_path: Path, why: str) -> None:
    """Say to the next start that the database was found damaged: it is set aside then even
    when it looks sound. Not synced: a power cut before the start costs only the mark, and
    the start's own check remains."""
    try:
        fd = os.open(db_path.with_name(DAMAGED_MARK), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, why.encode(errors="replace")[:1000] + b"\n")
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("%s: the damage could not be noted for the next start: %s", db_path, exc)


def _damage_found(db_path: Path) -> str | None:
    """What the agent that stopped found damaged (:func:`mark_damaged`), or None."""
    try:
        return db_path.with_name(DAMAGED_MARK).read_text(errors="replace").strip() or "database damaged"
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its mark unreadable: {exc}"


def save_deleted(conn: sqlite3.Connection, db_path: Path) -> Path | None:
    """The database was deleted while the agent had it open: copy what the connection still
    sees (everything committed) beside its old place. :func:`put_in_place` puts it there once
    the agent's connections are closed. None when a file is in its place (replaced, not deleted)."""
    if db_path.exists():
        return None
    db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the whole folder was deleted
    partial = db_path.with_name(db_path.name + ".saving")
    partial.unlink(missing_ok=True)
    dest = sqlite3.connect(partial)
    try:
        conn.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()
    os.chmod(partial, 0o600)
    log.error("%s: deleted while the agent ran; what it had open is saved", db_path)
    return partial


def put_in_place(saved: Path, db_path: Path) -> None:
    """A deleted database's -wal and -shm are moved aside first: replayed over the copy, they
    would corrupt it. Never over a file someone put there meanwhile."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("-wal", "-shm"):
        part = Path(f"{db_path}{suffix}")
        if part.exists():
            os.replace(part, db_path.with_name(f"{db_path.name}.deleted-{stamp}{suffix}"))
    try:
        os.link(saved, db_path)
    except FileExistsError:
        log.error("%s: a new file is in place; the saved one is kept as %s", db_path, saved.name)
        return
    saved.unlink()


def _problem(db_path: Path) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):  # busy, not broken: the agent will wait on it like any other lock
            return None
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows)


def _meta_readable(db_path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            conn.execute("SELECT value FROM meta WHERE key = 'schedule_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return "locked" in str(exc) or "no such table" in str(exc)  # busy, or a new store
    return True


def _schedule_lost(db_path: Path, copy: Path) -> str | None:
    """A sound database without the schedule its good copy has is no better than a missing one."""
    if not copy.exists() or _version(db_path) is not None:
        return None
    had = _version(copy)
    return None if had is None else f"database has no schedule (its copy has version {had})"


def _version(path: Path) -> int | None:
    value = _read_one(path, "SELECT value FROM meta WHERE key = 'schedule_version'")
    return None if value is None else int(json.loads(value))


def _read_one(path: Path, sql: str) -> Any:
    """The first column of the first row, read-only; None when there is none or the file is not a database."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute(sql).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else row[0]


def _move_aside(db_path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{db_path}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{aside}{suffix}"))
    return aside


def _last_seq(path: Path) -> int | None:
    seq = _read_one(path, "SELECT seq FROM sqlite_sequence WHERE name = 'events'")
    return None if seq is None else int(seq)


def _seq_mark(db_path: Path) -> int | None:
    try:
        return int((db_path.parent / SEQ_MARK).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _restore(copy: Path, db_path: Path, last_seq: int | None, message: str) -> None:
    """The copy in the database's place, with the note the agent reports at start (meta ``recovered``)."""
    partial = db_path.with_name(db_path.name + ".restoring")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    dest = sqlite3.connect(partial)
    try:
        source.backup(dest)
        if last_seq is not None:
            dest.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'events'", [last_seq])
        dest.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('recovered', ?)", [json.dumps(message)])
        dest.commit()
    finally:
        dest.close()
        source.close()
    os.chmod(partial, 0o600)
    os.replace(partial, db_path)
