"""A release's manifest (``haldor.release/1``) and how versions compare. Pure.

A release is a wheel of Haldor; its manifest names the wheel's file, size and sha256,
signed with a release key (the envelope of PROTOCOL 2, checked against ``[update]
release_keys``). The ``update`` command carries the signed manifest and the wheel's URL;
the box refuses a manifest that is not signed by a release key, a version not newer
than the one it runs, and a wheel whose bytes are not the ones named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from haldor.errors import DocumentError
from haldor.protocol import RELEASE_SCHEMA
from haldor.records import record

from .envelope import check_signature
from .fields import Fields

#: a wheel for a box is a few megabytes; the download stops past this whatever the manifest says
MAX_WHEEL_BYTES = 64 * 1024 * 1024
#: plain release numbers (PEP 440's release segment): 0.2.0, 1.10
VERSION = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6}){0,4}")
WHEEL_NAME = re.compile(r"haldor-[0-9.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl")
SHA256 = re.compile(r"[0-9a-f]{64}")


@record
class Manifest:
    version: str
    wheel: str
    size: int
    sha256: str
    requires_python: str
    signed_at: float


def version_key(text: str) -> tuple[int, ...]:
    """``1.10.0`` after ``1.9``: numbers compared as numbers, trailing zeros dropped."""
    if not VERSION.fullmatch(text):
        raise DocumentError(f"version: {text!r} is not a release number like 0.2.0")
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def newer(candidate: str, running: str) -> bool:
    """Strictly newer: a box never installs an older release, nor the one it runs."""
    return version_key(candidate) > version_key(running)


def parse_manifest(doc: Any) -> Manifest:
    r = Fields(doc, "manifest")
    schema = r.get("schema", str)
    if schema != RELEASE_SCHEMA:
        raise DocumentError(f"manifest.schema: expected {RELEASE_SCHEMA!r}, got {schema!r}")
    version = r.get("version", str)
    version_key(version)
    wheel = r.get("wheel", str)
    if not WHEEL_NAME.fullmatch(wheel) or not wheel.startswith(f"haldor-{version}-"):
        raise DocumentError(f"manifest.wheel: {wheel!r} is not the file name of a haldor {version} wheel")
    size = r.get("size", int)
    if not 0 < size <= MAX_WHEEL_BYTES:
        raise DocumentError(f"manifest.size: must be more than 0 and at most {MAX_WHEEL_BYTES} bytes")
    sha = r.get("sha256", str)
    if not SHA256.fullmatch(sha):
        raise DocumentError("manifest.sha256: 64 lower-case hex digits")
    return Manifest(version, wheel, size, sha, r.get("requires_python", str), r.instant("signed_at"))


def open_manifest(signed: Any, release_keys: Mapping[str, Any]) -> Manifest:
    """The manifest inside its envelope, signed by one of the release keys (never unsigned:
    ``require_signature = false`` does not reach releases)."""
    if not release_keys:
        raise DocumentError("update: this box trusts no release key ([update] release_keys)")
    if not isinstance(signed, dict) or not isinstance(signed.get("doc"), str):
        raise DocumentError("manifest: expected a signed envelope {doc, kid, sig} (haldor release sign)")
    if "sig" not in signed:
        raise DocumentError("manifest: unsigned: a box installs only releases signed with a release key")
    check_signature(signed, release_keys)
    try:
        doc = json.loads(signed["doc"])
    except ValueError as exc:
        raise DocumentError(f"manifest: not valid JSON ({exc})") from None
    return parse_manifest(doc)


def refusal(manifest: Manifest, running: str) -> str | None:
    """Why this box must not install the release, or None."""
    if not newer(manifest.version, running):
        return f"version {manifest.version} is not newer than the running {running}: refused"
    return None
