"""`haldor badge`: a card or PIN at a reader of the `haldor run` on mock pins, for a trial
without readers and for scripts. The line goes to that reader's simulated twin in the
data folder (:mod:`haldor.drivers.simulated`), so the running agent reads and decides it
as a real read; the answer printed is the event it stored."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from haldor.config import Config, ReaderConfig
from haldor.drivers.simulated import fifo_path
from haldor.errors import ConfigError, DocumentError, HaldorError
from haldor.protocol import Event
from haldor.store import DB_NAME

#: how long the answer may take (a decision takes milliseconds; the event's commit a little more)
ANSWER_S = 5.0
#: ``haldor badge``'s exit status when no answer came (as ``haldor command``'s)
EXIT_NO_ANSWER = 3
ANSWERS = (Event.ACCESS_GRANTED, Event.ACCESS_DENIED)


def badge(cfg: Config, card: str | None, pin: str | None, reader_id: str | None, wait_s: float = ANSWER_S) -> int:
    """0 granted, 1 denied, 3 no answer; the answer's event as one JSON line. At the
    check-in reader (no door) the answer is on the screen: 0 once the line is written."""
    if (card is None) == (pin is None):
        raise DocumentError("give a CARD or --pin PIN")
    line = f"pin:{pin}" if pin is not None else str(card)
    if "\n" in line or "\r" in line:
        raise DocumentError("a card or PIN is one line")
    reader = _reader(cfg, reader_id)
    db = Path(cfg.data_dir) / DB_NAME
    before = _last_seq(db)
    _write(cfg, fifo_path(cfg.data_dir, reader.id), line)
    if not reader.door:
        print(f"{reader.id}: presented at the check-in reader; its answer is on the screen")
        return 0
    event = _answer(db, reader.id, before, wait_s)
    if event is None:
        print(
            f"haldor: {reader.id}: no answer within {wait_s:g} s (a line the reader cannot read, or the same card "
            "again within a second, is dropped: see the agent's log)",
            file=sys.stderr,
        )
        return EXIT_NO_ANSWER
    print(json.dumps(event))
    return 0 if event["type"] == Event.ACCESS_GRANTED else 1


def _reader(cfg: Config, reader_id: str | None) -> ReaderConfig:
    """The named reader, else the first reader at a door, else the first reader."""
    if reader_id is not None:
        found = next((r for r in cfg.readers if r.id == reader_id), None)
        if found is None:
            raise ConfigError(f"{cfg.path}: --reader: no reader {reader_id!r} is configured")
        return found
    found = next((r for r in cfg.readers if r.door), None) or next(iter(cfg.readers), None)
    if found is None:
        raise ConfigError(f"{cfg.path}: readers: none configured (a simulated reader stands in for a configured one)")
    return found


def _write(cfg: Config, path: Path, line: str) -> None:
    """One line, in one write (a pipe takes it whole), or why not."""
    absent = HaldorError(
        f'{path}: no simulated reader: `haldor run` on mock pins ([gpio] pin_factory = "mock") is not running with {cfg.path}'
    )
    try:
        if not stat.S_ISFIFO(path.lstat().st_mode):
            raise HaldorError(f"{path}: not a simulated reader (not a FIFO)")
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # never waits for an agent that is not there
    except FileNotFoundError:
        raise absent from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO no agent reads
            raise absent from None
        raise HaldorError(f"{path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _connect(db: Path) -> sqlite3.Connection | None:
    try:
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None


def _last_seq(db: Path) -> int:
    conn = _connect(db)
    if conn is None:
        return 0
    try:
        return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _answer(db: Path, reader: str, after: int, wait_s: float) -> dict[str, Any] | None:
    """The first access event at ``reader`` stored after ``after``, as it appears."""
    deadline = time.monotonic() + wait_s
    pause = threading.Event()
    query = (
        "SELECT type, at, door, reader, credential, booking, reason FROM events "
        "WHERE seq > ? AND reader = ? AND type IN (?, ?) ORDER BY seq LIMIT 1"
    )
    while True:
        conn = _connect(db)
        if conn is not None:
            try:
                row = conn.execute(query, (after, reader, *ANSWERS)).fetchone()
            except sqlite3.Error:
                row = None
            finally:
                conn.close()
            if row is not None:
                return dict(zip(("type", "at", "door", "reader", "credential", "booking", "reason"), row, strict=True))
        if time.monotonic() >= deadline:
            return None
        pause.wait(0.02)
