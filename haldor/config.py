"""The configuration file (PROTOCOL 9): parsed, typed and validated in one place.

Every fault stops start-up with one line naming the file and the key. The schema
below is the single list of keys; the docs test checks README against it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor import osdp_keys
from haldor.access.envelope import load_public_key
from haldor.drivers.registry import READER_TYPES
from haldor.errors import ConfigError
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, TOPIC_PREFIX

DEFAULT_PATH = "/etc/haldor/haldor.toml"
OSDP_BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400)
PIN_FACTORIES = ("", "mock", "lgpio", "rpigpio", "pigpio", "native")

# (type, default); REQUIRED marks a key without default.
REQUIRED = object()
_SECTIONS: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "site": {
        "id": (str, REQUIRED),
        "name": (str, ""),
        "timezone": (str, "Europe/Copenhagen"),
        "data_dir": (str, "/var/lib/haldor"),
        "language": (str, "da"),
    },
    "mqtt": {
        "host": (str, ""),
        "port": (int, 8883),
        "transport": (str, "tcp"),
        "tls": (bool, True),
        "ca_file": (str, ""),
        "cert_file": (str, ""),
        "key_file": (str, ""),
        "username": (str, ""),
        "password_file": (str, ""),
        "topic_prefix": (str, TOPIC_PREFIX),
        "client_id": (str, ""),
    },
    "sync": {"http_url": (str, ""), "http_after_s": (int, 300), "outbox_capacity": (int, 1_000_000)},
    "trust": {
        "require_signature": (bool, True),
        "keys": (dict, {}),
        "command_keys": (dict, {}),
        "plain_documents": (bool, False),
    },
    "policy": {
        "grace_before_min": (int, 15),
        "grace_after_min": (int, 15),
        "no_show_after_min": (int, 20),
        "leader_first": (bool, False),
        "max_denials": (int, 5),
        "max_unknown_cards": (int, 10),
        "denial_window_s": (int, 600),
        "denial_lockout_s": (int, 60),
        "denial_lockout_max_s": (int, 3600),
        "pin_lockout_blocks_cards": (bool, False),
    },
    "gpio": {"pin_factory": (str, "")},
    "kiosk": {"listen": (str, "127.0.0.1:8080"), "title": (str, "")},
    "privacy": {"event_retention_days": (int, 60)},
}


def documented_keys() -> list[str]:
    """Every key the configuration accepts, as ``section.key`` (for the docs test)."""
    keys = [f"{s}.{k}" for s, entries in _SECTIONS.items() for k in entries]
    keys += [f"doors.{k}" for k in _DOOR] + [f"readers.{k}" for k in _READER]
    return keys


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorConfig:
    """One ``[[doors]]`` table: the keys, their types and defaults are these fields (a
    field without a default is required)."""

    id: str
    name: str = ""
    lock_pin: int
    lock_active_high: bool = True
    fail: str = "secure"
    unlock_s: float = 5
    contact_pin: int = 0
    exit_pin: int = 0
    held_open_s: float = 60
    fire_pin: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderConfig:
    """One ``[[readers]]`` table, as :class:`DoorConfig`. ``type`` names an entry of
    :data:`haldor.drivers.registry.READER_TYPES`."""

    id: str
    type: str = "serial-line"
    door: str = ""
    port: str = ""
    baudrate: int = 9600
    byte_order: str = "as-read"
    number: str = "hex"  # hid: "decimal" for readers that type the card's number in decimal
    d0_pin: int = 0
    d1_pin: int = 0
    led_pin: int = 0
    buzzer_pin: int = 0
    address: int = 0  # osdp
    scbk_file: str = ""
    install_mode: bool = False


def _entries(cls: type) -> dict[str, tuple[type | tuple[type, ...], Any]]:
    """A table's keys from its dataclass: (type, default), REQUIRED without a default; a
    float key takes an integer too."""
    hints = get_type_hints(cls)
    return {
        f.name: ((int, float) if hints[f.name] is float else hints[f.name], REQUIRED if f.default is MISSING else f.default)
        for f in fields(cls)
    }


_DOOR = _entries(DoorConfig)
_READER = _entries(ReaderConfig)


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    site: dict[str, Any]
    mqtt: dict[str, Any]
    sync: dict[str, Any]
    trust: dict[str, Any]
    policy: dict[str, Any]
    gpio: dict[str, Any]
    kiosk: dict[str, Any]
    privacy: dict[str, Any]
    doors: tuple[DoorConfig, ...] = ()
    readers: tuple[ReaderConfig, ...] = ()
    trusted_keys: dict[str, Any] = field(default_factory=dict)
    #: the keys that may sign commands; empty: the schedule keys sign commands too
    command_keys: dict[str, Any] = field(default_factory=dict)

    @property
    def site_id(self) -> str:
        return self.site["id"]

    @property
    def data_dir(self) -> str:
        return self.site["data_dir"]

    def door(self, door_id: str) -> DoorConfig | None:
        return next((d for d in self.doors if d.id == door_id), None)

    def summary(self) -> str:
        broker = f"{self.mqtt['host']}:{self.mqtt['port']}" if self.mqtt["host"] else "no broker"
        return (
            f"{self.path}: site {self.site_id}, {len(self.doors)} door(s), {len(self.readers)} reader(s), "
            f"{broker}, {len(self.trusted_keys)} trusted key(s), data in {self.data_dir}"
        )


def default_path() -> str:
    return os.environ.get("HALDOR_CONFIG") or DEFAULT_PATH


def load(path: str | os.PathLike) -> Config:
    """Read and validate a configuration file; ConfigError names the key at fault."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: str = "<config>") -> Config:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {message}")

    for key in raw:
        if key not in _SECTIONS and key not in ("doors", "readers"):
            raise fail(key, "unknown section")
    sections = {name: _typed(raw.get(name, {}), entries, name, fail) for name, entries in _SECTIONS.items()}
    doors = tuple(DoorConfig(**_typed(d, _DOOR, f"doors[{i}]", fail)) for i, d in enumerate(_tables(raw, "doors", fail)))
    readers = tuple(
        ReaderConfig(**_typed(r, _READER, f"readers[{i}]", fail)) for i, r in enumerate(_tables(raw, "readers", fail))
    )
    keys, command_keys = _check(sections, doors, readers, fail)
    return Config(path=path, doors=doors, readers=readers, trusted_keys=keys, command_keys=command_keys, **sections)


def _tables(raw: dict[str, Any], name: str, fail) -> list[dict]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise fail(name, f"expected [[{name}]] tables")
    return value


def _typed(values: Any, entries: dict, where: str, fail) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise fail(where, "expected a table")
    for key in values:
        if key not in entries:
            raise fail(f"{where}.{key}", "unknown key")
    out = {}
    for key, (kind, default) in entries.items():
        if key not in values:
            if default is REQUIRED:
                raise fail(f"{where}.{key}", "required")
            out[key] = default
            continue
        value = values[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            expected = {str: "a string", int: "an integer", bool: "true or false", dict: "a table"}.get(kind, "a number")
            raise fail(f"{where}.{key}", f"expected {expected}, got {value!r}")
        out[key] = value
    return out


def _check(s: dict[str, dict], doors, readers, fail) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each value as a whole configuration needs it; the trusted keys loaded: those that
    sign schedules and those that sign commands, never one key for both."""
    _check_sections(s, fail)
    loaded: dict[str, dict[str, Any]] = {}
    raw: dict[str, str] = {}
    for table in ("keys", "command_keys"):
        loaded[table] = {}
        for kid, text in s["trust"][table].items():
            try:
                loaded[table][kid] = load_public_key(text)
            except (ValueError, TypeError):
                raise fail(f"trust.{table}.{kid}", "not a base64 Ed25519 public key (32 bytes)") from None
            other = raw.get(text)
            if other is not None:
                raise fail(f"trust.{table}.{kid}", f"the same key as trust.{other}: a command key must not sign schedules")
            raw[text] = f"{table}.{kid}"
    keys, command_keys = loaded["keys"], loaded["command_keys"]
    pins = _PinClaims(fail)
    door_ids = _check_doors(doors, pins, fail)
    _check_readers(readers, door_ids, pins, fail)
    return keys, command_keys


def _check_sections(s: dict[str, dict], fail) -> None:
    site = s["site"]
    if not IDENTIFIER.fullmatch(site["id"]):  # documents and topics carry it
        raise fail("site.id", IDENTIFIER_TEXT)
    try:
        ZoneInfo(site["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("site.timezone", f"unknown time zone {site['timezone']!r}") from None
    if site["language"] not in ("da", "en"):
        raise fail("site.language", 'must be "da" or "en"')
    host, _, port = s["kiosk"]["listen"].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fail("kiosk.listen", 'must be "host:port", e.g. "127.0.0.1:8080"')
    if s["mqtt"]["transport"] not in ("tcp", "websockets"):
        raise fail("mqtt.transport", 'must be "tcp" or "websockets"')
    if not 0 < s["mqtt"]["port"] < 65536:
        raise fail("mqtt.port", "must be 1-65535")
    for key, value in s["policy"].items():
        if not isinstance(value, bool) and value < 0:
            raise fail(f"policy.{key}", "must not be negative")
    if s["gpio"]["pin_factory"] not in PIN_FACTORIES:
        raise fail("gpio.pin_factory", f"must be one of {', '.join(repr(x) for x in PIN_FACTORIES)}")


class _PinClaims:
    """Each GPIO pin used once across the site (fire inputs may be shared)."""

    def __init__(self, fail) -> None:
        self._fail = fail
        self._owners: dict[int, str] = {}

    def __call__(self, pin: int, key: str, *, shared: bool = False) -> None:
        if pin == 0:
            return
        if not 1 <= pin <= 27:
            raise self._fail(key, f"GPIO {pin} is not a usable BCM pin (1-27)")
        owner = self._owners.get(pin)
        if owner and not (shared and owner.endswith("fire_pin")):
            raise self._fail(key, f"GPIO {pin} is already used by {owner}")
        self._owners[pin] = key


def _check_doors(doors, claim: _PinClaims, fail) -> set[str]:
    seen: set[str] = set()
    for i, d in enumerate(doors):
        where = f"doors[{i}]"
        if not IDENTIFIER.fullmatch(d.id):  # rooms and commands name it
            raise fail(f"{where}.id", IDENTIFIER_TEXT)
        if d.id in seen:
            raise fail(f"{where}.id", f"duplicate door {d.id!r}")
        seen.add(d.id)
        if d.fail not in ("secure", "safe"):
            raise fail(f"{where}.fail", 'must be "secure" or "safe"')
        if d.unlock_s <= 0 or d.held_open_s <= 0:
            raise fail(f"{where}.unlock_s" if d.unlock_s <= 0 else f"{where}.held_open_s", "must be positive")
        if d.fire_pin and d.fail != "safe":
            raise fail(f"{where}.fire_pin", 'a fire alarm releases only a fail-safe door (fail = "safe")')
        claim(d.lock_pin or -1, f"{where}.lock_pin")
        claim(d.contact_pin, f"{where}.contact_pin")
        claim(d.exit_pin, f"{where}.exit_pin")
        claim(d.fire_pin, f"{where}.fire_pin", shared=True)
    return seen


def _check_readers(readers, door_ids: set[str], claim: _PinClaims, fail) -> None:
    reader_ids = set()
    buses: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(readers):
        where = f"readers[{i}]"
        if not IDENTIFIER.fullmatch(r.id):  # events name it
            raise fail(f"{where}.id", IDENTIFIER_TEXT)
        if r.id in reader_ids:
            raise fail(f"{where}.id", f"duplicate reader {r.id!r}")
        reader_ids.add(r.id)
        kind = READER_TYPES.get(r.type)
        if kind is None:
            raise fail(f"{where}.type", f"must be one of {', '.join(READER_TYPES)}")
        if r.door and r.door not in door_ids:
            raise fail(f"{where}.door", f"no door {r.door!r} is configured")
        if r.byte_order not in ("as-read", "reversed"):
            raise fail(f"{where}.byte_order", 'must be "as-read" or "reversed"')
        if r.number not in ("hex", "decimal"):
            raise fail(f"{where}.number", 'must be "hex" or "decimal"')
        for key in kind.needs:
            if not getattr(r, key) and not (key == "scbk_file" and r.type == "osdp"):  # OSDP's says more below
                raise fail(f"{where}.{key}", f"required for a {r.type} reader")
        for key in kind.pins:
            claim(getattr(r, key), f"{where}.{key}")
        if r.type == "osdp":
            _check_osdp(r, where, buses, fail)
        claim(r.led_pin, f"{where}.led_pin")
        claim(r.buzzer_pin, f"{where}.buzzer_pin")
    for i, r in enumerate(readers):
        if r.type != "osdp" and r.port in buses:
            raise fail(f"readers[{i}].port", f"{r.port} is an OSDP bus; only osdp readers can share it")


def _check_osdp(r: ReaderConfig, where: str, buses: dict[str, dict[str, Any]], fail) -> None:
    """Readers on one port share a bus: one speed, one address each; every reader has
    its own Secure Channel key, in a file only the agent can read."""
    if r.led_pin or r.buzzer_pin:
        raise fail(f"{where}.{'led_pin' if r.led_pin else 'buzzer_pin'}", "an OSDP reader's LED and buzzer are driven over OSDP")
    if not 0 <= r.address <= 126:
        raise fail(f"{where}.address", "an OSDP address is 0-126")
    if r.baudrate not in OSDP_BAUDRATES:
        raise fail(f"{where}.baudrate", f"OSDP runs at {', '.join(map(str, OSDP_BAUDRATES))}")
    bus = buses.setdefault(r.port, {"baudrate": r.baudrate, "addresses": {}})
    if bus["baudrate"] != r.baudrate:
        raise fail(f"{where}.baudrate", f"the other readers on {r.port} run at {bus['baudrate']}")
    other = bus["addresses"].get(r.address)
    if other:
        raise fail(f"{where}.address", f"address {r.address} on {r.port} is already reader {other!r}")
    bus["addresses"][r.address] = r.id
    if not r.scbk_file:
        raise fail(f"{where}.scbk_file", "required: the file with this reader's Secure Channel key")
    problem = osdp_keys.check(r.scbk_file, r.install_mode)
    if problem:
        raise fail(f"{where}.scbk_file", problem)
