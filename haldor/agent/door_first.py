"""Door-first start: `haldor run`'s loop answers the doors while a thread beside it imports
the network part (:mod:`.network`: the broker link with paho, remote documents and commands,
the status, updates, the kiosk feed), about a third of a start; the loop attaches the part
when it hears :class:`Loaded`. A part that does not load stops the agent: a box that serves
its doors but never reports would be silent (and a release hands over to the base install,
:mod:`.launcher`)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from haldor.records import record

#: what the network part imports that the doors do not
MODULES = ("haldor.agent.network", "haldor.agent.kiosk_feed")


@record
class Loaded:
    """To the loop: the network part's modules are imported, or (``error``) they are not."""

    error: str | None = None


def load_beside(post: Callable[[Any], None], modules: tuple[str, ...] = MODULES) -> threading.Thread:
    """Imports ``modules`` in a thread of its own, then posts :class:`Loaded`."""

    def load() -> None:
        try:
            for name in modules:
                importlib.import_module(name)
        except Exception as exc:  # a damaged or missing file: the loop stops the agent
            post(Loaded(f"{type(exc).__name__}: {exc}"))
        else:
            post(Loaded())

    thread = threading.Thread(target=load, name="network-import", daemon=True)
    thread.start()
    return thread
