"""One agent per data folder: an advisory lock on a file in it.

Two agents on one folder would share one device secret, one outbox and one broker
session, and fight over all three. The second one stops at once instead, naming the
first. The kernel lets go of the lock when the holder dies, however it dies.

The lock is on the folder itself, and (on Linux) on an abstract socket named after the
folder's path, which survives the folder being deleted and made anew; the file beside
them only names the holder's pid (deleting it frees nothing).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import sys
from pathlib import Path

from haldor.errors import HaldorError

log = logging.getLogger(__name__)

NAME = "agent.lock"


class DataDirBusy(HaldorError):
    """Another agent holds the data folder."""


class DataDirLock:
    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.path = Path(data_dir) / NAME
        self._fd: int | None = None
        self._socket: socket.socket | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._socket = _path_lock(self.path.parent)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.release()
            try:
                holder = self.path.read_text(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            raise DataDirBusy(f"{self.path.parent}: another haldor run (pid {holder}) is using this data folder") from None
        try:  # only names the holder: written in place, so a full disk has the room it freed
            self.path.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("%s: the pid of this agent is not written: %s", self.path, exc)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing lets go of the lock; the file stays, with a stale pid
            self._fd = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _path_lock(folder: Path) -> socket.socket | None:
    """An abstract socket bound to a name made of the folder's path: held while this
    process lives, whatever happens to the folder. None where there are no abstract
    sockets; BlockingIOError when another process holds it."""
    if not sys.platform.startswith("linux"):
        return None
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0haldor-agent-{name}")
    except OSError:
        sock.close()
        raise BlockingIOError from None
    return sock
