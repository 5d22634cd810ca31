"""A run's documents out: each site checked against its box's own status, sealed,
published, and its box's answer heard.

"Published" used to be where the bridge's knowledge ended: a schedule sealed to the wrong
key, in the wrong time zone or refused by the box printed the same line as one applied,
and exited 0 (issue 24). Now a site is sent nothing it cannot serve, and the run says
per site what its box answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haldor.errors import DocumentError, HaldorError
from haldor.integrator import broker_client, documents

from . import build, checks
from .answers import BoxWatch
from .settings import BridgeConfig, Site
from .state import BridgeState

Plan = tuple[Site, build.Changes, dict[str, Any] | None, dict[str, Any]]


class Publisher:
    """One broker connection: each document acknowledged, and accepted, before it
    counts; the boxes' statuses and answers heard on it (``watch``). The service shares
    one connection between its runs and its listening for ``sync/request`` (a broker
    that makes the user name the client id would otherwise throw one out whenever the
    other connects)."""

    def __init__(self, cfg: BridgeConfig, watch: BoxWatch, client: Any = None) -> None:
        if cfg.broker is None:
            raise HaldorError(f"{cfg.path}: mqtt.host: no broker configured")
        self.opts = cfg.broker
        self.own = client is None
        self.client = client if client is not None else self.opts.client("bridge")
        if self.own:
            self.client.on_connect = lambda c, u, f, rc, p: watch.subscribe(c)
            self.client.on_subscribe = lambda c, u, mid, codes, p: watch.granted()
            self.client.on_message = lambda c, u, msg: watch.on_message(msg.topic, msg.payload)
            broker_client.connect(self.client, self.opts)

    def send(self, doc: dict[str, Any], payload: bytes) -> str:
        topic, retained = broker_client.topic_for(doc, self.opts.prefix)
        broker_client.acked_publish(self.client, self.opts, topic, payload, retain=retained, timeout=30)
        return topic

    def close(self) -> None:
        if self.own:
            self.client.disconnect()
            self.client.loop_stop()


@dataclass
class Ready:
    """A site's document, sealed and checked, with what the run tells about it."""

    site: Site
    diff: build.Changes
    doc: dict[str, Any]
    new: dict[str, Any]
    payload: bytes


def prepare(cfg: BridgeConfig, plans: list[Plan], warn: Callable[[str], None]) -> tuple[list[Ready], bool]:
    """The documents to send, and whether some site was kept back (no key, or a document
    its box would refuse)."""
    ready, kept = [], False
    for site, diff, doc, new in plans:
        if doc is None:
            continue
        why = checks.unserved(site)
        if why is not None:
            warn(why)
            kept = True
            continue
        try:
            _, payload = documents.outgoing(doc, key=cfg.key, kid=cfg.kid, seal_to=site.public_key or None, schema=False)
        except DocumentError as exc:  # one site's fault keeps that site, not the others
            warn(f"warning: {site.id}: {exc}; {site.id} is kept as it was")
            kept = True
            continue
        ready.append(Ready(site, diff, doc, new, payload))
    return ready, kept


def publish(
    publisher: Publisher,
    watch: BoxWatch,
    state: BridgeState,
    ready: list[Ready],
    now: float,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    listen: bool = True,
) -> tuple[bool, list[str]]:
    """Each site checked against its box's status, then published; whether every one was,
    and the sites whose answer to await (their box is online; none unless ``listen``)."""
    watch.collect()
    served, awaited = True, []
    for r in ready:
        status = watch.status(r.site.id)
        last = state.published(r.site.id)
        sent_zone = last[1].get("timezone") if last and last[1] else None
        why = None if status is None else checks.mismatch(r.site, status, sent_zone)
        if why is not None:
            warn(why)
            served = False
            continue
        if status is None:
            warn(checks.unseen(r.site))
        if r.site.plain:
            warn(f"warning: {r.site.id}: sent in clear (plain = true): card numbers on the broker")
        online = listen and status is not None and status.get("online") is not False
        if online:
            watch.expect(r.site.id, r.doc)  # before it goes out: a fast answer is not missed
        topic = publisher.send(r.doc, r.payload)
        state.record(r.site.id, r.doc["version"], r.new, now)  # only once the broker has it
        say(f"{r.site.id}: {r.doc['schema']} version {r.doc['version']} to {topic} ({r.diff.count} changes)")
        if online:
            awaited.append(r.site.id)
        elif listen and status is not None:
            warn(
                f"{r.site.id}: no answer: its box is offline (last status {status.get('at')}); it gets the schedule when it connects"
            )
            served = False
    return served, awaited


def report(watch: BoxWatch, state: BridgeState, waited: str, say: Callable[[str], None], warn: Callable[[str], None]) -> bool:
    """One line per awaited site; True when every one applied what it was sent. A refused
    site is forgotten in the state, so that the next run sends it a fresh snapshot (and
    says again what its box answers) instead of "nothing to publish"."""
    ok = True
    for site, expected in sorted(watch.answers().items()):
        if expected.applied:
            say(f"{site}: {expected.answer}")
            continue
        ok = False
        if expected.answer is not None:
            warn(f"{site}: {expected.kind} {expected.version} {expected.answer}")
            state.forget(site)
        else:
            warn(f"{site}: no answer from its box to {expected.kind} {expected.version} {waited}")
    return ok
