"""Tools for the other side of the protocol: the booking system and the operator.

`haldor keygen`, `sign`, `publish`, `command` and `watch` let a booking-system vendor
make keys, sign documents, put them on the right topics, command a box and see what the
boxes say, without writing a line of MQTT code first. `publish` checks a document as a
box would before it goes out: a retained snapshot no box accepts would stay on the
broker and be offered to every box that reconnects.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import VerifyKey

from haldor import schemas
from haldor.access import commands, schedule, sealing
from haldor.access.envelope import check_signature, load_public_key, open_envelope, seal
from haldor.access.model import Delta
from haldor.errors import DocumentError, HaldorError
from haldor.protocol import DOOR_ACTIONS, IDENTIFIER, IDENTIFIER_TEXT, Action, Schema

PUBLIC_SUFFIX = ".pub"
PRIVATE_SUFFIX = ".key"


def keygen(kid: str, directory: Path) -> tuple[Path, Path, str]:
    """An Ed25519 key pair: ``<kid>.key`` (PKCS8 PEM, mode 0600) and ``<kid>.pub``
    (base64 raw public key, as ``[trust] keys`` holds it)."""
    if not IDENTIFIER.fullmatch(kid):  # it names files and goes into every envelope
        raise DocumentError(f"KID: {kid!r} is not a key id ({IDENTIFIER_TEXT})")
    key = Ed25519PrivateKey.generate()
    private = directory / f"{kid}{PRIVATE_SUFFIX}"
    public = directory / f"{kid}{PUBLIC_SUFFIX}"
    if private.exists():
        raise HaldorError(f"{private}: exists; not overwritten")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    text = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public.write_text(text + "\n")
    except OSError as exc:
        raise HaldorError(f"{exc.filename or directory}: cannot write: {exc.strerror}") from None
    return private, public, text


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except TypeError:  # cryptography's word for a key that needs a password
        raise DocumentError(f"{path}: the key is encrypted; give it without a password (mode 0600 keeps it)") from None
    except ValueError:
        raise DocumentError(f"{path}: not a PEM private key (haldor keygen makes one; a .pub file is the public half)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DocumentError(f"{path}: not an Ed25519 key")
    return key


def kid_of(path: str | os.PathLike) -> str:
    """``bookings-2026.key`` signs as kid ``bookings-2026`` unless told otherwise."""
    return Path(path).name.removesuffix(PRIVATE_SUFFIX)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def read_document(path: str | os.PathLike) -> Any:
    """A JSON document every box (and every JSON parser) reads alike: no NaN or
    Infinity, no lone surrogates, nesting within bounds."""
    try:
        doc = json.loads(Path(path).read_bytes(), parse_constant=_no_constant)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be sent
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except RecursionError:
        raise DocumentError(f"{path}: nested too deeply") from None
    except UnicodeError:
        raise DocumentError(f"{path}: not valid Unicode (a lone surrogate escape?)") from None
    except ValueError as exc:
        raise DocumentError(f"{path}: not valid JSON ({exc})") from None
    return doc


def sign(key_path: str, doc: Any, kid: str | None = None, *, to: Any = None) -> dict[str, str]:
    """``doc`` in a signed envelope, sealed to a site's public key ``to`` when given."""
    return seal(doc, kid or kid_of(key_path), load_private_key(key_path), to=to)


def public_keys(paths: list[str]) -> dict[str, bytes]:
    """``--verify-with KID.pub``: the keys a box trusts, by kid (the file's name)."""
    keys = {}
    for path in paths:
        try:
            keys[Path(path).name.removesuffix(PUBLIC_SUFFIX)] = load_public_key(Path(path).read_text().strip())
        except OSError as exc:
            raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
        except ValueError:  # also a file that is not text at all
            raise DocumentError(f"{path}: not a base64 Ed25519 public key (32 bytes), as haldor keygen writes KID.pub") from None
    return keys


# --- checks before anything goes out ----------------------------------------------


def check_document(doc: Any, now: float | None = None, *, schema: bool = True) -> str:
    """The schema name of a schedule, delta or command a box would accept, or
    DocumentError naming the first fault (the JSON Schema first, then the box's own
    rules: references, duplicates, times in order, a command not yet expired)."""
    name = schemas.name_for_schema(doc.get("schema")) if isinstance(doc, dict) and isinstance(doc.get("schema"), str) else None
    if name not in ("schedule", "delta", "command"):
        raise DocumentError("schema: not a schedule, delta or command (haldor.schedule/1, haldor.delta/1, haldor.command/1)")
    errors = schemas.errors(name, doc) if schema else []
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DocumentError(f"{errors[0]}{more}")
    if name == "command":
        cmd = commands.parse_command(doc)
        if (now if now is not None else datetime.now(UTC).timestamp()) >= cmd.expires_at:
            raise DocumentError("expires_at: already past; every box would refuse it as expired")
    else:
        parsed = schedule.parse_document(doc)
        if isinstance(parsed, Delta) and parsed.version <= parsed.base_version:
            raise DocumentError("version: a delta's version must be greater than its base_version")
    return name


def outgoing(
    doc: Any,
    *,
    key: str | None = None,
    kid: str | None = None,
    verify: Mapping[str, VerifyKey] | None = None,
    unsigned: bool = False,
    site: str | None = None,
    seal_to: str | None = None,
    verify_required: bool = False,
    schema: bool = True,
) -> tuple[Any, bytes]:
    """The document and the payload to publish, checked as a box would check them.

    A signed envelope must verify with a key a box trusts (``verify``); a document
    signed here with ``key`` must carry a kid among them when they are given (and with
    ``verify_required``, they must be given: `haldor publish` cannot otherwise know the
    boxes will take it); a bare document goes out only with ``unsigned`` (development
    boxes). ``seal_to`` (a site's public key, base64) seals a schedule so that only that
    box can read it. ``schema``: the JSON Schema too (the bridge, whose documents are
    made by code and checked by the box's own rules, leaves it out: it costs seconds)."""
    if key and not verify and verify_required:
        raise DocumentError(
            "no public key to check the signing key against: give --verify-with KID.pub "
            "(the key the boxes trust), or --config with their [trust] keys"
        )
    sealed_for = _seal_key(seal_to, key)
    if isinstance(doc, dict) and "sealed" in doc and "doc" not in doc:
        raise DocumentError(
            "a sealed envelope can be neither checked nor routed here: give the bare document, --key and --seal-to"
        )
    if isinstance(doc, dict) and "doc" in doc:
        if key:
            raise DocumentError("already an envelope: --key would sign it twice; give the bare document")
        inner, payload = _opened(doc, verify, unsigned)
    elif key:
        if sealed_for is not None and isinstance(doc, dict) and doc.get("schema") == Schema.COMMAND:
            raise DocumentError("--seal-to: commands go in clear (they hold no card numbers)")
        envelope = sign(key, doc, kid, to=sealed_for)
        if verify and envelope["kid"] not in verify:
            raise DocumentError(f"kid {envelope['kid']!r} is not among the keys the boxes trust ({', '.join(verify)})")
        payload = json.dumps(envelope, ensure_ascii=False).encode()
        if verify:
            check_signature(envelope, verify)
        inner = doc
    elif unsigned:
        inner, payload = doc, json.dumps(doc, ensure_ascii=False).encode()
    else:
        raise DocumentError(
            "not signed: boxes that require signatures reject it; sign with --key KEY (--unsigned for a development box)"
        )
    check_document(inner, schema=schema)
    if site is not None and inner.get("site") != site:
        raise DocumentError(f"site: the document is for {inner.get('site')!r}, not {site!r}")
    return inner, payload


def _seal_key(seal_to: str | None, key: str | None) -> Any:
    if seal_to is None:
        return None
    if not key:
        raise DocumentError("--seal-to needs --key: the sealed text is signed")
    try:
        return sealing.load_public(seal_to)
    except ValueError as exc:
        raise DocumentError(f"--seal-to: {exc}") from None


def _opened(doc: dict, verify: Mapping[str, VerifyKey] | None, unsigned: bool) -> tuple[Any, bytes]:
    """An envelope given whole: its document and payload, checked as a box would."""
    faults = schemas.errors("envelope", doc)
    if faults:
        raise DocumentError(f"envelope: {faults[0]}")
    payload = json.dumps(doc, ensure_ascii=False).encode()
    if doc.get("sig") is None and not unsigned:
        raise DocumentError("envelope without sig: boxes that require signatures reject it (--unsigned to publish anyway)")
    if doc.get("sig") is None:
        return open_envelope(payload, {}, require_signature=False), payload
    if not verify:
        raise DocumentError(
            f"signed by {doc.get('kid')!r} and no public key to check it with: "
            f"give --verify-with {doc.get('kid')}.pub (the key the boxes trust)"
        )
    return open_envelope(payload, verify, require_signature=True), payload


def new_command(
    site: str,
    action: str,
    *,
    door: str | None = None,
    duration_s: float | None = None,
    reason: str | None = None,
    by: str | None = None,
    valid_s: float = 120,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A command with a fresh id and a short life: a box that gets it later than
    ``valid_s`` seconds (it was offline) refuses it rather than unlock a door long
    after the operator gave up waiting."""
    if action in DOOR_ACTIONS and not door:
        raise DocumentError(f"--door: {action} needs a door")
    if action not in DOOR_ACTIONS and door:
        raise DocumentError(f"--door: {action} acts on the whole site, not on one door")
    if duration_s is not None and action != Action.UNLOCK:
        raise DocumentError("--duration: only unlock takes a duration")
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    doc: dict[str, Any] = {
        "schema": Schema.COMMAND.value,
        "id": str(uuid.uuid4()),
        "site": site,
        "action": action,
        "door": door,
        "issued_at": issued.isoformat().replace("+00:00", "Z"),
        "expires_at": (issued + timedelta(seconds=valid_s)).isoformat().replace("+00:00", "Z"),
        "by": by,
    }
    if duration_s is not None:
        doc["duration_s"] = duration_s
    if reason:
        doc["reason"] = reason
    return doc
