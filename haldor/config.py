"""The configuration file (PROTOCOL 9): parsed, typed and validated in one place.

Every section is a frozen dataclass below, its fields the keys (checked by
:mod:`haldor.toml_file`); every fault stops start-up with one line naming the file and
the key. The docs test checks README against these declarations. It imports nothing of
the documents' validation: ``haldor run`` reads it first, and its start-up time matters.
"""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor.access.public_keys import load_public_key
from haldor.drivers.registry import READER_TYPES
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, TOPIC_PREFIX
from haldor.records import record
from haldor.toml_file import Checker, key, keys_of, read

DEFAULT_PATH = "/etc/haldor/haldor.toml"
OSDP_BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400)
PIN_FACTORIES = ("", "mock", "lgpio", "rpigpio", "pigpio", "native")


@record(kw_only=True)
class SiteConfig:
    id: str = key()
    name: str = ""
    timezone: str = "Europe/Copenhagen"
    data_dir: str = "/var/lib/haldor"
    language: Literal["da", "en"] = "da"


@record(kw_only=True)
class MqttConfig:
    host: str = ""
    port: int = key(8883, low=1, high=65535, problem="must be 1-65535")
    transport: Literal["tcp", "websockets"] = "tcp"
    tls: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    topic_prefix: str = TOPIC_PREFIX
    client_id: str = ""


@record(kw_only=True)
class SyncConfig:
    http_url: str = ""
    http_after_s: int = 300
    outbox_capacity: int = 1_000_000


@record(kw_only=True)
class TrustConfig:
    require_signature: bool = True
    #: key id: base64 Ed25519 public key (loaded into :attr:`Config.trusted_keys`)
    keys: dict[str, str] = key({})
    command_keys: dict[str, str] = key({})
    plain_documents: bool = False


@record(kw_only=True)
class UpdateConfig:
    #: key id: base64 Ed25519 public key that signs releases (``haldor keygen release``)
    release_keys: dict[str, str] = key({})
    #: how long a new release has to pass its self-check before it is rolled back
    check_s: int = key(180, low=5, high=3600, problem="must be 5-3600 seconds")


def _count(default: int) -> Any:
    return key(default, low=0)


@record(kw_only=True)
class PolicyConfig:
    grace_before_min: int = _count(15)
    grace_after_min: int = _count(15)
    no_show_after_min: int = _count(20)
    leader_first: bool = False
    max_denials: int = _count(5)
    max_unknown_cards: int = _count(10)
    denial_window_s: int = _count(600)
    denial_lockout_s: int = _count(60)
    denial_lockout_max_s: int = _count(3600)
    pin_lockout_blocks_cards: bool = False


@record(kw_only=True)
class GpioConfig:
    pin_factory: str = key("", choices=PIN_FACTORIES)


@record(kw_only=True)
class KioskConfig:
    listen: str = "127.0.0.1:8080"
    title: str = ""


@record(kw_only=True)
class PrivacyConfig:
    event_retention_days: int = 60


@record(kw_only=True)
class DoorConfig:
    """One ``[[doors]]`` table: the keys, their types and defaults are these fields (a
    field without a default is required)."""

    id: str
    name: str = ""
    lock_pin: int
    lock_active_high: bool = True
    fail: Literal["secure", "safe"] = "secure"
    unlock_s: float = 5.0
    contact_pin: int = 0
    exit_pin: int = 0
    held_open_s: float = 60.0
    fire_pin: int = 0


@record(kw_only=True)
class ReaderConfig:
    """One ``[[readers]]`` table, as :class:`DoorConfig`. ``type`` names an entry of
    :data:`haldor.drivers.registry.READER_TYPES`."""

    id: str
    type: str = "serial-line"
    door: str = ""
    port: str = ""
    baudrate: int = 9600
    byte_order: Literal["as-read", "reversed"] = "as-read"
    number: Literal["hex", "decimal"] = "hex"  # hid: "decimal" for readers that type the card's number in decimal
    d0_pin: int = 0
    d1_pin: int = 0
    led_pin: int = 0
    buzzer_pin: int = 0
    address: int = 0  # osdp
    scbk_file: str = ""
    install_mode: bool = False


@record(kw_only=True)
class Config:
    path: str
    site: SiteConfig
    mqtt: MqttConfig = MqttConfig()
    sync: SyncConfig = SyncConfig()
    trust: TrustConfig = TrustConfig()
    policy: PolicyConfig = PolicyConfig()
    gpio: GpioConfig = GpioConfig()
    kiosk: KioskConfig = KioskConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    update: UpdateConfig = UpdateConfig()
    doors: tuple[DoorConfig, ...] = ()
    readers: tuple[ReaderConfig, ...] = ()
    trusted_keys: dict[str, Any] = field(default_factory=dict)
    #: the keys that may sign commands; empty: the schedule keys sign commands too
    command_keys: dict[str, Any] = field(default_factory=dict)
    #: the keys that may sign releases (``[update] release_keys``); empty: no update is installed
    release_keys: dict[str, Any] = field(default_factory=dict)

    @property
    def site_id(self) -> str:
        return self.site.id

    @property
    def data_dir(self) -> str:
        return self.site.data_dir

    def door(self, door_id: str) -> DoorConfig | None:
        return next((d for d in self.doors if d.id == door_id), None)

    def summary(self) -> str:
        broker = f"{self.mqtt.host}:{self.mqtt.port}" if self.mqtt.host else "no broker"
        return (
            f"{self.path}: site {self.site_id}, {len(self.doors)} door(s), {len(self.readers)} reader(s), "
            f"{broker}, {len(self.trusted_keys)} trusted key(s), data in {self.data_dir}"
        )


#: each ``[section]`` of the file and its dataclass
SECTIONS: dict[str, type] = {
    "site": SiteConfig,
    "mqtt": MqttConfig,
    "sync": SyncConfig,
    "trust": TrustConfig,
    "policy": PolicyConfig,
    "gpio": GpioConfig,
    "kiosk": KioskConfig,
    "privacy": PrivacyConfig,
    "update": UpdateConfig,
}


def documented_keys() -> list[str]:
    """Every key the configuration accepts, as ``section.key`` (for the docs test)."""
    keys = [k for name, cls in SECTIONS.items() for k in keys_of(cls, name)]
    return keys + keys_of(DoorConfig, "doors") + keys_of(ReaderConfig, "readers")


def default_path() -> str:
    return os.environ.get("HALDOR_CONFIG") or DEFAULT_PATH


def load(path: str | os.PathLike) -> Config:
    """Read and validate a configuration file; ConfigError names the key at fault."""
    return parse(read(str(path)), str(path))


def parse(raw: dict[str, Any], path: str = "<config>") -> Config:
    c = Checker(path)
    c.only(raw, (*SECTIONS, "doors", "readers"))
    sections: dict[str, Any] = {name: c.section(raw, name, cls) for name, cls in SECTIONS.items()}
    doors = c.tables(raw, "doors", DoorConfig)
    readers = c.tables(raw, "readers", ReaderConfig)
    _check_sections(sections["site"], sections["kiosk"], c.fail)
    keys, command_keys, release_keys = _trusted_keys(sections["trust"], sections["update"], c.fail)
    pins = _PinClaims(c.fail)
    door_ids = _check_doors(doors, pins, c.fail)
    _check_readers(readers, door_ids, pins, c.fail)
    return Config(
        path=path,
        doors=doors,
        readers=readers,
        trusted_keys=keys,
        command_keys=command_keys,
        release_keys=release_keys,
        **sections,
    )


def _trusted_keys(trust: TrustConfig, update: UpdateConfig, fail) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The trusted keys loaded: those that sign schedules, commands and releases, never
    one key for two of them."""
    loaded: dict[str, dict[str, Any]] = {}
    raw: dict[str, str] = {}
    for section, table in (("trust", "keys"), ("trust", "command_keys"), ("update", "release_keys")):
        loaded[table] = {}
        for kid, text in getattr(trust if section == "trust" else update, table).items():
            where = f"{section}.{table}.{kid}"
            try:
                loaded[table][kid] = load_public_key(text)
            except (ValueError, TypeError):
                raise fail(where, "not a base64 Ed25519 public key (32 bytes)") from None
            other = raw.get(text)
            if other is not None:
                raise fail(where, f"the same key as {other}: schedules, commands and releases each have keys of their own")
            raw[text] = where
    return loaded["keys"], loaded["command_keys"], loaded["release_keys"]


def _check_sections(site: SiteConfig, kiosk: KioskConfig, fail) -> None:
    """What a key's type and bounds cannot say: identifiers, time zones, addresses."""
    if not IDENTIFIER.fullmatch(site.id):  # documents and topics carry it
        raise fail("site.id", IDENTIFIER_TEXT)
    try:
        ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("site.timezone", f"unknown time zone {site.timezone!r}") from None
    host, _, port = kiosk.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fail("kiosk.listen", 'must be "host:port", e.g. "127.0.0.1:8080"')


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
        for name in kind.needs:
            if not getattr(r, name) and not (name == "scbk_file" and r.type == "osdp"):  # OSDP's says more below
                raise fail(f"{where}.{name}", f"required for a {r.type} reader")
        for name in kind.pins:
            claim(getattr(r, name), f"{where}.{name}")
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
    from haldor import osdp_keys  # (secrets, random): only where OSDP readers are configured

    problem = osdp_keys.check(r.scbk_file, r.install_mode)
    if problem:
        raise fail(f"{where}.scbk_file", problem)
