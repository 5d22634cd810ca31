"""Which release `haldor run` runs: the base install's code starts, looks at
``<data_dir>/releases/current`` and, when it names another release, becomes that release
(the same Python, the same arguments, the release first on ``sys.path``); the base
environment provides the libraries. Before that it judges a release still on trial: one
that stopped twice before passing its self-check, or whose time ran out, is rolled back
here, so a release that cannot even start never keeps a door from its controller.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import releases

log = logging.getLogger(__name__)

#: set in the release's process: the switch happens once per start
ENV = "HALDOR_RELEASE"
#: starts of a release on trial that never passed its self-check before it is given up
MAX_STARTS = 2
#: set by the release's process for the base install it starts again when the release does not
#: even import (a folder partly deleted, a file damaged): why, for the launcher to judge
BROKEN = "HALDOR_RELEASE_BROKEN"
#: the release's process: its folder first, then `haldor` as usual; a release that does not
#: import hands over to the base install (the same arguments) instead of stopping the doors
BOOT = f"""
import gc, os, sys
gc.disable()  # as haldor.__main__ does for a start
path = sys.argv.pop(1)
sys.path.insert(0, path)
sys.argv[0] = "haldor"
try:
    from haldor.cli import main
    if "run" in sys.argv[1:]:
        import haldor.agent.run
except Exception as exc:
    broken = f"{{path}}: {{type(exc).__name__}}: {{exc}}"
else:
    status = main()
    broken = os.environ.get("{BROKEN}")  # set by failed(): the part imported after the doors answer
    if broken is None:
        sys.exit(status)
    broken = f"{{path}}: {{broken}}"
env = {{k: v for k, v in os.environ.items() if k != "{ENV}"}}
env["{BROKEN}"] = broken
os.execve(sys.executable, [sys.executable, "-m", "haldor", *sys.argv[1:]], env)
"""


def launch(data_dir: str, running: str, argv: Sequence[str]) -> None:
    """Returns when the running code is the one to run; else replaces this process."""
    if os.environ.get(ENV):  # this is the release the base install started
        return
    broken = os.environ.pop(BROKEN, None)
    if broken is not None:
        log.error("release %s did not start (%s)", (releases.read(data_dir, releases.CURRENT) or {}).get("version"), broken)
        if releases.read(data_dir, releases.PENDING) is None:  # on trial, judge() counts it as a start that failed
            log.error("the base install %s runs instead", running)
            releases.write(data_dir, releases.CURRENT, None)
    judge(data_dir)
    current = releases.read(data_dir, releases.CURRENT)
    if current is None or current.get("version") == running:
        return
    version, path = current.get("version"), Path(str(current.get("path", "")))
    if not isinstance(version, str) or not (path / "haldor" / "__init__.py").is_file():
        why = f"release {version}: {path} holds no haldor package" if isinstance(version, str) else f"{current}: names no version"
        if releases.roll_back(data_dir, why) is None:  # not on trial: the base install runs
            log.error("%s: the base install %s runs instead", why, running)
            releases.write(data_dir, releases.CURRENT, None)
        return launch(data_dir, running, argv)
    log.info("release %s in %s runs (the base install is %s)", version, path, running)
    logging.shutdown()
    os.execve(sys.executable, [sys.executable, "-c", BOOT, str(path), *argv], {**os.environ, ENV: version})


def failed(why: str) -> None:
    """The agent stopped because a part of it did not import (door-first, :mod:`.door_first`):
    in a release, :data:`BOOT` hands over to the base install, which judges it as above."""
    if os.environ.get(ENV):
        os.environ[BROKEN] = why


def judge(data_dir: str) -> None:
    """A release on trial: rolled back when it stopped too often or ran out of time, else
    its start counted."""
    pending = releases.read(data_dir, releases.PENDING)
    if pending is None:
        if releases.present(data_dir, releases.PENDING):  # a marker half-written or tampered with
            log.error("%s: unreadable: the release on trial is given up, the base install runs", releases.PENDING)
            releases.write(data_dir, releases.CURRENT, None)
            releases.write(data_dir, releases.PENDING, None)
        return
    starts = pending.get("starts", 0)
    deadline = pending.get("deadline")
    if isinstance(starts, int) and starts >= MAX_STARTS:
        releases.roll_back(data_dir, f"it stopped {starts} times before passing its self-check")
    elif isinstance(deadline, (int, float)) and time.time() > deadline:
        releases.roll_back(data_dir, "its self-check did not pass in time")
    else:
        releases.write(data_dir, releases.PENDING, {**pending, "starts": (starts if isinstance(starts, int) else 0) + 1})
