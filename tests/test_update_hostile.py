"""Updates tried as an attacker would: wheels that unpack outside their folder, links,
zip bombs, wheels that are not Haldor, addresses that are not http(s), redirects away from
http(s); and pointer files tampered with or half-written, which must leave the box
running its base install, never crash-looping with its doors dead."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from haldor import __version__
from haldor.access.release import Manifest
from haldor.agent import installer, launcher, releases

from .releases import build_wheel

VERSION = "9.0.0"


def manifest_of(wheel: Path, version: str = VERSION) -> Manifest:
    data = wheel.read_bytes()
    return Manifest(version, wheel.name, len(data), hashlib.sha256(data).hexdigest(), ">=3.11", 0.0)


def with_extra(tmp_path: Path, add) -> Path:
    """A real wheel of Haldor with something more written into it."""
    wheel = build_wheel(tmp_path, VERSION)
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED) as z:
        add(z)
    return wheel


def refused(tmp_path: Path, wheel: Path, match: str) -> None:
    top = tmp_path / "data" / "releases"
    top.mkdir(parents=True, exist_ok=True)
    with pytest.raises(installer.Unfit, match=match):
        installer.unpack(wheel, top, manifest_of(wheel))
    assert not (top / VERSION).exists()


def test_a_real_wheel_unpacks(tmp_path):
    wheel = build_wheel(tmp_path, VERSION)
    top = tmp_path / "data" / "releases"
    top.mkdir(parents=True)
    assert (installer.unpack(wheel, top, manifest_of(wheel)) / "haldor" / "__init__.py").is_file()


@pytest.mark.parametrize("name", ["../evil.py", "haldor/../../evil.py", "/tmp/evil.py", "haldor\\..\\evil.py"])
def test_an_entry_outside_the_folder_is_refused(tmp_path, name):
    refused(tmp_path, with_extra(tmp_path, lambda z: z.writestr(name, "x = 1\n")), "unsafe path")


def test_a_symlink_entry_is_refused(tmp_path):
    def link(z: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo("haldor/config_link.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/shadow")

    refused(tmp_path, with_extra(tmp_path, link), "not a plain file")


def test_a_package_beside_haldor_that_would_shadow_a_library_is_refused(tmp_path):
    wheel = with_extra(tmp_path, lambda z: z.writestr("paho/__init__.py", "raise SystemExit\n"))
    refused(tmp_path, wheel, "outside haldor/")
    wheel = with_extra(tmp_path, lambda z: z.writestr("sitecustomize.py", "raise SystemExit\n"))
    refused(tmp_path, wheel, "outside haldor/")


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    zeros = b"\0" * (40 * 1024 * 1024)  # packs into some 40 kB
    wheel = with_extra(tmp_path, lambda z: z.writestr("haldor/padding.py", zeros))
    refused(tmp_path, wheel, "zip bomb")


def test_a_wheel_that_is_not_haldor_is_refused(tmp_path):
    wheel = tmp_path / f"haldor-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"haldor-{VERSION}.dist-info/METADATA", f"Name: haldor\nVersion: {VERSION}\n")
    refused(tmp_path, wheel, "not a wheel of haldor")


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/w.whl", "data:,x"])
def test_a_wheel_is_fetched_only_over_http(tmp_path, url):
    wheel = build_wheel(tmp_path, VERSION)
    with pytest.raises(installer.Unfit, match="not an http"):
        installer.fetch(url, tmp_path / "w.whl", manifest_of(wheel))


class _Quiet(http.server.BaseHTTPRequestHandler):
    """A test server's handler that keeps its access log to itself."""

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server on loopback answering with ``handler``; yields the wheel's address on it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/w.whl"
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_away_from_http_is_not_followed(tmp_path):
    wheel = build_wheel(tmp_path, VERSION)

    class Away(_Quiet):
        def do_GET(self) -> None:  # noqa: N802 (the base class's name)
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:1/w.whl")
            self.end_headers()

    with _serving(Away) as url, pytest.raises(installer.Unfit, match="redirected to ftp://"):
        installer.fetch(url, tmp_path / "w.whl", manifest_of(wheel))


def test_a_wheel_of_very_many_entries_is_refused(tmp_path):
    def many(z: zipfile.ZipFile) -> None:
        for n in range(installer.MAX_ENTRIES):
            z.writestr(f"haldor/empty/{n}.py", "")

    refused(tmp_path, with_extra(tmp_path, many), "entries, at most")


def test_a_server_that_trickles_the_wheel_is_given_up(tmp_path):
    wheel = build_wheel(tmp_path, VERSION)
    stop = threading.Event()

    class Trickle(_Quiet):
        def do_GET(self) -> None:  # noqa: N802 (the base class's name)
            self.send_response(200)
            self.send_header("Content-Length", str(wheel.stat().st_size))
            self.end_headers()
            for byte in wheel.read_bytes():
                if stop.wait(0.05):  # a byte now and then: each read is answered in time
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    try:
        with _serving(Trickle) as url, pytest.raises(installer.Unfit, match="not downloaded within 1 s"):
            installer.fetch(url, tmp_path / "w.whl", manifest_of(wheel), 1.0)
    finally:
        stop.set()  # its handler thread stops trickling and ends


# --- the launcher with pointer files tampered with ------------------------------------------


def staged(tmp_path: Path, came_from: dict | None = None) -> Path:
    data = tmp_path / "data"
    folder = releases.folder(data) / "0.2.0"
    (folder / "haldor").mkdir(parents=True)
    releases.stage(data, releases.release("0.2.0", folder), came_from, command="c1", deadline=9e9)
    return data


def test_a_half_written_pending_marker_gives_the_trial_up_for_the_base_install(tmp_path):
    data = staged(tmp_path)
    path = releases.folder(data) / releases.PENDING
    path.write_text(path.read_text()[:20])  # truncated JSON
    launcher.launch(str(data), __version__, ["run"])  # returns: the base install runs
    assert releases.read(data, releases.CURRENT) is None
    assert not path.exists()


def test_a_pending_marker_whose_from_is_no_release_still_rolls_back(tmp_path):
    data = staged(tmp_path)
    releases.write(data, releases.PENDING, {"from": "0.1.0", "to": 7, "starts": 5, "command": "c1"})
    launcher.launch(str(data), __version__, ["run"])
    assert releases.read(data, releases.CURRENT) is None and releases.read(data, releases.PENDING) is None
    record = releases.read(data, releases.ROLLED_BACK)
    assert record["command"] == "c1" and "stopped 5 times" in record["why"]


def test_a_current_pointer_without_a_version_runs_the_base_install(tmp_path):
    data = staged(tmp_path)
    releases.write(data, releases.PENDING, None)
    folder = releases.folder(data) / "0.2.0"
    (folder / "haldor" / "__init__.py").write_text("")
    releases.write(data, releases.CURRENT, {"path": str(folder)})
    launcher.launch(str(data), __version__, ["run"])
    assert releases.read(data, releases.CURRENT) is None


def test_a_rollback_to_a_release_that_is_gone_runs_the_base_install(tmp_path):
    gone = {"version": "0.1.5", "path": str(tmp_path / "deleted")}
    data = staged(tmp_path, came_from=gone)
    (releases.folder(data) / releases.PENDING).write_text(json.dumps({"from": gone, "to": {"version": "0.2.0"}, "starts": 2}))
    launcher.launch(str(data), __version__, ["run"])
    assert releases.read(data, releases.CURRENT) is None and releases.read(data, releases.PENDING) is None


@pytest.mark.parametrize("damaged", ["haldor/cli.py", "haldor/agent/run.py", "haldor/agent/link.py"])
def test_a_confirmed_release_that_no_longer_imports_leaves_the_base_install_running(tmp_path, broker, damaged):
    from haldor.integrator import documents

    from .test_update import Box

    _, _, release_pub = documents.keygen("release", tmp_path / "keys")
    box = Box(tmp_path, broker, release_pub)
    try:
        folder = releases.folder(box.data) / "0.9.0"
        with zipfile.ZipFile(build_wheel(tmp_path, "0.9.0")) as z:
            z.extractall(folder)
        # a file damaged under the launcher (one deleted is the same on a box; here, where the base
        # install is editable, its finder would supply the missing module)
        (folder / damaged).write_bytes(b"def damaged(:\n")  # a SyntaxError in every Python (NUL bytes are a ValueError in 3.11.2)
        releases.write(box.data, releases.CURRENT, releases.release("0.9.0", folder))
        box.start()  # online: the doors have their controller
        assert box.statuses()[-1]["agent_version"] == __version__ and box.agent.alive()
        assert releases.read(box.data, releases.CURRENT) is None
        log = box.agent.log.read_text()
        assert "release 0.9.0 did not start" in log and "SyntaxError" in log and f"the base install {__version__} runs" in log
        if damaged == "haldor/agent/link.py":  # imported once the doors answered: the release stopped, then handed over
            assert "the network part did not load" in log
    finally:
        box.close()
