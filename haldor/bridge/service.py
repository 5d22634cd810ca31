"""One run of the bridge: read the sheets and feeds, build each site's snapshot, and
publish what changed (a delta, or a fresh retained snapshot), signed; and the service
that runs it every ``interval_s``.

Nothing a box would reject goes out (each document passes the checks of ``haldor
publish``), and nothing is taken away by accident: a feed that cannot be read keeps its
site as it was, and a sheet that lost more than ``max_row_loss`` of its rows since the
last run is refused whole.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from haldor import broker_tools, tools
from haldor.errors import DocumentError, HaldorError
from haldor.protocol import Leaf

from . import build
from .inputs import Refused, read_inputs
from .settings import BridgeConfig, Site
from .state import BridgeState

log = logging.getLogger(__name__)


def plan(
    cfg: BridgeConfig,
    state: BridgeState,
    inputs: build.Inputs,
    unread: set[str],
    now: float,
    *,
    resend: frozenset[str] | set[str] = frozenset(),
) -> list[tuple[Site, build.Changes, dict[str, Any] | None, dict[str, Any]]]:
    """Per site: what changed, the document to publish (None: nothing to do) and the new
    snapshot to remember. ``resend``: sites that asked for a snapshot."""
    out = []
    generated_at = datetime.fromtimestamp(now, ZoneInfo("UTC")).isoformat(timespec="seconds").replace("+00:00", "Z")
    for site in cfg.sites:
        if site.id in unread:
            continue
        new = build.snapshot(site, inputs, generated_at=generated_at)
        last = state.published(site.id)
        old_version, old = last if last is not None else (0, None)
        diff = build.changes(old, new)
        version = max(old_version + 1, int(now))  # grows also when the state was lost
        new["version"] = version
        doc: dict[str, Any] | None = None
        if old is None or site.id in resend:
            doc = new
        elif diff.count or diff.header:
            small = diff.count <= cfg.delta_max
            doc = build.delta(old, new, diff, version=version, base_version=old_version) if small else None
            doc = doc or new
        out.append((site, diff, doc, new))
    return out


class Publisher:
    """One broker connection: each document acknowledged, and accepted, before it
    counts. The service shares one connection between its runs and its listening for
    ``sync/request`` (a broker that makes the user name the client id would otherwise
    throw one out whenever the other connects)."""

    def __init__(self, cfg: BridgeConfig, client: Any = None) -> None:
        if cfg.broker is None:
            raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
        self.opts = cfg.broker
        self.own = client is None
        self.client = client if client is not None else self.opts.client("bridge")
        if self.own:
            broker_tools.connect(self.client, self.opts)

    def send(self, doc: dict[str, Any], payload: bytes) -> str:
        topic, retained = broker_tools.topic_for(doc, self.opts.prefix)
        broker_tools.acked_publish(self.client, self.opts, topic, payload, retain=retained, timeout=30)
        return topic

    def close(self) -> None:
        if self.own:
            self.client.disconnect()
            self.client.loop_stop()


def run_once(
    cfg: BridgeConfig,
    *,
    dry_run: bool = False,
    accept_sheets: bool = False,
    resend: frozenset[str] | set[str] = frozenset(),
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    now: float | None = None,
    client: Any = None,
) -> int:
    """Exit status: 0 published (or nothing to do), 1 something was kept back (a site
    whose source failed or whose document a box would refuse; the others go out).
    ``say``: what was published; ``warn``: problems (stderr for the command)."""
    warn = warn or say
    now = time.time() if now is None else now
    try:
        state = BridgeState(cfg.state)
    except (OSError, sqlite3.Error) as exc:
        raise HaldorError(f"{cfg.path}: bridge.state: {cfg.state}: {exc}") from None
    try:
        try:
            inputs, unread = read_inputs(cfg, state, now, accept=accept_sheets)
        except Refused as exc:
            warn(f"haldor bridge: {exc}")
            return 1
        plans = plan(cfg, state, inputs, unread, now, resend=resend)
        for problem in inputs.problems:  # after plan: it finds some too
            warn(f"warning: {problem}")
        kept = bool(unread)
        ready = []
        for site, diff, doc, new in plans:
            if doc is None:
                continue
            try:
                _, payload = tools.outgoing(doc, key=cfg.key, kid=cfg.kid, seal_to=site.public_key or None, schema=False)
            except DocumentError as exc:  # one site's fault keeps that site, not the others
                warn(f"warning: {site.id}: {exc}; {site.id} is kept as it was")
                kept = True
                continue
            ready.append((site, diff, doc, new, payload))
        if dry_run:
            for site, diff, doc, _ in plans:
                kind = "nothing to publish" if doc is None else f"{doc['schema']} version {doc['version']}"
                say(f"{site.id}: {kind}")
                for line in diff.lines():
                    say(f"  {line}")
            return 1 if kept else 0
        publisher = Publisher(cfg, client) if ready else None
        try:
            for site, diff, doc, new, payload in ready:
                if not site.public_key:
                    warn(f"warning: {site.id}: sent in clear (card numbers on the broker): give [[sites]] public_key")
                topic = publisher.send(doc, payload) if publisher is not None else ""
                state.record(site.id, doc["version"], new, now)  # only once the broker has it
                say(f"{site.id}: {doc['schema']} version {doc['version']} to {topic} ({diff.count} changes)")
        finally:
            if publisher is not None:
                publisher.close()
        for name, rows in inputs.rows.items():
            state.record_rows(name, rows)
        return 1 if kept else 0
    except sqlite3.Error as exc:  # a full disk after the broker has it: the next run publishes again
        raise HaldorError(f"{cfg.state}: {exc}") from None
    finally:
        state.close()


def serve(cfg: BridgeConfig, stop: threading.Event, wake: threading.Event, say: Callable[[str], None] = print) -> int:
    """Every ``interval_s``, and at once for a site's ``sync/request`` (it is given a
    fresh snapshot), on one connection. ``stop`` and ``wake`` are set from outside the
    loop's thread (never from a signal handler: see the command)."""
    broker = cfg.broker
    if broker is None:
        raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
    asked: set[str] = set()
    lock = threading.Lock()
    known = {s.id for s in cfg.sites}

    def on_message(client, userdata, msg) -> None:
        site = msg.topic.removeprefix(f"{broker.prefix}/").split("/", 1)[0]
        if site in known:
            with lock:
                asked.add(site)
            wake.set()

    client = broker.client("bridge")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{broker.prefix}/+/{Leaf.SYNC_REQUEST}", qos=1)
    client.on_message = on_message
    broker_tools.connect(client, broker)
    try:
        while not stop.is_set():
            with lock:
                resend = set(asked)
                asked.clear()
            try:
                run_once(cfg, resend=resend, say=say, client=client)
            except HaldorError as exc:
                say(f"haldor bridge: {exc}")
            wake.wait(cfg.interval_s)
            wake.clear()
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
