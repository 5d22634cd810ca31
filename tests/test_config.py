import base64

import pytest

from haldor import config
from haldor.errors import ConfigError

from .helpers import write_config

MINIMAL = {"site": {"id": "valby-skole"}}


def test_minimal_configuration_has_defaults():
    cfg = config.parse(MINIMAL)
    assert cfg.site.timezone == "Europe/Copenhagen"
    assert cfg.mqtt.topic_prefix == "haldor/v1"
    assert cfg.policy.max_denials == 5
    assert cfg.doors == () and cfg.readers == ()


KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    "raw, key",
    [
        ({}, "site.id: required"),
        ({"site": {"id": "x", "colour": "red"}}, "site.colour: unknown key"),
        ({"site": {"id": "x"}, "mqttt": {}}, "mqttt: unknown section"),
        ({"site": {"id": "x"}, "mqtt": {"port": "1883"}}, "mqtt.port: expected an integer"),
        ({"site": {"id": "x"}, "mqtt": {"tls": 1}}, "mqtt.tls: expected true or false"),
        ({"site": {"id": "x", "timezone": "Europe/Valby"}}, "site.timezone: unknown time zone"),
        ({"site": {"id": "x", "language": "sv"}}, "site.language"),
        ({"site": {"id": "x"}, "doors": [{"id": "main"}]}, "doors[0].lock_pin: required"),
        ({"site": {"id": "x"}, "doors": [{"id": "main", "lock_pin": True}]}, "doors[0].lock_pin: expected an integer"),
        (
            {"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17}, {"id": "n", "lock_pin": 17}]},
            "doors[1].lock_pin: GPIO 17 is already used by doors[0].lock_pin",
        ),
        ({"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17, "fail": "open"}]}, "doors[0].fail"),
        ({"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17, "fire_pin": 4}]}, "doors[0].fire_pin"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "type": "wiegand", "d0_pin": 5}]}, "readers[0].d1_pin: required"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "type": "nfc", "port": "/dev/x"}]}, "readers[0].type"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "port": "/dev/x", "door": "main"}]}, "readers[0].door: no door 'main'"),
        ({"site": {"id": "x"}, "readers": [{"id": "r"}]}, "readers[0].port: required"),
        ({"site": {"id": "x"}, "trust": {"keys": {"k": "bm90IGEga2V5"}}}, "trust.keys.k"),
        ({"site": {"id": "x"}, "trust": {"command_keys": {"c": "bm90IGEga2V5"}}}, "trust.command_keys.c"),
        (
            {"site": {"id": "x"}, "trust": {"keys": {"k": KEY}, "command_keys": {"c": KEY}}},
            "trust.command_keys.c: the same key as trust.keys.k",
        ),
        ({"site": {"id": "x"}, "gpio": {"pin_factory": "magic"}}, "gpio.pin_factory"),
        # ids go into topics, documents and events: the protocol's identifiers, ASCII only
        ({"site": {"id": "valby-skøle"}}, "site.id: 1-64 characters"),
        ({"site": {"id": "x"}, "doors": [{"id": "hoved dør", "lock_pin": 17}]}, "doors[0].id: 1-64 characters"),
        ({"site": {"id": "x"}, "readers": [{"id": "main in", "port": "/dev/x"}]}, "readers[0].id: 1-64 characters"),
    ],
)
def test_bad_configuration_names_the_key(raw, key):
    with pytest.raises(ConfigError) as info:
        config.parse(raw, "/etc/haldor/haldor.toml")
    message = str(info.value)
    assert message.startswith("/etc/haldor/haldor.toml: ")
    assert key in message
    assert "\n" not in message


def test_two_fail_safe_doors_may_share_one_fire_input():
    cfg = config.parse(
        {
            "site": {"id": "x"},
            "doors": [
                {"id": "a", "lock_pin": 17, "fail": "safe", "fire_pin": 4},
                {"id": "b", "lock_pin": 18, "fail": "safe", "fire_pin": 4},
            ],
        }
    )
    assert [d.fire_pin for d in cfg.doors] == [4, 4]


def test_load_reports_toml_errors_in_one_line(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text("[site\nid=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path)
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "missing.toml")


def test_written_config_loads(tmp_path):
    cfg = config.load(write_config(tmp_path / "h.toml", tmp_path / "data"))
    assert [d.id for d in cfg.doors] == ["main", "gym-a"]
    assert "site valby-skole, 2 door(s)" in cfg.summary()


def test_shipped_example_configurations_are_valid():
    from pathlib import Path

    others = ("bridge.toml", "fleet.toml")
    examples = sorted(p for p in (Path(__file__).parent.parent / "config").glob("*.toml") if p.name not in others)
    assert examples, "config/ holds example configurations (bridge.toml: test_bridge; fleet.toml: test_fleet_alerts)"
    for path in examples:
        config.load(path)


def _osdp(tmp_path, *readers: dict) -> dict:
    return {
        "site": {"id": "x"},
        "doors": [{"id": "main", "lock_pin": 17}],
        "readers": [{"type": "osdp", "port": "/dev/ttyUSB0", "door": "main", **r} for r in readers],
    }


@pytest.mark.parametrize(
    "readers, key",
    [
        ([{"id": "a", "address": 1}], "readers[0].scbk_file: required"),
        ([{"id": "a", "address": 1, "scbk_file": "{missing}"}], "readers[0].scbk_file: no key file"),
        ([{"id": "a", "address": 1, "scbk_file": "{public}"}], "readers[0].scbk_file: key file"),
        ([{"id": "a", "address": 127, "scbk_file": "{key}"}], "readers[0].address: an OSDP address is 0-126"),
        ([{"id": "a", "address": 1, "baudrate": 4800, "scbk_file": "{key}"}], "readers[0].baudrate"),
        (
            [{"id": "a", "address": 1, "scbk_file": "{key}"}, {"id": "b", "address": 1, "scbk_file": "{key}"}],
            "readers[1].address: address 1 on /dev/ttyUSB0 is already reader 'a'",
        ),
        (
            [{"id": "a", "address": 1, "scbk_file": "{key}"}, {"id": "b", "address": 2, "baudrate": 19200, "scbk_file": "{key}"}],
            "readers[1].baudrate: the other readers on /dev/ttyUSB0 run at 9600",
        ),
        ([{"id": "a", "address": 1, "scbk_file": "{key}", "led_pin": 5}], "readers[0].led_pin: an OSDP reader's LED"),
        ([{"id": "a", "address": 1, "scbk_file": "{nofolder}", "install_mode": True}], "readers[0].scbk_file: folder"),
    ],
)
def test_bad_osdp_readers_name_the_key(tmp_path, readers, key):
    (tmp_path / "r.key").write_text("00" * 16)
    (tmp_path / "r.key").chmod(0o600)
    (tmp_path / "public.key").write_text("00" * 16)
    (tmp_path / "public.key").chmod(0o644)
    paths = {
        "{key}": tmp_path / "r.key",
        "{public}": tmp_path / "public.key",
        "{missing}": tmp_path / "none.key",
        "{nofolder}": tmp_path / "no" / "r.key",
    }
    for r in readers:
        r["scbk_file"] = str(paths.get(r.get("scbk_file"), r.get("scbk_file", "")))
        if not r["scbk_file"]:
            del r["scbk_file"]
    with pytest.raises(ConfigError) as info:
        config.parse(_osdp(tmp_path, *readers), "/etc/haldor/haldor.toml")
    assert key in str(info.value) and "\n" not in str(info.value)


def test_osdp_readers_share_a_bus_and_a_new_reader_may_await_its_key(tmp_path):
    (tmp_path / "a.key").write_text("11" * 16 + "\n")
    (tmp_path / "a.key").chmod(0o600)
    cfg = config.parse(
        _osdp(
            tmp_path,
            {"id": "a", "address": 1, "scbk_file": str(tmp_path / "a.key")},
            {"id": "b", "address": 2, "scbk_file": str(tmp_path / "b.key"), "install_mode": True},
        )
    )
    assert [(r.address, r.install_mode) for r in cfg.readers] == [(1, False), (2, True)]
    with pytest.raises(ConfigError, match="readers\\[1\\].port: /dev/ttyUSB0 is an OSDP bus"):
        config.parse(
            {
                **_osdp(tmp_path, {"id": "a", "address": 1, "scbk_file": str(tmp_path / "a.key")}),
                "readers": [
                    {"id": "a", "type": "osdp", "port": "/dev/ttyUSB0", "address": 1, "scbk_file": str(tmp_path / "a.key")},
                    {"id": "s", "type": "serial-line", "port": "/dev/ttyUSB0"},
                ],
            }
        )
