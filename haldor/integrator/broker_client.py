"""The integrator's tools on the broker: `haldor publish`, `command` and `watch` (the
documents they send are made and checked in :mod:`.documents`).

Every way the broker can fail them ends in one line: refused (with the broker's
reason), silent, unreachable.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from haldor.errors import DocumentError, HaldorError
from haldor.mqtt import BrokerOptions
from haldor.protocol import IDENTIFIER, Leaf, Schema

TOPIC_OF_SCHEMA = {Schema.SNAPSHOT: (Leaf.SCHEDULE, True), Schema.DELTA: (Leaf.DELTA, False), Schema.COMMAND: (Leaf.CMD, False)}
CONNECT_TIMEOUT_S = 10.0
#: how long a retained status may take to arrive after the subscription is granted
RETAINED_WAIT_S = 1.0


def topic_for(doc: Any, prefix: str) -> tuple[str, bool]:
    """The topic of a document (PROTOCOL 1) and whether it is retained."""
    if not isinstance(doc, dict) or doc.get("schema") not in TOPIC_OF_SCHEMA or not isinstance(doc.get("site"), str):
        raise DocumentError("not a schedule, delta or command (schema and site decide the topic)")
    leaf, retained = TOPIC_OF_SCHEMA[doc["schema"]]
    return f"{prefix}/{doc['site']}/{leaf}", retained


def connect(client, opts: BrokerOptions, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Connected and accepted (the broker's CONNACK), or one line saying why not. The
    client's own ``on_connect`` still runs once accepted."""
    answers: list = []
    answered = threading.Event()
    theirs = client.on_connect

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        answers.append(reason_code)
        answered.set()
        if theirs is not None and not reason_code.is_failure:
            theirs(c, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    where = f"broker {opts.host}:{opts.port}"
    try:
        client.connect(opts.host, opts.port)
    except (OSError, ValueError) as exc:
        raise HaldorError(f"{where}: {exc}") from None
    client.loop_start()
    if not answered.wait(timeout) or answers[0].is_failure:
        client.loop_stop()
        raise HaldorError(f"{where} refused: {answers[0]}" if answers else f"{where}: no answer within {timeout:.0f} s")


def acked_publish(
    client, opts: BrokerOptions, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
) -> None:
    """Publish with QoS 1 and wait for the broker's PUBACK, which must say yes: an ACL's
    "not authorized" comes back as a PUBACK too, and is not a publication."""
    answers: dict[int, Any] | None = getattr(client, "_haldor_pubacks", None)
    if answers is None:  # the first publish on this client: hear its PUBACKs from now on
        answers = client._haldor_pubacks = {}
        theirs = client.on_publish

        def on_publish(c, userdata, mid, reason_code, properties) -> None:
            answers[mid] = reason_code
            if theirs is not None:
                theirs(c, userdata, mid, reason_code, properties)

        client.on_publish = on_publish
    info = client.publish(topic, payload, qos=1, retain=retain)
    where = f"broker {opts.host}:{opts.port}"
    if info.rc != 0:
        raise HaldorError(f"{where}: not connected (publishing {topic})")
    info.wait_for_publish(timeout)
    if not info.is_published():
        raise HaldorError(f"{where}: no acknowledgement within {timeout:.0f} s")
    answer = answers.pop(info.mid, None)
    if answer is not None and answer.is_failure:
        raise HaldorError(f"{where} refused to publish on {topic}: {answer} (the broker's ACL?)")


def _close(client) -> None:
    client.disconnect()
    client.loop_stop()


def site_status(client, prefix: str, site: str) -> dict[str, Any] | None:
    """The site's retained status, if the broker holds one."""
    found: list[dict[str, Any]] = []
    granted, arrived = threading.Event(), threading.Event()
    topic = f"{prefix}/{site}/{Leaf.STATUS}"

    def on_message(c, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if msg.topic == topic and isinstance(doc, dict):
            found.append(doc)
            arrived.set()

    client.on_message = on_message
    client.on_subscribe = lambda c, userdata, mid, codes, properties: granted.set()
    client.subscribe(topic, qos=1)
    if granted.wait(CONNECT_TIMEOUT_S):
        arrived.wait(RETAINED_WAIT_S)
    client.unsubscribe(topic)
    return found[-1] if found else None


def stale(doc: dict[str, Any], status: dict[str, Any] | None) -> str | None:
    """Why a schedule is older than what the site's box already applied, or None."""
    have = status.get("schedule_version") if status else None
    if not isinstance(have, int) or isinstance(have, bool) or doc.get("schema") == Schema.COMMAND:
        return None
    if doc.get("version", 0) <= have:
        return (
            f"version: {doc.get('version')} is not newer than the {have} the box at {doc.get('site')} has applied; "
            "it would ignore it (and a retained snapshot would replace the newer one on the broker). "
            "After a reset_version command, give --older"
        )
    return None


def publish(opts: BrokerOptions, doc: Any, payload: bytes, *, older: bool = False, timeout: float = 10.0) -> str:
    """Publish and wait for the broker's acknowledgement; return the topic. A schedule
    older than what the site's box reports having is refused unless ``older``."""
    topic, retained = topic_for(doc, opts.prefix)
    client = opts.client("publish")
    connect(client, opts)
    try:
        if not older:
            why = stale(doc, site_status(client, opts.prefix, doc["site"]))
            if why is not None:
                raise DocumentError(why)
        acked_publish(client, opts, topic, payload, retain=retained, timeout=timeout)
    finally:
        _close(client)
    return topic


def command(opts: BrokerOptions, doc: dict[str, Any], payload: bytes, wait: float) -> dict[str, Any] | None:
    """Publish a command and wait for its result: the box's ``cmd/result`` with this id,
    or None after ``wait`` seconds. The result topic is subscribed before the command
    goes out, so a fast answer cannot be missed."""
    topic, _ = topic_for(doc, opts.prefix)
    result_topic = f"{opts.prefix}/{doc['site']}/{Leaf.CMD_RESULT}"
    subscribed, answered = threading.Event(), threading.Event()
    refused: list[str] = []
    result: dict[str, Any] = {}

    def on_message(c, userdata, msg) -> None:
        try:
            answer = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(answer, dict) and answer.get("id") == doc["id"]:
            result.update(answer)
            answered.set()

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        refused.extend(f"cannot read {result_topic}: {code}" for code in reason_codes if code.is_failure)
        subscribed.set()

    client = opts.client("command")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(result_topic, qos=1)
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect(client, opts)
    try:
        if not subscribed.wait(CONNECT_TIMEOUT_S) or refused:
            raise HaldorError(f"broker {opts.host}:{opts.port}: {refused[0] if refused else 'no answer within 10 s'}")
        acked_publish(client, opts, topic, payload)
        answered.wait(wait)
    finally:
        _close(client)
    return result or None


def check_watch(site: str, prefix: str, count: int) -> None:
    """One line for what `haldor watch` cannot listen to."""
    if site != "+" and not IDENTIFIER.fullmatch(site):
        raise DocumentError(f"--site: {site!r} is neither a site id nor + (all sites)")
    if any(ch in prefix for ch in "+#") or not prefix:
        raise DocumentError(f"--prefix: {prefix!r} is not a topic prefix (no + or #)")
    if count < 0:
        raise DocumentError("--count: 0 (until Ctrl-C) or more")


def watch(opts: BrokerOptions, site: str, out: TextIO = sys.stdout, count: int = 0, ready: threading.Event | None = None) -> int:
    """Print events, status, command results and sync requests of one site (or ``+``
    for all) as they come, one JSON line each with its topic. ``count`` > 0 stops after
    that many messages. Exit 1 when the broker goes away and does not take us back."""
    check_watch(site, opts.prefix, count)
    client = opts.client("watch")
    done = threading.Event()
    seen = 0
    leaves = (Leaf.EVENTS, Leaf.STATUS, Leaf.CMD_RESULT, Leaf.SYNC_REQUEST)

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        c.subscribe([(f"{opts.prefix}/{site}/{leaf}", 1) for leaf in leaves])
        if ready is not None:
            ready.set()

    def on_message(c, userdata, msg) -> None:
        nonlocal seen
        try:
            body = json.dumps(json.loads(msg.payload), ensure_ascii=False)
        except (ValueError, RecursionError):
            body = repr(msg.payload)
        print(f"{msg.topic} {body}", file=out, flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    connect(client, opts)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _close(client)
    return 0
