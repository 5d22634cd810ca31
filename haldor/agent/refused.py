"""A schedule document the store could not take (a full disk, a lock held too long) is
kept and tried again, so that a box does not wait for the next publication once the
disk has room: the retained snapshot comes again only when the link is made anew, and
a sync request only when a booking system answers it.

Pure: what to keep and when to try again, decided from plain data; :mod:`.remote`
keeps the document and hands it to the schedule worker.
"""

from __future__ import annotations

import dataclasses

from haldor.records import record

#: tried again at once when the disk has this much more room than when it failed
ROOM_BACK_BYTES = 1024 * 1024
#: else after this long, doubled after each failure up to RETRY_MAX_S
RETRY_FIRST_S = 30.0
RETRY_MAX_S = 300.0


@record
class Kept:
    """The latest document the store could not take (one only: a newer one replaces it)."""

    document: bytes
    failed_at: float
    #: the disk's free bytes when it failed (None: not known)
    free_then: int | None
    attempts: int = 1
    #: handed to the worker again, its outcome not back yet
    trying: bool = False


def after(kept: Kept | None, document: bytes | None, *, status: str, retry: bool, now: float, free: int | None) -> Kept | None:
    """What is kept once a document's outcome is known. Anything applied supersedes what
    was kept; a document that failed for the store's sake is kept, counting its attempts."""
    if status == "applied":
        return None
    if not retry or document is None:
        # another document's outcome leaves the kept one be; the kept one's own final outcome ends it
        return None if kept is not None and kept.document == document else kept
    attempts = kept.attempts + 1 if kept is not None and kept.document == document else 1
    return Kept(document, now, free, attempts)


def due(kept: Kept | None, now: float, *, free: tuple[float, int] | None, disk_low: bool) -> bool:
    """Try the kept document again: the disk has room again (``free``: when it was looked at,
    and its free bytes), or the backoff is over. Never while the disk is almost full: what
    room there is belongs to the events."""
    if kept is None or kept.trying or disk_low:
        return False
    if free is not None and kept.free_then is not None and free[0] > kept.failed_at:
        if free[1] - kept.free_then >= ROOM_BACK_BYTES:
            return True
    return now - kept.failed_at >= min(RETRY_FIRST_S * 2 ** (kept.attempts - 1), RETRY_MAX_S)


def trying(kept: Kept) -> Kept:
    return dataclasses.replace(kept, trying=True)
