"""Every name the protocol gives, in one place: topics, schemas, event types, denial
reasons, command actions, roles, modes and statuses.

The booking system, the fleet and the acceptance tests read these names on the wire;
a module that needs one takes it from here, so that a name is spelt once and a new one
is added once (here, in ``haldor/texts.py`` and in the protocol reference; a test checks
all three agree). The values are plain strings (``StrEnum``): they compare equal to the
strings in a document and are written into JSON as such.
"""

from __future__ import annotations

import re
from enum import StrEnum

#: an identifier (site, room, door, reader, association, credential, booking, command):
#: matched in full with ``fullmatch``, so a trailing newline is not allowed
IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,64}")
IDENTIFIER_TEXT = "1-64 characters of A-Z a-z 0-9 . _ : -"

#: the topic prefix when the configuration names none: ``<prefix>/<site>/<leaf>``
TOPIC_PREFIX = "haldor/v1"


class Leaf(StrEnum):
    """The last part of a site's topics."""

    SCHEDULE = "schedule"
    DELTA = "schedule/delta"
    CMD = "cmd"
    CMD_RESULT = "cmd/result"
    SYNC_REQUEST = "sync/request"
    EVENTS = "events"
    #: the fleet asks a box for events it lacks (a gap in ``seq``), and the box answers
    RESEND = "events/resend"
    RESENT = "events/resent"
    STATUS = "status"


class Schema(StrEnum):
    SNAPSHOT = "haldor.schedule/1"
    DELTA = "haldor.delta/1"
    COMMAND = "haldor.command/1"
    EVENT = "haldor.event/1"
    STATUS = "haldor.status/1"
    RESEND = "haldor.resend/1"
    RESENT = "haldor.resent/1"
    #: not on the broker: what the fleet posts to a webhook (docs/protocol.md 12)
    ALERT = "haldor.alert/1"


class Event(StrEnum):
    """The ``type`` of an event (PROTOCOL 5)."""

    ACCESS_GRANTED = "access.granted"
    ACCESS_DENIED = "access.denied"
    #: wrong PINs or unknown cards at one reader past the limit: that kind is locked out there for a while
    ACCESS_GUESSING = "access.guessing"
    DOOR_OPENED = "door.opened"
    DOOR_CLOSED = "door.closed"
    DOOR_FORCED = "door.forced"
    DOOR_HELD_OPEN = "door.held_open"
    DOOR_MODE = "door.mode"
    CHECKIN = "checkin"
    BOOKING_NO_SHOW = "booking.no_show"
    BOOKING_USAGE = "booking.usage"
    SYNC_APPLIED = "sync.applied"
    SYNC_REJECTED = "sync.rejected"
    COMMAND_RESULT = "command.result"
    CLOCK_UNTRUSTED = "clock.untrusted"
    CLOCK_TRUSTED = "clock.trusted"
    READER_FAULT = "reader.fault"
    STORAGE_FAULT = "storage.fault"
    AGENT_STARTED = "agent.started"


#: door movements: the first events dropped from a full outbox
DOOR_MOVEMENTS = (Event.DOOR_OPENED, Event.DOOR_CLOSED)


class Reason(StrEnum):
    """Why access was denied (``access.denied``'s ``reason``), in the order the checks apply."""

    LOCKDOWN = "lockdown"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_CARD = "unknown_card"
    WRONG_PIN = "wrong_pin"
    EXPIRED = "expired"
    CLOCK_UNTRUSTED = "clock_untrusted"
    CLOSED = "closed"
    OUTSIDE_WINDOW = "outside_window"
    NO_BOOKING = "no_booking"


#: When every candidate is denied, the one that got furthest explains it best: the
#: reason reported is the first of these any candidate got.
DENIAL_PRECEDENCE = (Reason.CLOSED, Reason.OUTSIDE_WINDOW, Reason.NO_BOOKING, Reason.CLOCK_UNTRUSTED, Reason.EXPIRED)


class Action(StrEnum):
    """A command's ``action`` (PROTOCOL 4)."""

    UNLOCK = "unlock"
    LOCK = "lock"
    HOLD_OPEN = "hold_open"
    RELEASE = "release"
    LOCKDOWN = "lockdown"
    LIFT_LOCKDOWN = "lift_lockdown"
    RESYNC = "resync"
    RESET_VERSION = "reset_version"
    UPDATE = "update"


#: actions on one door (``door`` required); the others act on the site (``door`` null)
DOOR_ACTIONS = (Action.UNLOCK, Action.LOCK, Action.HOLD_OPEN, Action.RELEASE)
SITE_ACTIONS = (Action.LOCKDOWN, Action.LIFT_LOCKDOWN, Action.RESYNC, Action.RESET_VERSION, Action.UPDATE)


#: a release's manifest (``haldor release sign``), carried by the ``update`` command
RELEASE_SCHEMA = "haldor.release/1"


class Role(StrEnum):
    MEMBER = "member"
    LEADER = "leader"
    CARETAKER = "caretaker"


class Mode(StrEnum):
    """A door's mode in the status (``doors.<id>.mode``), and the site's (``mode``)."""

    NORMAL = "normal"
    HOLD_OPEN = "hold_open"
    LOCKDOWN = "lockdown"
    UNLOCKED = "unlocked"
    FIRE = "fire"


#: the one booking ``status`` that grants access; any other is kept and shown, never let in
APPROVED = "approved"
