"""The decision loop's messages (what happens, posted by drivers, the broker link and
timers) and the effects only the runtime carries out (the pure core's are in
:mod:`haldor.access.controller`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from haldor.access.controller import Controller, Emit, Entered, ModesChanged
from haldor.records import record
from haldor.store import Store
from haldor.store.journal import Batch

if TYPE_CHECKING:  # the network part's, imported beside the loop (:mod:`.door_first`)
    from .link import Received

# --- messages -------------------------------------------------------------------------


@record
class HttpSchedule:
    """A schedule document fetched over HTTP (:mod:`.http_fallback`)."""

    payload: bytes
    url: str


@record
class ContactChanged:
    door: str
    open: bool


@record
class ExitPressed:
    door: str


@record
class FireChanged:
    door: str
    active: bool


@record
class Command:
    action: str
    door: str | None = None
    duration_s: float | None = None


@record
class Tick:
    pass


@record
class ScheduleDone:
    """The schedule worker has applied (or refused) a document."""

    outcome: Any
    message: Received | None
    #: the document itself, kept when the store could not take it (:mod:`.refused`)
    document: bytes | None = None


@record
class UpdateStaged:
    """The installer's thread: the release is in place and named current; the loop stops for it."""

    command: str
    version: str


@record
class UpdateRefused:
    """The installer's thread: the update cannot be installed (nothing was switched)."""

    command: str
    why: str


@record
class CheckedIn:
    """An effect: count a check-in (with its event, in one transaction)."""

    booking: str
    credential: str
    role: str | None


@record
class Reported:
    """An effect: a no-show or usage report made (with its event, in one transaction)."""

    kind: str
    booking: str


@record
class Remembered:
    """An effect: a command id kept, so that a replay is refused across restarts."""

    command: str
    expires_at: float
    #: the message's digest and its cmd/result: the same message delivered again is answered again
    result: dict | None = None


@record
class Forget:
    """An effect: a meta note that has been reported is removed."""

    key: str


@record
class AnyVersion:
    """An effect: the next snapshot is applied whatever its version (``reset_version``)."""


@record
class TimeKnown:
    """An effect: a signed document says this time has passed (the box's ``time_floor``)."""

    at: float


@record
class Publish:
    """An effect: a document for the broker, sent after the events are stored."""

    topic: str  # an attribute of Topics
    doc: dict


@record
class Acked:
    """An effect: the broker may forget the message once the batch is stored and what it
    publishes has gone out (else the broker delivers it again)."""

    message: Received


@record
class Stop:
    pass


#: effects whose store writes the loop's reads must see before they are committed
OVERLAID = (Entered, CheckedIn, Reported, Remembered)


#: what each effect writes to the store, in the batch that stores its events
WRITES: dict[type, Callable[[Store, Any, float], Any]] = {
    Entered: lambda s, e, now: s.activity.note_entry(e.booking, e.role, now),
    CheckedIn: lambda s, e, now: s.activity.note_checkin(e.booking, e.credential, e.role, now),
    Reported: lambda s, e, now: s.activity.mark_reported(e.kind, e.booking, now),
    Remembered: lambda s, e, now: s.commands.remember(e.command, e.expires_at, now, e.result),
    AnyVersion: lambda s, e, now: s.schedule.accept_any_version(),
    Forget: lambda s, e, now: s.set_meta(e.key, None),
    TimeKnown: lambda s, e, now: s.set_meta("time_floor", max(e.at, s.meta("time_floor") or 0.0)),
}


def batch_of(effects: list, now: float, controller: Controller) -> Batch:
    """What is to be stored of ``effects`` (no lock or LED among them), in one batch: the
    events, the writes each effect makes, and what reports them once they are committed."""
    batch = Batch(
        events=[e.as_event(now) for e in effects if isinstance(e, Emit)],
        after=[e for e in effects if not isinstance(e, Emit)],
    )
    for e in effects:
        write = WRITES.get(type(e))
        if write is not None:
            batch.writes.append(_write_of(write, e, now))
    if any(isinstance(e, ModesChanged) for e in effects):
        lasting, mode = controller.lasting_state(), controller.mode
        batch.writes.append(functools.partial(_keep_modes, lasting=lasting, mode=mode))
    return batch


def _write_of(write: Callable[[Store, Any, float], Any], effect: Any, now: float) -> Callable[[Store], Any]:
    return lambda store: write(store, effect, now)


def _keep_modes(store: Store, *, lasting: dict[str, Any], mode: str) -> None:
    store.set_meta("lasting", lasting)
    store.set_meta("mode", mode)
