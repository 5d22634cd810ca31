"""From what the sheets and feeds say to one snapshot per site, and from two snapshots
to a delta. Pure: no files, no network, no clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from haldor.protocol import Role, Schema
from haldor.records import record

from .settings import Site

#: the collections a delta can upsert, and the two it can delete from
COLLECTIONS = ("rooms", "associations", "credentials", "bookings")
DELETABLE = ("bookings", "credentials")


@dataclass
class Inputs:
    """Everything read in one run, across sites."""

    associations: list[dict[str, Any]]
    credentials: list[dict[str, Any]]
    rooms: list[dict[str, Any]]
    closures: list[dict[str, Any]]
    bookings: dict[str, list[dict[str, Any]]]  # site -> bookings from its feeds
    problems: list[str] = field(default_factory=list)
    #: data rows per sheet, for the next run's check that none was cut off
    rows: dict[str, int] = field(default_factory=dict)


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as a box gets it: the bridge's own bookkeeping (``_site``) left out."""
    return {k: v for k, v in item.items() if not k.startswith("_")}


@record
class Shares:
    """Where each site's part of a run's inputs is, by position in their lists, found in
    one pass: a snapshot per site scanned every row of every sheet, 100 million rows a
    run at 1,000 sites and 100,000 credentials."""

    rooms: dict[str, list[int]]  # site -> its rooms
    associations: dict[str, list[int]]  # id -> the associations of that id
    members: dict[str, list[int]]  # association -> its credentials but caretakers
    caretakers: dict[str, list[int]]  # site -> the caretakers who look after it
    closures: dict[str, list[int]]  # site -> its closures


def shares(inputs: Inputs) -> Shares:
    found = Shares({}, {}, {}, {}, {})
    for i, r in enumerate(inputs.rooms):
        found.rooms.setdefault(r["_site"], []).append(i)
    for i, a in enumerate(inputs.associations):
        found.associations.setdefault(a["id"], []).append(i)
    for i, c in enumerate(inputs.credentials):
        if c["role"] == Role.CARETAKER:
            for s in set(c["_sites"]):
                found.caretakers.setdefault(s, []).append(i)
        elif c["association"] is not None:
            found.members.setdefault(c["association"], []).append(i)
    for i, c in enumerate(inputs.closures):
        found.closures.setdefault(c["_site"], []).append(i)
    return found


def _picked(items: list[dict[str, Any]], groups: Mapping[str, list[int]], keys: Any) -> list[dict[str, Any]]:
    """The items of ``groups``' ``keys``, in the order of ``items`` (as a scan of them gives)."""
    return [items[i] for i in sorted({i for k in keys for i in groups.get(k, ())})]


def snapshot(site: Site, inputs: Inputs, *, generated_at: str, found: Shares | None = None) -> dict[str, Any]:
    """The site's snapshot without its version: its rooms, the bookings of its feeds, the
    associations that book it, their members' credentials, its caretakers, its closures.
    ``found``: :func:`shares` of ``inputs``, made once for every site of a run."""
    found = found or shares(inputs)
    rooms = [_public(r) for r in _picked(inputs.rooms, found.rooms, [site.id])]
    room_ids = {r["id"] for r in rooms}
    bookings: list[dict[str, Any]] = []
    strays: Counter[str] = Counter()
    for b in inputs.bookings.get(site.id, []):
        if b["room"] in room_ids:
            bookings.append(b)
        else:
            strays[b["room"]] += 1
    for room, n in sorted(strays.items()):
        inputs.problems.append(f"{site.id}: room {room!r} of a feed is not in the rooms sheet: its {n} bookings left out")
    booking_associations = {b["association"] for b in bookings}
    associations = [_public(a) for a in _picked(inputs.associations, found.associations, booking_associations)]
    known = {a["id"] for a in associations}
    missing = booking_associations - known
    if missing:
        inputs.problems.append(f"{site.id}: associations {sorted(missing)} book rooms but are not in the sheet (left out)")
        bookings = [b for b in bookings if b["association"] in known]
    chosen = {i for a in known for i in found.members.get(a, ())} | set(found.caretakers.get(site.id, ()))
    credentials = [_public(inputs.credentials[i]) for i in sorted(chosen)]
    closures = [
        _public(c) for c in _picked(inputs.closures, found.closures, [site.id]) if c["room"] is None or c["room"] in room_ids
    ]
    doc: dict[str, Any] = {
        "schema": Schema.SNAPSHOT.value,
        "site": site.id,
        "version": 0,
        "generated_at": generated_at,
        "timezone": site.timezone,
        "rooms": sorted(rooms, key=lambda r: r["id"]),
        "associations": sorted(associations, key=lambda a: a["id"]),
        "credentials": sorted(credentials, key=lambda c: c["id"]),
        "bookings": sorted(bookings, key=lambda b: (b["start"], b["id"])),
        "closures": sorted(closures, key=lambda c: (c["start"], c["room"] or "", c["end"])),
    }
    if site.policy.given():
        doc["policy"] = site.policy.given()
    return doc


@record
class Changes:
    """What differs between two snapshots of a site, by id."""

    added: dict[str, list[str]]
    changed: dict[str, list[str]]
    removed: dict[str, list[str]]
    closures: bool
    header: bool  # time zone or policy

    @property
    def count(self) -> int:
        return sum(len(ids) for group in (self.added, self.changed, self.removed) for ids in group.values()) + self.closures

    def lines(self) -> list[str]:
        out = [
            f"{what} {name}: {', '.join(ids)}"
            for what, group in (("added", self.added), ("changed", self.changed), ("removed", self.removed))
            for name, ids in group.items()
            if ids
        ]
        if self.closures:
            out.append("closures: changed")
        if self.header:
            out.append("time zone or policy: changed")
        return out


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Changes:
    before = old or {}
    added, changed, removed = {}, {}, {}
    for name in COLLECTIONS:
        was = {x["id"]: x for x in before.get(name, [])}
        now = {x["id"]: x for x in new.get(name, [])}
        added[name] = sorted(set(now) - set(was))
        removed[name] = sorted(set(was) - set(now))
        changed[name] = sorted(i for i in set(now) & set(was) if now[i] != was[i])
    return Changes(
        added,
        changed,
        removed,
        closures=before.get("closures", []) != new.get("closures", []),
        header=old is not None and any(before.get(k) != new.get(k) for k in ("timezone", "policy")),
    )


def delta(
    old: Mapping[str, Any], new: Mapping[str, Any], diff: Changes, *, version: int, base_version: int
) -> dict[str, Any] | None:
    """The delta from ``old`` to ``new``, or None where only a snapshot can say it (a room or
    an association removed, the time zone or policy changed)."""
    if diff.header or diff.removed["rooms"] or diff.removed["associations"]:
        return None
    upsert: dict[str, list[Any]] = {}
    for name in COLLECTIONS:
        wanted = set(diff.added[name]) | set(diff.changed[name])
        if wanted:
            upsert[name] = [x for x in new[name] if x["id"] in wanted]
    if diff.closures:
        upsert["closures"] = list(new.get("closures", []))
    return {
        "schema": Schema.DELTA.value,
        "site": new["site"],
        "base_version": base_version,
        "version": version,
        "upsert": upsert,
        "delete": {name: diff.removed[name] for name in DELETABLE if diff.removed[name]},
    }


def booking_lines(diff: Changes, old: Mapping[str, Any] | None, new: Mapping[str, Any], tz: ZoneInfo) -> list[str]:
    """Each booking added, changed or removed with its room and its start and end in the
    site's local time: a dry run that listed ids alone could not be checked against the
    booking system's own screen (issue 24)."""
    before = {b["id"]: b for b in (old or {}).get("bookings", [])}
    after = {b["id"]: b for b in new.get("bookings", [])}
    out = []
    for what, ids, source in (
        ("added", diff.added["bookings"], after),
        ("changed", diff.changed["bookings"], after),
        ("removed", diff.removed["bookings"], before),
    ):
        for ident in ids:
            line = f"{what} booking {ident}: {_when(source[ident], tz)}"
            if what == "changed":
                line += f" (was {_when(before[ident], tz)})"
            out.append(line)
    return out


def _when(booking: Mapping[str, Any], tz: ZoneInfo) -> str:
    """``2026-12-01 19:00-21:00 gym-a``, the end with its date when it is another day."""
    start = datetime.fromisoformat(booking["start"]).astimezone(tz)
    end = datetime.fromisoformat(booking["end"]).astimezone(tz)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}-{until} {booking['room']}"
