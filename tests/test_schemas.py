"""The JSON Schemas of haldor/schemas say what the agent does: every example of the
protocol reference and every message the real agent produces validates, and what the
agent's own parser refuses the schema refuses too."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator

from haldor import __version__, schemas
from haldor.access.commands import parse_command
from haldor.access.envelope import seal
from haldor.access.schedule import parse_delta, parse_document, parse_snapshot
from haldor.agent.link import offline_status
from haldor.agent.messages import Command, ContactChanged, Tick
from haldor.clock import FakeClock
from haldor.drivers.base import CardRead, PinRead, ReaderFault
from haldor.errors import DocumentError
from haldor.protocol import DOOR_ACTIONS, Action, Event, Leaf, Mode, Reason, Role, Schema
from haldor.store import intake

from .broker import Broker, Publisher, Watcher
from .helpers import CARD, CPH, SITE, booking, snapshot, wait_for
from .rig import Rig, around_now, public_key, step

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
PARSERS: dict[str, Callable[[Any], object]] = {"schedule": parse_snapshot, "delta": parse_delta, "command": parse_command}


def _branch_types(event_schema: dict) -> set[str]:
    return {branch["if"]["properties"]["type"]["const"] for branch in event_schema["allOf"]}


def _branch(event_schema: dict, kind: str) -> dict:
    return next(b["then"] for b in event_schema["allOf"] if b["if"]["properties"]["type"]["const"] == kind)


# --- the schemas themselves ---------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.NAMES)
def test_every_schema_is_a_draft_2020_12_schema_named_by_its_id(name):
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:haldor:schema:{name}"
    assert schema["title"] and schema["description"]
    assert schemas.path(name).name == f"{name}.schema.json"


def test_the_folder_holds_the_named_schemas_and_no_other():
    folder = Path(schemas.__file__).parent
    assert {p.name for p in folder.glob("*.json")} == {f"{name}.schema.json" for name in schemas.NAMES}


def test_every_schema_id_and_topic_has_its_schema():
    assert {schemas.name_for_schema(s) for s in Schema} == {
        "schedule",
        "delta",
        "command",
        "event",
        "status",
        "resend",
        "resent",
        "alert",
    }
    assert {leaf.value: schemas.name_for_leaf(leaf) for leaf in Leaf} == {
        "schedule": "envelope",
        "schedule/delta": "envelope",
        "cmd": "envelope",
        "cmd/result": "command-result",
        "sync/request": "sync-request",
        "events": "event",
        "events/resend": "resend",
        "events/resent": "resent",
        "status": "status",
    }
    assert schemas.name_for_schema("haldor.schedule/2") is None and schemas.name_for_leaf("nothing") is None


def test_errors_name_each_field_as_the_agent_does():
    doc = snapshot()
    doc["bookings"][0]["end"] = "2026-11-25T19:00:00"
    doc["credentials"][1]["card"] = "uid:0102030405"
    del doc["site"]
    found = schemas.errors("schedule", doc)
    assert found == sorted(found) and len(found) == 3
    assert found[0] == "(document): 'site' is a required property"
    assert found[1].startswith("bookings[0].end: '2026-11-25T19:00:00' does not match")
    assert found[2].startswith("credentials[1].card: 'uid:0102030405' does not match")  # not "not of type 'null'"
    assert schemas.errors("schedule", snapshot()) == []
    assert schemas.json_path([]) == "(document)" and schemas.json_path(["delete", "bookings", 0]) == "delete.bookings[0]"


# --- the enums are protocol.py's ----------------------------------------------------------


def test_every_event_type_has_its_branch():
    event = schemas.load("event")
    assert set(event["properties"]["type"]["enum"]) == {e.value for e in Event}
    assert _branch_types(event) == {e.value for e in Event}
    assert len(event["allOf"]) == len(Event)


def test_actions_reasons_roles_and_modes_are_the_protocols():
    command, event, status, schedule = (schemas.load(n) for n in ("command", "event", "status", "schedule"))
    actions = {a.value for a in Action}
    assert set(command["properties"]["action"]["enum"]) == actions
    assert set(command["if"]["properties"]["action"]["enum"]) == {a.value for a in DOOR_ACTIONS}
    assert set(_branch(event, "command.result")["properties"]["action"]["enum"]) == actions | {None}
    assert set(_branch(event, "access.denied")["properties"]["reason"]["enum"]) == {r.value for r in Reason}
    assert set(schedule["$defs"]["credential"]["properties"]["role"]["enum"]) == {r.value for r in Role}
    modes = {m.value for m in Mode}
    assert set(status["$defs"]["door"]["properties"]["mode"]["enum"]) == modes
    assert set(_branch(event, "door.mode")["properties"]["reason"]["enum"]) == modes
    assert set(status["properties"]["mode"]["enum"]) == {Mode.NORMAL, Mode.LOCKDOWN}


# --- the protocol reference's examples ----------------------------------------------------


def _examples() -> list[tuple[int, str]]:
    """Every ```json block of docs/protocol.md, with its line number."""
    return [
        (PROTOCOL[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"^```json\n(.*?)^```$", PROTOCOL, re.M | re.S)
    ]


def _schema_for(doc: Any) -> str:
    """Which schema a document is for, told by its content."""
    assert isinstance(doc, dict)
    if "schema" in doc:
        name = schemas.name_for_schema(doc["schema"])
        assert name is not None, doc["schema"]
        return name
    keys = set(doc)
    if keys >= {"kid", "sig"} and keys & {"doc", "sealed"}:  # in clear, or sealed to the site
        return "envelope"
    if keys >= {"id", "ok", "error", "at"}:
        return "command-result"
    assert keys == {"site", "have_version"}, keys
    return "sync-request"


def test_the_reference_has_examples_of_every_document_kind():
    kinds = {_schema_for(json.loads(text)) for _, text in _examples()}
    assert kinds >= {"envelope", "schedule", "delta", "command", "command-result", "event", "status"}


@pytest.mark.parametrize("line, text", _examples(), ids=[f"line{line}" for line, _ in _examples()])
def test_every_example_of_the_reference_validates(line, text):
    doc = json.loads(text)  # a block with placeholders would fail here: examples are real JSON
    name = _schema_for(doc)
    assert schemas.errors(name, doc) == [], f"docs/protocol.md line {line}"
    if name in PARSERS:
        PARSERS[name](doc)  # and the agent takes it
    if name == "envelope" and "doc" in doc:  # a sealed one opens only with its box's key
        inner = json.loads(doc["doc"])
        inner_name = _schema_for(inner)
        assert schemas.errors(inner_name, inner) == []
        PARSERS[inner_name](inner)


def test_the_bundled_sample_schedule_validates():
    doc = json.loads((ROOT / "haldor" / "samples" / "schedule.json").read_text(encoding="utf-8"))
    assert schemas.errors("schedule", doc) == []
    parse_snapshot(doc)


def test_a_sealed_document_is_a_valid_envelope():
    envelope = seal(snapshot(), "bookings-2026", Ed25519PrivateKey.generate())
    assert schemas.errors("envelope", envelope) == []
    assert schemas.errors("envelope", {**envelope, "sig": envelope["sig"][:-4]}) != []  # not 64 bytes


# --- the schema refuses what the agent refuses, and takes what it takes ---------------------


#: as a value of _set: the field is removed
DELETE = object()


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Change one field (``bookings.0.start``); ``value`` DELETE removes it."""

    def change(doc: dict) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if value is DELETE:
            del target[key]
        else:
            target[key] = value

    return change


#: (what, the field the refusal names, the change): each refused by the schema and by parse_snapshot
SNAPSHOT_REFUSED = [
    ("missing site", "site", _set("site", DELETE)),
    ("wrong schema", "schema", _set("schema", "haldor.schedule/2")),
    ("missing bookings", "bookings", _set("bookings", DELETE)),
    ("time without offset", "bookings[0].start", _set("bookings.0.start", "2026-11-25T17:00:00")),
    ("time with a space", "bookings[0].end", _set("bookings.0.end", "2026-11-25 19:00:00+01:00")),
    ("not a time", "generated_at", _set("generated_at", "yesterday")),
    ("booking status not a string", "bookings[0].status", _set("bookings.0.status", 1)),
    ("booking title null", "bookings[0].title", _set("bookings.0.title", None)),
    ("unlocked_during not a boolean", "bookings[0].unlocked_during", _set("bookings.0.unlocked_during", "yes")),
    ("identifier with a space", "bookings[0].id", _set("bookings.0.id", "b 881")),
    ("identifier with a final newline", "site", _set("site", f"{SITE}\n")),
    ("identifier too long", "rooms[0].id", _set("rooms.0.id", "r" * 65)),
    ("door not an identifier", "rooms[0].doors[1]", _set("rooms.0.doors.1", "gym a")),
    ("uid card of 5 bytes", "credentials[0].card", _set("credentials.0.card", "uid:0102030405")),
    ("card in lower case", "credentials[0].card", _set("credentials.0.card", "uid:04a1b2c3d4e5f6")),
    ("wiegand card with a leading zero", "credentials[0].card", _set("credentials.0.card", "wg26:08405024")),
    ("pin of 3 digits", "credentials[0].pin", _set("credentials.0.pin", "482")),
    ("pin of 9 digits", "credentials[0].pin", _set("credentials.0.pin", "123456789")),
    ("credential without card or pin", "credentials[1]", _set("credentials.1.card", None)),
    ("member without association", "credentials[0].association", _set("credentials.0.association", None)),
    ("unknown role", "credentials[0].role", _set("credentials.0.role", "janitor")),
    ("version -1", "version", _set("version", -1)),
    ("version past 2**53-1", "version", _set("version", 2**53)),
    ("version a boolean", "version", _set("version", True)),
    ("version a string", "version", _set("version", "42")),
    ("timezone null", "timezone", _set("timezone", None)),
    ("policy null", "policy", _set("policy", None)),
    ("negative grace", "policy.grace_before_min", _set("policy.grace_before_min", -1)),
    ("closures null", "closures", _set("closures", None)),
    ("closure without end", "closures[0]", _set("closures.0.end", DELETE)),
    ("empty document", "schema", lambda doc: doc.clear()),
]

#: changes both take
SNAPSHOT_TAKEN = [
    ("unknown fields", _set("extension", {"anything": [1, 2]})),
    ("unknown field in an item", _set("bookings.0.colour", "red")),
    ("caretaker without association", _set("credentials.2.association", DELETE)),
    ("pin only", _set("credentials.0.card", DELETE)),
    ("no closures", _set("closures", DELETE)),
    ("no policy, generated_at, timezone", lambda doc: [doc.pop(k) for k in ("policy", "generated_at", "timezone")]),
    ("Z, lower-case t and a fraction", _set("bookings.0.start", "2026-11-25t16:00:00.5Z")),
    ("a wiegand card", _set("credentials.0.card", "wg26:8405024")),
    ("an em card", _set("credentials.0.card", "em:0A0B0C0D0F")),
    ("a 10-byte uid", _set("credentials.0.card", "uid:0102030405060708090A")),
    ("version 2**53-1", _set("version", 2**53 - 1)),
    ("version 0", _set("version", 0)),
]


@pytest.mark.parametrize("what, field, change", SNAPSHOT_REFUSED, ids=[c[0] for c in SNAPSHOT_REFUSED])
def test_what_the_agent_refuses_in_a_snapshot_the_schema_refuses(what, field, change):
    doc = snapshot()
    change(doc)
    found = schemas.errors("schedule", doc)
    assert found, what
    assert any(field in line for line in found), found
    with pytest.raises(DocumentError) as refused:
        parse_snapshot(doc)
    assert field in str(refused.value)


@pytest.mark.parametrize("what, change", SNAPSHOT_TAKEN, ids=[c[0] for c in SNAPSHOT_TAKEN])
def test_what_the_agent_takes_in_a_snapshot_the_schema_takes(what, change):
    doc = snapshot()
    change(doc)
    assert schemas.errors("schedule", doc) == [], what
    parse_snapshot(doc)


@pytest.mark.parametrize(
    "what, said, change",
    [
        ("a duplicate id", "unique", lambda doc: doc["bookings"].append(copy.deepcopy(doc["bookings"][0]))),
        ("an unknown room", "is in the document", _set("bookings.0.room", "gym-z")),
        ("an end before the start", "ends after it starts", _set("bookings.0.end", "2026-11-25T16:00:00+01:00")),
        (
            "valid_until before valid_from",
            "valid_until is not before valid_from",
            _set("credentials.0.valid_from", "2027-07-01T00:00:00+02:00"),
        ),
        ("an unknown time zone", "known IANA zone", _set("timezone", "Europe/Valby")),
        ("a date that does not exist", "no 30 February", _set("bookings.0.start", "2026-02-30T17:00:00+01:00")),
        ("an integer with a fraction", "not 15.0", _set("version", 42.0)),
    ],
)
def test_what_only_the_agent_refuses_is_named_in_the_description(what, said, change):
    """No schema can say these: the schema takes them, the agent does not, and the
    schema's description tells the integrator so."""
    doc = snapshot()
    change(doc)
    assert schemas.errors("schedule", doc) == []
    with pytest.raises(DocumentError):
        parse_snapshot(doc)
    description = schemas.load("schedule")["description"]
    assert "Also checked by the agent" in description and said in description


def _delta(**changes: Any) -> dict:
    doc = {
        "schema": Schema.DELTA.value,
        "site": SITE,
        "base_version": 42,
        "version": 43,
        "upsert": {"bookings": [booking("b9", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00")], "closures": None},
        "delete": {"credentials": ["c1001"]},
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "what, doc, taken",
    [
        ("the example", _delta(), True),
        ("only the header", {k: v for k, v in _delta().items() if k not in ("upsert", "delete")}, True),
        ("closures replaced", _delta(upsert={"closures": []}), True),
        ("missing base_version", {k: v for k, v in _delta().items() if k != "base_version"}, False),
        ("upsert null", _delta(upsert=None), False),
        ("delete null", _delta(delete=None), False),
        ("a deleted id with a space", _delta(delete={"bookings": ["b 1"]}), False),
        ("an upserted booking without end", _delta(upsert={"bookings": [{"id": "b9", "room": "gym-a"}]}), False),
        ("upserted bookings null", _delta(upsert={"bookings": None}), False),
        ("another schema", _delta(schema=Schema.SNAPSHOT.value), False),
    ],
)
def test_the_schema_and_the_agent_agree_on_deltas(what, doc, taken):
    found = schemas.errors("delta", doc)
    if taken:
        assert found == [], what
        parse_delta(doc)
    else:
        assert found, what
        with pytest.raises(DocumentError):
            parse_delta(doc)


def _command(**changes: Any) -> dict:
    doc = {
        "schema": Schema.COMMAND.value,
        "id": "7b0c2f9e",
        "site": SITE,
        "action": "unlock",
        "door": "main",
        "duration_s": 10,
        "issued_at": "2026-11-25T17:00:00+01:00",
        "expires_at": "2026-11-25T17:05:00+01:00",
        "by": "operator-12",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not DELETE}


@pytest.mark.parametrize(
    "what, doc, taken",
    [
        ("the example", _command(), True),
        ("a fractional duration", _command(duration_s=0.5), True),
        ("a day", _command(duration_s=86400), True),
        ("no duration", _command(duration_s=DELETE), True),
        ("a site action without door", _command(action="lockdown", door=DELETE, duration_s=None), True),
        ("a site action with door null", _command(action="resync", door=None), True),
        ("a site action naming a door", _command(action="lift_lockdown", door="main"), False),
        ("a reason of two lines", _command(reason="a\nb"), False),
        ("unknown fields", _command(ticket=4711), True),
        ("a door action without door", _command(action="lock", door=DELETE), False),
        ("a door action with door null", _command(action="hold_open", door=None), False),
        ("a door that is no identifier", _command(door="main door"), False),
        ("unknown action", _command(action="open_sesame"), False),
        ("duration 0", _command(duration_s=0), False),
        ("duration past a day", _command(duration_s=86401), False),
        ("duration a boolean", _command(duration_s=True), False),
        ("expires_at missing", _command(expires_at=DELETE), False),
        ("issued_at without offset", _command(issued_at="2026-11-25T17:00:00"), False),
        ("id with a space", _command(id="7b0c 2f9e"), False),
        ("by a number", _command(by=12), False),
        ("by longer than 200 characters", _command(by="x" * 201), False),
    ],
)
def test_the_schema_and_the_agent_agree_on_commands(what, doc, taken):
    found = schemas.errors("command", doc)
    if taken:
        assert found == [], what
        parse_command(doc)
    else:
        assert found, what
        with pytest.raises(DocumentError):
            parse_command(doc)


@pytest.mark.parametrize(
    "doc, valid",
    [
        ({"id": "7b0c2f9e", "ok": True, "error": None, "at": "2026-11-25T17:00:01.250+01:00"}, True),
        ({"id": None, "ok": False, "error": "payload: not valid JSON", "at": "2026-11-25T17:00:01.250+01:00"}, True),
        ({"id": "7b0c2f9e", "ok": True, "error": "expired", "at": "2026-11-25T17:00:01.250+01:00"}, False),
        ({"id": "7b0c2f9e", "ok": False, "error": None, "at": "2026-11-25T17:00:01.250+01:00"}, False),
        ({"id": "7b0c2f9e", "ok": True, "error": None}, False),
    ],
)
def test_a_command_result_is_ok_exactly_when_it_has_no_error(doc, valid):
    assert (schemas.errors("command-result", doc) == []) is valid


def _event(kind: str, /, **fields: Any) -> dict:
    doc = {
        "schema": Schema.EVENT.value,
        "id": "0f8e3c1a-5b7d-4e2f-9a61-3c4d5e6f7a8b",
        "site": SITE,
        "seq": 7,
        "at": "2026-11-25T17:02:11.125+01:00",
        "type": kind,
        **dict.fromkeys(("door", "reader", "credential", "booking", "reason")),
    }
    doc.update(fields)
    return doc


@pytest.mark.parametrize(
    "doc, valid",
    [
        # the extras as haldor/agent and haldor/store/journal.py spell them
        (_event("storage.fault", reason="disk almost full: 12 kB free", storage={"free_bytes": 12288}), True),
        (
            _event(
                "storage.fault",
                reason="disk I/O error",
                storage={
                    "since": "2026-11-25T17:00:00.000+01:00",
                    "until": "2026-11-25T17:01:30.500+01:00",
                    "duration_s": 90.5,
                    "attempts": 4,
                    "dropped": 0,
                },
            ),
            True,
        ),
        (_event("storage.fault", reason="full", storage={"free": 1}), False),
        (_event("sync.rejected", reason="12 more schedule documents in a minute", unreported=12), True),
        (_event("command.result", reason="3 more", command=None, action=None, ok=False, unreported=3), True),
        (_event("command.result", command="c-1", action="lock", ok=True, door="main", by=None, why=None), True),
        (_event("command.result", reason="expired", command="c-1", action="lock", ok=True), False),
        (_event("command.result", command="c-1", action="lock"), False),
        (
            _event("sync.applied", reason="snapshot 42", warnings=["door 'gym-b' of room gym-b is not controlled by this box"]),
            True,
        ),
        (_event("access.granted", door="main", reader="main-in", booking="b883"), True),  # a booking's own PIN
        (_event("access.granted", door="main", reader="main-in"), False),
        (_event("access.denied", door="main", reader="main-in", reason="not_today"), False),
        (
            _event(
                "access.guessing",
                door="main",
                reader="r",
                reason="wrong_pin",
                kind="pin",
                attempts=5,
                window_s=600,
                lockout_s=60,
                lockouts=1,
            ),
            True,
        ),
        (
            _event(
                "access.guessing",
                door="main",
                reader="r",
                reason="expired",
                kind="pin",
                attempts=5,
                window_s=600,
                lockout_s=60,
                lockouts=1,
            ),
            False,
        ),
        (_event("access.guessing", door="main", reader="r", reason="wrong_pin"), False),
        (_event("door.opened", door="main", reader="main-in"), False),
        (_event("booking.usage", booking="b881"), False),
        (_event("door.unhinged", door="main"), False),
        ({k: v for k, v in _event("agent.started").items() if k != "reason"}, False),
    ],
)
def test_event_branches(doc, valid):
    assert (schemas.errors("event", doc) == []) is valid, schemas.errors("event", doc)


# --- what the real agent produces ---------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, CPH).isoformat(timespec="seconds")


def test_the_events_and_status_of_a_real_agent_validate(tmp_path):
    rig = Rig(tmp_path)
    try:
        now = datetime.now(CPH).timestamp()
        # a booking that starts after the first schedule was applied: its no-show and usage are reported
        later = around_now(43)
        later["bookings"].append(booking("b882", _iso(now + 60), _iso(now + 1800)))
        rig.store.schedule.apply(parse_document(later), now)
        rig.store.set_meta("last_seen", now + 3600)  # the clock went back: untrusted at start
        clock = FakeClock(now, synchronized=False)
        agent = rig.agent(clock)
        agent.start()
        agent.settle()
        clock.is_synchronized = True
        step(agent, CardRead("main-in", CARD))  # clock.trusted, access.granted
        step(agent, CardRead("main-in", "uid:DEADBEEF"))  # unknown_card
        for _ in range(5):
            step(agent, PinRead("main-in", "0000"))  # wrong_pin; the fifth: access.guessing
        clock.advance(10)  # the unlock pulse is over
        step(agent, Tick())
        step(agent, ContactChanged("main", True))  # opened, forced
        clock.advance(61)
        step(agent, Tick())  # held open
        step(agent, ContactChanged("main", False))
        step(agent, Command("hold_open", "main"))  # door.mode
        step(agent, Command("release", "main"))
        step(agent, CardRead("kiosk", CARD))  # checkin
        step(agent, ReaderFault("main-in", "serial port /dev/ttyUSB0: gone"))
        (Path(rig.cfg.data_dir) / "device.secret").unlink()  # storage.fault, written back
        clock.advance(11)
        step(agent, Tick())
        clock.advance(2 * 3600)  # b882 is over: no-show and usage
        step(agent, Tick())
        status = agent.net.status.document(clock.now())
        agent.hw.close()
        payload = json.dumps(around_now(44))
        intake.receive(rig.store, payload, keys={}, require_signature=False, now=clock.now(), doors=("main", "gym-a"))
        intake.receive(rig.store, b'{"schema": "haldor.schedule/1"}', keys={}, require_signature=False, now=clock.now())

        events = rig.events()
        assert {e["type"] for e in events} >= set(Event) - {Event.COMMAND_RESULT}
        assert [e for e in events if e["type"] == "sync.applied" and e.get("warnings")]
        for event in events:
            assert schemas.errors("event", event) == [], event
        assert schemas.errors("status", status) == [], status
        assert schemas.errors("status", {**status, "online": False}) == []  # a clean stop's
        assert schemas.errors("status", offline_status(SITE, __version__)) == []  # the Last Will
        assert schemas.errors("status", {**offline_status(SITE, __version__), "online": True}) != []
        assert schemas.errors("status", {k: v for k, v in status.items() if k != "doors"}) != []
    finally:
        rig.close()


DOOR = """
[[doors]]
id = "main"
lock_pin = 17
unlock_s = 5
"""


def test_what_a_real_agent_publishes_validates(tmp_path, broker, signing_key):
    """On the wire: status, events, command results and sync requests."""
    watcher = Watcher(broker.port)
    publisher = Publisher(broker.port, signing_key)
    site = Rig(
        tmp_path, reader=False, doors=DOOR, port=broker.port, keys={"bookings-2026": public_key(signing_key)}, schedule=False
    )
    try:
        site.start()
        wait_for(lambda: watcher.docs("sync/request"), what="a request for a schedule")
        publisher.send("schedule", snapshot(42), retain=True)
        wait_for(lambda: site.version() == 42, what="snapshot applied")
        publisher.send("schedule", {"schema": "haldor.schedule/1", "site": SITE})  # rejected
        for action, fields in (
            ("unlock", {"door": "main", "duration_s": 30}),
            ("lockdown", {"reason": "drill"}),
            ("lift_lockdown", {}),
            ("unlock", {"door": "back-door"}),  # refused: no such door
            ("resync", {}),
            ("reset_version", {}),
        ):
            publisher.command(action, **fields)
        publisher.send("cmd", None, raw=b"not json")  # unreadable: no id, no action
        wait_for(lambda: len(watcher.docs("cmd/result")) >= 7, what="every command answered")
        wait_for(lambda: len(watcher.events("command.result")) >= 7, what="every command.result event")
        wait_for(lambda: len(watcher.docs("sync/request")) >= 3, what="resync and reset_version ask")
        # the schedule worker rejects beside the loop: under load its event can come after the commands' answers
        wait_for(lambda: watcher.events("sync.rejected"), what="the bad schedule's rejection")
        site.stop()
        wait_for(lambda: watcher.docs("status")[-1]["online"] is False, what="the status of a clean stop")

        published = {leaf: watcher.docs(leaf) for leaf in ("status", "events", "cmd/result", "sync/request")}
        assert {e["type"] for e in published["events"]} >= {"agent.started", "sync.applied", "sync.rejected", "command.result"}
        assert {r["have_version"] for r in published["sync/request"]} == {None, 42}
        assert {r["ok"] for r in published["cmd/result"]} == {True, False}
        for leaf, docs in published.items():
            name = schemas.name_for_leaf(leaf)
            assert name is not None
            for doc in docs:
                assert schemas.errors(name, doc) == [], (leaf, doc)
        for leaf in ("schedule", "cmd"):  # what the booking system and the operator sent
            for doc in watcher.docs(leaf):
                assert schemas.errors("envelope", doc) == []
    finally:
        site.close()
        publisher.close()
        watcher.close()


def test_a_validator_is_made_once_and_documents_are_not_changed():
    assert schemas.validator("schedule") is schemas.validator("schedule")
    doc = snapshot()
    before = copy.deepcopy(doc)
    schemas.errors("schedule", doc)
    assert doc == before
    first = schemas.load("event")
    first["title"] = "changed"
    assert schemas.load("event")["title"] != "changed"
    assert (schemas.path("event").parent / "__init__.py").exists()
    with pytest.raises(KeyError):
        schemas.path("nothing")


def test_an_envelope_holds_its_document_in_clear_or_sealed_never_both():
    sig = "A" * 86 + "=="
    assert schemas.errors("envelope", {"sealed": "c2VhbGVk", "kid": "k", "sig": sig}) == []
    assert schemas.errors("envelope", {"doc": "{}", "kid": "k", "sig": sig}) == []
    assert schemas.errors("envelope", {"doc": "{}", "sealed": "c2VhbGVk", "kid": "k", "sig": sig}) != []
    assert schemas.errors("envelope", {"kid": "k", "sig": sig}) != []


def test_what_only_the_agent_checks_in_a_command():
    """Beyond the schema: a command is for now (valid at most a day)."""
    doc = _command(expires_at="2026-11-27T17:00:01+01:00")
    assert schemas.errors("command", doc) == []
    with pytest.raises(DocumentError, match="at most 24 hours after issued_at"):
        parse_command(doc)


def test_the_brokers_auditor_checks_each_kind_of_message_and_names_what_does_not_fit(tmp_path):
    """The audit of every broker the tests start: messages alike but for their id and seq
    are checked whole once; one that differs anywhere else is checked again."""

    broker = Broker(tmp_path / "broker").start()
    topic = f"haldor/v1/{SITE}/events"
    good = [_event("door.opened", door="main", id=f"0f8e3c1a-5b7d-4e2f-9a61-3c4d5e6f7a{n:02x}", seq=n) for n in range(1, 4)]
    bad = _event("door.opened", door="main", reason="no such reason", seq=9)
    assert broker.auditor is not None
    for doc in [*good, bad]:
        broker.auditor.client.publish(topic, json.dumps(doc), qos=1).wait_for_publish(5)
    wait_for(lambda: len(broker.auditor.seen) == 4, what="the auditor heard all four")
    faults = broker.auditor.close()
    broker.auditor = None
    broker.stop()
    assert len(faults) == 1 and '"seq": 9' in faults[0], faults
