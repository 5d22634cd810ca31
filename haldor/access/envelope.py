"""The signed envelope of PROTOCOL 2: ``{"doc": "<json text>", "kid": ..., "sig": ...}``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from haldor.errors import DocumentError, SignatureError

#: Larger payloads are refused before parsing (a 100,000-credential snapshot is about 25 MB).
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def load_public_key(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key in base64, as `[trust] keys` holds it."""
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base64 Ed25519 public key (32 bytes)") from exc


def open_envelope(
    payload: bytes | str, keys: Mapping[str, Ed25519PublicKey], require_signature: bool, *, max_bytes: int | None = None
) -> Any:
    """The verified document inside an envelope, as parsed JSON.

    Without ``require_signature`` a bare document, or an envelope without ``sig``, is
    accepted too (development and the demo only).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    limit = MAX_DOCUMENT_BYTES if max_bytes is None else max_bytes
    if len(payload) > limit:
        raise DocumentError(f"payload too large ({len(payload)} bytes, at most {limit})")
    outer = _json(payload, "payload")
    if not (isinstance(outer, dict) and "doc" in outer):
        if require_signature:
            raise SignatureError("unsigned document (no envelope) while signatures are required")
        return outer
    text = outer["doc"]
    if not isinstance(text, str):
        raise DocumentError("doc: expected the document as a JSON text")
    sig = outer.get("sig")
    if sig is None:
        if require_signature:
            raise SignatureError("envelope has no sig while signatures are required")
        return _json(text.encode("utf-8"), "doc")
    kid = outer.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise SignatureError(f"kid: unknown key {kid!r}")
    try:
        keys[kid].verify(base64.b64decode(sig, validate=True), text.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        raise SignatureError(f"signature does not verify with key {kid!r}") from None
    return _json(text.encode("utf-8"), "doc")


def seal(document: Any, kid: str, private_key: Ed25519PrivateKey) -> dict[str, str]:
    """The envelope for ``document``, signed (the booking system's side; used by tools and tests)."""
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    sig = private_key.sign(text.encode("utf-8"))
    return {"doc": text, "kid": kid, "sig": base64.b64encode(sig).decode("ascii")}


def _json(data: bytes, what: str) -> Any:
    """Parsed JSON. Nesting is bounded by the parser itself: past the interpreter's
    recursion limit it raises RecursionError, which becomes a rejection like any other
    parse failure (the validators never recurse into what they do not know)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise DocumentError(f"{what}: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DocumentError(f"{what}: not valid JSON ({exc})") from None
