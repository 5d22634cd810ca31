"""Every long-running command waits for SIGTERM and SIGINT one way (haldor.stopping)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from haldor.stopping import wait_for_stop

from .helpers import wait_for

CHILD = """
import multiprocessing, sys, threading
from haldor.stopping import wait_for_stop

def busy():
    # a thread that starts a helper process (multiprocessing unblocks signals on it) and
    # keeps taking and giving back a lock, as a loop does
    multiprocessing.get_context("spawn").Process(target=print, args=("",)).start()
    lock = threading.Lock()
    while True:
        with lock:
            pass

if __name__ == "__main__":
    threading.Thread(target=busy, daemon=True).start()
    got = wait_for_stop(ready=lambda: print("waiting", flush=True))
    print("stopped by", got, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_wait_whatever_the_other_threads_do(tmp_path, sig):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(x.strip() for x in child.stdout), daemon=True).start()
    try:
        wait_for(lambda: "waiting" in lines, timeout=20, what="the child waiting for its signal")
        child.send_signal(sig)
        assert child.wait(20) == 0
        assert wait_for(lambda: f"stopped by {int(sig)}" in lines, what="its last word")
    finally:
        child.kill()


def test_the_wait_ends_when_what_it_watches_ends():
    work = threading.Thread(target=lambda: None)
    work.start()
    work.join()
    assert wait_for_stop(work.is_alive, every_s=0.01) is None
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers before are back
