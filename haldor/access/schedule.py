"""Validate snapshots and deltas (PROTOCOL 2, 3) into plain model objects.

A document is checked completely before anything is applied: the first fault
rejects it whole with a reason that names the field (``bookings[3].end``).
References that a delta makes to the stored schedule are checked by the store,
inside the transaction that applies it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor import cards
from haldor.errors import DocumentError
from haldor.protocol import Role, Schema

from .fields import ID, Fields
from .model import (
    Association,
    Booking,
    Closure,
    Credential,
    Delta,
    Policy,
    Room,
    Snapshot,
)

SNAPSHOT_SCHEMA = Schema.SNAPSHOT
DELTA_SCHEMA = Schema.DELTA
ROLES = tuple(Role)
_ID = ID


def check_timezone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DocumentError(f"{where}: unknown time zone {name!r}") from None
    return name


def _positive_int(r: Fields, key: str, default: int) -> int:
    value: int = r.get(key, int, required=False, default=default)
    if value < 0:
        raise DocumentError(f"{r._where(key)}: must not be negative")
    return value


def read_policy(r: Fields) -> Policy:
    return Policy(
        grace_before_min=_positive_int(r, "grace_before_min", 15),
        grace_after_min=_positive_int(r, "grace_after_min", 15),
        no_show_after_min=_positive_int(r, "no_show_after_min", 20),
        leader_first=r.get("leader_first", bool, required=False, default=False),
    )


def read_room(r: Fields) -> Room:
    rid = r.ident("id")
    doors = r.get("doors", list)
    for i, door in enumerate(doors):
        if not isinstance(door, str) or not _ID.fullmatch(door):
            raise DocumentError(f"{r.path}.doors[{i}]: not an identifier")
    return Room(id=rid, name=r.get("name", str, required=False, default=rid), doors=tuple(doors))


def read_association(r: Fields) -> Association:
    aid = r.ident("id")
    return Association(id=aid, name=r.get("name", str, required=False, default=aid))


def read_credential(r: Fields) -> Credential:
    cid = r.ident("id")
    role = r.get("role", str)
    if role not in ROLES:
        raise DocumentError(f"{r.path}.role: must be one of {', '.join(ROLES)}, not {role!r}")
    card = r.get("card", str, required=False, nullable=True)
    problem = None if card is None else cards.canonical_problem(card)
    if problem:
        raise DocumentError(f"{r.path}.card: {problem}")
    pin = r.get("pin", str, required=False, nullable=True)
    if pin is not None and not cards.is_pin(pin):
        raise DocumentError(f"{r.path}.pin: must be 4-8 digits")
    if card is None and pin is None:
        raise DocumentError(f"{r.path}: a credential needs a card or a pin")
    association = r.ident("association", required=False, nullable=True)
    if association is None and role != Role.CARETAKER:
        raise DocumentError(f"{r.path}.association: missing (only a caretaker has none)")
    valid_from = r.instant("valid_from", required=False, nullable=True)
    valid_until = r.instant("valid_until", required=False, nullable=True)
    if valid_from is not None and valid_until is not None and valid_until < valid_from:
        raise DocumentError(f"{r.path}.valid_until: before valid_from")
    return Credential(cid, card, pin, association, role, valid_from, valid_until)


def read_booking(r: Fields) -> Booking:
    bid = r.ident("id")
    start = r.instant("start")
    end = r.instant("end")
    if end <= start:
        raise DocumentError(f"{r.path}.end: must be after start")
    pin = r.get("pin", str, required=False, nullable=True)
    if pin is not None and not cards.is_pin(pin):
        raise DocumentError(f"{r.path}.pin: must be 4-8 digits")
    return Booking(
        id=bid,
        room=r.ident("room"),
        association=r.ident("association"),
        title=r.get("title", str, required=False, default="") or "",
        start=start,
        end=end,
        status=r.get("status", str),
        pin=pin,
        unlocked_during=r.get("unlocked_during", bool, required=False, default=False) or False,
    )


def read_closure(r: Fields) -> Closure:
    start = r.instant("start")
    end = r.instant("end")
    if end <= start:
        raise DocumentError(f"{r.path}.end: must be after start")
    return Closure(
        room=r.ident("room", required=False, nullable=True),
        start=start,
        end=end,
        reason=r.get("reason", str, required=False, nullable=True, default="") or "",
    )


def _unique(items: Sequence[Room | Association | Credential | Booking], what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise DocumentError(f"{what}[{i}].id: duplicate id {item.id!r}")
        seen.add(item.id)


def read_header(doc: Any, schema: str) -> Fields:
    r = Fields(doc, "")
    found = r.get("schema", str)
    if found != schema:
        raise DocumentError(f"schema: expected {schema!r}, got {found!r}")
    r.ident("site")
    return r


#: JSON's largest exact integer in most languages (2**53 - 1): a booking system in
#: JavaScript could never publish a greater version, so one past it blocks every later one
MAX_VERSION = 9_007_199_254_740_991
#: a jump this large is applied, with a warning: every later document must pass it
VERSION_JUMP_WARNING = 1_000_000


def read_version(r: Fields, key: str) -> int:
    value: int = r.get(key, int)
    if value < 0:
        raise DocumentError(f"{key}: must not be negative")
    if value > MAX_VERSION:
        raise DocumentError(f"{key}: at most {MAX_VERSION} (2**53 - 1)")
    return value


def door_warnings(room_doors: Iterable[tuple[str, str]], configured: Collection[str]) -> list[str]:
    """What a schedule that applied says about this box's doors: doors of rooms that another
    box must control (PROTOCOL 2 allows them), and configured doors that no room names
    (only caretakers open those)."""
    named: dict[str, list[str]] = {}
    for room, door in room_doors:
        named.setdefault(door, []).append(room)
    warnings = [
        f"door {door!r} of room {', '.join(sorted(rooms))} is not controlled by this box"
        for door, rooms in sorted(named.items())
        if door not in configured
    ]
    warnings += [
        f"configured door {door!r} is named by no room: only caretakers can open it"
        for door in sorted(configured)
        if door not in named
    ]
    return warnings


def parse_snapshot(doc: Any) -> Snapshot:
    """A validated snapshot, or DocumentError naming the first fault."""
    r = read_header(doc, SNAPSHOT_SCHEMA)
    rooms = [read_room(x) for x in r.items("rooms")]
    associations = [read_association(x) for x in r.items("associations")]
    credentials = [read_credential(x) for x in r.items("credentials")]
    bookings = [read_booking(x) for x in r.items("bookings")]
    closures = [read_closure(x) for x in r.items("closures", required=False)]
    for items, what in ((rooms, "rooms"), (associations, "associations"), (credentials, "credentials"), (bookings, "bookings")):
        _unique(items, what)
    room_ids = {x.id for x in rooms}
    association_ids = {x.id for x in associations}
    check_references(room_ids, association_ids, credentials, bookings, closures)
    timezone = r.get("timezone", str, required=False)
    policy = r.sub("policy")
    return Snapshot(
        site=r.obj["site"],
        version=read_version(r, "version"),
        generated_at=r.instant("generated_at", required=False, nullable=True),
        timezone=None if timezone is None else check_timezone(timezone, "timezone"),
        policy=None if policy is None else read_policy(policy),
        rooms=tuple(rooms),
        associations=tuple(associations),
        credentials=tuple(credentials),
        bookings=tuple(bookings),
        closures=tuple(closures),
    )


def check_references(
    room_ids: set[str],
    association_ids: set[str],
    credentials: Iterable[Credential],
    bookings: Iterable[Booking],
    closures: Iterable[Closure] | None,
) -> None:
    """Every room and association named must exist (in the document or, for a delta, the store)."""
    for i, c in enumerate(credentials):
        if c.association is not None and c.association not in association_ids:
            raise DocumentError(f"credentials[{i}].association: unknown association {c.association!r}")
    for i, b in enumerate(bookings):
        if b.room not in room_ids:
            raise DocumentError(f"bookings[{i}].room: unknown room {b.room!r}")
        if b.association not in association_ids:
            raise DocumentError(f"bookings[{i}].association: unknown association {b.association!r}")
    for i, closure in enumerate(closures or ()):
        if closure.room is not None and closure.room not in room_ids:
            raise DocumentError(f"closures[{i}].room: unknown room {closure.room!r}")


def parse_delta(doc: Any) -> Delta:
    """A structurally valid delta; references are checked against the store when applied."""
    r = read_header(doc, DELTA_SCHEMA)
    base_version = read_version(r, "base_version")
    version = read_version(r, "version")
    up = r.sub("upsert") or Fields({}, "upsert")
    rooms = [read_room(x) for x in up.items("rooms", required=False)]
    associations = [read_association(x) for x in up.items("associations", required=False)]
    credentials = [read_credential(x) for x in up.items("credentials", required=False)]
    bookings = [read_booking(x) for x in up.items("bookings", required=False)]
    closures = None
    if up.obj.get("closures") is not None:
        closures = tuple(read_closure(x) for x in up.items("closures"))
    for items, what in (
        (rooms, "upsert.rooms"),
        (associations, "upsert.associations"),
        (credentials, "upsert.credentials"),
        (bookings, "upsert.bookings"),
    ):
        _unique(items, what)
    de = r.sub("delete") or Fields({}, "delete")
    deletes: dict[str, tuple[str, ...]] = {}
    for key, upserted in (("bookings", bookings), ("credentials", credentials)):
        ids = de.get(key, list, required=False, default=[])
        for i, value in enumerate(ids):
            if not isinstance(value, str) or not _ID.fullmatch(value):
                raise DocumentError(f"delete.{key}[{i}]: not an identifier")
        both = {x.id for x in upserted} & set(ids)
        if both:
            raise DocumentError(f"delete.{key}: {sorted(both)[0]!r} is both upserted and deleted")
        deletes[key] = tuple(ids)
    return Delta(
        site=r.obj["site"],
        base_version=base_version,
        version=version,
        rooms=tuple(rooms),
        associations=tuple(associations),
        credentials=tuple(credentials),
        bookings=tuple(bookings),
        closures=closures,
        delete_bookings=deletes["bookings"],
        delete_credentials=deletes["credentials"],
    )


def parse_document(doc: Any) -> Snapshot | Delta:
    """Snapshot or delta, told apart by ``schema``."""
    if isinstance(doc, dict) and doc.get("schema") == DELTA_SCHEMA:
        return parse_delta(doc)
    return parse_snapshot(doc)
