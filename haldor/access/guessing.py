"""Guessing at a reader: wrong PINs and unknown cards, counted so that no grant clears them.

A member inside their booking could once type four wrong PINs, badge their own card
and start again: a grant cleared the count, and a caretaker's PIN (every door, any
hour) fell in 91 guesses. Here each reader keeps two sliding windows, one for wrong
PINs and one for unknown cards, that only time empties. Past the limit that kind of
presentation is refused (``rate_limited``) for a while that doubles with each lockout
within a day, as bank terminals and the better door controllers do; the other kind
keeps working (a keypad lockout does not stop cards unless the site asks), and the
lockout is reported at once (``access.guessing``), so the municipality learns that
someone is guessing. Pure: time is an argument, the state is plain data that
survives a restart through :meth:`GuessWatch.lasting`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from haldor.protocol import Reason
from haldor.records import record

from .model import Decision, Facts

#: a lockout more than this long ago no longer makes the next one longer
ESCALATION_RESET_S = 86400.0
PIN = "pin"
CARD = "card"
#: the denial that counts as a guess, by kind
COUNTED = {PIN: Reason.WRONG_PIN, CARD: Reason.UNKNOWN_CARD}


@record
class Limits:
    """``policy.*`` of the configuration; a limit of 0 turns that kind's count off."""

    max_wrong_pins: int = 5
    max_unknown_cards: int = 10
    window_s: float = 600.0
    lockout_s: float = 60.0
    lockout_max_s: float = 3600.0
    pin_lockout_blocks_cards: bool = False

    def maximum(self, kind: str) -> int:
        return self.max_wrong_pins if kind == PIN else self.max_unknown_cards


@dataclass(slots=True)
class _Count:
    guesses: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0  # lockouts in a row, each within a day of the one before
    last_lockout: float = 0.0


@record
class Lockout:
    """A lockout that has just begun: what ``access.guessing`` reports."""

    kind: str
    attempts: int
    lockout_s: float
    lockouts: int

    def extra(self, window_s: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "attempts": self.attempts,
            "window_s": window_s,
            "lockout_s": self.lockout_s,
            "lockouts": self.lockouts,
        }


def guessed(facts: Facts, decision: Decision, *, pin: bool) -> str | None:
    """The reason a denial counts by: a card or PIN that matches nothing is a guess whatever
    was reported first (during a lockdown too, when a caretaker's PIN still opens)."""
    if decision.reason == Reason.RATE_LIMITED:
        return decision.reason  # already locked out: not counted again
    if not facts.credentials and not (pin and any(b.pin_match for b in facts.bookings)):
        return COUNTED[PIN if pin else CARD]
    return decision.reason


class GuessWatch:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._counts: dict[tuple[str, str], _Count] = {}

    def refused(self, reader: str, now: float, *, pin: bool) -> bool:
        """Is this kind of presentation at ``reader`` locked out now?"""
        if self._locked(reader, PIN if pin else CARD, now):
            return True
        return not pin and self.limits.pin_lockout_blocks_cards and self._locked(reader, PIN, now)

    def denied(self, reader: str, now: float, *, pin: bool, reason: str | None) -> Lockout | None:
        """Count a denial; a lockout that begins with it is returned (once)."""
        kind = PIN if pin else CARD
        maximum = self.limits.maximum(kind)
        if reason != COUNTED[kind] or maximum <= 0 or self._locked(reader, kind, now):
            return None  # not a guess, not counted, or refused already (a lockdown reports itself first)
        c = self._counts.setdefault((reader, kind), _Count())
        c.guesses.append(now)
        while c.guesses and c.guesses[0] <= now - self.limits.window_s:
            c.guesses.popleft()
        if len(c.guesses) < maximum:
            return None
        attempts = len(c.guesses)
        c.guesses.clear()
        c.lockouts = c.lockouts + 1 if now - c.last_lockout < ESCALATION_RESET_S else 1
        c.last_lockout = now
        lockout_s = min(self.limits.lockout_s * 2 ** (c.lockouts - 1), self.limits.lockout_max_s)
        c.locked_until = now + lockout_s
        return Lockout(kind, attempts, lockout_s, c.lockouts)

    def _locked(self, reader: str, kind: str, now: float) -> bool:
        c = self._counts.get((reader, kind))
        if c is None or now >= c.locked_until:
            return False
        if c.locked_until - now > self.limits.lockout_max_s:  # begun by a clock far ahead, since put right
            c.locked_until = 0.0
            return False
        return True

    def lasting(self) -> dict[str, Any]:
        """The lockouts and their escalation, kept across a restart (the guesses of an
        unfinished window are not: a restart takes longer than typing them again)."""
        return {
            f"{reader}/{kind}": {"until": c.locked_until, "lockouts": c.lockouts, "last": c.last_lockout}
            for (reader, kind), c in sorted(self._counts.items())
            if c.lockouts
        }

    def restore(self, lasting: dict[str, Any]) -> None:
        for key, value in lasting.items():
            reader, _, kind = str(key).rpartition("/")
            if kind not in COUNTED or not isinstance(value, dict):
                continue
            try:
                count = _Count(
                    locked_until=float(value.get("until", 0.0)),
                    lockouts=int(value.get("lockouts", 0)),
                    last_lockout=float(value.get("last", 0.0)),
                )
            except (TypeError, ValueError):  # a damaged note never stops a start: that lockout is forgotten
                continue
            self._counts[(reader, kind)] = count
