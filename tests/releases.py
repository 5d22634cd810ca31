"""Releases for the update tests: real wheels of this Haldor at other versions (written
with zipfile: the package as it is here, its version changed and, for a release that must
fail, one file broken), served over HTTP on loopback."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRES = ("gpiozero>=2.0", "pyserial>=3.5", "paho-mqtt>=2.0", "PyNaCl>=1.5", "tzdata")


def build_wheel(
    into: Path,
    version: str,
    *,
    breaks: dict[str, tuple[str, str]] | None = None,
    requires: tuple[str, ...] = REQUIRES,
) -> Path:
    """``haldor-VERSION-py3-none-any.whl`` in ``into``: importable as haldor once unpacked.
    ``breaks``: file -> (text, replacement), each text required to be there."""
    breaks = dict(breaks or {})
    breaks.setdefault("haldor/__init__.py", ('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    info = f"haldor-{version}.dist-info"
    wheel = into / f"haldor-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((ROOT / "haldor").rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = path.relative_to(ROOT).as_posix()
            data = path.read_bytes()
            if name in breaks:
                old, new = breaks.pop(name)
                assert old.encode() in data, (name, old)
                data = data.replace(old.encode(), new.encode())
            z.writestr(name, data)
        assert not breaks, breaks
        meta = ["Metadata-Version: 2.1", "Name: haldor", f"Version: {version}", "Requires-Python: >=3.11"]
        meta += [f"Requires-Dist: {r}" for r in requires] + ['Requires-Dist: lgpio; extra == "pi"']
        z.writestr(f"{info}/METADATA", "\n".join(meta) + "\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


class Served:
    """A folder served over HTTP on loopback, in a thread."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="wheels", daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass
