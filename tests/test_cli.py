"""The command line as a user (or an installer) runs it: a real process, real files."""

import json
import os
import signal
import subprocess
import sys

import pytest

from haldor.store import DB_NAME, Store

from .helpers import CARD, SITE, booking, dump, snapshot, wait_for, write_config


def haldor(*args, env=None, check=None):
    proc = subprocess.run(
        [sys.executable, "-m", "haldor", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture
def cfg(tmp_path):
    return str(write_config(tmp_path / "haldor.toml", tmp_path / "data"))


def test_check_config_summary_and_bad_key(cfg, tmp_path):
    out = haldor("check-config", "--config", cfg, check=0)
    assert "site valby-skole, 2 door(s)" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nid = "x"\n[[doors]]\nid = "main"\nlock_pin = "17"\n')
    out = haldor("check-config", "--config", str(bad), check=2)
    assert out.stderr.strip().splitlines() == [f"haldor: {bad}: doors[0].lock_pin: expected an integer, got '17'"]


def test_config_from_environment(cfg):
    assert haldor("check-config", env={"HALDOR_CONFIG": cfg}, check=0).stdout.startswith(cfg)


def test_config_before_or_after_the_command(cfg, tmp_path):
    """`haldor --config FILE check-config` as well as after it; the later one wins."""
    assert haldor("--config", cfg, "check-config", check=0).stdout.startswith(cfg)
    assert haldor("--config", cfg, "schedule", "sample", check=0).stdout.startswith("{")
    other = str(tmp_path / "missing.toml")
    assert haldor("--config", other, "check-config", "--config", cfg, check=0).stdout.startswith(cfg)
    assert other in haldor("--config", other, "check-config", env={"HALDOR_CONFIG": cfg}, check=2).stderr


def test_schedule_load_and_decide(cfg, tmp_path):
    snap = dump(tmp_path / "s.json", snapshot())
    assert "applied snapshot 42" in haldor("schedule", "load", "--config", cfg, str(snap), check=0).stdout
    assert "ignored" in haldor("schedule", "load", "--config", cfg, str(snap), check=0).stdout
    out = haldor("decide", "--config", cfg, "--door", "main", "--card", CARD, "--at", "2026-11-25T17:30:00+01:00", check=0)
    assert json.loads(out.stdout) == {"granted": True, "reason": None, "booking": "b881", "credential": "c1001"}
    out = haldor("decide", "--config", cfg, "--door", "main", "--pin", "0000", "--at", "2026-11-25T17:30:00+01:00", check=0)
    assert json.loads(out.stdout) == {"granted": False, "reason": "wrong_pin", "booking": None, "credential": None}
    # a local reading without offset is taken in the site's time zone
    out = haldor("decide", "--config", cfg, "--door", "main", "--pin", "4821", "--at", "2026-11-25T16:40", check=0)
    assert json.loads(out.stdout)["reason"] == "outside_window"


def test_rejected_document_exits_2_and_changes_nothing(cfg, tmp_path):
    haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot())), check=0)
    bad = snapshot(43, bookings=[booking("b1", "2026-11-25T17:00:00+01:00", "2026-11-25T17:00:00+01:00")])
    out = haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "bad.json", bad)), check=2)
    assert "bookings[0].end: must be after start" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert "not valid JSON" in haldor("schedule", "load", "--config", cfg, str(garbage), check=2).stderr
    store = Store.open(tmp_path / "data", SITE)
    assert store.version == 42
    assert [e["type"] for e in store.outbox.events()] == ["sync.applied", "sync.rejected", "sync.rejected"]
    store.close()


def test_signatures_required_refuses_a_bare_document(tmp_path):
    cfg = tmp_path / "h.toml"
    cfg.write_text(f'[site]\nid = "{SITE}"\ndata_dir = "{tmp_path / "data"}"\n')
    out = haldor("schedule", "load", "--config", str(cfg), str(dump(tmp_path / "s.json", snapshot())), check=2)
    assert "unsigned" in out.stderr


def test_decide_refuses_an_unknown_door_and_a_bad_card(cfg):
    assert "no door 'cellar'" in haldor("decide", "--config", cfg, "--door", "cellar", "--pin", "1234", check=2).stderr
    assert "--card" in haldor("decide", "--config", cfg, "--door", "main", "--card", "xyz!", check=2).stderr


def _big_snapshot(version, n):
    doc = snapshot(version)
    doc["credentials"] = [
        {"id": f"c{i}", "card": f"uid:{i:08X}", "pin": None, "association": "a17", "role": "member"} for i in range(n)
    ]
    doc["bookings"] = [booking(f"b{i}", "2026-11-25T17:00:00+01:00", "2026-11-25T19:00:00+01:00") for i in range(n // 2)]
    return doc


def test_kill_9_during_apply_leaves_old_or_new_schedule_whole(cfg, tmp_path):
    """Regression guard: the apply is one transaction, whatever moment the process dies."""
    haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot(42))), check=0)
    big = dump(tmp_path / "big.json", _big_snapshot(43, 60_000))
    wal = tmp_path / "data" / (DB_NAME + "-wal")
    killed_mid_apply = 0
    for _ in range(5):
        start_size = wal.stat().st_size if wal.exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "haldor", "schedule", "load", "--config", cfg, str(big)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # the apply has begun writing once the WAL grows
        wait_for(
            lambda proc=proc, start_size=start_size: (
                proc.poll() is not None or (wal.exists() and wal.stat().st_size > start_size + 64 * 1024)
            ),
            timeout=30,
            what="the apply to start writing",
        )
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_mid_apply += 1
        store = Store.open(tmp_path / "data", SITE)
        counts = (
            store.version,
            *(store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("credentials", "bookings")),
        )
        store.close()
        assert counts in [(42, 3, 1), (43, 60_000, 30_000)]
        if counts[0] == 43:
            break
    assert killed_mid_apply >= 1


def test_schedule_load_warns_about_doors_that_do_not_meet(cfg, tmp_path):
    """Applied all the same: a room naming a door of another box is allowed (PROTOCOL 2)."""
    doc = snapshot(
        42, rooms=[{"id": "gym-a", "name": "A", "doors": ["main", "hall-b"]}, {"id": "gym-b", "name": "B", "doors": ["main"]}]
    )
    out = haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", doc)), check=0)
    lines = out.stdout.strip().splitlines()
    assert lines[0].endswith("applied snapshot 42")
    assert lines[1:] == [
        f"{tmp_path / 's.json'}: warning: door 'hall-b' of room gym-a is not controlled by this box",
        f"{tmp_path / 's.json'}: warning: configured door 'gym-a' is named by no room: only caretakers can open it",
    ]
    store = Store.open(tmp_path / "data", SITE)
    try:
        (applied,) = [e for e in store.outbox.events() if e["type"] == "sync.applied"]
        assert len(applied["warnings"]) == 2
    finally:
        store.close()


def test_a_version_past_two_to_the_53_is_refused_and_a_big_jump_warned(cfg, tmp_path):
    out = haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot(2**53))), check=2)
    assert "version: at most 9007199254740991" in out.stderr
    haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot(42))), check=0)
    out = haldor("schedule", "load", "--config", cfg, str(dump(tmp_path / "s.json", snapshot(42_000_042))), check=0)
    assert "warning: version jumped from 42 to 42000042" in out.stdout and "reset_version" in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--config", "x.toml"],
        ["--config", "x.toml", "-v", "run"],
        ["--config", "run", "check-config"],
        ["schedule", "sample", "--site", "s", "--version", "3"],
        ["decide", "--door", "main", "--pin", "1234", "--at", "2026-12-06T19:00:00+01:00"],
        ["command", "s", "unlock", "--door", "main", "--key", "k.key", "--broker", "127.0.0.1:1883"],
        ["ca", "client-cert", "fleet", "--dir", "ca"],
        ["release", "sign", "w.whl", "--key", "r.key"],
        ["fleet", "user", "add", "ana", "--role", "operator"],
        ["bridge", "--config", "b.toml", "--once"],
        ["watch", "--site", "s", "--count", "2"],
    ],
)
def test_the_command_named_is_parsed_as_with_every_parser_built(argv):
    """Only the named command's parser is built (a sixth of `haldor run`'s own start): what it
    parses is what the whole parser parses."""
    from haldor import cli

    named = cli._command_named(argv)
    assert named is not None
    assert vars(cli._parser(named).parse_args(argv)) == vars(cli._parser().parse_args(argv))


def test_an_unknown_command_is_refused_with_every_command_listed():
    out = haldor("bogus", check=2)
    assert "invalid choice: 'bogus'" in out.stderr and "'check-config'" in out.stderr and "'release'" in out.stderr


def test_every_command_runs_with_the_garbage_collector_on(cfg):
    """`haldor` imports a command's parts with Python's cyclic collector held off (a start
    allocates much and frees almost nothing); the command itself runs with it on."""
    import gc

    from haldor import cli

    gc.disable()
    try:
        assert cli.main(["check-config", "--config", cfg]) == 0
        assert gc.isenabled()
    finally:
        gc.enable()
