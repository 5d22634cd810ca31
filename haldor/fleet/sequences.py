"""Every event a box made, whatever the broker did: each site's ``seq`` is followed, and a
gap that stays is asked for again (PROTOCOL 5, ``events/resend``).

A broker acknowledges a box's event before the fleet has it; a broker that crashes
before it saved its queues loses it, and the box has let it go. The box keeps its
events for the retention period and says in its status the highest ``seq`` it gave,
so the fleet can tell what it lacks and ask. Per site the fleet keeps ``complete_seq``
(every seq up to it is held, or known lost) and ``last_seq`` (the highest it has heard
of); a check walks forward from ``complete_seq``. A gap is asked for only when nothing
moved for ``GRACE_S`` (a backlog arriving in order is not a gap), and by one fleet
process at a time (a claim on the row), again after ``ASK_AGAIN_S`` while it stays.
Ranges the box answers are gone (purged, dropped, lost with a broken database) are
kept as lost: counted, shown, never asked for again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from haldor.access.resend import MAX_EVENTS, MAX_RANGES, Range, merged, ranges_of
from haldor.protocol import Schema
from haldor.sql import Database

log = logging.getLogger(__name__)

GRACE_S = 30.0
ASK_AGAIN_S = 60.0
#: seqs read per site and check: a site further behind catches up over several checks
WALK = 20_000

_UPSERT = (
    "INSERT INTO sequences (site, complete_seq, last_seq) VALUES (?, ?, ?) ON CONFLICT (site) DO UPDATE SET "
    "last_seq = CASE WHEN excluded.last_seq > sequences.last_seq THEN excluded.last_seq ELSE sequences.last_seq END"
)


class Sequences:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.grace_s = GRACE_S
        self.ask_again_s = ASK_AGAIN_S
        self.walk = WALK

    def note_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Inside the batch's transaction: the highest seq of each site. A site first heard
        of by its events is complete up to the lowest of them (its history before the
        fleet is not asked for)."""
        span: dict[str, list[int]] = {}
        for doc in events:
            seq = doc.get("seq")
            if type(seq) is int and seq > 0 and isinstance(doc.get("site"), str):
                lo_hi = span.setdefault(doc["site"], [seq, seq])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], seq), max(lo_hi[1], seq)
        if span:
            self.db.executemany(_UPSERT, [[site, lo - 1, hi] for site, (lo, hi) in sorted(span.items())])

    def note_last(self, site: str, last_seq: Any) -> None:
        """A box says the highest seq it gave (its status, or an answer)."""
        if type(last_seq) is int and 0 < last_seq < 2**63:
            self.db.execute(_UPSERT, [site, last_seq, last_seq])

    def answered(self, site: str, last_seq: Any) -> None:
        """The box's own answer says the highest seq it gave: above it nothing is missing,
        whatever a status said before (a bad value, a box whose data folder was made anew)."""
        if type(last_seq) is int and 0 <= last_seq < 2**63:
            self.db.execute(
                "UPDATE sequences SET last_seq = CASE WHEN complete_seq > ? THEN complete_seq ELSE ? END, "
                "missing = CASE WHEN complete_seq >= ? THEN 0 ELSE missing END WHERE site = ? AND last_seq > ?",
                [last_seq, last_seq, last_seq, site, last_seq],
            )

    def gone(self, site: str, ranges: Any, now: float) -> int:
        """The box no longer holds these: kept as lost, never asked for again. How many."""
        valid = [
            (a, b)
            for a, b in (r for r in ranges if isinstance(r, list) and len(r) == 2)
            if type(a) is int and type(b) is int and 0 < a <= b
        ][:MAX_RANGES]
        if not valid:
            return 0
        with self.db.transaction():
            added = self.db.executemany(
                "INSERT INTO lost_events (site, first_seq, last_seq, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [[site, a, b, now] for a, b in valid],
            )
            if added:
                self.db.execute(
                    "UPDATE sequences SET lost = (SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM lost_events "
                    "WHERE lost_events.site = sequences.site) WHERE site = ?",
                    [site],
                )
        count = sum(b - a + 1 for a, b in valid)
        log.warning("site %s: %d events are gone from the box for good (%s)", site, count, valid)
        return count

    def check(self, now: float) -> list[dict[str, Any]]:
        """Walk each site with something new; the requests this process is to send."""
        requests = []
        for site, complete, last, quiet_since in self.db.rows(
            "SELECT site, complete_seq, last_seq, gap_since FROM sequences WHERE last_seq > complete_seq"
        ):
            reached, missing = self._walk(site, complete, last)
            if not missing:
                self.db.execute(
                    "UPDATE sequences SET complete_seq = ?, gap_since = NULL, missing = 0 WHERE site = ? AND complete_seq = ?",
                    [reached, site, complete],
                )
                continue
            # a gap: asked for once nothing has moved for GRACE_S (events on their way are no gap)
            quiet_since = now if reached > complete or quiet_since is None else quiet_since
            count = sum(b - a + 1 for a, b in missing)
            self.db.execute(
                "UPDATE sequences SET complete_seq = ?, gap_since = ?, missing = ? WHERE site = ? AND complete_seq = ?",
                [reached, quiet_since, count, site, complete],
            )
            if now - quiet_since < self.grace_s or not self._claim(site, now):
                continue
            requests.append(
                {"schema": Schema.RESEND.value, "id": f"r-{uuid.uuid4().hex[:16]}", "site": site, "ranges": _bounded(missing)}
            )
            log.info("site %s: %d events missing, asked for again (%s)", site, count, missing[:5])
        return requests

    def _walk(self, site: str, complete: int, last: int) -> tuple[int, list[Range]]:
        """How far every seq is held or known lost from ``complete``, and the ranges
        missing after that (up to ``last``, or the walk's end)."""
        seqs = [
            r[0]
            for r in self.db.rows(
                "SELECT DISTINCT seq FROM events WHERE site = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                [site, complete, last, self.walk],
            )
        ]
        end = seqs[-1] if len(seqs) >= self.walk else last  # a walk cut short says nothing beyond its end
        lost = [
            (max(a, complete + 1), min(b, end))
            for a, b in self.db.rows(
                "SELECT first_seq, last_seq FROM lost_events WHERE site = ? AND last_seq > ? AND first_seq <= ? ORDER BY first_seq",
                [site, complete, end],
            )
        ]
        covered = merged(ranges_of(seqs) + lost)
        reached = covered[0][1] if covered and covered[0][0] <= complete + 1 else complete
        missing, position = [], reached
        for a, b in covered:
            if a > position + 1:
                missing.append((position + 1, a - 1))
            position = max(position, b)
        if position < end:
            missing.append((position + 1, end))
        return reached, missing

    def _claim(self, site: str, now: float) -> bool:
        """One fleet process asks; the others leave it."""
        cursor = self.db.execute(
            "UPDATE sequences SET asked_at = ? WHERE site = ? AND (asked_at IS NULL OR asked_at <= ?)",
            [now, site, now - self.ask_again_s],
        )
        return bool(cursor.rowcount == 1)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per site: events missing (asked for), events lost for good."""
        return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in self.db.rows("SELECT site, missing, lost FROM sequences")}


def _bounded(missing: list[Range]) -> list[list[int]]:
    """At most MAX_RANGES ranges and MAX_EVENTS events: the rest next time."""
    out, total = [], 0
    for a, b in missing[:MAX_RANGES]:
        b = min(b, a + (MAX_EVENTS - total) - 1)
        if b < a:
            break
        out.append([a, b])
        total += b - a + 1
    return out
