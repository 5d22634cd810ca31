"""A release rolled out in stages to 100 simulated boxes (issue 27): a test group, a share,
then all, each stage waited for; a stage with more failures than allowed stops the
rollout and the later stages' boxes never get the command."""

from __future__ import annotations

import json
import time

import pytest

from haldor import cli
from haldor.errors import DocumentError
from haldor.integrator import documents
from haldor.integrator.rollout import plan

from .releases import build_wheel
from .sim_boxes import SimulatedBoxes

SITES = [f"site-{i:03d}" for i in range(100)]
TESTS = "site-000,site-001"


def test_a_plan_takes_the_test_group_then_shares_of_what_is_left():
    versions = {"a": "0.1.0", "b": "0.1.0", "c": None, "d": "0.2.0", "e": "0.10.0", "f": "0.1.9"}
    assert plan(versions, "0.2.0", ["test", "50%", "all"], ["b"]) == [["b"], ["a"], ["c", "f"]]
    assert plan(versions, "0.2.0", ["all"], []) == [["a", "b", "c", "f"]]  # d and e run it or newer
    with pytest.raises(DocumentError, match="--test: no status from x"):
        plan(versions, "0.2.0", ["test", "all"], ["x"])
    with pytest.raises(DocumentError, match="--stages: 'half' is not test, N% or all"):
        plan(versions, "0.2.0", ["half"], [])


@pytest.fixture
def keys(tmp_path):
    ops, _, _ = documents.keygen("ops", tmp_path / "keys")
    release, _, _ = documents.keygen("release", tmp_path / "keys")
    return ops, release


def _rollout(tmp_path, broker, keys, capsys, *extra: str) -> tuple[int, str, float]:
    wheel = build_wheel(tmp_path, "0.2.0")
    manifest = tmp_path / "manifest.json"
    assert cli.main(["release", "sign", str(wheel), "--key", str(keys[1]), "--out", str(manifest)]) == 0
    capsys.readouterr()
    started = time.monotonic()
    code = cli.main(
        ["release", "rollout", str(manifest), "--url", "http://127.0.0.1:1/" + wheel.name, "--broker", f"127.0.0.1:{broker.port}"]
        + ["--key", str(keys[0]), "--test", TESTS, "--wait", "30", *extra]
    )
    return code, capsys.readouterr().out, time.monotonic() - started


def _boxes(broker, keys, failing=frozenset()) -> SimulatedBoxes:
    return SimulatedBoxes(
        broker.port,
        SITES,
        command_keys=documents.public_keys([str(keys[0]).removesuffix(".key") + ".pub"]),
        release_keys=documents.public_keys([str(keys[1]).removesuffix(".key") + ".pub"]),
        failing=failing,
    )


def test_a_staged_rollout_updates_100_boxes(tmp_path, broker, keys, capsys):
    boxes = _boxes(broker, keys)
    try:
        code, out, took = _rollout(tmp_path, broker, keys, capsys)
    finally:
        boxes.close()
    print(f"\n{out}staged rollout to 100 simulated boxes: {took:.2f} s")
    assert code == 0, out
    assert out.splitlines()[0].startswith("stage test: 2 of 2 site(s) run 0.2.0")
    assert out.splitlines()[1].startswith("stage 10%: 8 of 8 site(s) run 0.2.0")
    assert out.splitlines()[2].startswith("stage all: 90 of 90 site(s) run 0.2.0")
    assert set(boxes.versions.values()) == {"0.2.0"} and all(len(c) == 1 for c in boxes.commands.values())


def test_a_rollout_stops_when_a_stage_fails(tmp_path, broker, keys, capsys):
    boxes = _boxes(broker, keys, failing=frozenset({"site-005", "site-007"}))
    try:
        code, out, _ = _rollout(tmp_path, broker, keys, capsys, "--max-failures", "1")
    finally:
        boxes.close()
    assert code == 1, out
    lines = out.splitlines()
    assert lines[1].startswith("stage 10%: 6 of 8 site(s) run 0.2.0")
    assert lines[2] == "  site-005: update to 0.2.0 rolled back to 0.1.0: self-check not passed"
    assert lines[-1] == "stopped: 2 failure(s) in stage 10%, at most 1 allowed; 90 site(s) not touched"
    assert [s for s, c in boxes.commands.items() if c] == SITES[:10]


def test_a_result_counts_only_from_the_site_the_command_went_to():
    from types import SimpleNamespace

    from haldor.integrator.rollout import Rollout
    from haldor.mqtt import BrokerOptions

    rollout = Rollout(BrokerOptions("127.0.0.1", 1), lambda site: ({}, b""))
    prefix = rollout.opts.prefix

    def heard(topic: str, doc: dict) -> None:
        rollout._on_message(None, None, SimpleNamespace(topic=f"{prefix}/{topic}", payload=json.dumps(doc).encode()))

    heard("site-001/status", {"agent_version": "0.2.0"})
    heard("site-002/cmd/result", {"id": "c-1", "ok": False, "error": "forged by another box"})
    assert rollout._outcome("c-1", "site-001", "0.2.0") == ""  # still waiting: site-002 does not answer for site-001
    heard("site-001/cmd/result", {"id": "c-1", "ok": True})
    assert rollout._outcome("c-1", "site-001", "0.2.0") is None
