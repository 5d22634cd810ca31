"""The one checker of Haldor's TOML files (haldor.toml, bridge.toml, fleet.toml): a section
declared once as a frozen dataclass, its faults one line naming the file and the key."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from haldor import config, toml_file
from haldor.bridge import build
from haldor.bridge import settings as bridge_settings
from haldor.errors import ConfigError
from haldor.integrator.documents import keygen
from haldor.toml_file import Checker, key


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    depth_m: float = 1.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool:
    name: str = key()
    lanes: int = key(6, low=1, high=10)
    swimmers: int = key(0, low=0)
    staff: int = key(2, low=1)
    open: bool = True
    kind: Literal["indoor", "outdoor"] = "indoor"
    colour: str = key("blue", choices=("blue", "green", "red"))
    doors: tuple[str, ...] = ()
    keys: dict[str, str] = key({})
    inner: Inner = Inner()
    heated: bool | None = None


def check(table: dict, words=toml_file.WORDS) -> Pool:
    return Checker("/etc/pool.toml", words).section({"pool": table}, "pool", Pool)


def test_a_section_becomes_its_typed_frozen_dataclass():
    pool = check({"name": "Valby", "inner": {"depth_m": 2}, "doors": ["a", "b"], "keys": {"k": "v"}, "heated": True})
    assert pool == Pool(name="Valby", inner=Inner(depth_m=2.0), doors=("a", "b"), keys={"k": "v"}, heated=True)
    assert isinstance(pool.inner.depth_m, float)  # a float key takes an integer, and holds a float
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.lanes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "table, message",
    [
        ({}, "pool.name: required"),
        ({"name": "x", "depth": 3}, "pool.depth: unknown key"),
        ({"name": "x", "lanes": True}, "pool.lanes: expected an integer, got True"),  # a bool is no integer
        ({"name": "x", "lanes": 1.5}, "pool.lanes: expected an integer, got 1.5"),
        ({"name": "x", "open": 1}, "pool.open: expected true or false, got 1"),
        ({"name": 5}, "pool.name: expected a string, got 5"),
        ({"name": "x", "lanes": 11}, "pool.lanes: 1 to 10"),
        ({"name": "x", "swimmers": -1}, "pool.swimmers: must not be negative"),
        ({"name": "x", "staff": 0}, "pool.staff: at least 1"),
        ({"name": "x", "kind": "lake"}, 'pool.kind: must be "indoor" or "outdoor"'),
        ({"name": "x", "colour": "pink"}, "pool.colour: must be one of 'blue', 'green', 'red'"),
        ({"name": "x", "doors": "a"}, "pool.doors: expected a list, got 'a'"),
        ({"name": "x", "doors": ["a", 2]}, "pool.doors[1]: expected a string, got 2"),
        ({"name": "x", "keys": {"k": 1}}, "pool.keys.k: expected a string, got 1"),
        ({"name": "x", "inner": {"depth_m": "deep"}}, "pool.inner.depth_m: expected a number, got 'deep'"),
        ({"name": "x", "inner": {"width": 1}}, "pool.inner.width: unknown key"),
        ({"name": "x", "inner": 3}, "pool.inner: expected a table"),
        ({"name": "x", "heated": "yes"}, "pool.heated: expected true or false, got 'yes'"),
    ],
)
def test_a_fault_is_one_line_naming_the_file_and_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        check(table)
    assert str(info.value) == f"/etc/pool.toml: {message}"


def test_the_municipality_s_files_name_python_s_types():
    with pytest.raises(ConfigError, match="^/etc/pool.toml: pool.lanes: expected int, got '6'$"):
        check({"name": "x", "lanes": "6"}, toml_file.TYPE_NAMES)


def test_tables_and_sections_are_named_where_they_are():
    c = Checker("/etc/pool.toml")
    with pytest.raises(ConfigError, match=r"pools\[1\].name: required"):
        c.tables({"pools": [{"name": "a"}, {}]}, "pools", Pool)
    with pytest.raises(ConfigError, match=r"pools: expected \[\[pools\]\] tables"):
        c.tables({"pools": {"name": "a"}}, "pools", Pool)
    with pytest.raises(ConfigError, match="lake: unknown section"):
        c.only({"pool": {}, "lake": {}}, ("pool",))


def test_every_section_of_the_box_s_configuration_is_an_attribute():
    cfg = config.parse({"site": {"id": "x"}, "policy": {"max_denials": 3}, "kiosk": {"title": "Hal"}})
    assert cfg.policy.max_denials == 3 and cfg.kiosk.title == "Hal" and cfg.sync.outbox_capacity == 1_000_000
    assert all(dataclasses.is_dataclass(getattr(cfg, name)) for name in config.SECTIONS)
    assert "policy.max_denials" in config.documented_keys() and "readers.scbk_file" in config.documented_keys()


def test_the_configuration_reads_without_the_documents_validation():
    """``haldor run`` reads its configuration first: the schedule's validator, the schemas
    and the envelope are not paid for before they are needed."""
    code = "import json, sys, haldor.config; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout))
    chain = (
        "haldor.access.envelope",
        "haldor.access.schedule",
        "haldor.access.schedule_stream",
        "haldor.access.fields",
        "haldor.access.intake",
        "haldor.access.model",
        "haldor.schemas",
        "jsonschema",
    )
    assert [name for name in chain if name in loaded] == []


def test_a_site_s_policy_carries_only_the_keys_given(tmp_path):
    raw = {
        "bridge": {"key": "k.key"},
        "sheets": {"associations": "a.csv", "credentials": "c.csv", "rooms": "r.csv"},
        "sites": [{"id": "a", "policy": {"grace_before_min": 5}}, {"id": "b"}],
    }
    keygen("k", tmp_path)
    cfg = bridge_settings.parse(raw, str(tmp_path / "bridge.toml"))
    inputs = build.Inputs(associations=[], credentials=[], rooms=[], closures=[], bookings={})
    assert build.snapshot(cfg.sites[0], inputs, generated_at="2026-11-26T00:00:00Z")["policy"] == {"grace_before_min": 5}
    assert "policy" not in build.snapshot(cfg.sites[1], inputs, generated_at="2026-11-26T00:00:00Z")
