"""`haldor kiosk --browser`: the screen by the entrance in Chromium's kiosk mode, at the
address the configuration gives the kiosk (no port written twice), started only once the
kiosk answers, so the screen never shows a browser's error page."""

from __future__ import annotations

import logging
import os
import shutil
import time
import urllib.error
import urllib.request

from haldor.errors import HaldorError
from haldor.listen import local_url

log = logging.getLogger(__name__)

WAIT_S = 60.0
FLAGS = (
    "--kiosk",
    "--noerrdialogs",
    "--disable-infobars",
    "--incognito",
    "--no-first-run",
    "--disable-translate",
    "--disable-features=Translate",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
    "--check-for-update-interval=31536000",
)


def kiosk_url(listen: str) -> str:
    """The page's address for a browser on the box: a server on every address is asked on loopback."""
    return local_url(listen)


def wait_until_up(url: str, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    return False


def open_browser(listen: str, browser: str | None = None) -> int:
    """Wait for the kiosk (a minute at most; then show it anyway: it may come), then
    become Chromium in kiosk mode on its page."""
    url = kiosk_url(listen)
    program = browser or shutil.which("chromium") or shutil.which("chromium-browser")
    if program is None:
        raise HaldorError("chromium: not installed (apt-get install chromium)")
    if not wait_until_up(url):
        log.warning("kiosk at %s did not answer within %.0f s; showing it anyway", url, WAIT_S)
    os.execv(program, [program, *FLAGS, url])
    return 0  # not reached
