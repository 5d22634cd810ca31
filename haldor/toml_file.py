"""Every TOML file Haldor reads (the box's ``haldor.toml``, the bridge's, the fleet's),
checked one way: a section is a frozen dataclass whose fields are its keys (name, type,
default; the values it may take declared with :func:`key`), an unknown key is refused, and
a fault is one line naming the file and the key (``FILE: section.key: what is wrong``).

It imports no more than tomllib and dataclasses: the agent reads its configuration here
before anything else, and its start-up time matters."""

from __future__ import annotations

import tomllib
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from haldor.errors import ConfigError

T = TypeVar("T")

#: how a fault names the type a key expects: the box's words, which its installers read
WORDS: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    float: "a number",
    dict: "a table",
    tuple: "a list",
}
#: the municipality's files (bridge, fleet) have always named Python's types ("expected int")
TYPE_NAMES: Mapping[type, str] = {str: "str", int: "int", bool: "bool", float: "float", dict: "dict", tuple: "list"}


def key(
    default: Any = MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] = (),
    problem: str = "",
) -> Any:
    """One key's declaration: its default (none: the key is required), its bounds or its
    choices; ``problem`` is what a fault says instead of the bounds or the choices."""
    meta = {"low": low, "high": high, "choices": choices, "problem": problem}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def read(path: str | Path) -> dict[str, Any]:
    """The file's TOML as tables; a missing or broken file is one line."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _declared(cls: type) -> dict[str, tuple[Any, Field]]:
    """A section's keys: each field's resolved type and its declaration (kept per class)."""
    known = _DECLARED.get(cls)
    if known is None:
        hints = get_type_hints(cls)
        known = _DECLARED[cls] = {f.name: (hints[f.name], f) for f in fields(cls) if f.init}
    return known


_DECLARED: dict[type, dict[str, tuple[Any, Field]]] = {}


def keys_of(cls: type, where: str) -> list[str]:
    """Every key a section declares, as ``where.key`` (for the documentation's tests)."""
    return [f"{where}.{name}" for name in _declared(cls)]


class Checker:
    """One file's checking: its path names every fault; relative paths are read from its folder."""

    def __init__(self, path: str, words: Mapping[type, str] = WORDS) -> None:
        self.path = path
        self.base = Path(path).parent
        self.words = words

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def only(self, raw: Mapping[str, Any], names: tuple[str, ...]) -> None:
        for name in raw:
            if name not in names:
                raise self.fail(name, "unknown section")

    def section(self, raw: Mapping[str, Any], name: str, cls: type[T]) -> T:
        """``[name]``, absent: every key its default."""
        return self.table(raw.get(name, {}), cls, name)

    def tables(self, raw: Mapping[str, Any], name: str, cls: type[T]) -> tuple[T, ...]:
        """``[[name]]``: each table checked, named ``name[i]``."""
        given = raw.get(name, [])
        if not isinstance(given, list) or not all(isinstance(t, dict) for t in given):
            raise self.fail(name, f"expected [[{name}]] tables")
        return tuple(self.table(t, cls, f"{name}[{i}]") for i, t in enumerate(given))

    def table(self, given: Any, cls: type[T], where: str) -> T:
        """The table as ``cls``: known keys of the right types within their bounds, the
        others their defaults; a required key missing is refused."""
        if not isinstance(given, dict):
            raise self.fail(where, "expected a table")
        declared = _declared(cls)
        for name in given:
            if name not in declared:
                raise self.fail(f"{where}.{name}", "unknown key")
        values = {}
        for name, (hint, decl) in declared.items():
            at = f"{where}.{name}"
            if name in given:
                values[name] = self._typed(given[name], hint, at)
                self._within(values[name], decl.metadata, at)
            elif decl.default is MISSING and decl.default_factory is MISSING:
                raise self.fail(at, "required")
        return cls(**values)

    def _typed(self, value: Any, hint: Any, at: str) -> Any:
        """The value as the declared type: a float takes an integer, a bool is no integer,
        a list becomes a tuple, a table a dict or a section of its own."""
        origin, args = get_origin(hint) or hint, get_args(hint)
        if origin in (Union, types.UnionType):  # ``int | None``: None is the default, never in TOML
            return self._typed(value, next(a for a in args if a is not type(None)), at)
        if isinstance(origin, type) and is_dataclass(origin):
            return self.table(value, origin, at)
        if origin is Literal:  # its values are the choices
            self._within(value, {"choices": args}, at)
            return value
        if origin is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif origin is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif origin is tuple:
            ok = isinstance(value, list)
        elif origin in (str, bool, dict):
            ok = isinstance(value, origin)
        else:
            raise TypeError(f"{at}: {hint} is not a type a TOML key has")
        if not ok:
            raise self.fail(at, f"expected {self.words[origin]}, got {value!r}")
        if origin is float:
            return float(value)
        if origin is tuple:
            return tuple(self._typed(v, args[0], f"{at}[{i}]") for i, v in enumerate(value))
        if origin is dict and args:
            return {k: self._typed(v, args[1], f"{at}.{k}") for k, v in value.items()}
        return value

    def _within(self, value: Any, meta: Mapping[str, Any], at: str) -> None:
        low, high, choices, problem = meta.get("low"), meta.get("high"), meta.get("choices"), meta.get("problem")
        if choices and value not in choices:
            if len(choices) == 2:
                raise self.fail(at, problem or f'must be "{choices[0]}" or "{choices[1]}"')
            raise self.fail(at, problem or f"must be one of {', '.join(repr(c) for c in choices)}")
        if (low is not None and value < low) or (high is not None and value > high):
            if high is not None:
                raise self.fail(at, problem or f"{low} to {high}")
            raise self.fail(at, problem or ("must not be negative" if low == 0 else f"at least {low}"))

    def resolve(self, value: str) -> str:
        """A path relative to the configuration file; URLs as they are."""
        if "://" in value:
            return value
        return str((self.base / value).resolve()) if not Path(value).is_absolute() else value
