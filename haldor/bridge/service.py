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

from haldor.errors import HaldorError
from haldor.integrator import broker_client
from haldor.protocol import Leaf

from . import build, register, sending
from .answers import BoxWatch
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
    found = build.shares(inputs)
    for site in cfg.sites:
        if site.id in unread:
            continue
        new = build.snapshot(site, inputs, generated_at=generated_at, found=found)
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
    watch: BoxWatch | None = None,
) -> int:
    """Exit status: 0 every site with something to publish was served and its box applied
    it (or nothing to do), 1 a site kept back, refused (here, or by its box) or not
    answering (the others go out). ``say``: what was published and applied; ``warn``:
    problems (stderr for the command). ``client`` and ``watch``: the service's connection,
    which hears the answers at its next run instead of waiting for them."""
    warn = warn or say
    now = time.time() if now is None else now
    try:
        state = BridgeState(cfg.state)
    except (OSError, sqlite3.Error) as exc:
        raise HaldorError(f"{cfg.path}: bridge.state: {cfg.state}: {exc}") from None
    try:
        if watch is not None:  # the service: what the boxes answered since its last run
            sending.report(watch, state, "since the last run", say, warn)
        cfg, left_out = _registered(cfg, warn)
        try:
            inputs, unread = read_inputs(cfg, state, now, accept=accept_sheets)
        except Refused as exc:
            warn(f"haldor bridge: {exc}")
            return 1
        plans = plan(cfg, state, inputs, unread, now, resend=resend)
        for problem in inputs.problems:  # after plan: it finds some too
            warn(f"warning: {problem}")
        ready, kept = sending.prepare(cfg, plans, warn)
        kept = kept or bool(unread) or left_out
        if dry_run:
            _print_plans(plans, state, say)
            return 1 if kept else 0
        served = _send(cfg, state, ready, now, say=say, warn=warn, client=client, watch=watch)
        for name, rows in inputs.rows.items():
            state.record_rows(name, rows)
        return 0 if served and not kept else 1
    except sqlite3.Error as exc:  # a full disk after the broker has it: the next run publishes again
        raise HaldorError(f"{cfg.state}: {exc}") from None
    finally:
        state.close()


def _registered(cfg: BridgeConfig, warn: Callable[[str], None]) -> tuple[BridgeConfig, bool]:
    """The sites with the fleet register's keys, revoked ones left out (said); whether a site was left out.
    A register that cannot be had leaves the sites as their tables say (a site without a key is then not served)."""
    if cfg.register is None:
        return cfg, False
    try:
        entries = register.fetch(cfg.register)
    except HaldorError as exc:
        warn(f"warning: {exc}: only the keys in [[sites]] are used")
        return cfg, False
    cfg, left_out = register.with_register(cfg, entries)
    for line in left_out:
        warn(line)
    return cfg, bool(left_out)


def _print_plans(plans: list[sending.Plan], state: BridgeState, say: Callable[[str], None]) -> None:
    """Per site what would go out, each booking with its local times and room."""
    for site, diff, doc, new in plans:
        kind = "nothing to publish" if doc is None else f"{doc['schema']} version {doc['version']}"
        say(f"{site.id}: {kind}")
        for line in diff.lines():
            say(f"  {line}")
        last = state.published(site.id)
        for line in build.booking_lines(diff, last[1] if last else None, new, ZoneInfo(site.timezone)):
            say(f"    {line}")


def _send(
    cfg: BridgeConfig,
    state: BridgeState,
    ready: list[sending.Ready],
    now: float,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    client: Any,
    watch: BoxWatch | None,
) -> bool:
    """Publish what is ready; a one-off run (no ``watch`` of the service's) waits up to
    ``answer_s`` for the boxes' answers. Whether every site was served (and applied it)."""
    if not ready:
        return True
    if cfg.broker is None:
        raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
    once = watch is None
    watch = watch if watch is not None else BoxWatch(cfg.broker.prefix, (s.id for s in cfg.sites))
    publisher = sending.Publisher(cfg, watch, client)
    try:
        listen = not once or cfg.answer_s > 0
        served, awaited = sending.publish(publisher, watch, state, ready, now, say=say, warn=warn, listen=listen)
        if once and awaited:
            watch.wait(cfg.answer_s)
            served = sending.report(watch, state, f"within {cfg.answer_s:g} s (bridge.answer_s)", say, warn) and served
    finally:
        publisher.close()
    return served


def serve(cfg: BridgeConfig, stop: threading.Event, wake: threading.Event, say: Callable[[str], None] = print) -> int:
    """Every ``interval_s``, and at once for a site's ``sync/request`` (it is given a
    fresh snapshot), on one connection, which also hears the boxes' statuses and answers
    (each run reports what came since the one before). ``stop`` and ``wake`` are set
    from outside the loop's thread (never from a signal handler: see the command)."""
    broker = cfg.broker
    if broker is None:
        raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
    asked: set[str] = set()
    lock = threading.Lock()
    known = {s.id for s in cfg.sites}
    watch = BoxWatch(broker.prefix, known)

    def on_message(client, userdata, msg) -> None:
        if watch.on_message(msg.topic, msg.payload):
            return
        site = msg.topic.removeprefix(f"{broker.prefix}/").split("/", 1)[0]
        if site in known:
            with lock:
                asked.add(site)
            wake.set()

    client = broker.client("bridge")
    client.on_connect = lambda c, u, f, rc, p: watch.subscribe(c, [(f"{broker.prefix}/+/{Leaf.SYNC_REQUEST}", 1)])
    client.on_subscribe = lambda c, u, mid, codes, p: watch.granted()
    client.on_message = on_message
    broker_client.connect(client, broker)
    try:
        while not stop.is_set():
            with lock:
                resend = set(asked)
                asked.clear()
            try:
                run_once(cfg, resend=resend, say=say, client=client, watch=watch)
            except HaldorError as exc:
                say(f"haldor bridge: {exc}")
            wake.wait(cfg.interval_s)
            wake.clear()
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
