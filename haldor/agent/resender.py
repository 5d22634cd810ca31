"""Events the fleet asked for again (PROTOCOL 5, ``events/resend``), sent from the journal
beside the outbox at a bounded rate: a box answering for a range of 10,000 events still
decides every badge at once (the loop never reads them; the outbox pump's thread and
connection do, a few hundred a second)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from haldor.access.resend import Range, ResendRequest, answer, without
from haldor.store import Store

#: events sent again per second, at most
RESEND_PER_S = 500.0
#: events read and published in one go: short enough that the decision loop, waiting
#: for the interpreter, is never kept more than about a millisecond
BURST = 10


class Resender:
    def __init__(self, store: Store, per_s: float = RESEND_PER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.per_s = per_s
        self._clock = clock
        #: a newer request replaces one not yet taken up: the fleet asks for all it still lacks each time
        self._asked: deque[ResendRequest] = deque(maxlen=1)
        self._ranges: list[Range] = []
        self._after = 0  # the last seq sent again
        self._tokens = 0.0
        self._filled_at = clock()

    def ask(self, request: ResendRequest) -> None:
        """From the loop's thread: taken up by the pump."""
        self._asked.append(request)

    @property
    def busy(self) -> bool:
        return bool(self._asked or self._ranges)

    def take_request(self, site: str, now: float) -> dict[str, Any] | None:
        """A new request becomes the plan; its answer (what is gone, what waits) is returned."""
        try:
            request = self._asked.popleft()
        except IndexError:
            return None
        outbox = self._store.outbox
        last = outbox.last_seq()
        ranges = [(a, min(b, last)) for a, b in request.ranges if a <= last]  # beyond last_seq: not made yet
        gone: list[Range] = []
        pending = resending = 0
        for a, b in ranges:
            held, waiting = outbox.held(a, b)
            gone += without([(a, b)], held)
            pending += waiting
            resending += sum(d - c + 1 for c, d in held) - waiting
        self._ranges, self._after = ranges, 0
        return answer(
            request,
            site,
            self._store.iso(now),
            resending=resending,
            pending=pending,
            gone=[list(r) for r in gone],
            last_seq=last,
        )

    def next_events(self, room: int) -> list[dict[str, Any]]:
        """Up to ``room`` delivered events of the plan, as the rate allows."""
        now = self._clock()
        self._tokens = min(self.per_s, self._tokens + (now - self._filled_at) * self.per_s)
        self._filled_at = now
        take = min(room, BURST, int(self._tokens))
        out: list[dict[str, Any]] = []
        while self._ranges and len(out) < take:
            a, b = self._ranges[0]
            found = self._store.outbox.events(delivered=True, after_seq=max(self._after, a - 1), upto=b, limit=take - len(out))
            if not found:
                self._ranges.pop(0)
                continue
            out += found
            self._after = found[-1]["seq"]
        self._tokens -= len(out)
        return out

    def wait_s(self) -> float | None:
        """How long until the rate allows the next burst (None: nothing to send)."""
        if not self._ranges:
            return None
        return max(0.0, (BURST - self._tokens) / self.per_s)
