"""The poison-message guard: a message that ended the agent is not handled again.

The agent acknowledges a broker message only once it has handled it, so a message
whose handling kills the process (a parser bug, the kernel's OOM killer) would be
delivered again after every restart: a crash loop that no signature stops. Before
handling, its digest is written to a file of its own; the file goes when the message
is acknowledged. A message whose handling began :data:`MAX_STARTS` times in earlier
processes and never ended is *poison*: refused at once, now and whenever it comes
again. A power cut during a long apply counts once, so one is forgiven.

Files, not the database: the guard must work while the database is locked or failing,
and a few bytes fit where a SQLite transaction may not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_STARTS = 2
POISON_KEPT_S = 30 * 86400
_POISON = ".poison"


def digest(topic: str, payload: bytes) -> str:
    return hashlib.sha256(topic.encode() + b"\x00" + payload).hexdigest()


class InflightGuard:
    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self._mine: set[str] = set()  # handling began in this process: not counted again
        self._refused: set[str] = set()  # refused as poison in this process: said once
        self._broken = False
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            cutoff = time.time() - POISON_KEPT_S
            for path in self.dir.glob("*" + _POISON):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
        except OSError as exc:
            self._unavailable(exc)

    def begin(self, key: str) -> bool:
        """Note that handling of ``key`` begins; False if it is poison."""
        path = self.dir / key
        try:
            if path.with_suffix(_POISON).exists():
                return False
            if key in self._mine:
                return True
            try:
                starts = int(path.read_text() or 0)
            except FileNotFoundError:
                starts = 0
            except ValueError:  # a torn write: it began at least once
                starts = 1
            if starts >= MAX_STARTS:
                os.replace(path, path.with_suffix(_POISON))
                log.error("message %s: the agent stopped %d times while handling it; it is refused as poison", key[:12], starts)
                return False
            path.write_text(str(starts + 1))  # not synced: a crash keeps the page cache, and a power cut is no poison
        except OSError as exc:
            self._unavailable(exc)
        self._mine.add(key)
        return True

    def first_refusal(self, key: str) -> bool:
        """True the first time this process refuses ``key``: a message delivered twice after a
        restart (the unacknowledged copy and the retained one) is reported once."""
        first = key not in self._refused
        self._refused.add(key)
        return first

    def end(self, key: str) -> None:
        """Handled (applied, refused or ignored) and acknowledged."""
        self._mine.discard(key)
        try:
            (self.dir / key).unlink(missing_ok=True)
        except OSError as exc:
            self._unavailable(exc)

    def forget_unfinished(self) -> None:
        """A clean stop: what this process began and did not finish is handled afresh when
        the broker delivers it again, not counted as a death."""
        for key in list(self._mine):
            self.end(key)

    def _unavailable(self, exc: OSError) -> None:
        if not self._broken:
            log.error("poison-message guard unavailable (%s): messages are handled without it", exc)
        self._broken = True
