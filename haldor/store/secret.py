"""The per-device secret that keys the card and PIN hashes: made once, whole or not at
all, never over one that is there; named by a fingerprint that gives nothing away."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from haldor.errors import StoreError

if TYPE_CHECKING:  # libsodium is loaded where a key is used, after the doors answer
    from nacl.public import PrivateKey

SECRET_NAME = "device.secret"
SITE_KEY_NAME = "site.key"


def site_key(data_dir: str | Path, *, create: bool = True) -> PrivateKey:
    """The box's own X25519 key, which schedules are sealed to (haldor.access.sealing):
    made once, whole or not at all, mode 0600, like the device secret."""
    from nacl.public import PrivateKey

    return PrivateKey(device_secret(Path(data_dir) / SITE_KEY_NAME, create=create)[:32])


def fingerprint(secret: bytes) -> str:
    """Names a device secret without giving it away."""
    return hmac.new(secret, b"fingerprint\x00", hashlib.sha256).hexdigest()[:16]


def device_secret(path: Path, *, create: bool = True) -> bytes:
    """The per-device HMAC key, created on first start with mode 0600."""
    if path.exists() or not create:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{path}: the device secret is missing (deleted since the agent started?)") from None
        if len(data) < 32:
            raise StoreError(f"{path}: device secret is damaged (shorter than 32 bytes)") from None
        return data
    secret = secrets.token_bytes(32)
    if not write_secret(path, secret):
        return device_secret(path, create=False)  # another process made it first: theirs counts
    return secret


def write_secret(path: Path, secret: bytes) -> bool:
    """Whole or not at all (a power cut never leaves a short secret), and never over one
    that is there. False when one was there."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True
