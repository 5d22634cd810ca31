"""The door state machine. Every input (a card or PIN, a contact edge, an exit button,
a fire input, a command, the passing of time) is one method call with ``now`` given;
each returns the effects to carry out, in order. No IO, no clock, no locks needed:
the agent calls it from its one loop, and tests drive it step by step.

The lock of a door follows from its state (:meth:`Controller._wants_unlocked`),
recomputed after every input, so no input can leave a lock in a stale position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haldor.protocol import Action, Event, Mode
from haldor.records import record

from .guessing import COUNTED, GuessWatch, Limits, guessed
from .model import Conditions, Decision, Facts
from .policy import decide


@record
class DoorSpec:
    id: str
    unlock_s: float = 5
    held_open_s: float = 60
    fail: str = "secure"  # "secure" | "safe"


# --- effects ------------------------------------------------------------------------


@record
class Lock:
    door: str
    unlocked: bool


@record
class Feedback:
    reader: str
    granted: bool


@record
class Emit:
    """An event of PROTOCOL 5 (without id, seq, site: the store adds them)."""

    type: str
    door: str | None = None
    reader: str | None = None
    credential: str | None = None
    booking: str | None = None
    reason: str | None = None
    extra: dict[str, Any] | None = None

    def as_event(self, at: float) -> dict[str, Any]:
        return {
            "type": self.type,
            "door": self.door,
            "reader": self.reader,
            "credential": self.credential,
            "booking": self.booking,
            "reason": self.reason,
            "extra": self.extra,
            "at_ts": at,
        }


@record
class Entered:
    """A granted entry that counts towards a booking's use (and leader_first)."""

    booking: str
    role: str | None


@record
class ModesChanged:
    """The lasting modes changed: the agent persists :meth:`Controller.lasting_state`."""


Effect = Lock | Feedback | Emit | Entered | ModesChanged


# --- state --------------------------------------------------------------------------


@dataclass(slots=True)
class _Door:
    spec: DoorSpec
    hold_open: bool = False
    pulse_until: float = 0.0
    unlocked_until: float = 0.0  # an unlocked_during booking keeps it open until its end
    exit_until: float = 0.0  # an exit request excuses an opening until then
    fire: bool = False
    open: bool = False
    held_since: float | None = None  # open while it should not stay open, since
    held_alarm: bool = False
    driven: bool | None = None  # the lock position last asked of the hardware
    mode: str | None = None


class Controller:
    def __init__(self, doors: list[DoorSpec], *, guessing: Limits | None = None) -> None:
        self.doors = {d.id: _Door(d) for d in doors}
        self.lockdown = False
        #: wrong PINs and unknown cards per reader (:mod:`.guessing`)
        self.guesses = GuessWatch(guessing)

    # -- start and lasting state -----------------------------------------------------

    def start(self, now: float, lasting: dict[str, Any] | None = None) -> list[Effect]:
        """Restore lasting modes (lockdown, hold-open, a booking's unlocked period) and
        set every lock to what they ask. The hardware is already in its safe state."""
        lasting = lasting or {}
        self.lockdown = bool(lasting.get("lockdown"))
        for door_id, until in lasting.get("unlocked_until", {}).items():
            if door_id in self.doors:
                self.doors[door_id].unlocked_until = until
        for door_id in lasting.get("hold_open", []):
            if door_id in self.doors:
                self.doors[door_id].hold_open = True
        self.guesses.restore(lasting.get("guessing", {}))
        return [Emit(Event.AGENT_STARTED), *self._reconcile(now, announce=False)]

    def lasting_state(self) -> dict[str, Any]:
        return {
            "lockdown": self.lockdown,
            "hold_open": sorted(d.spec.id for d in self.doors.values() if d.hold_open),
            "unlocked_until": {d.spec.id: d.unlocked_until for d in self.doors.values() if d.unlocked_until},
            "guessing": self.guesses.lasting(),
        }

    def status(self) -> dict[str, dict[str, Any]]:
        """Door states for the status document (PROTOCOL 6)."""
        return {i: {"locked": not d.driven, "open": d.open, "mode": d.mode or Mode.NORMAL} for i, d in self.doors.items()}

    @property
    def mode(self) -> str:
        return Mode.LOCKDOWN if self.lockdown else "normal"

    # -- inputs ----------------------------------------------------------------------

    def conditions(self, reader: str, now: float, clock_trusted: bool, *, pin: bool) -> Conditions:
        return Conditions(
            lockdown=self.lockdown,
            rate_limited=self.guesses.refused(reader, now, pin=pin),
            clock_trusted=clock_trusted,
        )

    def present(self, now: float, reader: str, facts: Facts, *, pin: bool, clock_trusted: bool) -> tuple[Decision, list[Effect]]:
        """A card or PIN at the reader of ``facts.door``: decide, then act."""
        decision = decide(now, facts, self.conditions(reader, now, clock_trusted, pin=pin), pin=pin)
        door = self.doors[facts.door]
        event = Emit(
            Event.ACCESS_GRANTED if decision.granted else Event.ACCESS_DENIED,
            door=facts.door,
            reader=reader,
            credential=decision.credential,
            booking=decision.booking,
            reason=decision.reason,
        )
        effects: list[Effect] = []
        if decision.granted:
            door.pulse_until = now + door.spec.unlock_s
            booking = next((b for b in facts.bookings if b.id == decision.booking), None)
            if booking is not None and booking.unlocked_during:
                for door_id in booking.doors or (facts.door,):
                    if door_id in self.doors:
                        self.doors[door_id].unlocked_until = max(self.doors[door_id].unlocked_until, booking.end)
                effects.append(ModesChanged())
            effects += self._reconcile(now)  # the lock moves first: someone is waiting at the door
            effects += [event, Feedback(reader, True)]
            if decision.booking is not None:
                effects.append(Entered(decision.booking, decision.role))
        else:
            effects += [event, Feedback(reader, False)]
            effects += self.guess(now, reader, facts.door, pin=pin, reason=guessed(facts, decision, pin=pin))
        return decision, effects

    def guess(self, now: float, reader: str, door: str | None, *, pin: bool, reason: str | None) -> list[Effect]:
        """A denial at a reader (a door's, or the check-in reader's): counted when it is a
        guess; a lockout that begins is told at once and kept across a restart."""
        lockout = self.guesses.denied(reader, now, pin=pin, reason=reason)
        if lockout is None:
            return []
        extra = lockout.extra(self.guesses.limits.window_s)
        return [Emit(Event.ACCESS_GUESSING, door=door, reader=reader, reason=COUNTED[lockout.kind], extra=extra), ModesChanged()]

    def contact(self, now: float, door_id: str, is_open: bool) -> list[Effect]:
        door = self.doors[door_id]
        if is_open == door.open:
            return []
        door.open = is_open
        effects: list[Effect] = []
        if is_open:
            effects.append(Emit(Event.DOOR_OPENED, door=door_id))
            if not door.driven and now >= door.exit_until:
                effects.append(Emit(Event.DOOR_FORCED, door=door_id))
        else:
            effects.append(Emit(Event.DOOR_CLOSED, door=door_id))
            door.pulse_until = 0.0  # re-lock as soon as the door is shut again
            door.held_since = None
            door.held_alarm = False
        return effects + self._reconcile(now)

    def exit_request(self, now: float, door_id: str) -> list[Effect]:
        """Egress is mechanical: the button only excuses the opening that follows."""
        door = self.doors[door_id]
        door.exit_until = now + door.spec.unlock_s
        return self._reconcile(now)

    def fire_alarm(self, now: float, door_id: str, active: bool) -> list[Effect]:
        door = self.doors[door_id]
        if door.fire == active:
            return []
        door.fire = active
        return self._reconcile(now)

    def command(self, now: float, action: str, door_id: str | None = None, duration_s: float | None = None) -> list[Effect]:
        """Operator commands (PROTOCOL 4), already checked by the caller."""
        doors = [self.doors[door_id]] if door_id else list(self.doors.values())
        lasting_before = self.lasting_state()
        if action == Action.UNLOCK:
            for d in doors:
                d.pulse_until = now + (duration_s if duration_s is not None else d.spec.unlock_s)
        elif action == Action.LOCK:
            for d in doors:
                d.pulse_until = 0.0
                d.hold_open = False
                d.unlocked_until = 0.0
        elif action == Action.HOLD_OPEN:
            for d in doors:
                d.hold_open = True
        elif action == Action.RELEASE:
            for d in doors:
                d.hold_open = False
                d.pulse_until = 0.0
        elif action == Action.LOCKDOWN:
            self.lockdown = True
            for d in self.doors.values():
                d.pulse_until = 0.0
        elif action == Action.LIFT_LOCKDOWN:
            self.lockdown = False
        else:
            raise ValueError(f"unknown action {action!r}")
        effects = self._reconcile(now)
        if self.lasting_state() != lasting_before:
            effects.append(ModesChanged())
        return effects

    def tick(self, now: float) -> list[Effect]:
        """The passing of time: pulses end, bookings end, held-open alarms fire."""
        return self._reconcile(now)

    def next_deadline(self) -> float | None:
        times = []
        for d in self.doors.values():
            times += [t for t in (d.pulse_until, d.unlocked_until) if t]
            if d.held_since is not None and not d.held_alarm:
                times.append(d.held_since + d.spec.held_open_s)
        return min(times) if times else None

    # -- the state's consequences --------------------------------------------------------

    def _mode(self, d: _Door, now: float) -> str:
        if d.fire and d.spec.fail == "safe":
            return Mode.FIRE
        if self.lockdown:
            return Mode.LOCKDOWN
        if d.hold_open:
            return Mode.HOLD_OPEN
        if now < d.unlocked_until:
            return Mode.UNLOCKED
        return Mode.NORMAL

    def _wants_unlocked(self, d: _Door, mode: str, now: float) -> bool:
        return mode in (Mode.FIRE, Mode.HOLD_OPEN, Mode.UNLOCKED) or now < d.pulse_until

    def _reconcile(self, now: float, *, announce: bool = True) -> list[Effect]:
        effects: list[Effect] = []
        for d in self.doors.values():
            if d.pulse_until and now >= d.pulse_until:
                d.pulse_until = 0.0
            if d.unlocked_until and now >= d.unlocked_until:
                d.unlocked_until = 0.0
                effects.append(ModesChanged())
            mode = self._mode(d, now)
            wants = self._wants_unlocked(d, mode, now)
            if wants != d.driven:
                d.driven = wants
                effects.append(Lock(d.spec.id, wants))
            if mode != d.mode:
                if announce or mode != Mode.NORMAL:
                    effects.append(Emit(Event.DOOR_MODE, door=d.spec.id, reason=mode))
                d.mode = mode
            # held open: open longer than allowed while it should be shut
            allowed_open = mode in (Mode.FIRE, Mode.HOLD_OPEN, Mode.UNLOCKED)
            if d.open and not allowed_open:
                if d.held_since is None:
                    d.held_since = now
                if not d.held_alarm and now >= d.held_since + d.spec.held_open_s:
                    d.held_alarm = True
                    effects.append(Emit(Event.DOOR_HELD_OPEN, door=d.spec.id))
            else:
                d.held_since = None
        return effects
