"""Events asked for again (PROTOCOL 5): the fleet found a gap in a site's ``seq`` (a broker
that lost what it had acknowledged, a consumer that was away too long) and names the
missing ranges; the box sends again what its journal still holds and says which are
gone for good. Pure: parsing and range arithmetic, no IO."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from haldor.errors import DocumentError
from haldor.protocol import Schema
from haldor.records import record

from .fields import Fields

#: one request names at most this many ranges and this many events in all
MAX_RANGES = 100
MAX_EVENTS = 100_000
MAX_REQUEST_BYTES = 16 * 1024

Range = tuple[int, int]


@record
class ResendRequest:
    id: str
    site: str
    ranges: tuple[Range, ...]


def parse_request(payload: bytes) -> ResendRequest:
    """A request, or DocumentError naming what is wrong (the request is refused whole)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise DocumentError(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise DocumentError(f"not JSON: {exc}") from None
    r = Fields(doc, "")
    schema = r.get("schema", str)
    if schema != Schema.RESEND:
        raise DocumentError(f"schema: expected {Schema.RESEND.value!r}, got {schema!r}")
    raw = r.get("ranges", list)
    if not 0 < len(raw) <= MAX_RANGES:
        raise DocumentError(f"ranges: 1 to {MAX_RANGES} ranges")
    ranges = tuple(merged(_range(item, i) for i, item in enumerate(raw)))  # in any order, overlapping or not
    if sum(b - a + 1 for a, b in ranges) > MAX_EVENTS:
        raise DocumentError(f"ranges: at most {MAX_EVENTS} events in one request")
    return ResendRequest(r.ident("id"), r.ident("site"), ranges)


def _range(item: Any, i: int) -> Range:
    if (
        not isinstance(item, list)
        or len(item) != 2
        or not all(type(n) is int for n in item)
        or not 1 <= item[0] <= item[1] <= 2**63 - 1
    ):
        raise DocumentError(f"ranges[{i}]: expected [first, last], integers with 1 <= first <= last")
    return item[0], item[1]


def merged(ranges: Iterable[Range]) -> list[Range]:
    """Ranges sorted, the overlapping and adjacent ones joined."""
    out: list[Range] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def ranges_of(seqs: Iterable[int]) -> list[Range]:
    """Sorted seqs as ranges: 1 2 3 7 8 -> (1, 3) (7, 8)."""
    out: list[list[int]] = []
    for n in seqs:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        elif not out or n > out[-1][1]:
            out.append([n, n])
    return [(a, b) for a, b in out]


def without(ranges: Iterable[Range], held: Iterable[Range]) -> list[Range]:
    """The parts of ``ranges`` not covered by ``held`` (both sorted, neither overlapping)."""
    out: list[Range] = []
    cover = list(held)
    for a, b in ranges:
        start = a
        for c, d in cover:
            if d < start or c > b:
                continue
            if c > start:
                out.append((start, c - 1))
            start = max(start, d + 1)
            if start > b:
                break
        if start <= b:
            out.append((start, b))
    return out


def answer(request: ResendRequest | None, site: str, at: str, **fields: Any) -> dict[str, Any]:
    """The box's answer on ``events/resent`` (PROTOCOL 5)."""
    return {
        "schema": Schema.RESENT.value,
        "site": site,
        "request": None if request is None else request.id,
        "at": at,
        "resending": 0,
        "pending": 0,
        "gone": [],
        "last_seq": None,
        "error": None,
        **fields,
    }
