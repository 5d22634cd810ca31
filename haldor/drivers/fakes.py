"""Fakes of each driver kind, for tests and the demo's typed cards."""

from __future__ import annotations

from .base import CardRead, PinRead, Sink


class FakeReader:
    """A reader a test or a person at the demo prompt presents cards and PINs to."""

    def __init__(self, reader: str, sink: Sink) -> None:
        self.id = reader
        self.sink = sink

    def start(self) -> None:
        pass

    def present(self, card: str) -> None:
        self.sink(CardRead(self.id, card))

    def type_pin(self, pin: str) -> None:
        self.sink(PinRead(self.id, pin))

    def close(self) -> None:
        pass


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


class FakeIndicator:
    def __init__(self) -> None:
        self.signals: list[str] = []

    def granted(self) -> None:
        self.signals.append("granted")

    def denied(self) -> None:
        self.signals.append("denied")

    def close(self) -> None:
        pass
