"""The Ed25519 public keys a box trusts (``[trust] keys`` and ``command_keys``), read
apart from the envelope: the configuration loads them without importing the documents'
validation, nor libsodium, which ``haldor run`` does not need before the doors answer."""

from __future__ import annotations

import base64
import binascii


def load_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key in base64, as `[trust] keys` holds it: its bytes,
    verified with libsodium (PyNaCl) when a signature is checked (:mod:`.envelope`), which
    the box has for sealed schedules anyway: cryptography's OpenSSL would cost the agent
    7 MB for the same check."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a base64 Ed25519 public key (32 bytes)") from exc
    if len(raw) != 32:
        raise ValueError("not a base64 Ed25519 public key (32 bytes)")
    return raw
