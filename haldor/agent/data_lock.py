"""One agent per data folder: an advisory lock on a file in it.

Two agents on one folder would share one device secret, one outbox and one broker
session, and fight over all three. The second one stops at once instead, naming the
first. The kernel lets go of the lock when the holder dies, however it dies.

The lock is on the folder itself, which cannot be deleted while it holds the store;
the file beside it only names the holder's pid (deleting it frees nothing).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from haldor.errors import HaldorError

NAME = "agent.lock"


class DataDirBusy(HaldorError):
    """Another agent holds the data folder."""


class DataDirLock:
    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.path = Path(data_dir) / NAME
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                holder = self.path.read_text(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            raise DataDirBusy(f"{self.path.parent}: another haldor run (pid {holder}) is using this data folder") from None
        partial = self.path.with_name(f"{NAME}.{os.getpid()}")
        partial.write_text(f"{os.getpid()}\n")
        os.replace(partial, self.path)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing lets go of the lock; the file stays, with a stale pid
            self._fd = None
