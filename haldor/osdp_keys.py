"""Secure Channel base keys (SCBK) of OSDP readers: the key files and the record that
a reader has accepted its key, which ends install mode for good.

A key file holds 32 hex digits (16 bytes) and may be read by its owner only (0600).
No OSDP library is imported here, so the configuration check can use it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import time
from pathlib import Path

KEY_BYTES = 16


class KeyFileError(ValueError):
    """A key file that must not be used; the message says why."""


def read_key(path: str | os.PathLike) -> bytes:
    """The key in ``path``; refuses a file that others could read."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"no key file {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {p} may be read by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    digits = "".join(text.split())
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {p} must hold {KEY_BYTES * 2} hex digits")
    return key


def check(path: str, install_mode: bool) -> str | None:
    """Why the key file cannot be used at start-up, or None. In install mode a missing
    file is fine (the agent makes one) when its folder exists."""
    if install_mode and not Path(path).exists():
        folder = Path(path).parent
        return None if folder.is_dir() else f"folder {folder} for a new key does not exist"
    try:
        read_key(path)
    except KeyFileError as exc:
        return str(exc)
    return None


def create_key(path: str | os.PathLike) -> bytes:
    """A fresh random key written to ``path`` with mode 0600 (never over an existing file)."""
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex().upper() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def fingerprint(key: bytes) -> str:
    """Names a key in the install record without revealing it."""
    return hashlib.sha256(b"haldor osdp scbk\0" + key).hexdigest()[:16]


class InstallRecord:
    """Which readers accepted which key, kept in the data folder: install mode is over
    for a reader once it has accepted the key it has now, also after a restart."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def _path(self, reader: str) -> Path:
        return self.folder / f"{reader}.keyed"

    def keyed_at(self, reader: str, key: bytes) -> str | None:
        """When ``reader`` accepted ``key`` (ISO time), or None."""
        try:
            mark, _, when = self._path(reader).read_text(encoding="ascii").partition(" ")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        if mark != fingerprint(key):
            return None
        return when.strip() or "?"

    def mark(self, reader: str, key: bytes) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._path(reader)
        tmp = final.with_suffix(".tmp")
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{fingerprint(key)} {when}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
