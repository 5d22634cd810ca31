"""Plain data of a site's schedule. Instants are POSIX seconds (float, UTC):
comparing instants, never wall-clock readings, is what makes DST nights right."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Policy:
    grace_before_min: int = 15
    grace_after_min: int = 15
    no_show_after_min: int = 20
    leader_first: bool = False


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    name: str
    doors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Association:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Credential:
    """As it arrives; the card and PIN are hashed before anything is stored."""

    id: str
    card: str | None
    pin: str | None
    association: str | None
    role: str
    valid_from: float | None
    valid_until: float | None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Closure:
    room: str | None
    start: float
    end: float
    reason: str


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A credential whose card or PIN matched what was presented."""

    id: str
    association: str | None
    role: str
    valid_from: float | None = None
    valid_until: float | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class ClosureFact:
    room: str | None
    start: float
    end: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Conditions:
    """The agent's state that bears on a decision."""

    lockdown: bool = False
    rate_limited: bool = False
    clock_trusted: bool = True


@dataclass(frozen=True, slots=True)
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
