import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor.access import schedule
from haldor.access.envelope import open_envelope, seal
from haldor.errors import DocumentError, SignatureError

from .helpers import booking, snapshot, ts


def test_protocol_example_parses():
    s = schedule.parse_snapshot(snapshot())
    assert s.version == 42 and s.site == "valby-skole"
    assert s.bookings[0].start == ts("2026-11-25T17:00:00+01:00")
    assert s.closures[0].room is None and s.closures[0].reason == "Juleferie"
    assert s.policy.grace_before_min == 15


def test_unknown_fields_are_ignored():
    doc = snapshot(vendor_extension={"x": 1})
    doc["bookings"][0]["colour"] = "blue"
    assert schedule.parse_snapshot(doc).bookings[0].id == "b881"


def _mutate(path, value):
    doc = snapshot()
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    "path, value, reason",
    [
        (("version",), KeyError, "version: missing"),
        (("version",), "43", "version: expected integer, got string"),
        (("version",), True, "version: expected integer, got boolean"),
        (("schema",), "haldor.schedule/2", "schema"),
        (("bookings",), KeyError, "bookings: missing"),
        (("bookings", 0, "end"), "2026-11-25T16:00:00+01:00", "bookings[0].end: must be after start"),
        (("bookings", 0, "start"), "2026-11-25T17:00:00", "bookings[0].start: an RFC 3339 time with an offset"),
        (("bookings", 0, "start"), "tomorrow", "bookings[0].start: not an RFC 3339 time"),
        (("bookings", 0, "room"), "gym-z", "bookings[0].room: unknown room 'gym-z'"),
        (("bookings", 0, "association"), "a99", "bookings[0].association: unknown association"),
        (("bookings", 0, "id"), "b 881", "bookings[0].id: not an identifier"),
        (("credentials", 0, "card"), "04A1B2C3D4E5F6", "credentials[0].card: not a canonical card string"),
        (("credentials", 0, "pin"), "12", "credentials[0].pin: must be 4-8 digits"),
        (("credentials", 0, "role"), "admin", "credentials[0].role"),
        (("credentials", 0, "association"), None, "credentials[0].association: missing"),
        (("credentials", 1, "id"), "c1001", "credentials[1].id: duplicate id 'c1001'"),
        (("closures", 0, "room"), "gym-z", "closures[0].room: unknown room"),
        (("rooms", 0, "doors"), "main", "rooms[0].doors: expected list"),
        (("policy", "grace_before_min"), -5, "policy.grace_before_min: must not be negative"),
        (("timezone",), "Mars/Olympus", "timezone: unknown time zone"),
        # a trailing newline: ``$`` matches before it, a whole-string match does not
        (("site",), "valby-skole\n", "site: not an identifier"),
        (("bookings", 0, "id"), "b881\n", "bookings[0].id: not an identifier"),
        (("bookings", 0, "room"), "gym-a\n", "bookings[0].room: not an identifier"),
        (("bookings", 0, "pin"), "1234\n", "bookings[0].pin: must be 4-8 digits"),
        (("rooms", 0, "doors", 0), "main\n", "rooms[0].doors[0]: not an identifier"),
        (("credentials", 0, "id"), "c1001\n", "credentials[0].id: not an identifier"),
        (("credentials", 0, "card"), "uid:04A1B2C3\n", "credentials[0].card: not a canonical card string"),
        (("credentials", 2, "card"), "em:0A0B0C0D0E\n", "credentials[2].card: not a canonical card string"),
        (("credentials", 2, "card"), "wg26:8405024\n", "credentials[2].card: not a canonical card string"),
        (("credentials", 0, "pin"), "4821\n", "credentials[0].pin: must be 4-8 digits"),
        # a uid no ISO 14443 card has (4, 7 or 10 bytes) could never match a read
        (
            ("credentials", 0, "card"),
            "uid:04A1B2C3D4",
            "credentials[0].card: not a canonical card string: a uid is 4, 7 or 10 bytes (8, 14 or 20 hex digits), not 5 bytes",
        ),
        (("credentials", 0, "card"), "uid:04A1B2", "credentials[0].card: not a canonical card string: a uid is 4, 7 or 10 bytes"),
        (
            ("credentials", 0, "card"),
            "uid:04A1B2C3D4E5F60708A9B0",
            "credentials[0].card: not a canonical card string: a uid is 4, 7 or 10 bytes",
        ),
        (
            ("credentials", 0, "card"),
            "uid:04A1B2C3D",
            "credentials[0].card: not a canonical card string: a uid is 4, 7 or 10 bytes (8, 14 or 20 hex digits), not 9 hex digits",
        ),
        # a reader never sends leading zeros in a Wiegand string
        (("credentials", 2, "card"), "wg026:8405024", "credentials[2].card: not a canonical card string"),
        (("credentials", 2, "card"), "wg26:08405024", "credentials[2].card: not a canonical card string"),
    ],
)
def test_bad_snapshot_is_rejected_naming_the_field(path, value, reason):
    with pytest.raises(DocumentError) as info:
        schedule.parse_snapshot(_mutate(path, value))
    assert reason in str(info.value)


@pytest.mark.parametrize("card", ["uid:04A1B2C3", "uid:04A1B2C3D4E5F6", "uid:04A1B2C3D4E5F60708A9", "wg26:8405024", "wg34:0"])
def test_every_iso14443_uid_size_and_a_reader_s_wiegand_string_is_accepted(card):
    assert schedule.parse_snapshot(_mutate(("credentials", 0, "card"), card)).credentials[0].card == card


def test_booking_over_the_autumn_dst_change_lasts_one_hour():
    doc = snapshot(bookings=[booking("night", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00")])
    b = schedule.parse_snapshot(doc).bookings[0]
    assert b.end - b.start == 3600


def test_delta_parses_and_checks_its_own_shape():
    d = schedule.parse_delta(
        {
            "schema": "haldor.delta/1",
            "site": "valby-skole",
            "base_version": 42,
            "version": 43,
            "upsert": {"bookings": [booking("b900", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00")]},
            "delete": {"bookings": ["b881"], "credentials": ["c1001"]},
        }
    )
    assert d.bookings[0].id == "b900" and d.delete_bookings == ("b881",) and d.closures is None
    with pytest.raises(DocumentError, match="both upserted and deleted"):
        schedule.parse_delta(
            {
                "schema": "haldor.delta/1",
                "site": "s",
                "base_version": 1,
                "version": 2,
                "upsert": {"bookings": [booking("b1", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00")]},
                "delete": {"bookings": ["b1"]},
            }
        )


def _delta(**upsert_credential):
    credential = {"id": "c1003", "card": "em:0A0B0C0D0F", "pin": "5555", "association": "a17", "role": "member"}
    credential.update(upsert_credential)
    return {
        "schema": "haldor.delta/1",
        "site": "valby-skole",
        "base_version": 42,
        "version": 43,
        "upsert": {
            "credentials": [credential],
            "bookings": [booking("b900", "2026-11-26T17:00:00+01:00", "2026-11-26T18:00:00+01:00")],
        },
        "delete": {"bookings": ["b881"]},
    }


def test_delta_fixture_is_valid():
    assert schedule.parse_delta(_delta()).credentials[0].id == "c1003"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"id": "c1003\n"}, "upsert.credentials[0].id: not an identifier"),
        ({"card": "em:0A0B0C0D0F\n"}, "upsert.credentials[0].card: not a canonical card string"),
        ({"card": "uid:04A1B2C3D4E5F6\n"}, "upsert.credentials[0].card: not a canonical card string"),
        ({"pin": "5555\n"}, "upsert.credentials[0].pin: must be 4-8 digits"),
        ({"association": "a17\n"}, "upsert.credentials[0].association: not an identifier"),
        ({"card": "uid:04A1B2C3D4"}, "upsert.credentials[0].card: not a canonical card string: a uid is 4, 7 or 10 bytes"),
    ],
)
def test_bad_delta_credential_is_rejected_naming_the_field(change, reason):
    with pytest.raises(DocumentError) as info:
        schedule.parse_delta(_delta(**change))
    assert reason in str(info.value)


def test_trailing_newline_elsewhere_in_a_delta_is_rejected():
    doc = _delta()
    doc["upsert"]["bookings"][0]["id"] = "b900\n"
    with pytest.raises(DocumentError, match=r"upsert\.bookings\[0\]\.id: not an identifier"):
        schedule.parse_delta(doc)
    doc = _delta()
    doc["delete"]["bookings"] = ["b881\n"]
    with pytest.raises(DocumentError, match=r"delete\.bookings\[0\]: not an identifier"):
        schedule.parse_delta(doc)
    doc = _delta()
    doc["site"] = "valby-skole\n"
    with pytest.raises(DocumentError, match=r"^site: not an identifier"):
        schedule.parse_delta(doc)


def test_envelope_signature_is_checked():
    key = Ed25519PrivateKey.generate()
    keys = {"bookings-2026": key.public_key()}
    envelope = seal(snapshot(), "bookings-2026", key)
    assert open_envelope(json.dumps(envelope), keys, True)["version"] == 42
    tampered = dict(envelope, doc=envelope["doc"].replace('"version":42', '"version":99'))
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(json.dumps(tampered), keys, True)
    with pytest.raises(SignatureError, match="unknown key"):
        open_envelope(json.dumps(dict(envelope, kid="other")), keys, True)
    with pytest.raises(SignatureError, match="unsigned"):
        open_envelope(json.dumps(snapshot()), keys, True)
    with pytest.raises(SignatureError, match="no sig"):
        open_envelope(json.dumps({"doc": envelope["doc"]}), keys, True)
    # development mode: bare documents and envelopes without sig pass, a bad sig never does
    assert open_envelope(json.dumps(snapshot()), keys, False)["version"] == 42
    assert open_envelope(json.dumps({"doc": envelope["doc"]}), keys, False)["version"] == 42
    with pytest.raises(SignatureError):
        open_envelope(json.dumps(tampered), keys, False)


@pytest.mark.parametrize("payload", [b"{", b"\xff\xfe", b"[]", b"null", b'"text"', b'{"doc": 5}'])
def test_garbage_payloads_are_document_errors(payload):
    with pytest.raises(DocumentError):
        schedule.parse_document(open_envelope(payload, {}, False))
