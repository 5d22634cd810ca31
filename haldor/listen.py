"""Listen addresses (``host:port``), read one way by every server Haldor runs (the kiosk,
the fleet) and by what connects to them on the same machine (the agent's push, the
kiosk's browser)."""

from __future__ import annotations

import ipaddress

#: addresses that mean "every address": a client on the same machine asks on loopback
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def parse(text: str) -> tuple[str, int]:
    """``(host, port)``; a missing host is loopback. ``ValueError`` for what is not ``host:port``."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'{text!r}: must be "host:port", e.g. "127.0.0.1:8080"')
    return host or "127.0.0.1", int(port)


def local_url(listen: str, path: str = "/") -> str:
    """The address a client on this machine uses for a server listening on ``listen``."""
    host, _, port = listen.rpartition(":")
    if host in WILDCARDS:
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
