"""Haldor's records behave as ``@dataclass(frozen=True, slots=True)`` does, side by side with
it: construction, defaults, keyword-only fields, equality, hashing, repr, immutability,
pickling and copying, pattern matching, and the dataclasses API."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from haldor.records import record


@record
class Read:
    reader: str
    card: str | None = None
    seen: tuple[str, ...] = ()
    tags: list[str] = field(default_factory=list)
    secret: bytes = field(default=b"", repr=False)
    note: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ReadDC:
    reader: str
    card: str | None = None
    seen: tuple[str, ...] = ()
    tags: list[str] = field(default_factory=list)
    secret: bytes = field(default=b"", repr=False)
    note: str = field(default="", compare=False)


@record(kw_only=True)
class Section:
    name: str
    size: int = field(default=3, metadata={"bounds": (1, 10)})


@record
class Empty:
    pass


def test_a_record_is_made_and_shown_as_the_dataclass_is():
    for cls in (Read, ReadDC):
        r = cls("main-in", "uid:04", ("a",), note="x")
        assert (r.reader, r.card, r.seen, r.tags, r.secret, r.note) == ("main-in", "uid:04", ("a",), [], b"", "x")
    assert repr(Read("r", secret=b"k")) == repr(ReadDC("r", secret=b"k")).replace("ReadDC", "Read")
    assert "secret" not in repr(Read("r", secret=b"k"))
    assert Read("a").tags is not Read("a").tags  # a fresh list each time
    assert repr(Empty()) == "Empty()" and Empty() == Empty()


def test_equality_and_hash_follow_the_compared_fields():
    assert Read("a", "c") == Read("a", "c", note="other")
    assert Read("a", "c") != Read("a", "d") and Read("a") != ReadDC("a")
    assert hash(Section(name="a")) == hash(Section(name="a")) != hash(Section(name="a", size=4))
    assert {Section(name="a"): 1}[Section(name="a")] == 1
    for cls in (Read, ReadDC):  # a list inside: unhashable, as with the dataclass
        with pytest.raises(TypeError):
            hash(cls("a"))


def test_a_record_cannot_be_changed():
    r = Read("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.reader = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del r.reader  # type: ignore[misc]
    assert not hasattr(r, "__dict__")


def test_arguments_are_checked_as_a_function_checks_them():
    with pytest.raises(TypeError, match="reader"):
        Read()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Read("a", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Section("x")  # type: ignore[misc]
    assert Section(name="x").size == 3


def test_the_dataclasses_api_works_on_records():
    assert dataclasses.is_dataclass(Read) and [f.name for f in dataclasses.fields(Read)][:2] == ["reader", "card"]
    assert dataclasses.replace(Read("a", "c"), card="d") == Read("a", "d")
    assert dataclasses.asdict(Section(name="x")) == {"name": "x", "size": 3}
    assert dataclasses.fields(Section)[1].metadata["bounds"] == (1, 10)
    match Read("a", "c"):
        case Read(reader, card):
            assert (reader, card) == ("a", "c")


def test_records_pickle_and_copy():
    r = Read("a", "c", ("x",), ["t"], b"k", "n")
    for again in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert again == r and again.secret == b"k" and again.note == "n" and again.tags == ["t"]


def test_what_a_dataclass_refuses_a_record_refuses_when_it_is_made():
    with pytest.raises(TypeError, match="follows default"):

        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="its own __eq__"):

        @record
        class Own:
            a: int

            def __eq__(self, other: object) -> bool:
                return True


def test_a_records_signature_is_known_before_one_is_made():
    @record
    class Fresh:
        door: str
        open: bool = False

    assert str(inspect.signature(Fresh)) == "(door, open=False)"
    assert Fresh("main") == Fresh("main", False) and Fresh.__init__.__module__ == __name__


def test_what_a_record_cannot_do_is_refused_when_it_is_made():
    class Base:
        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        record(type("Later", (Base,), {"__annotations__": {"a": "int"}}))
    with pytest.raises(TypeError, match="self"):
        record(type("Selfish", (), {"__annotations__": {"self": "int"}}))
    with pytest.raises(TypeError, match="InitVar"):
        record(type("Passing", (), {"__annotations__": {"a": "InitVar[int]"}}))
