"""A snapshot read and applied item by item: the same rules and messages as the whole-tree
reader, everything rolled back on a fault, whatever the order of the document's keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haldor.access.schedule import parse_snapshot
from haldor.access.schedule_stream import SnapshotReader, head, streamable
from haldor.errors import DocumentError
from haldor.store import Store, intake

from .helpers import CARD, booking, snapshot


def load(store: Store, text: str) -> intake.Outcome:
    return intake.receive(store, text, keys={}, require_signature=False, now=0.0)


def tables(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {t: list(store.iter_table(t)) for t in ("rooms", "room_doors", "associations", "credentials", "bookings", "closures")}


def reordered(doc: dict[str, Any], *first: str) -> str:
    """The same document with ``first`` keys at its start (the header may come last)."""
    return json.dumps({**{k: doc[k] for k in first}, **doc})


BAD = {
    "bookings[0].end": snapshot(bookings=[booking("x", "2026-11-25T17:00:00+01:00", "2026-11-25T16:00:00+01:00")]),
    "credentials[1].id: duplicate id 'c1001'": snapshot(
        credentials=[snapshot()["credentials"][0], {**snapshot()["credentials"][0], "card": "uid:04A1B2C3"}]
    ),
    "bookings[0].room: unknown room 'cellar'": snapshot(
        bookings=[booking("x", "2026-11-25T17:00:00+01:00", "2026-11-25T18:00:00+01:00", room="cellar")]
    ),
    "timezone: unknown time zone 'Mars/Base'": snapshot(timezone="Mars/Base"),
    "credentials: expected list, got object": snapshot(credentials={}),
}


@pytest.mark.parametrize("fault", BAD)
def test_the_same_fault_and_message_as_the_whole_tree(store, fault):
    text = json.dumps(BAD[fault])
    with pytest.raises(DocumentError) as whole:
        parse_snapshot(json.loads(text))
    assert fault in str(whole.value)
    load(store, json.dumps(snapshot()))
    before = tables(store)
    outcome = load(store, text.replace('"version": 42', '"version": 43'))
    assert outcome.status == "rejected" and outcome.message == str(whole.value)
    assert tables(store) == before and store.version == 42


def test_a_reference_before_what_it_names_is_checked_at_the_end(store):
    doc = snapshot()
    text = reordered(doc, "schema", "site", "version", "bookings", "credentials")  # before rooms and associations
    assert streamable(head(text))
    assert load(store, text).status == "applied"
    lost = snapshot(43, associations=[{"id": "a18", "name": "B"}], bookings=[])
    broken = reordered(lost, "schema", "site", "version", "credentials")
    outcome = load(store, broken)
    assert outcome.status == "rejected" and outcome.message == "credentials[0].association: unknown association 'a17'"
    assert store.version == 42


def test_a_header_after_the_arrays_is_parsed_whole_with_the_same_result(store):
    text = reordered(snapshot(), "rooms", "schema")
    assert not streamable(head(text))
    assert load(store, text).status == "applied"
    assert [c["id"] for c in store.iter_table("credentials")] == ["c1001", "c1002", "c9000"]


def test_the_retained_snapshot_already_applied_is_not_read_again(store):
    load(store, json.dumps(snapshot()))
    outcome = load(store, json.dumps(snapshot()) + " x")  # its arrays are never looked at
    assert outcome.status == "stale"


def test_an_array_given_twice_and_trailing_text_are_refused(store):
    text = json.dumps(snapshot())
    with pytest.raises(DocumentError, match="credentials: given twice"):
        list(SnapshotReader(text[:-1] + ', "credentials": []}'))
    outcome = load(store, text + " x")
    assert outcome.status == "rejected" and "not valid JSON" in outcome.message and store.version is None


def test_streamed_and_whole_tree_store_the_same_rows(tmp_path):
    from haldor.access.model import Policy

    from .helpers import SITE

    a = Store.open(tmp_path / "a", SITE, "Europe/Copenhagen", Policy())
    b = Store.open(tmp_path / "b", SITE, "Europe/Copenhagen", Policy())
    try:
        b._secret = a._secret  # the same hashes
        b._card_mac, b._pin_mac = a._card_mac, a._pin_mac
        load(a, json.dumps(snapshot()))
        b.schedule.apply(parse_snapshot(snapshot()), 0.0)
        assert tables(a) == tables(b)
        assert a.schedule.facts("main", 1764088200.0, card=CARD) == b.schedule.facts("main", 1764088200.0, card=CARD)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_a_snapshot_in_a_file_is_read_in_chunks_with_the_same_result(tmp_path, monkeypatch, chunk):
    from haldor.access import schedule_stream

    monkeypatch.setattr(schedule_stream, "CHUNK_BYTES", chunk)
    doc = snapshot(rooms=[*snapshot()["rooms"], {"id": "hall-ü", "name": "Hallen æøå " * 20, "doors": []}])
    doc["rooms"][-1]["id"] = "hall-u"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2))
    with path.open("rb") as f:
        items = [item for _, item in SnapshotReader(f)]
    assert [getattr(i, "id", None) for i in items[:3]] == ["gym-a", "gym-b", "hall-u"]
    assert items[2].name == "Hallen æøå " * 20
    whole = parse_snapshot(doc)
    assert items == [*whole.rooms, *whole.associations, *whole.credentials, *whole.bookings, *whole.closures]


def test_a_fault_in_a_file_is_named_as_in_memory(tmp_path, monkeypatch):
    from haldor.access import schedule_stream

    monkeypatch.setattr(schedule_stream, "CHUNK_BYTES", 16)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD["bookings[0].end"]))
    with path.open("rb") as f, pytest.raises(DocumentError, match=r"^bookings\[0\]\.end: must be after start$"):
        list(SnapshotReader(f))
    path.write_text(json.dumps(snapshot())[:-40])
    with path.open("rb") as f, pytest.raises(DocumentError, match="not valid JSON"):
        list(SnapshotReader(f))


@pytest.mark.parametrize(("section", "at", "again"), [("credentials", 1501, 3), ("bookings", 7, 2)])
def test_a_duplicate_id_is_named_by_its_index_in_any_batch(store, section, at, again):
    """Credentials and bookings are many: their ids are kept unique by the store's primary
    keys, and the message is the tree reader's, with the index of the second one."""
    base = snapshot()
    template = base[section][0]
    items = [{**template, "id": f"x{i}"} for i in range(1600)]
    if section == "credentials":
        for i, item in enumerate(items):
            item["card"] = f"uid:04{i:012X}"
    items[at]["id"] = items[again]["id"]
    doc = snapshot(**{section: items})
    with pytest.raises(DocumentError) as whole:
        parse_snapshot(doc)
    outcome = load(store, json.dumps(doc))
    assert outcome.status == "rejected" and outcome.message == str(whole.value) == f"{section}[{at}].id: duplicate id 'x{again}'"
    assert store.version is None and list(store.iter_table(section)) == []
