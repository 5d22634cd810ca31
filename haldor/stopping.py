"""How every long-running command of Haldor waits for SIGTERM (systemd) or SIGINT (Ctrl-C).

One way, because the obvious ways fail rarely and badly: a handler that sets a
``threading.Event`` can deadlock when it lands while the main thread holds that Event's
lock, and blocking the signals so one thread can wait for them is undone by libraries that
start helper processes (multiprocessing's resource tracker unblocks them on the thread
that starts it), after which a SIGTERM kills the process without its goodbye. Here the
handler only raises in the main thread, which holds no lock while it waits."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Stop(BaseException):
    """Raised by the handler in the main thread: only the wait below catches it."""


def wait_for_stop(
    alive: Callable[[], bool] | None = None, every_s: float = 0.5, ready: Callable[[], None] | None = None
) -> int | None:
    """Block the main thread until SIGTERM or SIGINT (its number), or until ``alive()``
    turns false, asked every ``every_s`` (None). ``ready`` is called once the signals are
    taken. The handlers before are put back."""
    got: list[int] = []

    def handler(signum: int, frame: object) -> None:
        got.append(signum)
        if len(got) == 1:
            raise _Stop

    before = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        if ready is not None:
            ready()
        while alive is None or alive():
            time.sleep(every_s)
    except _Stop:
        pass
    finally:
        for s, h in before.items():
            signal.signal(s, h)
    return got[0] if got else None
