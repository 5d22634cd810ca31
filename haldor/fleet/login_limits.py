"""How often an address may try a password on the fleet's page. A login counts against
the address it came from (behind the reverse proxy on this machine: the address the proxy
forwards), so a guesser is refused without shutting out everyone else: a failed login
counts here, a source with too many is refused for a while that doubles, and argon2's two
slots take one check per source at a time."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from haldor.sql import Database

log = logging.getLogger(__name__)

#: the peers whose X-Forwarded-For counts: the reverse proxy on this machine (the fleet listens
#: on loopback behind it, and a connection to 127.0.0.1 or ::1 comes from there); any other
#: peer, another loopback address too, is a client whose header is its own word
PROXY_PEERS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
FORWARDED = "X-Forwarded-For"

#: failed logins from one source, each within SOURCE_WINDOW_S of the last, before it is refused
SOURCE_FAILURES = 10
SOURCE_WINDOW_S = 15 * 60.0
#: the first refusal lasts SOURCE_BLOCK_S, each next one twice the last, at most SOURCE_BLOCK_MAX_S;
#: a source quiet for SOURCE_FORGET_S starts again from the first
SOURCE_BLOCK_S, SOURCE_BLOCK_MAX_S, SOURCE_FORGET_S = 60.0, 3600.0, 86400.0

MIGRATIONS = [
    """
    CREATE TABLE login_sources (
        source TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, strikes INTEGER NOT NULL DEFAULT 0,
        blocked_until {float}, last_at {float} NOT NULL);
    CREATE INDEX login_sources_last_at ON login_sources(last_at)
    """,
]


def from_proxy(peer: str) -> bool:
    """A request from the reverse proxy on this machine (its word on who it is counts)."""
    return peer in PROXY_PEERS


def source_of(peer: str, headers: Any) -> str:
    """The address a login counts against: the peer's, or from the proxy, the last address of
    X-Forwarded-For (the one the proxy wrote: what a client sent before it is the client's own
    word). An IPv6 address counts by its /64, as one home or server gets a whole /64."""
    address = peer
    if from_proxy(peer):
        forwarded = ",".join(headers.get_all(FORWARDED) or []).split(",")[-1].strip()
        address = forwarded or peer
    return _normalized(address) or _normalized(peer) or peer


def _normalized(text: str) -> str | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class HashSlots:
    """argon2 checks at once: ``total`` in all (a tenth of a second of a core each), and one
    per source, so a flood from one address holds one slot at most and a login from
    elsewhere gets the other at once. A second attempt from a busy source is answered at
    once, without argon2; a source that finds every slot taken waits ``wait_s`` at most."""

    def __init__(self, total: int = 2, wait_s: float = 2.0) -> None:
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(total)
        self._lock = threading.Lock()
        self._busy: set[str] = set()

    @contextmanager
    def held(self, source: str) -> Iterator[bool]:
        """True while this login holds a slot; False (at once, or after ``wait_s``) when not."""
        with self._lock:
            free = source not in self._busy
            self._busy.add(source)
        if not free:
            yield False
            return
        try:
            got = self._slots.acquire(timeout=self.wait_s)
            try:
                yield got
            finally:
                if got:
                    self._slots.release()
        finally:
            with self._lock:
                self._busy.discard(source)


class SourceLimits:
    """Failed logins per source, kept in the fleet's database so every fleet process counts
    them (and a restart forgets nothing). A blocked source is refused whatever it sends,
    the right password too, or it could go on guessing."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("login_sources", MIGRATIONS)

    def blocked(self, source: str, now: float) -> bool:
        row = self.db.one("SELECT blocked_until FROM login_sources WHERE source = ?", [source])
        return bool(row and row[0] is not None and row[0] > now)

    def failed(self, source: str, now: float) -> float | None:
        """Count a failure; when it is one too many, the source is refused until the time
        returned (the first time SOURCE_BLOCK_S, then doubling)."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO login_sources(source, failures, strikes, last_at) VALUES (?, 0, 0, ?) ON CONFLICT (source) DO NOTHING",
                [source, now],
            )
            lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""  # another fleet process counts too
            row = self.db.one(f"SELECT failures, strikes, last_at FROM login_sources WHERE source = ?{lock}", [source])
            assert row is not None
            failures = int(row[0]) + 1 if now - row[2] <= SOURCE_WINDOW_S else 1
            strikes = int(row[1]) if now - row[2] <= SOURCE_FORGET_S else 0
            until = None
            if failures >= SOURCE_FAILURES:
                until = now + min(SOURCE_BLOCK_S * 2**strikes, SOURCE_BLOCK_MAX_S)
                failures, strikes = 0, strikes + 1
            self.db.execute(
                "UPDATE login_sources SET failures = ?, strikes = ?, blocked_until = COALESCE(?, blocked_until), last_at = ? "
                "WHERE source = ?",
                [failures, strikes, until, now, source],
            )
            self.db.execute("DELETE FROM login_sources WHERE last_at < ?", [now - SOURCE_FORGET_S - SOURCE_BLOCK_MAX_S])
        if until is not None:
            log.warning("fleet logins from %s refused for %.0f s: %d failed", source, until - now, SOURCE_FAILURES)
        return until

    def succeeded(self, source: str) -> None:
        """A login from the source: its failures start again (its refusals so far still count)."""
        self.db.execute("UPDATE login_sources SET failures = 0 WHERE source = ?", [source])

    def lift(self, sources: list[str]) -> None:
        """``user unlock``: the user's own addresses are no longer refused."""
        for source in sources:
            self.db.execute("DELETE FROM login_sources WHERE source = ?", [source])
