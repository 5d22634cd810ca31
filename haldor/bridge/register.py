"""Each site's sealing key from the fleet's register (issue 27): the key a box sent when
it was enrolled, pinned there, instead of one copied by hand into ``[[sites]]``. Asked
once a run (``GET /register.json`` with the bridge's own bearer token). A site whose
``[[sites]]`` gives a key keeps it; a site the register says is revoked gets no schedule,
whatever its table says, and the run says so."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from haldor.access import sealing
from haldor.errors import HaldorError
from haldor.records import record

from .settings import BridgeConfig, RegisterSource

log = logging.getLogger(__name__)

TIMEOUT_S = 20.0
#: a register of every school in the country is well below this
MAX_BYTES = 16 * 1024 * 1024


@record
class Entry:
    state: str
    public_key: str | None


def fetch(source: RegisterSource) -> dict[str, Entry]:
    """Site id -> its entry; HaldorError in one line when the register cannot be had."""
    import httpx

    try:
        reply = httpx.get(source.url, headers={"Authorization": f"Bearer {source.token}"}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise HaldorError(f"register {source.url}: {exc}") from None
    if reply.status_code != 200 or len(reply.content) > MAX_BYTES:
        raise HaldorError(f"register {source.url}: HTTP {reply.status_code}")
    try:
        doc: Any = reply.json()
        entries = {
            str(s["site"]): Entry(str(s["state"]), s.get("public_key") if isinstance(s.get("public_key"), str) else None)
            for s in doc["sites"]
        }
    except (ValueError, KeyError, TypeError):
        raise HaldorError(f"register {source.url}: not the fleet's register (JSON with sites)") from None
    return entries


def with_register(cfg: BridgeConfig, entries: dict[str, Entry]) -> tuple[BridgeConfig, list[str]]:
    """The configuration with the register's keys for sites that give none and without
    revoked sites; what was left out, one line each."""
    sites, left_out = [], []
    for site in cfg.sites:
        entry = entries.get(site.id)
        if entry is not None and entry.state == "revoked":
            left_out.append(f"{site.id}: not published: its box is revoked in the fleet's register")
            continue
        if not site.public_key and not site.plain and entry is not None and entry.public_key:
            try:
                sealing.load_public(entry.public_key)
            except ValueError as exc:
                left_out.append(f"{site.id}: not published: the register's key: {exc}")
                continue
            site = replace(site, public_key=entry.public_key)
        sites.append(site)
    return replace(cfg, sites=tuple(sites)), left_out
