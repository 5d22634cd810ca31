"""Door-first start: `haldor run`'s loop answers the doors first; once they are idle, a thread
beside it imports the network part (:mod:`.network`: the broker link with paho, remote
documents and commands, the status, updates, the kiosk feed), about a third of a start; the
loop builds and attaches the part when it hears :class:`Loaded`. A part that does not load
stops the agent: a box that serves its doors but never reports would be silent (and a
release hands over to the base install, :mod:`.launcher`)."""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Callable
from typing import Any

from haldor.records import record

#: what the network part imports that the doors do not
MODULES = ("haldor.agent.network", "haldor.agent.kiosk_feed")
#: the part is loaded once the loop has had nothing to do for this long (a card waiting at the
#: start is decided first, without an import beside it taking the interpreter's lock) ...
WHEN_IDLE_S = 0.05
#: ... or this long after the start, whatever comes to the doors
AT_LATEST_S = 1.0
#: a part not loaded this long after its loading started (an import that hangs) is not loaded
LOADED_WITHIN_S = 30.0


@record
class Loaded:
    """To the loop: the network part's modules are imported, or (``error``) they are not."""

    error: str | None = None


def load_beside(post: Callable[[Any], None], modules: tuple[str, ...] = MODULES) -> threading.Thread:
    """Imports ``modules`` in a thread of its own, then posts :class:`Loaded`, whatever happens."""

    def load() -> None:
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # a damaged or missing file (or one that exits): the loop stops the agent
            post(Loaded(f"{type(exc).__name__}: {exc}"))
        else:
            post(Loaded())

    thread = threading.Thread(target=load, name="network-import", daemon=True)
    thread.start()
    return thread


class Later:
    """The network part of a door-first start, until it is attached: when its modules are
    loaded (:attr:`load`, beside the loop), and what builds it (:attr:`build`, in the loop)."""

    def __init__(self, build: Callable[[], Any], monotonic: Callable[[], float]) -> None:
        self.build, self.load = build, load_beside
        self._monotonic = monotonic
        self.loaded_within_s = LOADED_WITHIN_S
        #: when the loading starts at the latest (monotonic), until it has started
        self._load_by: float | None = None
        #: when it must have been loaded (monotonic), once it has started
        self._loaded_by: float | None = None

    def start(self) -> None:
        """The loop answers the doors from now."""
        self._load_by = self._monotonic() + AT_LATEST_S

    @property
    def wait_s(self) -> float | None:
        """How long the loop may wait for a message before this has something to do."""
        if self._load_by is not None:
            return WHEN_IDLE_S
        return None if self._loaded_by is None else max(0.0, self._loaded_by - self._monotonic())

    def heard(self, idle_s: float | None, post: Callable[[Any], None]) -> None:
        """After each wait of the loop: ``idle_s``, how long it waited for nothing (a deadline
        due at once, say the first reports, is not the doors being idle)."""
        now = self._monotonic()
        if self._load_by is not None and ((idle_s is not None and idle_s >= WHEN_IDLE_S) or now >= self._load_by):
            self._load_by, self._loaded_by = None, now + self.loaded_within_s
            gc.enable()  # the doors' start is over: the collector runs again (haldor.__main__ held it off)
            try:
                self.load(post)
            except Exception as exc:  # no thread to be had: the agent stops as for a part that does not load
                post(Loaded(f"{type(exc).__name__}: {exc}"))
        elif self._loaded_by is not None and now >= self._loaded_by:
            self._loaded_by = None
            post(Loaded(f"not loaded within {self.loaded_within_s:.0f} s"))

    def built(self, message: Loaded, attach: Callable[..., Any]) -> str | None:
        """The part built and attached with ``attach``, in the loop: why it is not, else None."""
        if message.error is not None:
            return message.error
        try:
            attach(*self.build()).start()
        except Exception as exc:  # the store, a file, the TLS settings: the agent stops (exit 70)
            return f"{type(exc).__name__}: {exc}"
        return None
