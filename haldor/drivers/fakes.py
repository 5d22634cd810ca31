"""A lock that records what it was asked to do, for tests of what the drivers' interface promises."""

from __future__ import annotations


class FakeLock:
    """Records every position it is asked to take; starts in the safe state."""

    def __init__(self, fail: str = "secure") -> None:
        self.fail = fail
        self.unlocked = fail == "safe"
        self.history: list[bool] = [self.unlocked]
        self.closed = False

    def set_unlocked(self, unlocked: bool) -> None:
        if unlocked != self.unlocked:
            self.unlocked = unlocked
            self.history.append(unlocked)

    def safe(self) -> None:
        self.set_unlocked(self.fail == "safe")

    def close(self) -> None:
        self.safe()
        self.closed = True
