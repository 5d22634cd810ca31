"""The one way the tests build a running agent: a site on gpiozero's mock pins with
serial-line readers on ptys and its store on disk, run in this process (``Rig``),
optionally linked to a real broker; or ``haldor run`` itself as a child process
(``AgentProcess``)."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import tty
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gpiozero.pins.mock import MockFactory

from haldor import __version__, config
from haldor.access.schedule import parse_document
from haldor.agent.hardware import build_hardware
from haldor.agent.link import MqttLink
from haldor.agent.loop import Agent
from haldor.agent.messages import Stop
from haldor.agent.site import open_store
from haldor.clock import SystemClock

from .helpers import CPH, MAIN_DOOR, booking, site_config, snapshot, wait_for

#: two doors: the main one with contact and exit button, the gym's fail-safe on a fire input
DOORS = """
[[doors]]
id = "main"
lock_pin = 17
contact_pin = 27
exit_pin = 22
unlock_s = 3

[[doors]]
id = "gym-a"
lock_pin = 18
lock_active_high = false
fail = "safe"
fire_pin = 25
"""


def public_key(key: Ed25519PrivateKey) -> str:
    """The line for ``[trust] keys``."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def around_now(version: int = 42) -> dict:
    """The sample snapshot with booking b881 on now."""
    now = datetime.now(CPH).replace(microsecond=0)
    start, end = (
        (now - timedelta(hours=1)).isoformat(timespec="seconds"),
        (now + timedelta(hours=1)).isoformat(timespec="seconds"),
    )
    return snapshot(version, bookings=[booking("b881", start, end)], closures=[])


class Rig:
    """One site: configuration, store, mock pins, ptys for the serial readers.

    ``reader`` False: no pty readers, only the ``readers`` tables given. ``port`` (or a
    whole ``mqtt`` section): a broker on loopback, and ``start()`` runs the agent linked to
    it; ``keys``: signatures required. ``schedule`` False: the store starts empty."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        reader: bool = True,
        readers: str = "",
        doors: str = DOORS,
        port: int | None = None,
        mqtt: str | None = None,
        keys: dict[str, str] | None = None,
        schedule: bool = True,
        command_keys: dict[str, str] | None = None,
    ) -> None:
        self.factory = MockFactory()
        self._built: list = []
        self._fds: list[int] = []
        self.master: int | None = None
        extra = readers
        if reader:
            self.master, slave = os.openpty()
            self.kiosk_master, kiosk_slave = os.openpty()
            for fd in (slave, kiosk_slave):
                tty.setraw(fd)
            extra += (
                f'\n[[readers]]\nid = "main-in"\ntype = "serial-line"\ndoor = "main"\nport = "{os.ttyname(slave)}"\n'
                f'\n[[readers]]\nid = "kiosk"\ntype = "serial-line"\nport = "{os.ttyname(kiosk_slave)}"\n'
            )
            self._fds = [self.master, self.kiosk_master, slave, kiosk_slave]
        # the relay board's pull-up holds the active-low input of gym-a's lock high
        self.factory.pin(18).drive_high()
        self.path = site_config(
            tmp_path / "haldor.toml",
            tmp_path / "data",
            port=port,
            mqtt=mqtt,
            keys=keys,
            extra=extra,
            doors=doors,
            command_keys=command_keys,
        )
        self.cfg = config.load(self.path)
        self.store = open_store(self.cfg)
        if schedule:
            self.store.schedule.apply(parse_document(around_now()), time.time())
        for pin in (17, 18):
            self.factory.pin(pin).clear_states()
        self.link: MqttLink | None = None
        #: the agent last built (``agent()``), the one ``start()`` runs
        self.running_agent: Agent | None = None
        self.thread: threading.Thread | None = None
        self._outbox = None

    def agent(self, clock=None, *, inbox: queue.Queue | None = None, link: MqttLink | None = None, network=None) -> Agent:
        """The agent, built and not started (``start()`` runs one); ``network``: door-first, as
        `haldor run` starts (:mod:`haldor.agent.door_first`)."""
        inbox = inbox if inbox is not None else queue.Queue()
        hw = build_hardware(self.cfg, inbox.put, self.factory)
        self._built.append(hw)
        if "main" in hw.contacts:
            self.factory.pin(27).drive_low()  # the door is shut: its contact closes to ground
            wait_for(lambda: hw.contacts["main"].active, what="door contact settled")
        self.running_agent = Agent(self.cfg, self.store, hw, clock or SystemClock(), inbox=inbox, link=link, network=network)
        return self.running_agent

    def start(self, *, connected: bool = True, clock=None) -> Rig:
        """Run an agent on a thread, linked to the broker when there is one."""
        inbox: queue.Queue = queue.Queue()
        if self.cfg.mqtt.host:
            self._outbox = open_store(self.cfg)
            self.link = MqttLink(self.cfg, self._outbox, inbox.put, version=__version__)
        agent = self.agent(clock, inbox=inbox, link=self.link)
        self.thread = running(agent)
        if connected and self.link is not None:
            wait_for(self.link.subscribed.is_set, what="agent connected and subscribed")
        return self

    def stop(self) -> None:
        """Stop the agent ``start()`` runs (its hardware closed, as ``haldor run`` does)."""
        if self.thread is not None and self.running_agent is not None:
            self.running_agent.post(Stop())
            self.thread.join(10)
            self.thread = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    def version(self) -> int | None:
        reader = open_store(self.cfg)
        try:
            return reader.version
        finally:
            reader.close()

    def pin(self, number: int):
        return self.factory.pin(number)

    def events(self, kind: str | None = None) -> list[dict]:
        return [e for e in self.store.outbox.events(limit=100_000) if kind is None or e["type"] == kind]

    def close(self) -> None:
        self.stop()
        for hw in self._built:  # a reader left running would go on opening its port by name,
            hw.close()  # and take the pty of a later test that gets the same number
        self.store.close()
        for fd in self._fds:
            os.close(fd)
        self.factory.reset()


def running(agent: Agent) -> threading.Thread:
    """``agent.run()`` on a thread; what it raised is in ``thread.errors``."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            agent.run()
        except BaseException as exc:  # the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    wait_for(agent.running.is_set, what="agent running")
    return thread


def step(agent: Agent, message) -> None:
    """One input, and its writes committed (the running loop does not wait for them)."""
    agent.handle(message)
    agent.settle()


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class AgentProcess:
    def __init__(
        self,
        tmp_path: Path,
        *,
        port: int | None = None,
        keys: dict[str, str] | None = None,
        extra: str = "",
        data_dir: Path | None = None,
        doors: str = MAIN_DOOR,
    ) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        self.data_dir = data_dir or tmp_path / "data"
        self.log = tmp_path / "agent.log"
        self.path = site_config(
            tmp_path / "haldor.toml",
            self.data_dir,
            port=port,
            keys=keys,
            doors=doors,
            extra=f"""
[policy]
max_denials = 1000000
max_unknown_cards = 1000000
[[readers]]
id = "main-in"
type = "serial-line"
door = "main"
port = "{os.ttyname(slave)}"
{extra}""",
        )
        self.proc: subprocess.Popen | None = None
        self.sent = 0

    def start(self) -> subprocess.Popen:
        """Start, and return once its reader's port is open: a reader's port drops what
        arrived before it was opened, as a real reader's would."""
        opened = self._opened()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haldor", "run", "--config", str(self.path)], env=ENV, stderr=open(self.log, "ab")
        )
        wait_for(lambda: self._opened() > opened or self.proc.poll() is not None, timeout=20, what="reader port open")
        return self.proc

    def _opened(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("reader main-in: port ")
        except FileNotFoundError:
            return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def badge(self, n: int = 1, card: str | None = None) -> None:
        for _ in range(n):
            line = card or f"uid:DE{self.sent:06X}"  # each a different card: no repeat filter
            os.write(self.master, f"{line}\r\n".encode())
            self.sent += 1

    def stored(self) -> list[dict]:
        store = open_store(config.load(self.path))
        try:
            return store.outbox.events(limit=10**6)
        finally:
            store.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)
