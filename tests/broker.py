"""A real Mosquitto on a free loopback port, for the tests (and the benchmarks)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto with persistence, so that a restart keeps sessions and retained messages."""

    def __init__(self, workdir: Path, *, extra: str = "") -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        self.port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    def config(self) -> str:
        # as root, mosquitto would drop to its own user, who cannot enter pytest's folders
        return f"""
user {"root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")}
per_listener_settings false
allow_anonymous true
persistence true
persistence_location {self.dir / "data"}/
autosave_interval 1
set_tcp_nodelay true
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
listener {self.port} 127.0.0.1
{self.extra}
"""

    def start(self) -> "Broker":
        conf = self.dir / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")
                time.sleep(0.02)  # polling a port with a deadline: there is no event to wait on

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
