"""Which storage errors say the database file itself is damaged.

A locked or full database passes, and waiting for it is right (the journal holds the
writes). A damaged one does not: every later read and write fails the same way, so
waiting locks everyone out until someone restarts the agent. Told apart here, pure,
by SQLite's result code where the error carries one, else by SQLite's own words.
"""

from __future__ import annotations

#: SQLite's primary result codes (an extended code keeps them in its low byte)
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
#: SQLite's words for the same, for an error that lost its code on the way (a StoreError's text)
WORDS = ("database disk image is malformed", "file is not a database")


def damaged(exc: BaseException | None) -> str | None:
    """SQLite's words when ``exc`` (or the error it wraps) says the database is damaged; else None."""
    seen = 0
    while exc is not None and seen < 5:  # StoreError wraps sqlite3's error as its cause
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc)
        if (isinstance(code, int) and (code & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)) or any(word in text for word in WORDS):
            return text or "database damaged"
        exc, seen = exc.__cause__, seen + 1
    return None
