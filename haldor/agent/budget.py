"""How many refusals of unreadable messages are reported one by one.

Each refused message is an event (stored, sent) and a log line. Garbage sent on purpose,
thousands a minute, would fill the store, the outbox and the journal with the same
line, and keep the loop writing. So only the first few a minute are reported one by
one; the rest are acknowledged and counted, and the count is reported once when the
minute is over. Pure: the caller gives the time.
"""

from __future__ import annotations

#: refusals reported one by one in a window
PER_WINDOW = 20
WINDOW_S = 60.0


class ReportBudget:
    def __init__(self, per_window: int = PER_WINDOW, window_s: float = WINDOW_S) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._started: float | None = None
        self._reported = 0
        self._unreported = 0

    def allow(self, now: float) -> bool:
        """One more refusal: True to report it, False to count it only."""
        # a window over with some unreported: counted with them until overdue() reports them
        if self._started is None or (now - self._started >= self.window_s and not self._unreported):
            self._started, self._reported = now, 0
        if self._reported < self.per_window:
            self._reported += 1
            return True
        self._unreported += 1
        return False

    def overdue(self, now: float) -> int:
        """How many went unreported in a window that is over (to report once); 0 if none or not yet."""
        if not self._unreported or self._started is None or now - self._started < self.window_s:
            return 0
        count, self._unreported = self._unreported, 0
        self._started, self._reported = None, 0
        return count
