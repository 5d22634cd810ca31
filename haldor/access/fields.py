"""Typed access to one JSON object of a document, with the path of each field for the
error that rejects the document (``bookings[3].end``): used by every validator of the
box's documents (schedules, deltas, commands, requests for events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, overload

from haldor.errors import DocumentError
from haldor.protocol import IDENTIFIER

#: PROTOCOL: 1-64 characters from [A-Za-z0-9._:-]; always used with fullmatch (``$`` would
#: also match before a final newline).
ID = IDENTIFIER
_MISSING = object()


class Fields:
    """Typed access to one JSON object, with the path for error messages."""

    __slots__ = ("obj", "_base", "_index")

    def __init__(self, obj: Any, path: str, index: int | None = None) -> None:
        self.obj = obj
        self._base = path
        self._index = index  # the path of a list item is only spelled out for an error
        if not isinstance(obj, dict):
            raise DocumentError(f"{self.path or 'document'}: expected an object")

    @property
    def path(self) -> str:
        return self._base if self._index is None else f"{self._base}[{self._index}]"

    def _where(self, key: str) -> str:
        path = self.path
        return f"{path}.{key}" if path else key

    def get(
        self, key: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None, nullable: bool = False
    ) -> Any:
        value = self.obj.get(key, _MISSING)
        if type(value) is kind:  # the common case, first: a snapshot has a million fields
            return value
        if value is _MISSING:
            if required:
                raise DocumentError(f"{self._where(key)}: missing")
            return default
        if value is None and nullable:
            return None
        # bool is an int in Python; a JSON true is never a number here
        if isinstance(value, bool) and kind in (int, (int, float)):
            raise DocumentError(f"{self._where(key)}: expected {_kind_name(kind)}, got boolean")
        if not isinstance(value, kind):
            raise DocumentError(f"{self._where(key)}: expected {_kind_name(kind)}, got {_json_type(value)}")
        return value

    @overload
    def ident(self, key: str) -> str: ...
    @overload
    def ident(self, key: str, *, required: bool = ..., nullable: bool = ...) -> str | None: ...

    def ident(self, key: str, *, required: bool = True, nullable: bool = False) -> str | None:
        value: str | None = self.get(key, str, required=required, nullable=nullable)
        if value is None:
            return None
        if not ID.fullmatch(value):
            raise DocumentError(f"{self._where(key)}: not an identifier (1-64 of A-Z a-z 0-9 . _ : -)")
        return value

    @overload
    def instant(self, key: str) -> float: ...
    @overload
    def instant(self, key: str, *, required: bool = ..., nullable: bool = ...) -> float | None: ...

    def instant(self, key: str, *, required: bool = True, nullable: bool = False) -> float | None:
        value: str | None = self.get(key, str, required=required, nullable=nullable)
        if value is None:
            return None
        try:
            return _instant(value)
        except ValueError as exc:  # the path is spelled out only for an error
            raise DocumentError(f"{self._where(key)}: {exc}") from None

    def items(self, key: str, *, required: bool = True) -> list[Fields]:
        values = self.get(key, list, required=required, default=[])
        where = self._where(key)
        return [Fields(v, where, i) for i, v in enumerate(values)]

    def sub(self, key: str) -> Fields | None:
        value = self.get(key, dict, required=False)
        return None if value is None else Fields(value, self._where(key))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}
    if isinstance(kind, tuple):
        return "number" if set(kind) == {int, float} else " or ".join(names[k] for k in kind)
    return names[kind]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _kind_name(type(value)) if type(value) in (str, int, float, bool, list, dict) else type(value).__name__


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None or ("T" not in text and "t" not in text):
        raise ValueError(f"an RFC 3339 time with an offset is required: {text!r}")
    return moment.timestamp()
