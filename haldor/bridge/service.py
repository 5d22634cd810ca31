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
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from haldor import broker_tools, tools
from haldor.errors import DocumentError, HaldorError
from haldor.protocol import Leaf

from . import build, sheets
from .calendar import read_feed
from .settings import BridgeConfig, FeedSource, Site
from .state import BridgeState

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 20
FETCH_ATTEMPTS = 3


class Refused(HaldorError):
    """The run publishes nothing: a sheet looks cut off."""


def read_inputs(cfg: BridgeConfig, state: BridgeState, now: float) -> tuple[build.Inputs, set[str]]:
    """Sheets and feeds; the sites whose feeds could not be read (kept as they were)."""
    ctx = sheets.Context(ZoneInfo(cfg.sites[0].timezone))
    read = {}
    for name, path in cfg.sheets.items():
        sheet = sheets.read_sheet(path, sheets.COLUMNS[name], sheets.PARSERS[name], ctx)
        before = state.sheet_rows(name)
        if before and sheet.rows < before * (1 - cfg.max_row_loss):
            raise Refused(
                f"{path}: {sheet.rows} rows, {before} at the last run: more than {cfg.max_row_loss:.0%} lost "
                "(an export cut off?); nothing published. Check the file; if it is right, run with --accept-sheets"
            )
        read[name] = sheet
    problems = [p for sheet in read.values() for p in sheet.problems]
    associations = read["associations"].items
    names: dict[str, str] = {}
    for a in associations:
        for alias in (a["id"], a["name"], a.get("_calendar") or ""):
            if alias:
                names[alias.lower()] = a["id"]
    inputs = build.Inputs(
        associations=associations,
        credentials=read["credentials"].items,
        rooms=read["rooms"].items,
        closures=read["closures"].items if "closures" in read else [],
        bookings={},
        problems=problems,
        rows={name: sheet.rows for name, sheet in read.items()},
    )
    unread: set[str] = set()
    sites = {s.id: s for s in cfg.sites}
    for feed in cfg.feeds:
        site = sites[feed.site]
        tz = ZoneInfo(site.timezone)
        start = datetime.fromtimestamp(now, tz) - timedelta(days=1)
        try:
            data = fetch(feed, state)
            got = read_feed(
                data,
                feed.source,
                site=site.id,
                room=feed.room,
                tz=tz,
                start=start,
                end=start + timedelta(days=cfg.horizon_days),
                rule=cfg.rule,
                associations=names,
                all_day_closures=cfg.all_day_closures,
            )
        except HaldorError as exc:
            problems.append(f"{exc}: {site.id} is kept as it was")
            unread.add(site.id)
            continue
        problems.extend(got.problems)
        inputs.bookings.setdefault(site.id, []).extend(got.bookings)
        inputs.closures.extend(got.closures)
    return inputs, unread


def fetch(feed: FeedSource, state: BridgeState) -> bytes:
    """A feed's bytes: a file, or a URL asked with the last ``ETag`` and
    ``Last-Modified`` (a feed that did not change costs the server nothing)."""
    if "://" not in feed.source:
        try:
            return Path(feed.source).read_bytes()
        except OSError as exc:
            raise DocumentError(f"{feed.source}: cannot read: {exc.strerror}") from None
    import httpx  # the municipality's side only

    cached = state.cached_feed(feed.source)
    headers = {}
    if cached is not None:
        if cached[0]:
            headers["If-None-Match"] = cached[0]
        if cached[1]:
            headers["If-Modified-Since"] = cached[1]
    problem = ""
    for attempt in range(FETCH_ATTEMPTS):
        try:
            response = httpx.get(feed.source, headers=headers, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        except httpx.HTTPError as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if response.status_code == 304 and cached is not None:
                return cached[2]
            if response.status_code == 200:
                state.cache_feed(
                    feed.source, response.headers.get("etag"), response.headers.get("last-modified"), response.content
                )
                return response.content
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break  # asking again will not help
        if attempt + 1 < FETCH_ATTEMPTS:
            time.sleep(2**attempt)
    raise DocumentError(f"{feed.source}: {problem}")


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
    """One broker connection for a run; each document acknowledged before it counts."""

    def __init__(self, cfg: BridgeConfig, client_id: str | None = None) -> None:
        if cfg.broker is None:
            raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
        self.opts = cfg.broker
        self.client = self.opts.client("bridge", client_id)
        broker_tools.connect(self.client, self.opts)

    def send(self, doc: dict[str, Any], payload: bytes, timeout: float = 30) -> str:
        topic, retained = broker_tools.topic_for(doc, self.opts.prefix)
        info = self.client.publish(topic, payload, qos=1, retain=retained)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise HaldorError(f"broker {self.opts.host}:{self.opts.port}: no acknowledgement within {timeout:.0f} s")
        return topic

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_once(
    cfg: BridgeConfig,
    *,
    dry_run: bool = False,
    accept_sheets: bool = False,
    resend: frozenset[str] | set[str] = frozenset(),
    say: Callable[[str], None] = print,
    now: float | None = None,
) -> int:
    """Exit status: 0 published (or nothing to do), 1 something was kept back."""
    now = time.time() if now is None else now
    state = BridgeState(cfg.state)
    try:
        if accept_sheets:
            for name in cfg.sheets:
                state.forget_rows(name)
        try:
            inputs, unread = read_inputs(cfg, state, now)
        except Refused as exc:
            say(f"haldor bridge: {exc}")
            return 1
        for problem in inputs.problems:
            say(f"warning: {problem}")
        plans = plan(cfg, state, inputs, unread, now, resend=resend)
        if dry_run:
            for site, diff, doc, _ in plans:
                kind = "nothing to publish" if doc is None else f"{doc['schema']} version {doc['version']}"
                say(f"{site.id}: {kind}")
                for line in diff.lines():
                    say(f"  {line}")
            return 1 if unread else 0
        publisher = Publisher(cfg) if any(doc is not None for _, _, doc, _ in plans) else None
        try:
            for site, diff, doc, new in plans:
                if doc is None:
                    continue
                if not site.public_key:
                    say(f"warning: {site.id}: sent in clear (card numbers on the broker): give [[sites]] public_key")
                _, payload = tools.outgoing(doc, key=cfg.key, kid=cfg.kid, seal_to=site.public_key or None, schema=False)
                assert publisher is not None
                topic = publisher.send(doc, payload)
                state.record(site.id, doc["version"], new, now)  # only once the broker has it
                say(f"{site.id}: {doc['schema']} version {doc['version']} to {topic} ({diff.count} changes)")
        finally:
            if publisher is not None:
                publisher.close()
        for name, rows in inputs.rows.items():
            state.record_rows(name, rows)
        return 1 if unread else 0
    finally:
        state.close()


def serve(cfg: BridgeConfig, stop: threading.Event, wake: threading.Event, say: Callable[[str], None] = print) -> int:
    """Every ``interval_s``, and at once for a site's ``sync/request`` (it is given a
    fresh snapshot)."""
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

    listener = broker.client("bridge-requests")
    listener.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{broker.prefix}/+/{Leaf.SYNC_REQUEST}", qos=1)
    listener.on_message = on_message
    try:
        listener.connect(broker.host, broker.port)
    except OSError as exc:
        raise HaldorError(f"broker {broker.host}:{broker.port}: {exc}") from None
    listener.loop_start()
    try:
        while not stop.is_set():
            with lock:
                resend = set(asked)
                asked.clear()
            try:
                run_once(cfg, resend=resend, say=say)
            except HaldorError as exc:
                say(f"haldor bridge: {exc}")
            wake.wait(cfg.interval_s)  # stop() sets it too
            wake.clear()
    finally:
        listener.disconnect()
        listener.loop_stop()
    return 0
