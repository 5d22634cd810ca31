"""The agent against a real Mosquitto: schedules in, commands, events and status out."""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor import __version__, schemas
from haldor.access import envelope
from haldor.access.envelope import seal
from haldor.agent.messages import Tick
from haldor.agent.site import open_store
from haldor.clock import FakeClock, SystemClock

from .broker import Broker, Publisher, Watcher
from .broker import iso as _iso
from .helpers import SITE, snapshot, wait_for
from .rig import Rig, public_key

DOORS = """
[[doors]]
id = "main"
lock_pin = 17
unlock_s = 5
"""


def sync_site(tmp_path: Path, broker: Broker, public: str, mqtt: str | None = None) -> Rig:
    """A site with one door and no schedule yet, its agent linked to the broker once started."""
    return Rig(tmp_path, reader=False, doors=DOORS, port=broker.port, mqtt=mqtt, keys={"bookings-2026": public}, schedule=False)


@pytest.fixture
def rig(tmp_path, broker, signing_key):
    watcher = Watcher(broker.port)
    publisher = Publisher(broker.port, signing_key)
    site = sync_site(tmp_path, broker, public_key(signing_key))
    yield site, publisher, watcher
    site.close()
    publisher.close()
    watcher.close()


def test_retained_snapshot_and_deltas_are_applied_and_reported(rig):
    site, publisher, watcher = rig
    publisher.send("schedule", snapshot(42), retain=True)  # before the agent ever ran
    site.start()
    wait_for(lambda: site.version() == 42, what="snapshot applied")
    delta = {
        "schema": "haldor.delta/1",
        "site": SITE,
        "base_version": 42,
        "version": 43,
        "upsert": {
            "bookings": [
                {
                    "id": "b900",
                    "room": "gym-a",
                    "association": "a17",
                    "title": "Ekstra",
                    "start": "2026-11-26T17:00:00+01:00",
                    "end": "2026-11-26T18:00:00+01:00",
                    "status": "approved",
                    "pin": None,
                    "unlocked_during": False,
                }
            ]
        },
        "delete": {"bookings": ["b881"]},
    }
    publisher.send("schedule/delta", delta)
    wait_for(lambda: site.version() == 43, what="delta applied")
    applied = wait_for(lambda: len(watcher.events("sync.applied")) == 2 and watcher.events("sync.applied"), what="events")
    assert [e["reason"] for e in applied] == ["snapshot 42", "delta 43"]
    status = wait_for(lambda: [s for s in watcher.docs("status") if s.get("schedule_version") == 43], what="status")[-1]
    assert status["online"] is True and status["site"] == SITE and status["doors"]["main"]["locked"] is True
    assert status["schema"] == "haldor.status/1" and status["agent_version"] == __version__


def test_bad_documents_are_rejected_whole_and_the_schedule_stays(rig, signing_key):
    site, publisher, watcher = rig
    site.start()
    publisher.send("schedule", snapshot(42))
    wait_for(lambda: site.version() == 42, what="snapshot applied")
    publisher.send("schedule", snapshot(44), key=Ed25519PrivateKey.generate())  # signed by someone else
    publisher.send("schedule", None, raw=b"{not json")
    publisher.send("schedule", None, raw=json.dumps([1, 2, 3]).encode())
    broken = snapshot(45)
    broken["bookings"][0]["room"] = "no-such-room"
    publisher.send("schedule", broken)
    publisher.send("schedule", None, raw=json.dumps(snapshot(46)).encode())  # unsigned
    rejected = wait_for(lambda: len(watcher.events("sync.rejected")) >= 5 and watcher.events("sync.rejected"), what="rejections")
    reasons = [e["reason"] for e in rejected]
    assert "signature does not verify" in reasons[0]
    assert "not valid JSON" in reasons[1]
    assert "unsigned" in reasons[4] and "no-such-room" in reasons[3]
    publisher.send("schedule", snapshot(41))  # stale: ignored, as the retained copy would be
    publisher.send("schedule", snapshot(47, site="other-site"))  # another site: ignored
    publisher.send("schedule", snapshot(48))
    wait_for(lambda: site.version() == 48, what="the good one after the bad ones")
    assert len(watcher.events("sync.rejected")) == 5


def test_a_delta_gap_keeps_the_schedule_and_asks_for_a_snapshot(rig):
    site, publisher, watcher = rig
    site.start()
    publisher.send("schedule", snapshot(42))
    wait_for(lambda: site.version() == 42, what="snapshot applied")
    publisher.send(
        "schedule/delta",
        {"schema": "haldor.delta/1", "site": SITE, "base_version": 50, "version": 51, "upsert": {}, "delete": {}},
    )
    wait_for(lambda: {"site": SITE, "have_version": 42} in watcher.docs("sync/request"), what="sync request")
    assert site.version() == 42
    publisher.send("schedule", snapshot(51))
    wait_for(lambda: site.version() == 51, what="recovered by the snapshot")


def test_an_agent_without_a_schedule_asks_for_one(rig):
    site, publisher, watcher = rig
    site.start()
    assert wait_for(lambda: watcher.docs("sync/request"), what="sync request")[0] == {"site": SITE, "have_version": None}


def test_commands_are_carried_out_once_and_every_one_gets_a_result(rig):
    site, publisher, watcher = rig
    site.start()
    pin = site.factory.pin(17)
    done = publisher.command("unlock", door="main", duration_s=30)
    wait_for(lambda: pin.state, what="door unlocked by command")
    replay = {"id": done, "by": "someone-else"}  # another message with the same id (the same one is answered again)
    publisher.command("unlock", door="main", **replay)
    expired_id = str(uuid.uuid4())
    past = datetime.now(UTC) - timedelta(hours=1)
    publisher.send(
        "cmd",
        {
            "schema": "haldor.command/1",
            "id": expired_id,
            "site": SITE,
            "action": "lock",
            "door": "main",
            "issued_at": _iso(past - timedelta(minutes=5)),
            "expires_at": _iso(past),
        },
    )
    other = publisher.command("lock", door="main", site="other-site")
    unknown = publisher.command("unlock", door="back-door")
    forged = str(uuid.uuid4())
    now = datetime.now(UTC)
    publisher.send(
        "cmd",
        {
            "schema": "haldor.command/1",
            "id": forged,
            "site": SITE,
            "action": "unlock",
            "door": "main",
            "issued_at": _iso(now),
            "expires_at": _iso(now + timedelta(minutes=1)),
        },
        key=Ed25519PrivateKey.generate(),
    )
    lockdown = publisher.command("lockdown")
    results = wait_for(lambda: len(watcher.docs("cmd/result")) >= 7 and watcher.docs("cmd/result"), what="results")
    by_id = {}
    for r in results:
        by_id.setdefault(r["id"], []).append(r)
    assert by_id[done][0]["ok"] is True and by_id[done][0]["error"] is None
    assert by_id[done][1]["ok"] is False and "replayed" in by_id[done][1]["error"]
    assert by_id[expired_id][0]["error"] == "expired"
    assert "another site" in by_id[other][0]["error"]
    assert "unknown door" in by_id[unknown][0]["error"]
    assert "signature" in by_id[forged][0]["error"]
    assert by_id[lockdown][0]["ok"] is True
    wait_for(lambda: not pin.state, what="lockdown locks the door")
    events = wait_for(lambda: len(watcher.events("command.result")) >= 7 and watcher.events("command.result"), what="events")
    assert {e["command"] for e in events} >= {done, expired_id, other, unknown, forged, lockdown}
    status = wait_for(lambda: [s for s in watcher.docs("status") if s.get("mode") == "lockdown"], what="status")
    assert status[-1]["doors"]["main"]["mode"] == "lockdown"


class BehindClock(SystemClock):
    """A Pi's clock after a power cut, before time sync: behind by ``behind_s``."""

    def __init__(self, behind_s: float) -> None:
        self.behind_s = behind_s

    def now(self) -> float:
        return time.time() - self.behind_s

    def synchronized(self) -> bool:
        return False


def test_an_untrusted_clock_judges_commands_by_the_newest_signed_time_and_opens_nothing(rig):
    """Issue 23: a box 3 h behind carried out an unlock that had expired 3 h ago."""
    site, publisher, watcher = rig
    real = datetime.now(UTC)
    site.store.set_meta("last_seen", (real - timedelta(hours=3)).timestamp() + 10)  # booted at its last saved time
    site.start(clock=BehindClock(3 * 3600))
    pin = site.factory.pin(17)

    def command(action: str, issued: datetime, valid: timedelta, **fields) -> dict:
        cid = publisher.command(action, issued_at=_iso(issued), expires_at=_iso(issued + valid), **fields)
        return wait_for(lambda: [r for r in watcher.docs("cmd/result") if r["id"] == cid], what=f"{action}'s result")[0]

    stale = command("unlock", real - timedelta(hours=3, minutes=1), timedelta(minutes=2), door="main", duration_s=600)
    assert stale["ok"] is False and stale["error"].startswith("clock_untrusted")
    assert not pin.state
    fresh = command("lock", real, timedelta(minutes=5), door="main")  # safe to carry out; says the time is at least now
    assert fresh["ok"] is True
    status = wait_for(lambda: [d for d in watcher.docs("status") if d.get("time_floor")], what="a status with its floor")
    assert datetime.fromisoformat(status[-1]["time_floor"]) <= real + timedelta(seconds=1)
    old = command("lock", real - timedelta(hours=1, minutes=5), timedelta(minutes=5), door="main")
    assert old["error"] == "expired"  # by the box's clock it would still have 1 h 55 min to go
    site.stop()
    site.start(clock=BehindClock(3 * 3600))  # the floor is kept
    older = command("lockdown", real - timedelta(hours=1, minutes=5), timedelta(minutes=5))
    assert older["error"] == "expired"
    far = command("lock", real + timedelta(days=3650), timedelta(minutes=5), door="main")  # a sender's clock years ahead
    assert far["ok"] is True
    fresh = command("lockdown", real, timedelta(minutes=5))  # not made "expired" by it
    assert fresh["ok"] is True, fresh
    for status in watcher.docs("status"):
        assert schemas.errors("status", status) == []


def test_the_box_sends_events_again_from_its_journal_and_names_what_is_gone(rig):
    site, publisher, watcher = rig
    made = site.store.outbox.append([{"type": "door.opened", "door": "main"}] * 40, time.time())
    site.store.outbox.mark_delivered([e["seq"] for e in made], time.time() - 90 * 86400)  # delivered long ago ...
    site.store.outbox.purge_delivered(time.time() - 60 * 86400)  # ... and purged: gone for good
    kept = site.store.outbox.append([{"type": "door.closed", "door": "main"}] * 30, time.time())
    site.store.outbox.mark_delivered([e["seq"] for e in kept[:20]], time.time())  # 10 are still to be sent
    site.start()
    wait_for(lambda: len(watcher.events("door.closed")) >= 10, what="the box's outbox drained")
    before = len(watcher.events("door.closed"))

    def ask(doc: dict) -> dict:
        publisher.send("events/resend", None, raw=json.dumps(doc).encode())
        return wait_for(lambda: [a for a in watcher.docs("events/resent") if a["request"] == doc.get("id")], what="answer")[-1]

    request = {"schema": "haldor.resend/1", "id": "r-1", "site": SITE, "ranges": [[30, 60], [5000, 6000]]}
    answer = ask(request)
    assert (answer["gone"], answer["resending"], answer["error"]) == ([[30, 40]], 20, None)
    assert answer["last_seq"] >= 70 and schemas.errors("resent", answer) == []
    again = wait_for(
        lambda: len(watcher.events("door.closed")) >= before + 20 and watcher.events("door.closed")[before:], what="sent again"
    )
    assert sorted(e["seq"] for e in again) == list(range(41, 61))  # the same events: same ids, same seqs
    assert {e["id"] for e in again} <= {e["id"] for e in kept}
    refused = ask({**request, "id": "r-2", "site": "other-site"})
    assert "another site" in refused["error"]
    broken = ask({"schema": "haldor.resend/1", "id": None, "site": SITE, "ranges": [[1, 2]]})
    assert broken["error"].startswith("id:")


def test_a_replay_is_refused_after_a_restart(rig):
    site, publisher, watcher = rig
    site.start()
    cid = publisher.command("hold_open", door="main")
    wait_for(lambda: watcher.docs("cmd/result"), what="first result")
    site.stop()
    site.start()
    publisher.command("hold_open", door="main", id=cid, by="someone-else")
    second = wait_for(lambda: len(watcher.docs("cmd/result")) == 2 and watcher.docs("cmd/result")[1], what="second result")
    assert second["ok"] is False and "replayed" in second["error"]


def test_a_command_delivered_again_gets_its_first_result_again_and_is_done_once(rig):
    """A result lost with the link: the broker delivers the command again (it is the same
    message), and the agent answers as it did the first time, without doing it twice."""
    site, publisher, watcher = rig
    site.start()
    now = datetime.now(UTC)
    cid = str(uuid.uuid4())
    payload = json.dumps(
        seal(
            {
                "schema": "haldor.command/1",
                "id": cid,
                "site": SITE,
                "action": "hold_open",
                "door": "main",
                "issued_at": _iso(now),
                "expires_at": _iso(now + timedelta(minutes=5)),
            },
            publisher.kid,
            publisher.key,
        )
    ).encode()
    publisher.send("cmd", None, raw=payload)
    wait_for(lambda: watcher.docs("cmd/result"), what="first result")
    site.stop()
    site.start()  # across a restart too
    publisher.send("cmd", None, raw=payload)
    first, second = wait_for(lambda: len(watcher.docs("cmd/result")) == 2 and watcher.docs("cmd/result"), what="again")
    assert first == second and first["ok"] is True
    later = publisher.command("lock", door="main")  # events are delivered in order: after this one's, no more of cid's
    wait_for(lambda: [e for e in watcher.events("command.result") if e["command"] == later], what="a later event")
    assert len({e["id"] for e in watcher.events("command.result") if e["command"] == cid}) == 1  # at least once: by id


def test_events_made_while_the_broker_is_down_all_arrive_in_order(rig, broker):
    site, publisher, watcher = rig
    site.start()
    wait_for(lambda: watcher.events("agent.started"), what="started event")
    broker.stop()
    wait_for(lambda: not site.link.connected.is_set(), what="agent noticed")
    writer = open_store(site.cfg)
    try:
        for _ in range(10):
            writer.outbox.append([{"type": "door.opened", "door": "main"}] * 1000, time.time())
        assert writer.outbox.stats()["pending"] >= 10_000
    finally:
        writer.close()
    broker.start()
    wait_for(lambda: len({e["id"] for e in watcher.events("door.opened")}) == 10_000, timeout=60, what="all 10,000 events")
    first_seen: dict[str, int] = {}
    for e in watcher.events():
        first_seen.setdefault(e["id"], e["seq"])
    seqs = list(first_seen.values())
    assert seqs == sorted(seqs)  # in seq order, duplicates aside
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # none missing
    wait_for(lambda: site.store.outbox.stats()["pending"] == 0, timeout=20, what="outbox emptied by acknowledgements")


def test_the_last_will_says_offline_when_the_agent_vanishes(rig):
    site, publisher, watcher = rig
    site.start()
    wait_for(lambda: [s for s in watcher.docs("status") if s["online"]], what="online status")
    site.link.client.socket().close()  # the network goes away: no DISCONNECT is sent
    will = wait_for(lambda: [s for s in watcher.docs("status") if s["online"] is False], what="last will")
    assert will[0]["site"] == SITE
    wait_for(lambda: watcher.docs("status")[-1]["online"], what="back online after reconnecting")
    site.stop()
    final = wait_for(lambda: not watcher.docs("status")[-1]["online"] and watcher.docs("status")[-1], what="goodbye status")
    assert final["doors"]["main"]["locked"] is True


def test_the_status_names_the_site_its_rooms_and_doors(rig):
    """The fleet shows names, not ids: the box sends its own (never a person's)."""
    site, publisher, watcher = rig
    publisher.send("schedule", snapshot(42), retain=True)
    site.start()
    status = wait_for(
        lambda: [s for s in watcher.docs("status") if s.get("schedule_version") == 42], what="status after the snapshot"
    )[-1]
    assert status["timezone"] == "Europe/Copenhagen"
    assert status["names"]["site"] == SITE  # no site.name configured: its id
    assert status["names"]["rooms"] == {"gym-a": "Gymnastiksal A", "gym-b": "Gymnastiksal B"}
    assert status["names"]["doors"] == {"main": "main"}


def test_the_agent_socket_has_nagle_off(rig):
    site, publisher, watcher = rig
    site.start()
    sock = site.link.client.socket()
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_status_is_republished_every_minute_without_changes(rig):
    site, publisher, watcher = rig
    clock = FakeClock(time.time())
    site.start(clock=clock)
    first = wait_for(lambda: watcher.docs("status"), what="first status")[0]
    clock.advance(61)
    site.running_agent.post(Tick())
    later = wait_for(lambda: [s for s in watcher.docs("status") if s["uptime_s"] >= 61], what="status a minute later")
    assert later[0]["online"] and later[0]["uptime_s"] - first["uptime_s"] >= 61


def test_resync_command_asks_for_a_snapshot(rig):
    site, publisher, watcher = rig
    site.start()
    publisher.send("schedule", snapshot(42))
    wait_for(lambda: site.version() == 42, what="snapshot")
    publisher.command("resync")
    wait_for(lambda: {"site": SITE, "have_version": 42} in watcher.docs("sync/request"), what="sync request")


def test_an_oversized_or_mistyped_payload_is_rejected(rig, monkeypatch):
    site, publisher, watcher = rig
    monkeypatch.setattr(envelope, "MAX_DOCUMENT_BYTES", 100_000)  # the real limit is 160 MiB
    site.start()
    publisher.send("schedule", snapshot(42))
    wait_for(lambda: site.version() == 42, what="snapshot")
    big = snapshot(43)
    big["associations"] += [{"id": f"x{i}", "name": "y" * 100} for i in range(1000)]
    publisher.send("schedule", big)
    mistyped = snapshot(44)
    mistyped["version"] = "44"
    publisher.send("schedule", mistyped)
    publisher.send("schedule", None, raw=b"\xff\xfe not utf-8")
    rejected = wait_for(lambda: len(watcher.events("sync.rejected")) >= 3 and watcher.events("sync.rejected"), what="rejected")
    assert "payload too large" in rejected[0]["reason"]
    assert "version: expected integer, got string" in rejected[1]["reason"]
    assert "not valid JSON" in rejected[2]["reason"]
    assert site.version() == 42


def test_reset_version_lets_the_booking_system_recover_from_a_version_published_too_far_ahead(rig):
    site, publisher, watcher = rig
    site.start()
    publisher.send("schedule", snapshot(9_000_000_000), retain=True)  # a typo in the booking system
    wait_for(lambda: site.version() == 9_000_000_000, what="the runaway version applied")
    publisher.send("schedule", snapshot(43), retain=True)
    # the worker takes documents in order: a delta after it shows 43 was ignored as stale (PROTOCOL 2)
    publisher.send(
        "schedule/delta",
        {
            "schema": "haldor.delta/1",
            "site": SITE,
            "base_version": 9_000_000_000,
            "version": 9_000_000_001,
            "upsert": {},
            "delete": {},
        },
    )
    wait_for(lambda: site.version() == 9_000_000_001, what="the delta after the stale snapshot")
    command = publisher.command("reset_version")
    result = wait_for(lambda: [r for r in watcher.docs("cmd/result") if r["id"] == command], what="result")[0]
    assert result["ok"] is True
    wait_for(lambda: {"site": SITE, "have_version": None} in watcher.docs("sync/request"), what="a snapshot asked for")
    publisher.send("schedule", snapshot(44), retain=True)
    wait_for(lambda: site.version() == 44, what="the next snapshot applied whatever its version")
    publisher.send("schedule", snapshot(43), retain=True)  # and from then on, the usual order
    publisher.send(
        "schedule/delta",
        {"schema": "haldor.delta/1", "site": SITE, "base_version": 44, "version": 45, "upsert": {}, "delete": {}},
    )
    wait_for(lambda: site.version() == 45, what="a delta after it")


def test_a_command_key_signs_only_commands_and_a_booking_key_only_schedules(tmp_path, broker, signing_key):
    """[trust] command_keys: the fleet's command key cannot sign a schedule, and the
    booking system's key cannot sign a command."""
    command_key = Ed25519PrivateKey.generate()
    site = Rig(
        tmp_path,
        reader=False,
        port=broker.port,
        keys={"bookings-2026": public_key(signing_key)},
        command_keys={"fleet-1": public_key(command_key)},
        schedule=False,
    )
    watcher, bookings, fleet = (
        Watcher(broker.port),
        Publisher(broker.port, signing_key),
        Publisher(broker.port, command_key, "fleet-1"),
    )
    try:
        site.start()
        bookings.send("schedule", snapshot(42))
        wait_for(lambda: site.version() == 42, what="the booking system's snapshot applied")
        fleet.send("schedule", snapshot(43))
        refused = wait_for(lambda: watcher.events("sync.rejected"), what="a snapshot signed with the command key refused")
        assert "fleet-1" in refused[0]["reason"] and site.version() == 42
        by_booking_key = bookings.command("unlock", door="main", duration_s=5)
        by_command_key = fleet.command("unlock", door="main", duration_s=5)
        results = {
            r["id"]: r
            for r in wait_for(lambda: len(watcher.docs("cmd/result")) >= 2 and watcher.docs("cmd/result"), what="results")
        }
        assert results[by_booking_key]["ok"] is False and "bookings-2026" in results[by_booking_key]["error"]
        assert results[by_command_key]["ok"] is True
    finally:
        watcher.close()
        bookings.close()
        fleet.close()
        site.close()
