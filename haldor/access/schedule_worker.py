"""Schedule documents applied beside the decision loop.

Validating and applying a 100,000-credential snapshot takes seconds. Done on the
decision thread, a member badging meanwhile would wait for it; here a worker with
its own database connection does it, in arrival order, and the loop goes on
deciding from the schedule in force (SQLite's WAL lets it read the old one until
the new one is committed).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Collection, Mapping

from .intake import Outcome, process
from .store import Store

log = logging.getLogger(__name__)


class ScheduleWorker:
    def __init__(self, store: Store, keys: Mapping[str, Any], require_signature: bool, clock: Callable[[], float],
                 doors: Collection[str] | None = None) -> None:
        self._store = store  # its own connection
        self._doors = doors
        self._keys = keys
        self._require_signature = require_signature
        self._clock = clock
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="schedule", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes, done: Callable[[Outcome], None]) -> None:
        """Apply ``payload`` after everything submitted before it; ``done(outcome)`` runs
        on the worker's thread. The loop reports the outcome (:meth:`Outcome.event`)."""
        self._queue.put((payload, done))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            payload, done = item
            outcome = process(self._store, payload, keys=self._keys, require_signature=self._require_signature,
                              now=self._clock(), doors=self._doors)
            done(outcome)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self._store.close()
