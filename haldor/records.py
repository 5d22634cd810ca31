"""Haldor's records: frozen, slotted dataclasses, made without compiling code at import.

CPython 3.11's ``@dataclass`` writes five or six methods of every class as source text and
compiles them each time its module is imported: 0.5 to 1 ms a class, about 40 ms of the 74
records `haldor run` makes before its first decision (a Pi 4 is 3 to 5 times slower). A
record leaves its fields, defaults, ``kw_only``, metadata and slots to :mod:`dataclasses`, so
``fields``, ``replace`` and ``asdict`` work on it as on any dataclass; its ``__eq__``,
``__hash__``, ``__repr__``, pickling and frozen ``__setattr__`` are closures over its field
names (nothing compiled), and only its ``__init__`` is compiled, once, when first called.

    @record
    class CardRead:
        reader: str
        card: str

Mutable state (a door's timers, a batch being filled) stays a plain ``@dataclass``. A record's
subclass is a record: to :mod:`dataclasses` it is not frozen (``__dataclass_params__``), so a
frozen dataclass on it is refused at import and a plain one cannot be made.
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T", bound=type)

#: what a field with a ``default_factory`` is given when its argument is left out
_FACTORY = object()


@overload
def record(cls: T, /) -> T: ...


@overload
def record(*, kw_only: bool = False) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: Any = None, /, *, kw_only: bool = False) -> Any:
    """``@record`` or ``@record(kw_only=True)``: as ``@dataclass(frozen=True, slots=True)``."""

    def make(cls: type) -> type:
        _refuse(cls)
        if not cls.__doc__:  # what @dataclass writes, without the signature it would compute
            declared = ", ".join(f"{name}: {kind}" for name, kind in vars(cls).get("__annotations__", {}).items())
            cls.__doc__ = f"{cls.__name__}({declared})"
        made: type = dataclasses.dataclass(cls, init=False, repr=False, eq=False, kw_only=kw_only, slots=True)
        fields = dataclasses.fields(made)
        _check_order(made, fields)
        for name, method in _methods(made, fields).items():
            method.__qualname__ = f"{made.__qualname__}.{name}"
            setattr(made, name, method)
        made.__signature__ = _Signature(made)  # type: ignore[attr-defined]
        return made

    return make if cls is None else make(cls)


def _refuse(cls: type) -> None:
    """What ``@dataclass`` would do and a record does not, refused as the class is made."""
    own = {"__init__", "__setattr__", "__delattr__", "__eq__", "__hash__", "__repr__"} & set(vars(cls))
    if own:
        raise TypeError(f"{cls.__qualname__}: a record makes its own {', '.join(sorted(own))}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__qualname__}: a record has no __post_init__ (its fields are what it is given)")
    annotations = vars(cls).get("__annotations__", {})
    if "self" in annotations or any("InitVar" in str(kind) for kind in annotations.values()):
        raise TypeError(f"{cls.__qualname__}: a record has no field named self and no InitVar")


def _methods(cls: type, fields: tuple[dataclasses.Field, ...]) -> dict[str, Callable[..., Any]]:
    compared = _getter(tuple(f.name for f in fields if f.compare))
    hashed = _getter(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    shown = tuple(f.name for f in fields if f.repr)
    every = _getter(tuple(f.name for f in fields))

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _compile(cls)(self, *args, **kwargs)

    __init__.compiles = True  # type: ignore[attr-defined]

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self: Any) -> tuple:  # pickled to and from the schedule's and the bridge's child processes
        return every(self)

    def __setstate__(self: Any, state: tuple) -> None:
        for f, value in zip(fields, state, strict=True):
            object.__setattr__(self, f.name, value)

    return {
        "__init__": __init__,
        "__eq__": __eq__,
        "__hash__": __hash__,
        "__repr__": __repr__,
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__getstate__": __getstate__,
        "__setstate__": __setstate__,
    }


def _compile(cls: type) -> Callable[..., None]:
    """The record's own ``__init__``, compiled and put in place of the one that compiles it."""
    init = cls.__dict__["__init__"]
    if getattr(init, "compiles", False):  # else compiled already (by another thread, or for the signature)
        init = _compiled_init(cls, dataclasses.fields(cls))
        type.__setattr__(cls, "__init__", init)
    return init


class _Signature:
    """``inspect.signature(record)`` (hypothesis, help()) even before a record was first made."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __get__(self, obj: Any, owner: type) -> inspect.Signature:
        signature = inspect.signature(_compile(self.cls))
        return signature.replace(parameters=tuple(signature.parameters.values())[1:])


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple]:
    """The named attributes of a record, as one tuple."""
    if not names:
        return lambda obj: ()
    get = attrgetter(*names)
    return get if len(names) > 1 else lambda obj: (get(obj),)


def _check_order(cls: type, fields: tuple[dataclasses.Field, ...]) -> None:
    """What ``@dataclass`` refuses when it writes ``__init__``, refused as the class is made."""
    seen_default = None
    for f in fields:
        if not f.init or f.kw_only:
            continue
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            seen_default = f.name
        elif seen_default is not None:
            raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument {seen_default!r}")


def _compiled_init(cls: type, fields: tuple[dataclasses.Field, ...]) -> Callable[..., None]:
    """The ``__init__`` ``@dataclass(frozen=True)`` would write (positional fields, then the
    keyword-only ones), compiled when the record is first made."""
    names: dict[str, Any] = {"__name__": cls.__module__, "__set": object.__setattr__, "__FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        default, factory = f.default is not dataclasses.MISSING, f.default_factory is not dataclasses.MISSING
        names[f"__d{i}"], names[f"__f{i}"] = f.default, f.default_factory
        if f.init:
            (keyword if f.kw_only else positional).append(f.name + (f"=__d{i}" if default else "=__FACTORY" if factory else ""))
            value = f"__f{i}() if {f.name} is __FACTORY else {f.name}" if factory else f.name
        elif default or factory:
            value = f"__d{i}" if default else f"__f{i}()"
        else:
            continue
        body.append(f"    __set(self, {f.name!r}, {value})\n")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({params}):\n{''.join(body) or '    pass' + chr(10)}", names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
