"""A site's drivers, built from its configuration: locks first, in their safe state."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haldor.config import Config
from haldor.drivers import gpio
from haldor.drivers.base import Indicator, Input, LockOutput, Reader
from haldor.drivers.registry import READER_TYPES
from haldor.errors import ConfigError

from .messages import ContactChanged, ExitPressed, FireChanged

log = logging.getLogger(__name__)


@dataclass
class Hardware:
    """The drivers of one site, built from the configuration (or fakes in a test)."""

    locks: dict[str, LockOutput]
    indicators: dict[str, Indicator] = field(default_factory=dict)
    readers: list[Reader] = field(default_factory=list)
    inputs: list[Input] = field(default_factory=list)
    #: door -> its contact (one of ``inputs``), read at start
    contacts: dict[str, Input] = field(default_factory=dict)
    #: door -> its fire input (one of ``inputs``), read at start: an alarm already on when
    #: the agent starts sends no edge, and must release the door all the same
    fires: dict[str, Input] = field(default_factory=dict)
    #: on mock pins: every reader's simulated twin, fed from the data folder (drivers/simulated.py)
    simulated: Reader | None = None

    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        if self.simulated is not None:
            self.simulated.start()

    def close(self) -> None:
        """Every lock to its safe state first (systemd may kill a stop that takes long, and
        a reader can take seconds to close), then readers, inputs and indicators; a part
        that fails to close does not keep the others from closing."""
        parts: list[LockOutput | Reader | Input | Indicator] = [
            *self.locks.values(),
            *self.readers,
            *([self.simulated] if self.simulated is not None else []),
            *self.inputs,
            *self.indicators.values(),
        ]
        for part in parts:
            try:
                part.close()
            except Exception:
                log.exception("closing %r", part)


def build_hardware(cfg: Config, post: Callable[[Any], None], factory=None) -> Hardware:
    """Drivers chosen in one place from the configuration. Locks come first, created in
    their safe state, so nothing can move before them."""
    factory = factory or gpio.pin_factory(cfg.gpio.pin_factory)
    hw = Hardware(locks={})
    try:
        for d in cfg.doors:
            hw.locks[d.id] = gpio.GpioLock(d.lock_pin, active_high=d.lock_active_high, fail=d.fail, factory=factory)
        fire_inputs: dict[int, list[str]] = {}
        for d in cfg.doors:
            if d.contact_pin:
                contact = gpio.DebouncedInput(
                    d.contact_pin, functools.partial(_contact, post, d.id), factory=factory, rests_active=True
                )
                hw.inputs.append(contact)
                hw.contacts[d.id] = contact
            if d.exit_pin:
                hw.inputs.append(gpio.DebouncedInput(d.exit_pin, functools.partial(_exit, post, d.id), factory=factory))
            if d.fire_pin:
                fire_inputs.setdefault(d.fire_pin, []).append(d.id)
        for pin, doors in fire_inputs.items():

            def on_fire(active: bool, doors=tuple(doors)) -> None:
                for door in doors:
                    post(FireChanged(door, active))

            fire = gpio.DebouncedInput(pin, on_fire, factory=factory)
            hw.inputs.append(fire)
            hw.fires.update(dict.fromkeys(doors, fire))
        osdp = [r for r in cfg.readers if r.type == "osdp"]
        if osdp:
            _build_osdp(cfg, osdp, post, hw)
        for r in cfg.readers:
            kind = READER_TYPES.get(r.type)
            if kind is None:
                raise ConfigError(f"{cfg.path}: readers: unknown reader type {r.type!r}")
            if kind.builder is None:
                continue  # built a bus at a time, above
            hw.readers.append(kind.build(r, post, factory))
            if r.led_pin or r.buzzer_pin:
                hw.indicators[r.id] = gpio.GpioIndicator(r.led_pin, r.buzzer_pin, factory=factory)
        if gpio.simulated(factory) and cfg.readers:
            # a trial or a test off the Pi badges through FIFOs in the data folder; never with real pins
            from haldor.drivers import simulated

            hw.simulated = simulated.build(cfg, post)
    except BaseException:
        hw.close()
        raise
    return hw


def _contact(post: Callable[[Any], None], door: str, closed: bool) -> None:
    post(ContactChanged(door, not closed))


def _exit(post: Callable[[Any], None], door: str, pressed: bool) -> None:
    if pressed:
        post(ExitPressed(door))


def _build_osdp(cfg: Config, readers: list, post: Callable[[Any], None], hw: Hardware) -> None:
    """One control panel per serial port. A reader in install mode gets a fresh key
    file if it has none; install mode is over for a reader that accepted its key."""
    # libosdp only where OSDP readers are configured (as the registry imports every other
    # reader's driver when it is built): a box without them keeps its memory
    from haldor import osdp_keys
    from haldor.drivers.osdp_readers import OsdpBus, OsdpReaderSpec

    record = osdp_keys.InstallRecord(Path(cfg.data_dir) / "osdp")
    by_port: dict[str, list] = {}
    for r in readers:
        if r.install_mode and not Path(r.scbk_file).exists():
            key = osdp_keys.create_key(r.scbk_file)
            log.warning("reader %s: new Secure Channel key written to %s", r.id, r.scbk_file)
        else:
            key = osdp_keys.read_key(r.scbk_file)
        install = r.install_mode
        keyed_at = record.keyed_at(r.id, key) if install else None
        if keyed_at:
            log.warning(
                "reader %s: install_mode ignored: the reader accepted this key on %s. To key a replacement "
                "reader, delete %s and restart; remove install_mode when it is done",
                r.id,
                keyed_at,
                r.scbk_file,
            )
            install = False
        by_port.setdefault(r.port, []).append(OsdpReaderSpec(r.id, r.address, key, install, r.byte_order))
    for port, specs in by_port.items():
        baudrate = next(r.baudrate for r in readers if r.port == port)
        bus = OsdpBus(port, baudrate, specs, post, record=record)
        hw.readers.append(bus)
        for spec in specs:
            hw.indicators[spec.id] = bus.indicator(spec.id)
