"""The integrator's tools against a real broker and a real `haldor run`."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .broker import Broker, Watcher
from .helpers import SITE, dump, site_config, snapshot, wait_for

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def haldor(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "haldor", *args], capture_output=True, text=True, env=ENV, timeout=60, **kw)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    out = haldor("keygen", "bookings-2026", "--dir", str(tmp_path)).stdout
    key = tmp_path / "bookings-2026.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (tmp_path / "bookings-2026.pub").read_text().strip()
    assert f'keys = {{ "bookings-2026" = "{public}" }}' in out
    again = haldor("keygen", "bookings-2026", "--dir", str(tmp_path), check=False)
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_a_signed_file_loads_and_a_tampered_one_does_not(tmp_path):
    haldor("keygen", "k1", "--dir", str(tmp_path))
    public = (tmp_path / "k1.pub").read_text().strip()
    config = tmp_path / "haldor.toml"
    config.write_text(
        f'[site]\nid = "{SITE}"\ndata_dir = "{tmp_path / "data"}"\n[trust]\nkeys = {{ "k1" = "{public}" }}\nplain_documents = true\n'
        '[gpio]\npin_factory = "mock"\n[[doors]]\nid = "main"\nlock_pin = 17\n'
    )
    envelope = json.loads(haldor("sign", str(tmp_path / "k1.key"), str(dump(tmp_path / "s.json", snapshot(42)))).stdout)
    assert envelope["kid"] == "k1"
    haldor("schedule", "load", "--config", str(config), str(dump(tmp_path / "env.json", envelope)))
    envelope["doc"] = envelope["doc"].replace('"version":42', '"version":43')
    bad = haldor("schedule", "load", "--config", str(config), str(dump(tmp_path / "bad.json", envelope)), check=False)
    assert bad.returncode == 2 and "signature does not verify" in bad.stderr


def test_publish_reaches_a_running_agent_and_watch_shows_what_it_says(tmp_path, broker):
    haldor("keygen", "k1", "--dir", str(tmp_path))
    public = (tmp_path / "k1.pub").read_text().strip()
    config = site_config(tmp_path / "haldor.toml", tmp_path / "data", port=broker.port, keys={"k1": public})
    lines: list[str] = []
    watcher = subprocess.Popen(
        [sys.executable, "-m", "haldor", "watch", "--broker", f"127.0.0.1:{broker.port}", "--site", SITE],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    threading.Thread(target=lambda: lines.extend(watcher.stdout), daemon=True).start()
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(config)], env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any('"online": true' in line for line in lines), timeout=20, what="agent online")
        out = haldor(
            "publish",
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--key",
            str(tmp_path / "k1.key"),
            "--verify-with",
            str(tmp_path / "k1.pub"),
            str(dump(tmp_path / "s.json", snapshot(42))),
        ).stdout
        assert f"haldor/v1/{SITE}/schedule" in out
        wait_for(lambda: any('"reason": "snapshot 42"' in line for line in lines), timeout=10, what="sync.applied seen")
        agent.send_signal(signal.SIGKILL)  # no goodbye: the broker speaks the Last Will
        agent.wait(10)
        wait_for(
            lambda: any(f"haldor/v1/{SITE}/status" in line and '"online": false' in line for line in lines),
            timeout=10,
            what="last will",
        )
    finally:
        for proc in (agent, watcher):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    line = next(line for line in lines if "sync.applied" in line)
    topic, body = line.split(" ", 1)
    assert topic == f"haldor/v1/{SITE}/events" and json.loads(body)["site"] == SITE


def test_publish_refuses_what_is_not_a_protocol_document(tmp_path, broker):
    result = haldor(
        "publish", "--broker", f"127.0.0.1:{broker.port}", "--unsigned", str(dump(tmp_path / "x.json", {"hello": 1})), check=False
    )
    assert result.returncode == 2 and "not a schedule, delta or command" in result.stderr


def _retained_schedule(port: int) -> dict:
    """What a box that connects now is given on its schedule topic."""
    watcher = Watcher(port, topics=f"haldor/v1/{SITE}/schedule")
    try:
        return wait_for(lambda: watcher.docs("schedule"), timeout=10, what="retained snapshot")[-1]
    finally:
        watcher.close()


def test_publish_checks_a_document_as_a_box_would_and_keeps_a_good_snapshot_in_place(tmp_path, broker):
    """A retained snapshot no box accepts would replace a good one for every box that
    reconnects: publish refuses it with one line and publishes nothing."""
    for kid in ("k1", "k2"):
        haldor("keygen", kid, "--dir", str(tmp_path))
    at = ("--broker", f"127.0.0.1:{broker.port}", "--verify-with", str(tmp_path / "k1.pub"))
    good = dump(tmp_path / "good.json", snapshot(42))
    haldor("publish", *at, "--key", str(tmp_path / "k1.key"), str(good))
    bad_time = snapshot(43)
    bad_time["bookings"][0]["end"] = "2026-11-25T19:00:00"
    dangling = snapshot(43)
    dangling["bookings"][0]["room"] = "pool"
    foreign = dump(tmp_path / "foreign.json", json.loads(haldor("sign", str(tmp_path / "k2.key"), str(good)).stdout))
    refusals = {
        "not signed": ("publish", *at, str(dump(tmp_path / "bare.json", snapshot(43)))),
        "kid 'k2' is not among the keys the boxes trust": ("publish", *at, "--key", str(tmp_path / "k2.key"), str(good)),
        "kid: unknown key 'k2'": ("publish", *at, str(foreign)),
        "bookings[0].end": ("publish", *at, "--key", str(tmp_path / "k1.key"), str(dump(tmp_path / "t.json", bad_time))),
        "unknown room 'pool'": ("publish", *at, "--key", str(tmp_path / "k1.key"), str(dump(tmp_path / "d.json", dangling))),
        "not 'elsewhere'": ("publish", *at, "--key", str(tmp_path / "k1.key"), "--site", "elsewhere", str(good)),
    }
    for why, args in refusals.items():
        result = haldor(*args, check=False)
        assert result.returncode == 2, (why, result.stderr)
        assert why in result.stderr and "nothing published" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    retained = _retained_schedule(broker.port)
    assert retained["kid"] == "k1" and json.loads(retained["doc"])["version"] == 42


@pytest.fixture
def box(tmp_path, broker):
    """A running `haldor run` that trusts k1, and a watcher of its topics."""
    haldor("keygen", "k1", "--dir", str(tmp_path))
    config = site_config(
        tmp_path / "haldor.toml", tmp_path / "data", port=broker.port, keys={"k1": (tmp_path / "k1.pub").read_text().strip()}
    )
    watcher = Watcher(broker.port)
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(config)], env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(d.get("online") for d in watcher.docs("status")), timeout=20, what="agent online")
        yield watcher
    finally:
        agent.terminate()
        agent.wait(10)
        watcher.close()


def test_command_is_carried_out_and_its_result_printed(tmp_path, broker, box):
    at = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k1.key"))
    done = haldor("command", *at, SITE, "unlock", "--door", "main", "--duration", "3", "--reason", "Låst ude", "--by", "op-7")
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["error"] is None
    event = wait_for(lambda: [e for e in box.events("command.result") if e["command"] == result["id"]], what="event")[0]
    assert (event["action"], event["door"], event["by"], event["why"]) == ("unlock", "main", "op-7", "Låst ude")
    refused = haldor("command", *at, SITE, "unlock", "--door", "nowhere", check=False)
    assert refused.returncode == 1 and "refused unlock: unknown door 'nowhere'" in refused.stderr
    assert json.loads(refused.stdout)["ok"] is False


def test_what_a_box_refuses_reaches_the_fleet_and_command_line_commands_are_audited(tmp_path, broker, box):
    """Issue 24: a refused schedule and a refused command were on no page and in no alert;
    a command from `haldor command` was in no audit log."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from haldor import schemas
    from haldor.fleet import settings as fleet_settings
    from haldor.fleet.alerting import AlertWorker
    from haldor.fleet.commands import AuditLog
    from haldor.fleet.ingest import FleetConsumer
    from haldor.fleet.store import FleetStore
    from haldor.mqtt import BrokerOptions

    from .broker import Publisher
    from .test_fleet_alerts import Receiver

    db = str(tmp_path / "fleet.db")
    consumer = FleetConsumer(BrokerOptions("127.0.0.1", broker.port), FleetStore(db))
    receiver = Receiver()
    worker = AlertWorker(fleet_settings.parse({"webhooks": [{"url": receiver.url}]}, str(tmp_path / "f.toml")), FleetStore(db))
    publisher = Publisher(broker.port, Ed25519PrivateKey.generate(), kid="k-unknown")
    consumer.start()
    try:
        wait_for(consumer.connected.is_set, what="fleet connected")
        at = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k1.key"))
        haldor("command", *at, SITE, "hold_open", "--door", "main", "--reason", "Stævne", "--by", "pedel-anna")
        haldor("command", *at, SITE, "unlock", "--door", "nowhere", "--by", "pedel-anna", check=False)
        publisher.send("schedule", snapshot(77), retain=True)  # signed with a key the box does not trust
        audit = AuditLog(consumer.store.db)
        rows = wait_for(lambda: len(audit.rows(SITE)) == 2 and audit.rows(SITE), what="both commands in the audit log")
        refused, done = rows if rows[0]["error"] else rows[::-1]
        assert (done["who"], done["action"], done["door"], done["detail"], done["ok"]) == (
            "pedel-anna",
            "hold_open",
            "main",
            "Stævne",
            1,
        )
        assert (refused["action"], refused["ok"], refused["error"]) == ("unlock", 0, "unknown door 'nowhere'")
        alarms = wait_for(
            lambda: {a["type"]: a for a in consumer.store.alarms()}.get("sync.rejected") and consumer.store.alarms(), what="alarm"
        )
        assert {a["type"] for a in alarms} == {"sync.rejected", "command.result"}
        assert "k-unknown" in next(a["reason"] for a in alarms if a["type"] == "sync.rejected")
        worker.run_once(time.time())
        alerts = [receiver.next(), receiver.next()]
        assert sorted(a["kind"] for a in alerts) == ["command.failed", "sync.rejected"]
        assert all(schemas.errors("alert", a) == [] for a in alerts)
        assert any("afviste de nye bookinger" in a["text"] for a in alerts)
    finally:
        publisher.close()
        consumer.stop()
        worker.stop()
        receiver.close()


def test_command_signed_with_a_key_the_box_does_not_trust_is_refused_by_the_box(tmp_path, broker, box):
    haldor("keygen", "k2", "--dir", str(tmp_path))
    refused = haldor(
        "command", "--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k2.key"), SITE, "lockdown", check=False
    )
    assert refused.returncode == 1 and "unknown key 'k2'" in refused.stderr


def test_command_without_an_answer_says_the_box_may_be_offline(tmp_path, broker):
    haldor("keygen", "k1", "--dir", str(tmp_path))
    at = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k1.key"))
    silent = haldor("command", *at, "--wait", "0.5", "nowhere-skole", "resync", check=False)
    assert silent.returncode == 3 and "may be offline" in silent.stderr
    for args, why in ((("unlock",), "unlock needs a door"), (("lockdown", "--door", "main"), "acts on the whole site")):
        wrong = haldor("command", *at, SITE, *args, check=False)
        assert wrong.returncode == 2 and why in wrong.stderr


def test_the_integrators_first_afternoon_in_the_readme_runs_as_written(tmp_path, broker):
    """The README's lines, in a shell, one by one: the box is given the printed trust
    line between keygen and publish, as a person would; `keygen --site` runs on the box
    (its configuration in $HALDOR_CONFIG) and its key is what SITE_KEY is set to."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("An integrator's first afternoon", 1)[1].split("\n\n", 2)[1]
    lines = [line.strip() for line in block.splitlines()]
    assert lines[0].startswith("BROKER=") and lines[1].startswith("haldor keygen bookings")
    assert lines[2].startswith("haldor keygen --site")
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    prelude = f'BROKER="--broker 127.0.0.1:{broker.port}"\n'

    def shell(line: str, **extra: str) -> subprocess.CompletedProcess:
        run_env = {**env, **extra}
        done = subprocess.run(
            ["bash", "-c", prelude + line], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (line, done.stderr)
        return done

    trust = re.search(r"keys = \{.*\}", shell(lines[1]).stdout).group(0)
    config = site_config(tmp_path / "haldor.toml", tmp_path / "data", port=broker.port, keys={"x": "y"}, plain=False)
    config.write_text(re.sub(r"keys = \{.*\}", trust, config.read_text()))
    site_key = re.search(r"--seal-to (\S+)", shell(lines[2], HALDOR_CONFIG=str(config)).stdout).group(1)
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(config)], env=ENV, stderr=subprocess.DEVNULL)
    watcher = Watcher(broker.port)
    try:
        status = wait_for(lambda: [d for d in watcher.docs("status") if d.get("online")], timeout=20, what="agent online")[0]
        assert status["site_key"] == site_key  # what the box says of itself agrees
        outputs = [shell(line, SITE_KEY=site_key).stdout for line in lines[3:]]
        assert wait_for(lambda: [e for e in watcher.events("sync.applied") if e["reason"].startswith("snapshot ")])
        assert json.loads(outputs[2])["ok"] is True  # the unlock
        assert f"haldor/v1/{SITE}/status" in outputs[3]
    finally:
        agent.terminate()
        agent.wait(10)
        watcher.close()


def test_a_box_that_takes_sealed_schedules_only(tmp_path, broker):
    """Card numbers never lie in clear on the broker: a box refuses a schedule in clear,
    and one sealed to another box's key; the retained copy holds no card number."""
    haldor("keygen", "k1", "--dir", str(tmp_path))
    keys = {"k1": (tmp_path / "k1.pub").read_text().strip()}
    config = site_config(tmp_path / "haldor.toml", tmp_path / "data", port=broker.port, keys=keys, plain=False)
    other = site_config(tmp_path / "other.toml", tmp_path / "other", port=broker.port, keys=keys, plain=False)
    own_key = re.search(r"--seal-to (\S+)", haldor("keygen", "--site", "--config", str(config)).stdout).group(1)
    their_key = re.search(r"--seal-to (\S+)", haldor("keygen", "--site", "--config", str(other)).stdout).group(1)
    assert own_key != their_key
    watcher = Watcher(broker.port)
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(config)], env=ENV, stderr=subprocess.DEVNULL)
    at = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k1.key"), "--config", str(config))
    try:
        wait_for(lambda: any(d.get("online") for d in watcher.docs("status")), timeout=20, what="agent online")
        haldor("publish", *at, str(dump(tmp_path / "s41.json", snapshot(41))))
        haldor("publish", *at, "--seal-to", their_key, str(dump(tmp_path / "s42.json", snapshot(42))))
        haldor("publish", *at, "--seal-to", own_key, str(dump(tmp_path / "s43.json", snapshot(43))))
        applied = wait_for(lambda: watcher.events("sync.applied"), timeout=20, what="the sealed snapshot applied")
        assert [e["reason"] for e in applied] == ["snapshot 43"]
        rejected = [e["reason"] for e in watcher.events("sync.rejected")]
        assert any("in clear" in r for r in rejected) and any("cannot be opened with this site's key" in r for r in rejected)
        retained = _retained_schedule(broker.port)
        assert "sealed" in retained and "04A1B2C3D4E5F6" not in json.dumps(retained)
    finally:
        agent.terminate()
        agent.wait(10)
        watcher.close()


def test_publish_and_command_refuse_bad_input_with_one_line(tmp_path, broker):
    """What an integrator gets wrong ends in one line and exit 2, and nothing goes out."""
    haldor("keygen", "k1", "--dir", str(tmp_path / "keys"))  # the folder is made
    key, pub = str(tmp_path / "keys" / "k1.key"), str(tmp_path / "keys" / "k1.pub")
    at = ("--broker", f"127.0.0.1:{broker.port}")
    good = str(dump(tmp_path / "good.json", snapshot(42)))
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(snapshot(42)).replace('"version": 42', '"version": NaN'))
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps(snapshot(42))[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    surrogate = tmp_path / "surrogate.json"
    surrogate.write_text(json.dumps(snapshot(42)).replace("Volleyball U14", "\\ud800"))
    delta = {"schema": "haldor.delta/1", "site": SITE, "base_version": 42, "version": 42}
    cases = {
        "no public key to check the signing key against": ("publish", *at, "--key", key, good),
        "NaN is not JSON": ("publish", *at, "--key", key, "--verify-with", pub, str(nan)),
        "nested too deeply": ("publish", *at, "--key", key, "--verify-with", pub, str(deep)),
        "not valid Unicode": ("publish", *at, "--key", key, "--verify-with", pub, str(surrogate)),
        "greater than its base_version": (
            "publish",
            *at,
            "--key",
            key,
            "--verify-with",
            pub,
            str(dump(tmp_path / "d.json", delta)),
        ),
        "not a PEM private key": ("publish", *at, "--key", pub, "--verify-with", pub, good),
        "the port must be 1-65535": ("publish", "--broker", "127.0.0.1:abc", "--key", key, "--verify-with", pub, good),
        "is not a key id": ("keygen", "bad kid", "--dir", str(tmp_path)),
        "--site: 'bad site' is not a site id": ("schedule", "sample", "--site", "bad site"),
        "--wait: more than 0": ("command", *at, "--key", key, SITE, "resync", "--wait", "0"),
        "--valid: more than 0 and at most 86400": ("command", *at, "--key", key, SITE, "resync", "--valid", "99999999"),
        "neither a site id nor +": ("watch", *at, "--site", "a/#", "--count", "1"),
    }
    for why, args in cases.items():
        result = haldor(*args, check=False)
        assert result.returncode == 2, (why, result.returncode, result.stderr)
        assert why in result.stderr and len(result.stderr.strip().splitlines()) == 1, (why, result.stderr)


def test_a_broker_that_refuses_is_named_in_one_line(tmp_path):
    refusing = Broker(tmp_path / "refusing", audit=False)
    refusing.config = lambda: Broker.config(refusing).replace("allow_anonymous true", "allow_anonymous false")
    refusing.start()
    try:
        haldor("keygen", "k1", "--dir", str(tmp_path))
        at = ("--broker", f"127.0.0.1:{refusing.port}")
        good = str(dump(tmp_path / "good.json", snapshot(42)))
        for args in (
            ("publish", *at, "--key", str(tmp_path / "k1.key"), "--verify-with", str(tmp_path / "k1.pub"), good),
            ("watch", *at, "--count", "1"),
            ("command", *at, "--key", str(tmp_path / "k1.key"), SITE, "resync"),
        ):
            result = haldor(*args, check=False)
            assert result.returncode == 1, (args[0], result.stderr)
            assert result.stderr.strip() == f"haldor: broker 127.0.0.1:{refusing.port} refused: Not authorized", result.stderr
    finally:
        refusing.stop()


def test_publish_refuses_a_schedule_older_than_the_box_has(tmp_path, broker, box):
    """It would be ignored, and as the retained snapshot it would replace the newer one."""
    at = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(tmp_path / "k1.key"), "--verify-with", str(tmp_path / "k1.pub"))
    haldor("publish", *at, str(dump(tmp_path / "s42.json", snapshot(42))))
    wait_for(lambda: [d for d in box.docs("status") if d.get("schedule_version") == 42], timeout=10, what="42 applied")
    older = haldor("publish", *at, str(dump(tmp_path / "s41.json", snapshot(41))), check=False)
    assert older.returncode == 2 and "41 is not newer than the 42" in older.stderr and "nothing published" in older.stderr
    assert json.loads(_retained_schedule(broker.port)["doc"])["version"] == 42
    haldor("publish", *at, "--older", str(tmp_path / "s41.json"))  # as after a reset_version
    assert json.loads(_retained_schedule(broker.port)["doc"])["version"] == 41


def test_the_box_refuses_a_command_issued_ahead_of_its_clock(tmp_path, broker, box):
    from haldor.integrator.documents import new_command, sign

    ahead = new_command(SITE, "resync", now=datetime.now(UTC) + timedelta(hours=1))
    publisher = Watcher(broker.port, topics="unused")
    publisher.client.publish(f"haldor/v1/{SITE}/cmd", json.dumps(sign(str(tmp_path / "k1.key"), ahead)), qos=1)
    result = wait_for(lambda: [r for r in box.docs("cmd/result") if r["id"] == ahead["id"]], what="result")[0]
    assert result["ok"] is False and "issued in the future" in result["error"]
    publisher.close()


def test_every_publish_on_one_connection_is_checked_against_the_brokers_answer(tmp_path):
    """A connection that published once must still hear the refusal of the next (the
    bridge publishes every site on one)."""
    from haldor.errors import HaldorError
    from haldor.integrator.broker_client import acked_publish, connect
    from haldor.mqtt import BrokerOptions

    acl = tmp_path / "acl"
    acl.write_text("topic write haldor/v1/open/#\n")
    strict = Broker(tmp_path / "strict", extra=f"acl_file {acl}\n", audit=False).start()
    opts = BrokerOptions("127.0.0.1", strict.port)
    client = opts.client("test")
    try:
        connect(client, opts)
        acked_publish(client, opts, "haldor/v1/open/schedule", b"{}")
        with pytest.raises(HaldorError, match="refused to publish on haldor/v1/shut/schedule"):
            acked_publish(client, opts, "haldor/v1/shut/schedule", b"{}")
    finally:
        client.disconnect()
        client.loop_stop()
        strict.stop()
