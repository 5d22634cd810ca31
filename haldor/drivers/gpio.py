"""Locks, door inputs and reader feedback on GPIO, through gpiozero.

gpiozero's pin factories are the swappable backend: lgpio on the Pi, the mock
factory off it. The factory is chosen once, here, and handed to each device (no
process-global ``Device.pin_factory``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from gpiozero import Device, DigitalInputDevice, DigitalOutputDevice
from gpiozero.exc import GPIOZeroError
from gpiozero.pins.mock import MockFactory, MockPin

from haldor.errors import DriverError

log = logging.getLogger(__name__)


def pin_factory(name: str = ""):
    """The gpiozero pin factory named by ``[gpio] pin_factory`` ("" = gpiozero's choice,
    which honours ``GPIOZERO_PIN_FACTORY``)."""
    try:
        if name == "mock" or (not name and os.environ.get("GPIOZERO_PIN_FACTORY") == "mock"):
            return MockFactory()
        if name:
            saved = os.environ.get("GPIOZERO_PIN_FACTORY")
            os.environ["GPIOZERO_PIN_FACTORY"] = name
            try:
                return Device._default_pin_factory()
            finally:
                if saved is None:
                    del os.environ["GPIOZERO_PIN_FACTORY"]
                else:
                    os.environ["GPIOZERO_PIN_FACTORY"] = saved
        return Device._default_pin_factory()
    except (GPIOZeroError, ImportError, OSError) as exc:
        raise DriverError(f"no GPIO pin factory {name or '(default)'}: {exc}") from exc


def simulated(factory) -> bool:
    """gpiozero's mock pins: a box off the Pi, for a trial or a test (issue 27)."""
    return isinstance(factory, MockFactory)


class GpioLock:
    """A lock relay. The output is created inactive (coil off) and never pulses on start.

    Coil off is the safe state of both kinds: a fail-secure strike is then locked, a
    fail-safe magnet released. So unlocking energises a strike and de-energises a magnet.
    """

    def __init__(self, pin: int, *, active_high: bool, fail: str, factory) -> None:
        self.fail = fail
        try:
            self._out = DigitalOutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=factory)
        except GPIOZeroError as exc:
            raise DriverError(f"lock on GPIO {pin}: {exc}") from exc

    def set_unlocked(self, unlocked: bool) -> None:
        energise = unlocked if self.fail == "secure" else not unlocked
        self._out.value = energise

    @property
    def unlocked(self) -> bool:
        if self._out.closed:
            return self.fail == "safe"  # an undriven output is the safe state
        return bool(self._out.value) == (self.fail == "secure")

    def safe(self) -> None:
        """Coil off: fail-secure locked, fail-safe released."""
        self._out.off()

    def close(self) -> None:
        if not self._out.closed:
            self._out.off()
            self._out.close()


class DebouncedInput:
    """A contact to ground with the Pi's pull-up; a change is reported once the level
    has been steady for ``debounce_s`` (contacts and buttons bounce for milliseconds).

    ``rests_active``: on mock pins the input starts active (a shut door's contact closed
    to ground) instead of at its pull's level, so a trial off the Pi does not start with
    every door open and a held-open alarm; real pins read what is wired."""

    def __init__(
        self, pin: int, on_change: Callable[[bool], None], *, factory, debounce_s: float = 0.03, rests_active: bool = False
    ) -> None:
        self._on_change = on_change
        self._debounce_s = debounce_s
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        try:
            self._dev = DigitalInputDevice(pin, pull_up=True, pin_factory=factory)
        except GPIOZeroError as exc:
            raise DriverError(f"input on GPIO {pin}: {exc}") from exc
        mock = self._dev.pin
        if rests_active and isinstance(mock, MockPin):  # active: pulled up, closed to ground
            mock.drive_low() if self._dev.pull_up else mock.drive_high()
        self._reported = self._dev.is_active
        self._dev.when_activated = self._edge
        self._dev.when_deactivated = self._edge

    @property
    def active(self) -> bool:
        """Closed to ground (pressed), as last reported."""
        return self._reported

    def _edge(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce_s, self._settled)
            self._timer.daemon = True
            self._timer.start()

    def _settled(self) -> None:
        if self._dev.closed:
            return
        level = self._dev.is_active
        if level != self._reported:
            self._reported = level
            self._on_change(level)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        self._dev.close()


class GpioIndicator:
    """LED and buzzer at a reader: granted = LED 1.5 s and one beep; denied = three blinks and beeps."""

    def __init__(self, led_pin: int, buzzer_pin: int, *, factory) -> None:
        self._led = DigitalOutputDevice(led_pin, pin_factory=factory) if led_pin else None
        self._buzzer = DigitalOutputDevice(buzzer_pin, pin_factory=factory) if buzzer_pin else None

    def granted(self) -> None:
        if self._led:
            self._led.blink(on_time=1.5, off_time=0, n=1, background=True)
        if self._buzzer:
            self._buzzer.blink(on_time=0.1, off_time=0, n=1, background=True)

    def denied(self) -> None:
        if self._led:
            self._led.blink(on_time=0.15, off_time=0.15, n=3, background=True)
        if self._buzzer:
            self._buzzer.blink(on_time=0.15, off_time=0.15, n=3, background=True)

    def close(self) -> None:
        for dev in (self._led, self._buzzer):
            if dev:
                dev.close()
