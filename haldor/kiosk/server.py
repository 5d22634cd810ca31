"""`haldor kiosk`: the display page, its JSON state and a server-sent event stream.

One refresher thread rebuilds the state twice a second from a read-only database
connection and the agent's last push; every open page gets the new state within
half a second of a change, over server-sent events. The agent pushes its status and
check-in answers to POST /api/agent, from loopback only; nothing here writes the
database or reaches the hardware.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from haldor import listen
from haldor.config import Config
from haldor.stopping import wait_for_stop
from haldor.store.kiosk_reads import Day, read_day

from .state import AgentView, build_state

log = logging.getLogger(__name__)

REFRESH_S = 0.5
HEARTBEAT_S = 15.0
OFFLINE_AFTER_S = 15.0
MAX_PUSH_BYTES = 64 * 1024


class Kiosk:
    """The state of the screen, shared by every request thread."""

    def __init__(
        self,
        cfg: Config,
        *,
        offline_after_s: float = OFFLINE_AFTER_S,
        clock: Callable[[], float] = time.time,
        demo_badge: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.db_path = Path(cfg.data_dir) / "haldor.db"
        self.offline_after_s = offline_after_s
        self.clock = clock
        self.demo_badge = demo_badge  # only `haldor demo` sets it
        self.agent = AgentView()
        self.language = cfg.site.language
        self.title = cfg.kiosk.title or cfg.site.name or cfg.site_id
        self.doors = [(d.id, d.name or d.id) for d in cfg.doors]
        self._conn: sqlite3.Connection | None = None
        self._changed = threading.Condition()
        self.state_json = "{}"
        self.version = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="kiosk-refresh", daemon=True)

    # -- the agent's side ---------------------------------------------------------------

    def agent_push(self, doc: dict[str, Any]) -> None:
        now = self.clock()
        if isinstance(doc.get("status"), dict):
            self.agent.status, self.agent.status_at = doc["status"], now
        if isinstance(doc.get("answer"), dict):
            self.agent.answer, self.agent.answer_at = doc["answer"], now
        self.refresh()

    # -- state ----------------------------------------------------------------------

    def _day(self, now: float) -> Day:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False, timeout=2)
            return read_day(self._conn, now, self.cfg.site.timezone)
        except sqlite3.Error as exc:
            log.debug("database not readable yet: %s", exc)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return Day(timezone=self.cfg.site.timezone)

    def refresh(self) -> None:
        with self._changed:
            now = self.clock()
            state = build_state(
                now,
                self._day(now),
                self.agent,
                title=self.title,
                language=self.language,
                doors=self.doors,
                offline_after_s=self.offline_after_s,
            )
            text = json.dumps(state, ensure_ascii=False, sort_keys=True)
            if text != self.state_json:
                self.state_json = text
                self.version += 1
                self._changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> tuple[int, str]:
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen or self._stop.is_set(), timeout)
            return self.version, self.state_json

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # the screen must outlive a bad moment
                log.exception("kiosk refresh")

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._conn is not None:
            self._conn.close()


def page_html(demo: bool, state_json: str = "null", language: str = "da") -> bytes:
    """The page with the screen's state in it, so its first paint is the schedule (no blank
    page while a request goes out). The JSON sits in a script of type application/json:
    "<" is escaped so nothing in a name can end that element."""
    html = resources.files("haldor.kiosk").joinpath("page.html").read_text(encoding="utf-8")
    html = html.replace("/*DEMO*/false", "true" if demo else "false")
    html = html.replace('<html lang="da">', f'<html lang="{language if language.isalpha() else "da"}">', 1)
    embedded = state_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return html.replace(
        '<script type="application/json" id="initial">null</script>',
        f'<script type="application/json" id="initial">{embedded}</script>',
        1,
    ).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: KioskHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        kiosk = self.server.kiosk
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(
                200,
                page_html(kiosk.demo_badge is not None, kiosk.state_json, kiosk.language),
                "text/html; charset=utf-8",
                {"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"},
            )
        elif path == "/api/state":
            self._send(200, kiosk.state_json.encode("utf-8"), "application/json")
        elif path == "/api/stream":
            self._stream(kiosk)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _stream(self, kiosk: Kiosk) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "keep-alive")
        self.end_headers()
        seen = -1
        try:
            while not kiosk._stop.is_set():
                version, text = kiosk.wait_change(seen, HEARTBEAT_S)
                if version != seen:
                    seen = version
                    self.wfile.write(f"data: {text}\n\n".encode())
                else:
                    self.wfile.write(b": still here\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        kiosk = self.server.kiosk
        path = self.path.split("?", 1)[0]
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit():  # a header that is no number is refused, never a crash of the request thread
            self.close_connection = True
            self._send(400, b"Content-Length: a number of bytes\n", "text/plain", {"Connection": "close"})
            return
        length = int(length_text)
        if length > MAX_PUSH_BYTES:
            self.close_connection = True  # the unread body must not be taken for the next request
            self._send(413, b"too large\n", "text/plain", {"Connection": "close"})
            return
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, b"not JSON\n", "text/plain")
            return
        if path == "/api/agent":
            if not listen.is_loopback(self.client_address[0]):
                self._send(403, b"only the agent on this box\n", "text/plain")
                return
            kiosk.agent_push(doc if isinstance(doc, dict) else {})
            self._send(204, b"", "text/plain")
        elif path == "/demo/badge" and kiosk.demo_badge is not None:
            error = kiosk.demo_badge(str(doc.get("reader", "")), str(doc.get("card", "")))
            self._send(400 if error else 204, (error or "").encode(), "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")


class KioskHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kiosk: Kiosk, address: tuple[str, int]) -> None:
        self.kiosk = kiosk
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that goes away mid-answer is normal for a screen; log, do not print."""
        log.debug("request from %s ended with an error", client_address, exc_info=True)


def serve(cfg: Config, *, kiosk: Kiosk | None = None, ready: threading.Event | None = None) -> KioskHTTPServer:
    """Start the kiosk and its web server in background threads; the caller stops them."""
    kiosk = kiosk or Kiosk(cfg)
    kiosk.start()
    server = KioskHTTPServer(kiosk, listen.parse(cfg.kiosk.listen))
    threading.Thread(target=server.serve_forever, name="kiosk-http", daemon=True).start()
    if ready is not None:
        ready.set()
    return server


def stop(server: KioskHTTPServer) -> None:
    server.kiosk.stop()
    server.shutdown()
    server.server_close()


def run_kiosk(cfg: Config) -> int:
    """`haldor kiosk`: until SIGTERM."""
    server = serve(cfg)
    host, port = server.server_address[:2]
    log.info("kiosk on http://%s:%s/", host, port)
    wait_for_stop()
    stop(server)
    return 0
