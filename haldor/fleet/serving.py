"""The fleet's page served by uvicorn, in a thread of its own beside the consumer and
the alerting: the socket is bound at once (a port taken is an error at the start, and a
test's port 0 is known before it serves), slow clients are dropped, and ``shutdown``
ends the open live streams and waits for the server to stop."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import build_app
from .web import FleetWeb

#: a client has this long to send a request's head (and app_forms.BODY_S for a form)
HEAD_S = 20.0
#: an idle connection between requests is closed after this
KEEP_ALIVE_S = 5
#: open requests at a stop get this long to finish
GRACE_S = 5


class _SlowClientsDropped(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, but a connection that has not sent a whole request head
    within ``head_s`` (from its start, or from the last answer) is closed."""

    head_s = HEAD_S
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_s, self._head_late)

    def _head_late(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """Says when it listens (a thread waits for that, not for a guess of time)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _listening(address: tuple[str, int]) -> socket.socket:
    """A TCP socket named as such (IPPROTO_TCP): asyncio turns Nagle off only on those, and
    with it on every answer on a kept connection waited 40 ms for the client's delayed ACK."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class FleetServer:
    def __init__(self, web: FleetWeb, address: tuple[str, int], *, head_s: float = HEAD_S) -> None:
        self.web = web
        self.socket = _listening(address)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        protocol = type("SlowClientsDropped", (_SlowClientsDropped,), {"head_s": head_s})
        config = uvicorn.Config(
            build_app(web),
            http=protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,  # the login limits read X-Forwarded-For themselves, from the proxy on this machine only
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACE_S,
        )
        self.server = _Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def start(self, timeout: float = 10.0) -> FleetServer:
        """Serve in a thread; returns once it listens."""
        self._thread = threading.Thread(target=self.serve_forever, name="fleet-web", daemon=True)
        self._thread.start()
        if not self.server.ready.wait(timeout):
            raise RuntimeError("the fleet's page did not start")
        return self

    def shutdown(self, timeout: float = GRACE_S + 5) -> None:
        """Live streams end, open requests get GRACE_S, then the thread is gone."""
        self.web.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.socket.close()
