"""Simulated card readers for a box on gpiozero's mock pins (issue 27): a trial or a
test badges without a reader and without writing a simulator.

Each configured reader gets a FIFO in the data folder, ``<data_dir>/simulated/<reader
id>``, mode 0600 (only the agent's user writes to it). A line written there is a read
at that reader: a card string (``uid:04A1B2C3``, PROTOCOL 7) or ``pin:1234``, parsed by
the serial-line reader's own parser, so garbled lines are counted and dropped and a
card held on the reader is read once, as on the real reader; from there the read takes
the real path (the loop, the decision, the lock pin, the event). Built only with mock
pins: a box with real pins never makes these files. ``haldor badge`` writes to them;
so does ``echo uid:04A1B2C3 > <data_dir>/simulated/main-in``.
"""

from __future__ import annotations

import logging
import os
import selectors
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from haldor.errors import DriverError

from .base import Sink
from .serial_readers import LineParser

log = logging.getLogger(__name__)

FOLDER = "simulated"


def fifo_path(data_dir: str | os.PathLike, reader: str) -> Path:
    """Where reader ``reader`` of a box on mock pins takes its lines."""
    return Path(data_dir) / FOLDER / reader


class SimulatedReaders:
    """One thread reading every simulated reader's FIFO; each reader has its own parser
    (its counts of frames and garbled lines in ``parsers[reader].stats``)."""

    id = "simulated"

    def __init__(
        self, data_dir: str | os.PathLike, readers: Iterable[str], sink: Sink, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink = sink
        self._clock = clock
        self.parsers: dict[str, LineParser] = {}
        self._fds: dict[int, str] = {}
        #: each FIFO made and its inode: only that file is removed at the end (not a later agent's)
        self._made: list[tuple[Path, int]] = []
        self._stop = threading.Event()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        #: set once every FIFO is open: a line written from now on is read
        self.ready = threading.Event()
        try:
            for reader in readers:
                if reader in (".", ".."):  # a valid id, but not a file name
                    log.warning("reader %r: no simulated reader for this id", reader)
                    continue
                self._open(Path(data_dir), reader)
        except BaseException:
            self.close()
            raise
        self.ready.set()
        self._thread = threading.Thread(target=self._run, name="simulated-readers", daemon=True)

    def _open(self, data_dir: Path, reader: str) -> None:
        path = fifo_path(data_dir, reader)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if path.is_symlink() or path.exists():
                path.unlink()  # a FIFO an earlier run left (or anything else by that name)
            os.mkfifo(path, 0o600)
            # read-write: the FIFO never reads as ended when a writer closes it
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            self._made.append((path, os.fstat(fd).st_ino))
        except OSError as exc:
            raise DriverError(f"simulated reader {reader}: {path}: {exc.strerror or exc}") from exc
        self._fds[fd] = reader
        self.parsers[reader] = LineParser(reader)
        log.info("reader %s: simulated (mock pins): write a card or pin:NNNN line to %s", reader, path)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as waiting:  # epoll: no limit on the descriptors' numbers
            for fd in (*self._fds, self._wake_r):
                waiting.register(fd, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in waiting.select():
                    if key.fd == self._wake_r:
                        return
                    try:
                        data = os.read(key.fd, 4096)
                    except BlockingIOError:
                        continue
                    reader = self._fds[key.fd]
                    for read in self.parsers[reader].feed(data, self._clock()):
                        self.sink(read)

    def close(self) -> None:
        """Stops the thread at once (no poll to wait out), closes and removes the FIFOs."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(2)
        for fd in (*self._fds, self._wake_r, self._wake_w):
            os.close(fd)
        self._fds.clear()
        for path, inode in self._made:
            _remove_fifo(path, inode)
        self._made.clear()


def _remove_fifo(path: Path, inode: int) -> None:
    try:
        found = path.lstat()
        if stat.S_ISFIFO(found.st_mode) and found.st_ino == inode:
            path.unlink()
    except OSError:  # gone already, or its folder with it
        pass


def build(cfg: Any, sink: Sink) -> SimulatedReaders:
    """A simulated reader for every ``[[readers]]`` entry of ``cfg`` (``haldor.config.Config``)."""
    return SimulatedReaders(cfg.data_dir, [r.id for r in cfg.readers], sink)
