"""What a feed or sheet gave when it was last parsed, kept in the bridge's state under a
hash of everything the result depends on (its bytes, the settings it was read with, the
window, the associations' names, the cap, the parsers' versions).

Each run is a new process, and parsing every feed again took most of a run with nothing
changed (20 s at 1,000 sites). Under the same key the stored result is the result: a
feed or sheet is parsed again only when something it depends on changed, and the
reading process is not started when nothing needs parsing. A refusal is never kept (it
is read again at the next run, as before). One row per input, replaced when its key
changes, so the table does not grow.

The window (:func:`window`) starts at the site's local midnight a day back, not at ``now
- 1 day``: the key then changes once a day, not at every run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import stat
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from haldor import __version__

from .calendar import Feed
from .sheets import Sheet
from .state import BridgeState

#: raised when what a parser gives changes shape: every kept result is parsed again
FORMAT = 1


def window(now: float, tz: ZoneInfo, horizon_days: int) -> tuple[datetime, datetime]:
    """The stretch a feed is read over: from local midnight a day before ``now`` to
    ``horizon_days`` after it. A booking that ended up to ~48 h ago is still in it (it was
    ~24 h with ``now - 1 day``), so old bookings leave a snapshot once a day."""
    today = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(today - timedelta(days=1), time(0), tz)
    return start, datetime.combine(today - timedelta(days=1) + timedelta(days=horizon_days), time(0), tz)


def _versions() -> str:
    found = []
    for name in ("icalendar", "recurring-ical-events", "openpyxl"):
        try:
            found.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}=-")
    return f"{FORMAT}|haldor={__version__}|" + "|".join(found)


def digest(*parts: Any) -> str:
    """A key from ``parts`` (bytes as they are, anything else as its JSON or ``repr``)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            piece = hashlib.sha256(part).digest()
        else:
            try:
                piece = json.dumps(part, sort_keys=True, default=repr).encode()
            except (TypeError, ValueError):
                piece = repr(part).encode()
        h.update(len(piece).to_bytes(8, "big") + piece)
    return h.hexdigest()


class Parsed:
    """A run's view of the kept results: the versions and the associations' names are
    hashed once a run."""

    def __init__(self, state: BridgeState) -> None:
        self.state = state
        self.versions = _versions()
        self.new: dict[str, tuple[str, Any]] = {}  # written at the end of the reading, in one transaction

    def feed(self, name: str, key: str) -> Feed | None:
        kept = self.state.parsed(name, key)
        return None if kept is None else Feed(kept["source"], kept["bookings"], kept["closures"], kept["problems"])

    def keep_feed(self, name: str, key: str, feed: Feed) -> None:
        result = {"source": feed.source, "bookings": feed.bookings, "closures": feed.closures, "problems": feed.problems}
        self.new[name] = (key, result)

    def sheet_key(self, path: str, *settings: Any) -> str | None:
        """None: not a plain file that can be read here (the reading process says why,
        within its bounds). Hashed as it is read: a sheet of any size costs no memory."""
        try:
            with open(path, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None
                data = hashlib.file_digest(f, "sha256").digest()
        except OSError:
            return None
        return digest(self.versions, "sheet", path, data, *settings)

    def sheet(self, name: str, key: str | None) -> Sheet | None:
        kept = None if key is None else self.state.parsed(name, key)
        return None if kept is None else Sheet(kept["path"], kept["rows"], kept["items"], kept["problems"])

    def keep_sheet(self, name: str, key: str | None, sheet: Sheet) -> None:
        if key is not None:
            result = {"path": sheet.path, "rows": sheet.rows, "items": sheet.items, "problems": sheet.problems}
            self.new[name] = (key, result)

    def save(self, configured: set[str]) -> None:
        """What was parsed this run; the rows of inputs no longer configured go."""
        self.state.record_all_parsed(self.new, keep=configured)
        self.new.clear()
