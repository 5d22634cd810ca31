"""A snapshot read item by item from its JSON text (PROTOCOL 2), each item validated as
it comes, so that the whole document never lives as a JSON tree, dataclasses and rows at
once. The same rules and the same messages as :func:`schedule.parse_snapshot`, with the
field path (``credentials[3].card``); the store inserts each item as it is read and rolls
back on the first fault.

The standard library's decoder reads one value at a time here (``raw_decode``: its C
scanner, no dependency, no tree of the whole document); the text walked between values is
only the document's outer object and arrays.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from haldor.errors import DocumentError
from haldor.records import record

from .fields import Fields
from .model import Association, Booking, Closure, Credential, Policy, Room
from .schedule import (
    SNAPSHOT_SCHEMA,
    check_timezone,
    read_association,
    read_booking,
    read_closure,
    read_credential,
    read_header,
    read_policy,
    read_room,
    read_version,
)

Item = Room | Association | Credential | Booking | Closure
#: the arrays of a snapshot in the order they are checked, with each item's validator
SECTIONS: dict[str, Callable[[Fields], Any]] = {
    "rooms": read_room,
    "associations": read_association,
    "credentials": read_credential,
    "bookings": read_booking,
    "closures": read_closure,
}
_REQUIRED = ("rooms", "associations", "credentials", "bookings")
_WHITESPACE = " \t\n\r"
_decoder = json.JSONDecoder()
#: read from a file at a time: what a snapshot in a file costs in memory besides one item
CHUNK_BYTES = 1 << 20


@record
class SnapshotHead:
    """What a snapshot says besides its items (checked once the whole text is read)."""

    site: str
    version: int
    generated_at: float | None
    timezone: str | None
    policy: Policy | None


class _Text:
    """The document's text under a cursor: whole (a str) or read from a binary file in
    chunks, of which only what is not yet read is kept."""

    __slots__ = ("buf", "pos", "_stream", "_utf8", "_chunk", "eof", "_base")

    def __init__(self, source: str | BinaryIO, chunk: int | None = None) -> None:
        self.pos = 0
        self._base = 0  # characters dropped before buf (for the positions in error messages)
        self._chunk = chunk or CHUNK_BYTES
        if isinstance(source, str):
            self.buf, self._stream, self.eof = source, None, True
        else:
            self.buf, self._stream, self.eof = "", source, False
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def _fill(self, need: int) -> None:
        """At least ``need`` characters after the cursor, unless the text ends first."""
        if self.eof or len(self.buf) - self.pos >= need:
            return
        parts = [self.buf[self.pos :]]
        self._base += self.pos
        have = len(parts[0])
        while have < need:
            data = self._stream.read(max(self._chunk, need)) if self._stream is not None else b""
            part = self._utf8.decode(data, final=not data)
            parts.append(part)
            have += len(part)
            if not data:
                self.eof = True
                break
        self.buf, self.pos = "".join(parts), 0

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), the cursor on it."""
        while True:
            self._fill(1)
            buf, i, n = self.buf, self.pos, len(self.buf)
            while i < n and buf[i] in _WHITESPACE:
                i += 1
            self.pos = i
            if i < n or self.eof:
                return buf[i] if i < n else ""

    def take(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise json.JSONDecodeError(message, self.buf, self.pos)
        self.pos += 1

    def value(self) -> Any:
        """One JSON value at the cursor, parsed by the standard library's C scanner."""
        self.peek()  # the decoder takes no white space before a value
        need = 1 << 16
        while True:
            self._fill(need)
            try:
                value, end = _decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.eof:
                    raise
                need *= 4  # cut by the end of the chunk: read on
                continue
            if end == len(self.buf) and not self.eof:  # a number may go on in the next chunk
                need = len(self.buf) - self.pos + (1 << 16)
                continue
            self.pos = end
            return value

    def error(self, exc: json.JSONDecodeError) -> str:
        """The decoder's message, at the position in the whole text."""
        return f"{exc.msg}: char {self._base + exc.pos}" if self._base else str(exc)


def head(source: str | BinaryIO) -> dict[str, Any] | None:
    """The top-level entries before the first array or object, read without parsing the rest
    (what the retained-snapshot shortcut and the envelope check look at); None when the text
    does not begin as a JSON object."""
    text = _Text(source, chunk=min(CHUNK_BYTES, 1 << 16))
    found: dict[str, Any] = {}
    try:
        more = _open(text)
        while more:
            key = _key(text)
            if text.peek() in ("[", "{"):
                return found
            found[key] = text.value()
            more = _next(text)
    except (ValueError, RecursionError):
        return None
    return found


def _open(text: _Text) -> bool:
    """Into the object; False when it is empty."""
    text.take("{", "Expecting value")
    if text.peek() == "}":
        text.pos += 1
        _end(text)
        return False
    return True


def _key(text: _Text) -> str:
    """A key, the cursor on its value."""
    if text.peek() != '"':
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text.buf, text.pos)
    key = text.value()
    text.take(":", "Expecting ':' delimiter")
    text.peek()
    return str(key)


def _next(text: _Text, close: str = "}") -> bool:
    """After a value: True before the next one, False after the closing bracket."""
    char = text.peek()
    text.pos += 1
    if char == ",":
        return True
    if char == close:
        if close == "}":
            _end(text)
        return False
    text.pos -= 1
    raise json.JSONDecodeError("Expecting ',' delimiter", text.buf, text.pos)


def _end(text: _Text) -> None:
    if text.peek() != "":
        raise json.JSONDecodeError("Extra data", text.buf, text.pos)


class SnapshotReader:
    """Iterate to get each validated item in document order, with its index in its array
    (uniqueness of credentials and bookings is left to the store); then :meth:`finish` checks
    what can only be checked at the end (references named before what they name, required
    arrays, the header) and gives the head. DocumentError names the first fault found."""

    def __init__(self, source: str | BinaryIO) -> None:
        self._text = _Text(source)
        #: the ids of the few rooms and associations, for references; credentials and bookings
        #: are many: their ids are kept unique by the store's primary keys (:func:`duplicate`)
        self._ids: dict[str, set[str]] = {"rooms": set(), "associations": set()}
        self._done: set[str] = set()
        self._rest: dict[str, Any] = {}
        #: references to rooms or associations not read yet: (message, id, section named)
        self._later: list[tuple[str, str, str]] = []

    def __iter__(self) -> Iterator[tuple[int, Item]]:
        text = self._text
        try:
            more = _open(text)
            while more:
                key = _key(text)
                if key in self._done or key in self._rest:
                    raise DocumentError(f"{key}: given twice")
                if key in SECTIONS and text.peek() == "[":
                    yield from self._section(key)
                    self._done.add(key)
                else:
                    self._rest[key] = text.value()
                more = _next(text)
        except RecursionError:
            raise DocumentError("doc: nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise DocumentError(f"doc: not valid JSON ({text.error(exc)})") from None
        except UnicodeDecodeError as exc:
            raise DocumentError(f"doc: not valid JSON ({exc})") from None

    def _section(self, key: str) -> Iterator[tuple[int, Item]]:
        """The array at the cursor, item by item."""
        check = SECTIONS[key]
        text = self._text
        text.pos += 1
        if text.peek() == "]":
            text.pos += 1
            return
        index = 0
        while True:
            item = check(Fields(text.value(), key, index))
            self._admit(key, index, item)
            yield index, item
            index += 1
            if not _next(text, "]"):
                return

    def _admit(self, key: str, index: int, item: Item) -> None:
        """Uniqueness and references, as far as they can be checked now."""
        if key in self._ids:
            seen = self._ids[key]
            if item.id in seen:  # type: ignore[union-attr]
                raise DocumentError(f"{key}[{index}].id: duplicate id {item.id!r}")  # type: ignore[union-attr]
            seen.add(item.id)  # type: ignore[union-attr]
        if isinstance(item, Credential) and item.association is not None:
            self._refer(f"credentials[{index}].association: unknown association", item.association, "associations")
        elif isinstance(item, Booking):
            self._refer(f"bookings[{index}].room: unknown room", item.room, "rooms")
            self._refer(f"bookings[{index}].association: unknown association", item.association, "associations")
        elif isinstance(item, Closure) and item.room is not None:
            self._refer(f"closures[{index}].room: unknown room", item.room, "rooms")

    def _refer(self, message: str, ident: str, section: str) -> None:
        if section in self._done:
            if ident not in self._ids[section]:
                raise DocumentError(f"{message} {ident!r}")
        else:
            self._later.append((message, ident, section))

    def finish(self) -> SnapshotHead:
        for name in _REQUIRED:
            if name not in self._done and name not in self._rest:
                raise DocumentError(f"{name}: missing")
        for name in SECTIONS:  # a section that is not an array: the message of the tree's reader
            if name in self._rest:
                Fields(self._rest, "").items(name, required=False)
        for message, ident, section in self._later:
            if ident not in self._ids[section]:
                raise DocumentError(f"{message} {ident!r}")
        r = read_header(self._rest, SNAPSHOT_SCHEMA)
        timezone = r.get("timezone", str, required=False)
        policy = r.sub("policy")
        return SnapshotHead(
            site=r.obj["site"],
            version=read_version(r, "version"),
            generated_at=r.instant("generated_at", required=False, nullable=True),
            timezone=None if timezone is None else check_timezone(timezone, "timezone"),
            policy=None if policy is None else read_policy(policy),
        )


def streamable(first: dict[str, Any] | None) -> bool:
    """A snapshot whose header comes before its arrays (as every generator writes it): read
    item by item. Anything else is parsed whole, with the same rules."""
    return (
        first is not None
        and first.get("schema") == SNAPSHOT_SCHEMA
        and isinstance(first.get("site"), str)
        and type(first.get("version")) is int
    )


def duplicate(section: str, index: int, ident: str) -> DocumentError:
    """What a store that found ``ident`` twice in ``section`` says (the message of the tree's reader)."""
    return DocumentError(f"{section}[{index}].id: duplicate id {ident!r}")
