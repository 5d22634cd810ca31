"""`haldor run` under systemd: READY=1, then WATCHDOG=1 only while the decision loop
works, on a notify socket the test provides."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tty

from haldor.agent.messages import Command, Stop
from haldor.agent.notify import Notifier

from .helpers import site_config
from .rig import Rig, running


class NotifySocket:
    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float) -> tuple[float, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return time.monotonic(), data.decode()

    def until(self, text: str, timeout: float = 15.0) -> list[str]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.next(deadline - time.monotonic())
            if got is None:
                break
            seen.append(got[1])
            if text in got[1]:
                return seen
        raise AssertionError(f"no {text} on the notify socket; got {seen}")


def test_ready_then_watchdog_pings_then_stopping(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = site_config(
        tmp_path / "haldor.toml",
        tmp_path / "data",
        extra=f"""
[[readers]]
id = "main-in"
type = "serial-line"
door = "main"
port = "{os.ttyname(slave)}"
""",
    )
    notify = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000", "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(path)], env=env, stderr=subprocess.DEVNULL)
    try:
        assert any("READY=1" in m for m in notify.until("READY=1"))
        notify.until("WATCHDOG=1", timeout=2)
        notify.until("WATCHDOG=1", timeout=2)
        proc.send_signal(signal.SIGTERM)
        notify.until("STOPPING=1", timeout=5)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)


def test_no_socket_no_notifications():

    n = Notifier({})
    assert not n.enabled and n.interval_s is None
    n.ready()
    n.watchdog()  # nothing to send to: nothing happens
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}).interval_s is None  # not us
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10000000"}).interval_s == 5.0


class _Hung:
    """A lock driver that hangs (a relay board stuck on its bus) until released."""

    def __init__(self, lock) -> None:
        self.lock = lock
        self.release = threading.Event()

    def set_unlocked(self, unlocked: bool) -> None:
        self.release.wait(10)
        self.lock.set_unlocked(unlocked)

    def close(self) -> None:
        self.lock.close()


def test_watchdog_pings_stop_while_the_loop_is_stuck(tmp_path):

    rig = Rig(tmp_path, reader=False)
    notify = NotifySocket(tmp_path / "notify")
    try:
        agent = rig.agent()
        agent.notifier = Notifier({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
        thread = running(agent)
        hung = agent.hw.locks["main"] = _Hung(agent.hw.locks["main"])
        notify.until("WATCHDOG=1", timeout=2)
        agent.post(Command("unlock", "main", 1))
        pings = []
        window_end = time.monotonic() + 2.5
        while (got := notify.next(max(0.01, window_end - time.monotonic()))) is not None and time.monotonic() < window_end:
            pings.append(got[0])
        marks = [window_end - 2.5, *pings, window_end]
        assert max(b - a for a, b in zip(marks, marks[1:], strict=False)) >= 1.5  # pings every 0.2 s, then silence
        hung.release.set()  # the loop goes on, and so do the pings
        notify.until("WATCHDOG=1", timeout=3)
        agent.post(Stop())
        thread.join(5)
        assert not thread.is_alive()
    finally:
        rig.close()
