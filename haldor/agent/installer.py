"""An update's work beside the decision loop (a thread: the door never waits on a
download): the wheel fetched within its size, checked against the signed manifest, found
to be a pure-Python Haldor of that version whose requirements this box has, unpacked into
``<data_dir>/releases/<version>/`` and staged (:mod:`.releases`). The loop then hears
:class:`UpdateStaged` and stops for systemd to start the new release, or :class:`UpdateRefused`.

Imported when the first update comes, not at every start.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from haldor import __version__
from haldor.access.release import Manifest

from . import releases
from .messages import UpdateRefused, UpdateStaged

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 64 * 1024
COMPILE_TIMEOUT_S = 300.0
#: unpacked, a wheel of Haldor is a few times its packed size; far more is a zip bomb
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_RATIO = 20
#: Haldor is a few hundred files; thousands of empty ones would only use up the card's inodes
MAX_ENTRIES = 10_000
#: the whole download, however slowly a server trickles it (each read also has DOWNLOAD_TIMEOUT_S)
DOWNLOAD_TOTAL_S = 30 * 60.0


class Unfit(Exception):
    """The wheel is not one this box installs (one line: why)."""


class Installer:
    def __init__(self, data_dir: str, check_s: int, post: Callable[[Any], None]) -> None:
        self.data_dir, self.check_s, self._post = data_dir, check_s, post
        self.busy = threading.Lock()

    def start(self, command: str, manifest: Manifest, url: str, expires_at: float) -> bool:
        """False when another update is under way."""
        if not self.busy.acquire(blocking=False):
            return False
        about = {"command": command, "expires_at": expires_at}
        threading.Thread(target=self._work, args=(manifest, url, about), name="update", daemon=True).start()
        return True

    def _work(self, manifest: Manifest, url: str, about: dict[str, Any]) -> None:
        try:
            path = install(self.data_dir, manifest, url)
            current = releases.read(self.data_dir, releases.CURRENT)
            came_from = current if current is not None and current.get("version") == __version__ else None
            deadline = time.time() + 2 * self.check_s + 60  # the launcher's limit; the release checks itself sooner
            releases.stage(self.data_dir, releases.release(manifest.version, path), came_from, deadline=deadline, **about)
        except Exception as exc:  # the thread's edge: whatever a wheel breaks, the command is answered and the next may come
            why = str(exc) if isinstance(exc, Unfit) else f"{type(exc).__name__}: {exc}"
            log.error("update to %s refused: %s", manifest.version, why)
            self._post(UpdateRefused(about["command"], why))
            self.busy.release()
            return
        log.warning("update to %s staged in %s: stopping for the new release", manifest.version, path)
        self._post(UpdateStaged(about["command"], manifest.version))


def install(data_dir: str, manifest: Manifest, url: str) -> Path:
    """The wheel fetched, checked and unpacked; the folder it is in."""
    top = releases.folder(data_dir)
    incoming = top / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    wheel = incoming / manifest.wheel
    try:
        fetch(url, wheel, manifest)
        return unpack(wheel, top, manifest)
    finally:
        wheel.unlink(missing_ok=True)


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Redirects followed to http(s) only (urllib's own would follow one to ftp://)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.startswith(("http://", "https://")):
            raise Unfit(f"{req.full_url}: redirected to {newurl}, not an http:// or https:// address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnly)


def fetch(url: str, into: Path, manifest: Manifest, total_s: float = DOWNLOAD_TOTAL_S) -> None:
    """At most the manifest's size (one byte more says it is larger) within ``total_s``
    (a server that trickles would hold the update thread for ever), then its sha256."""
    digest, size, deadline = hashlib.sha256(), 0, time.monotonic() + total_s
    if not url.startswith(("http://", "https://")):
        raise Unfit(f"{url}: not an http:// or https:// address")
    try:
        with _OPENER.open(url, timeout=DOWNLOAD_TIMEOUT_S) as answer, open(into, "wb") as out:
            while chunk := answer.read1(min(CHUNK, manifest.size + 1 - size)):
                size += len(chunk)
                digest.update(chunk)
                out.write(chunk)
                if size > manifest.size:
                    raise Unfit(f"{url}: larger than the manifest's {manifest.size} bytes")
                if time.monotonic() > deadline:
                    raise Unfit(f"{url}: not downloaded within {total_s:g} s ({size} of {manifest.size} bytes)")
    except (OSError, ValueError) as exc:  # URLError is an OSError
        raise Unfit(f"{url}: not downloaded ({exc})") from None
    if size != manifest.size:
        raise Unfit(f"{url}: {size} bytes, the manifest says {manifest.size}")
    if digest.hexdigest() != manifest.sha256:
        raise Unfit(f"{url}: sha256 {digest.hexdigest()} is not the manifest's {manifest.sha256}")


def unpack(wheel: Path, top: Path, manifest: Manifest) -> Path:
    """Into ``top/<version>``, whole or not at all (unpacked beside it, then renamed)."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = f"haldor-{manifest.version}.dist-info"
        check_entries(z, wheel.stat().st_size, manifest)
        if "haldor/__init__.py" not in names or f"{info}/METADATA" not in names:
            raise Unfit(f"{manifest.wheel}: not a wheel of haldor {manifest.version} (no haldor/__init__.py or {info}/METADATA)")
        check_metadata(z.read(f"{info}/METADATA").decode("utf-8", "replace"), manifest)
        staging = top / f".{manifest.version}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        z.extractall(staging)
    target = top / manifest.version
    shutil.rmtree(target, ignore_errors=True)  # an earlier attempt that was given up
    staging.rename(target)
    compile_release(target, manifest)
    return target


def check_entries(z: zipfile.ZipFile, packed: int, manifest: Manifest) -> None:
    """Each entry a plain file or folder under ``haldor/`` or its dist-info (nothing that
    would shadow a library of the base install), and the whole at most a bounded size
    unpacked."""
    info = f"haldor-{manifest.version}.dist-info"
    if len(z.infolist()) > MAX_ENTRIES:
        raise Unfit(f"{manifest.wheel}: {len(z.infolist())} entries, at most {MAX_ENTRIES}")
    for entry in z.infolist():
        name, parts = entry.filename, PurePosixPath(entry.filename).parts
        if name.startswith("/") or ".." in parts or "\\" in name or not parts:
            raise Unfit(f"{manifest.wheel}: unsafe path {name!r}")
        if parts[0].endswith(".data"):
            raise Unfit(f"{manifest.wheel}: has .data files; only a pure-Python wheel is installed")
        if parts[0] not in ("haldor", info) or (len(parts) == 1 and not entry.is_dir()):
            raise Unfit(f"{manifest.wheel}: {name!r} is outside haldor/ and {info}/")
        kind = stat.S_IFMT(entry.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise Unfit(f"{manifest.wheel}: {name!r} is not a plain file (a link or device)")
    unpacked = sum(entry.file_size for entry in z.infolist())
    if unpacked > min(MAX_UNPACKED_BYTES, MAX_RATIO * packed):
        raise Unfit(f"{manifest.wheel}: {unpacked} bytes unpacked from {packed}: refused as a zip bomb")


def compile_release(target: Path, manifest: Manifest) -> None:
    """Its bytecode made now, not by the new release's first start while the doors wait; in
    a process of its own, so the decision loop does not share the interpreter with it. A
    release that does not compile is not one to switch to."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(target)], capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(target, ignore_errors=True)
        raise Unfit(f"{manifest.wheel}: not compiled within {COMPILE_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        first = next((line for line in (done.stdout + done.stderr).splitlines() if line.strip()), "")
        raise Unfit(f"{manifest.wheel}: does not compile ({first.strip()[:200]})")


def check_metadata(text: str, manifest: Manifest) -> None:
    """Its version is the manifest's, and what it requires is in this box's environment
    (a release brings no libraries: the base install provides them)."""
    fields = [line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith(" ")]
    version = next((v.strip() for k, v in fields if k == "Version"), None)
    if version != manifest.version:
        raise Unfit(f"{manifest.wheel}: its metadata says version {version}, the manifest {manifest.version}")
    for k, v in fields:
        if k == "Requires-Dist" and "extra ==" not in v:
            name = re.match(r"\s*([A-Za-z0-9._-]+)", v)
            if name is None:
                continue
            try:
                importlib.metadata.distribution(name.group(1))
            except importlib.metadata.PackageNotFoundError:
                raise Unfit(f"{manifest.wheel}: requires {v.strip()}, which this box's environment lacks") from None
        if k == "Requires-Python" and not python_fits(v.strip()):
            raise Unfit(f"{manifest.wheel}: requires Python {v.strip()}, this box has {sys.version.split()[0]}")


def python_fits(spec: str) -> bool:
    """``>=3.11`` and the like, as wheels of Haldor say it; anything else is not judged."""
    here = sys.version_info[:3]
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.fullmatch(r"(>=|<|==)\s*([0-9]+(?:\.[0-9]+){0,2})", clause)
        if m is None:
            continue
        want = tuple(int(p) for p in m.group(2).split("."))
        have = here[: len(want)]
        if (m.group(1) == ">=" and have < want) or (m.group(1) == "<" and have >= want) or (m.group(1) == "==" and have != want):
            return False
    return True
