"""Room kept on the disk for the day it fills up.

A full disk must not lock a site out: SQLite needs a little room even to read (its
shared-memory file is made when the first connection opens), and every badge leaves
an event. The agent keeps a file of :data:`SIZE` bytes in its data folder while the
disk has room; when a write fails because the disk is full, or the agent starts on a
full disk, the file is deleted, and the agent runs on that room (with the status,
the screen and a ``storage.fault`` event saying so) until space is freed. The file
comes back once the disk has room again.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "reserve"
SIZE = 4 * 1024 * 1024
#: below this much free space at start, the reserve is given up before opening the store
LOW_WATER = 256 * 1024


def free_bytes(data_dir: str | os.PathLike[str]) -> int:
    return shutil.disk_usage(data_dir).free


def present(data_dir: str | os.PathLike[str]) -> bool:
    return (Path(data_dir) / NAME).exists()


def keep(data_dir: str | os.PathLike[str]) -> bool:
    """Make the reserve if it is missing and the disk has room for it twice over; True if it is there."""
    path = Path(data_dir) / NAME
    if path.exists():
        return True
    try:
        if free_bytes(data_dir) < 2 * SIZE:
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, SIZE)  # really allocated, not a sparse promise
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        log.debug("reserve not made: %s", exc)
        return False
    return True


def release(data_dir: str | os.PathLike[str]) -> bool:
    """Give the reserve's room to the store; True if there was one to give."""
    try:
        os.unlink(Path(data_dir) / NAME)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.error("reserve could not be released: %s", exc)
        return False
    log.error("disk full: the reserve of %d kB in %s is released; free space on this disk", SIZE // 1024, data_dir)
    return True
