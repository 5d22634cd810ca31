import pytest

from haldor import config
from haldor.errors import ConfigError

from .helpers import write_config

MINIMAL = {"site": {"id": "valby-skole"}}


def test_minimal_configuration_has_defaults():
    cfg = config.parse(MINIMAL)
    assert cfg.site["timezone"] == "Europe/Copenhagen"
    assert cfg.mqtt["topic_prefix"] == "haldor/v1"
    assert cfg.policy["max_denials"] == 5
    assert cfg.doors == () and cfg.readers == ()


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
        ({"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17}, {"id": "n", "lock_pin": 17}]}, "doors[1].lock_pin: GPIO 17 is already used by doors[0].lock_pin"),
        ({"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17, "fail": "open"}]}, "doors[0].fail"),
        ({"site": {"id": "x"}, "doors": [{"id": "m", "lock_pin": 17, "fire_pin": 4}]}, "doors[0].fire_pin"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "type": "wiegand", "d0_pin": 5}]}, "readers[0].d1_pin: required"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "type": "nfc", "port": "/dev/x"}]}, "readers[0].type"),
        ({"site": {"id": "x"}, "readers": [{"id": "r", "port": "/dev/x", "door": "main"}]}, "readers[0].door: no door 'main'"),
        ({"site": {"id": "x"}, "readers": [{"id": "r"}]}, "readers[0].port: required"),
        ({"site": {"id": "x"}, "trust": {"keys": {"k": "bm90IGEga2V5"}}}, "trust.keys.k"),
        ({"site": {"id": "x"}, "gpio": {"pin_factory": "magic"}}, "gpio.pin_factory"),
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
    cfg = config.parse({"site": {"id": "x"}, "doors": [
        {"id": "a", "lock_pin": 17, "fail": "safe", "fire_pin": 4},
        {"id": "b", "lock_pin": 18, "fail": "safe", "fire_pin": 4},
    ]})
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

    examples = sorted((Path(__file__).parent.parent / "config").glob("*.toml"))
    assert examples, "config/ holds example configurations"
    for path in examples:
        config.load(path)
