"""The decision loop's inbox: what happens at the doors comes before what comes by network.

A flood on the broker (garbage on ``cmd``, thousands a second, signed or not) must not
put a badge, an exit button, a fire alarm or a stop behind it. Two lanes, each in
order: the door's lane is always emptied first. The network's lane is bounded in
bytes; an unacknowledged message (QoS 0) beyond the bound is dropped and counted (the
broker never expects it back), while an acknowledged one is always kept, since the
broker sends no more of those than its in-flight window until they are acknowledged.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

#: bytes the network's lane holds before it drops QoS 0 messages
MAX_REMOTE_BYTES = 16 * 1024 * 1024
#: what a message costs beyond its payload (the objects around it): an empty one is not free
MESSAGE_OVERHEAD = 1024


def _payload(message: Any) -> bytes | bytearray | None:
    """The network's messages carry a payload; the door's do not."""
    payload = getattr(message, "payload", None)
    return payload if isinstance(payload, (bytes, bytearray)) else None


class Inbox:
    """queue.Queue's put/get/get_nowait, with the door's lane first."""

    def __init__(self, max_remote_bytes: int = MAX_REMOTE_BYTES) -> None:
        self._local: collections.deque = collections.deque()
        self._remote: collections.deque = collections.deque()
        self._remote_bytes = 0
        self._max_remote_bytes = max_remote_bytes
        self._ready = threading.Condition()
        #: QoS 0 messages dropped because the network's lane was full
        self.dropped = 0

    def put(self, message: Any) -> None:
        payload = _payload(message)
        with self._ready:
            if payload is None:
                self._local.append(message)
            else:
                size = len(payload) + MESSAGE_OVERHEAD
                if self._remote_bytes + size > self._max_remote_bytes and getattr(message, "qos", 1) == 0:
                    if self.dropped % 1000 == 0:
                        log.warning("network messages arrive faster than they are handled: %d dropped so far", self.dropped + 1)
                    self.dropped += 1
                    return
                self._remote.append(message)
                self._remote_bytes += size
            self._ready.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._ready:
            if block and not self._ready.wait_for(lambda: self._local or self._remote, timeout):
                raise queue.Empty
            if self._local:
                return self._local.popleft()
            if self._remote:
                message = self._remote.popleft()
                self._remote_bytes -= len(_payload(message) or b"") + MESSAGE_OVERHEAD
                return message
            raise queue.Empty

    def get_nowait(self) -> Any:
        return self.get(block=False)
