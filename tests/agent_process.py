"""`haldor run` as a child process: a site on mock pins with a serial-line reader on a
pty the test types into, real SQLite files, optionally a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tty
from pathlib import Path

from haldor import config
from haldor.agent.site import open_store

from .helpers import site_config, wait_for

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
            extra=f"""
[policy]
max_denials = 1000000
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
