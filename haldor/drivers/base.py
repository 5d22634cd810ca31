"""What readers report and the small interfaces every driver kind implements."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from haldor.records import record


@record
class CardRead:
    reader: str
    card: str  # canonical (PROTOCOL 7)


@record
class PinRead:
    reader: str
    pin: str  # digits as typed; may be of a wrong length


@record
class ReaderFault:
    reader: str
    reason: str


@record
class ReaderRestored:
    """A reader that was at fault works again (shown in the status, not an event)."""

    reader: str


ReaderEvent = CardRead | PinRead | ReaderFault | ReaderRestored
Sink = Callable[[ReaderEvent], None]


class Reader(Protocol):
    id: str

    def start(self) -> None: ...
    def close(self) -> None: ...


class LockOutput(Protocol):
    def set_unlocked(self, unlocked: bool) -> None: ...
    def close(self) -> None: ...


class Input(Protocol):
    """A debounced input (door contact, exit button, fire panel): ``active`` is its level;
    edges reach the agent through the callback it was built with."""

    @property
    def active(self) -> bool: ...
    def close(self) -> None: ...


class Indicator(Protocol):
    """LED and buzzer feedback at a reader."""

    def granted(self) -> None: ...
    def denied(self) -> None: ...
    def close(self) -> None: ...


class RepeatFilter:
    """Drops repeat reads of a card held on the reader: a read within ``hold_s`` of the
    previous read of the same card is the same presentation."""

    def __init__(self, hold_s: float = 1.0) -> None:
        self.hold_s = hold_s
        self._last: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def fresh(self, card: str, now: float) -> bool:
        with self._lock:
            last = self._last
            self._last = (card, now)
            return last is None or last[0] != card or now - last[1] > self.hold_s


class Keypad:
    """Keys in, PINs out: digits gathered until ``#``; ``*`` clears; an entry left
    half-typed for ``timeout_s`` is forgotten, so the next person starts afresh."""

    MAX_DIGITS = 16

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._digits = ""
        self._last = 0.0

    def key(self, key: str, now: float) -> str | None:
        """The PIN when ``key`` ends an entry, else None."""
        if now - self._last > self.timeout_s:
            self._digits = ""
        self._last = now
        if key == "*":
            self._digits = ""
        elif key == "#":
            digits, self._digits = self._digits, ""
            return digits or None
        elif key.isdigit() and len(self._digits) < self.MAX_DIGITS:
            self._digits += key
        return None


@dataclass(slots=True)
class ReaderStats:
    frames: int = 0
    garbled: int = 0
    repeats: int = 0


class ThreadedReader:
    """A reader whose device is read in a thread of its own: started, stopped, its
    parser's counts; the subclass's ``_run`` opens, reads, and reports a device that
    is gone (and tries again every ``retry_s``)."""

    def __init__(self, reader: str, parser: Any, sink: Sink, *, retry_s: float, clock: Callable[[], float], kind: str) -> None:
        self.id = reader
        self.parser = parser
        self.sink = sink
        self.retry_s = retry_s
        self._clock = clock
        self._stop = threading.Event()
        #: set while the device is open
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind}-{reader}", daemon=True)

    @property
    def stats(self) -> ReaderStats:
        stats: ReaderStats = self.parser.stats
        return stats

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2)
