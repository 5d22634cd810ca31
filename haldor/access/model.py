"""Plain data of a site's schedule. Instants are POSIX seconds (float, UTC):
comparing instants, never wall-clock readings, is what makes DST nights right."""

from __future__ import annotations

from dataclasses import field

from haldor.records import record


@record
class Policy:
    grace_before_min: int = 15
    grace_after_min: int = 15
    no_show_after_min: int = 20
    leader_first: bool = False


@record
class Room:
    id: str
    name: str
    doors: tuple[str, ...]


@record
class Association:
    id: str
    name: str


@record
class Credential:
    """As it arrives; the card and PIN are hashed before anything is stored."""

    id: str
    card: str | None
    pin: str | None
    association: str | None
    role: str
    valid_from: float | None
    valid_until: float | None


@record
class Booking:
    id: str
    room: str
    association: str
    title: str
    start: float
    end: float
    status: str
    pin: str | None
    unlocked_during: bool


@record
class Closure:
    room: str | None
    start: float
    end: float
    reason: str


@record
class Snapshot:
    site: str
    version: int
    generated_at: float | None
    timezone: str | None
    policy: Policy | None
    rooms: tuple[Room, ...]
    associations: tuple[Association, ...]
    credentials: tuple[Credential, ...]
    bookings: tuple[Booking, ...]
    closures: tuple[Closure, ...]


@record
class Delta:
    site: str
    base_version: int
    version: int
    rooms: tuple[Room, ...] = ()
    associations: tuple[Association, ...] = ()
    credentials: tuple[Credential, ...] = ()
    bookings: tuple[Booking, ...] = ()
    #: None: closures untouched; a tuple replaces all closures.
    closures: tuple[Closure, ...] | None = None
    delete_bookings: tuple[str, ...] = ()
    delete_credentials: tuple[str, ...] = ()


# --- What a decision is taken on -------------------------------------------------


@record
class Candidate:
    """A credential whose card or PIN matched what was presented."""

    id: str
    association: str | None
    role: str
    valid_from: float | None = None
    valid_until: float | None = None


@record
class BookingFact:
    """An approved booking for a room of the door, near now."""

    id: str
    room: str
    association: str
    start: float
    end: float
    unlocked_during: bool = False
    #: a leader was granted or checked in for it (policy.leader_first)
    leader_present: bool = False
    #: its own booking PIN is what was typed
    pin_match: bool = False
    #: the doors of its room that this agent controls (for unlocked_during)
    doors: tuple[str, ...] = ()


@record
class ClosureFact:
    room: str | None
    start: float
    end: float
    reason: str = ""


@record
class Facts:
    """Everything the store knows that bears on one presentation at one door.

    Gathered by the store (IO) so that the decision itself stays a pure function.
    """

    door: str
    rooms: frozenset[str]
    credentials: tuple[Candidate, ...] = ()
    bookings: tuple[BookingFact, ...] = ()
    closures: tuple[ClosureFact, ...] = ()
    policy: Policy = field(default_factory=Policy)
    #: the local calendar day of now, as instants [start, end)
    day: tuple[float, float] = (0.0, 0.0)


@record
class Conditions:
    """The agent's state that bears on a decision."""

    lockdown: bool = False
    rate_limited: bool = False
    clock_trusted: bool = True


@record
class Decision:
    granted: bool
    reason: str | None = None
    booking: str | None = None
    credential: str | None = None
    role: str | None = None

    def as_json(self) -> dict[str, object]:
        """The shape `haldor decide` prints (PROTOCOL 8)."""
        return {
            "granted": self.granted,
            "reason": self.reason,
            "booking": self.booking,
            "credential": self.credential,
        }
