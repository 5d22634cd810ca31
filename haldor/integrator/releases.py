"""Releases for the boxes (`haldor release sign`): a wheel's manifest, signed with a
release key in the envelope every signed document uses, and the ``update`` command that
carries it (PROTOCOL 4, "Updates")."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haldor.access.release import parse_manifest
from haldor.errors import DocumentError, HaldorError
from haldor.protocol import RELEASE_SCHEMA

from . import documents
from .stages import checked, names


def manifest_of(wheel: str | Path, now: datetime | None = None) -> dict[str, Any]:
    """What the boxes check a wheel against, read from the wheel itself."""
    path = Path(wheel)
    try:
        data = path.read_bytes()
        with zipfile.ZipFile(path) as z:
            meta = next((n for n in z.namelist() if re.fullmatch(r"haldor-[^/]+\.dist-info/METADATA", n)), None)
            if meta is None:
                raise DocumentError(f"{path}: not a wheel of haldor (no haldor-*.dist-info/METADATA)")
            text = z.read(meta).decode("utf-8", "replace")
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except zipfile.BadZipFile:
        raise DocumentError(f"{path}: not a wheel (not a zip file)") from None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith(" "))
    doc = {
        "schema": RELEASE_SCHEMA,
        "version": fields.get("Version", ""),
        "wheel": path.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "requires_python": fields.get("Requires-Python", ""),
        "signed_at": (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    try:
        parse_manifest(doc)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None
    return doc


def sign(wheel: str, key: str, kid: str | None = None) -> dict[str, str]:
    """The signed manifest of ``wheel``."""
    return documents.sign(key, manifest_of(wheel), kid)


def read_manifest(path: str) -> dict[str, Any]:
    """A signed manifest file (`haldor release sign --out`)."""
    return checked_manifest(documents.read_document(path), path)


def checked_manifest(doc: Any, where: str) -> dict[str, Any]:
    """A signed manifest's form (its signature is the boxes' to check), or one line why not."""
    if not isinstance(doc, dict) or not isinstance(doc.get("doc"), str) or "sig" not in doc:
        raise DocumentError(f"{where}: not a signed manifest (haldor release sign WHEEL --key release.key)")
    try:
        inner = json.loads(doc["doc"])
    except ValueError:
        raise DocumentError(f"{where}: its doc is not JSON") from None
    try:
        parse_manifest(inner)
    except DocumentError as exc:
        raise DocumentError(f"{where}: {exc}") from None
    return doc


def update_fields(manifest: str | None, url: str | None) -> dict[str, Any]:
    """The ``update`` command's own fields, from ``--manifest`` and ``--url``."""
    if not manifest or not url:
        raise DocumentError("update: give --manifest FILE (haldor release sign) and --url URL (where the boxes fetch the wheel)")
    return {"manifest": read_manifest(manifest), "url": url}


def release_command(args: Any) -> int:
    """`haldor release sign WHEEL --key KEY [--kid KID] [--out FILE]`."""
    envelope = sign(args.wheel, args.key, args.kid)
    text = json.dumps(envelope, ensure_ascii=False)
    if args.out:
        try:
            Path(args.out).write_text(text + "\n")
        except OSError as exc:
            raise HaldorError(f"{args.out}: cannot write: {exc.strerror}") from None
        print(f"{args.out}: release {json.loads(envelope['doc'])['version']} signed with key {envelope['kid']!r}")
    else:
        print(text)
    return 0


def rollout_command(args: Any, options: Any) -> int:
    """`haldor release rollout MANIFEST --url URL --stages test,10%,all ...`."""
    from . import rollout  # paho: only for the rollout

    fields = update_fields(args.manifest, args.url)
    target = json.loads(fields["manifest"]["doc"])["version"]
    stages, tests = names(args.stages), names(args.test or "")
    checked(stages, tests)
    by = args.by or getpass.getuser()

    def command(site: str) -> tuple[dict[str, Any], bytes]:
        doc = documents.new_command(site, "update", by=by, valid_s=args.valid, reason=f"rollout of {target}") | fields
        return documents.outgoing(doc, key=args.key, kid=args.kid)

    with rollout.Rollout(options, command) as r:
        return rollout.run(
            r, target, stages, tests, args.max_failures, args.wait, lambda line: print(line, file=sys.stdout, flush=True)
        )
