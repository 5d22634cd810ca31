"""Schedules sealed to one site: card numbers and PINs never lie in clear on the broker.

A box makes its own X25519 key pair at first start (``site.key`` in its data folder,
mode 0600); the booking system seals each site's schedules to that site's public key
with a libsodium sealed box (PyNaCl: X25519, XSalsa20-Poly1305, an ephemeral sender key),
then signs the sealed text as it signs a plain document. Only the box can open it; the
signature still says who wrote it. A well-kept library rather than a hand-made scheme:
sealed boxes are libsodium's answer to exactly this.
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from haldor.errors import DocumentError


def public_text(key: PrivateKey) -> str:
    """The public half, base64, as the bridge's ``[[sites]] public_key`` holds it."""
    return base64.b64encode(bytes(key.public_key)).decode("ascii")


def load_public(text: str) -> PublicKey:
    """The key, or ValueError: not one, or a point nothing can be sealed to (libsodium
    refuses a low-order key such as 32 zero bytes: sealing to it would fail every run)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        key = PublicKey(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a base64 X25519 public key (32 bytes)") from exc
    try:
        SealedBox(key).encrypt(b"")
    except (CryptoError, RuntimeError):  # PyNaCl says RuntimeError for libsodium's refusal
        raise ValueError("an X25519 key nothing can be sealed to (a low-order point)") from None
    return key


def seal_to(public: PublicKey, text: str) -> str:
    """``text`` sealed for the holder of ``public``'s private key, base64."""
    return base64.b64encode(SealedBox(public).encrypt(text.encode("utf-8"))).decode("ascii")


def open_sealed(key: PrivateKey, sealed: str) -> str:
    try:
        return SealedBox(key).decrypt(base64.b64decode(sealed, validate=True)).decode("utf-8")
    except (CryptoError, binascii.Error, ValueError, UnicodeDecodeError):
        raise DocumentError("sealed: cannot be opened with this site's key (sealed for another site?)") from None
