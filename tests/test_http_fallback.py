"""The schedule over HTTP while the broker is unreachable, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor import config
from haldor.access.envelope import seal
from haldor.agent.site import open_store

from .broker import free_port
from .helpers import SITE, site_config, snapshot, wait_for
from .rig import public_key


class ScheduleServer:
    """Serves one envelope at /sites/<site>/schedule with an ETag, as a booking system would."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                outer.requests.append({"path": self.path, "if_none_match": self.headers.get("If-None-Match", "")})
                etag = '"' + hashlib.sha256(outer.body).hexdigest()[:16] + '"'
                if self.path != f"/sites/{SITE}/schedule":
                    self.send_error(404)
                elif self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(outer.body)))
                    self.end_headers()
                    self.wfile.write(outer.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


def test_an_agent_cut_off_from_its_broker_fetches_the_schedule_over_http(tmp_path, key):
    server = ScheduleServer(json.dumps(seal(snapshot(42), "bookings-2026", key)).encode())
    path = site_config(
        tmp_path / "haldor.toml",
        tmp_path / "data",
        port=free_port(),
        keys={"bookings-2026": public_key(key)},
        extra=f'[sync]\nhttp_url = "{server.url}/"\nhttp_after_s = 1\n',
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "haldor", "run", "--config", str(path)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.DEVNULL,
    )
    cfg = config.load(path)

    def version():
        store = open_store(cfg)
        try:
            return store.version
        finally:
            store.close()

    try:
        wait_for(lambda: version() == 42, timeout=20, what="snapshot fetched over HTTP and applied")
        wait_for(lambda: len(server.requests) >= 2, timeout=10, what="a second poll")
        assert server.requests[0] == {"path": f"/sites/{SITE}/schedule", "if_none_match": ""}
        assert server.requests[1]["if_none_match"].startswith('"')  # asked with the ETag: answered 304
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
