"""Tools for the other side of the protocol: the booking system and the operator.

`haldor keygen`, `sign`, `publish` and `watch` let a booking-system vendor make keys,
sign documents, put them on the right topics and see what the boxes say, without
writing a line of MQTT code first.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor.access.envelope import seal
from haldor.errors import DocumentError, HaldorError
from haldor.mqtt import BrokerOptions
from haldor.protocol import Leaf, Schema

PUBLIC_SUFFIX = ".pub"
PRIVATE_SUFFIX = ".key"


def keygen(kid: str, directory: Path) -> tuple[Path, Path, str]:
    """An Ed25519 key pair: ``<kid>.key`` (PKCS8 PEM, mode 0600) and ``<kid>.pub``
    (base64 raw public key, as ``[trust] keys`` holds it)."""
    key = Ed25519PrivateKey.generate()
    private = directory / f"{kid}{PRIVATE_SUFFIX}"
    public = directory / f"{kid}{PUBLIC_SUFFIX}"
    if private.exists():
        raise HaldorError(f"{private}: exists; not overwritten")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    text = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    public.write_text(text + "\n")
    return private, public, text


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise HaldorError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HaldorError(f"{path}: not an Ed25519 key")
    return key


def kid_of(path: str | os.PathLike) -> str:
    """``bookings-2026.key`` signs as kid ``bookings-2026`` unless told otherwise."""
    return Path(path).name.removesuffix(PRIVATE_SUFFIX)


def read_document(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise DocumentError(f"{path}: not valid JSON ({exc})") from None


def sign(key_path: str, doc: Any, kid: str | None = None) -> dict[str, str]:
    return seal(doc, kid or kid_of(key_path), load_private_key(key_path))


# --- the broker ------------------------------------------------------------------------


TOPIC_OF_SCHEMA = {Schema.SNAPSHOT: (Leaf.SCHEDULE, True), Schema.DELTA: (Leaf.DELTA, False), Schema.COMMAND: (Leaf.CMD, False)}


def topic_for(doc: Any, prefix: str) -> tuple[str, bool]:
    """The topic of a document (PROTOCOL 1) and whether it is retained."""
    if not isinstance(doc, dict) or doc.get("schema") not in TOPIC_OF_SCHEMA or not isinstance(doc.get("site"), str):
        raise DocumentError("not a schedule, delta or command (schema and site decide the topic)")
    leaf, retained = TOPIC_OF_SCHEMA[doc["schema"]]
    return f"{prefix}/{doc['site']}/{leaf}", retained


def _connect(client, opts: BrokerOptions) -> None:
    try:
        client.connect(opts.host, opts.port)
    except OSError as exc:
        raise HaldorError(f"broker {opts.host}:{opts.port}: {exc}") from None
    client.loop_start()


def publish(opts: BrokerOptions, doc: Any, payload: bytes, timeout: float = 10.0) -> str:
    """Publish and wait for the broker's acknowledgement; return the topic."""
    topic, retained = topic_for(doc, opts.prefix)
    client = opts.client("publish")
    _connect(client, opts)
    try:
        info = client.publish(topic, payload, qos=1, retain=retained)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise HaldorError(f"broker {opts.host}:{opts.port}: no acknowledgement within {timeout:.0f} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


def watch(opts: BrokerOptions, site: str, out: TextIO = sys.stdout, count: int = 0, ready: threading.Event | None = None) -> int:
    """Print events, status, command results and sync requests of one site (or ``+``
    for all) as they come, one JSON line each with its topic. ``count`` > 0 stops after
    that many messages."""
    client = opts.client("watch")
    done = threading.Event()
    seen = 0
    leaves = (Leaf.EVENTS, Leaf.STATUS, Leaf.CMD_RESULT, Leaf.SYNC_REQUEST)

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            print(f"haldor: broker refused: {reason_code}", file=sys.stderr)
            done.set()
            return
        c.subscribe([(f"{opts.prefix}/{site}/{leaf}", 1) for leaf in leaves])
        if ready is not None:
            ready.set()

    def on_message(c, userdata, msg) -> None:
        nonlocal seen
        try:
            body = json.dumps(json.loads(msg.payload), ensure_ascii=False)
        except ValueError:
            body = repr(msg.payload)
        print(f"{msg.topic} {body}", file=out, flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    _connect(client, opts)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
