"""The releases a box keeps beside its base install: once a release passed its self-check,
the folders of those given up and of those before the one it came from are removed."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from haldor import __version__, config
from haldor.agent import releases
from haldor.agent.site import open_store
from haldor.agent.updating import Updating

from .helpers import wait_for


def _folders(data) -> list[str]:
    return sorted(p.name for p in releases.folder(data).iterdir())


def _release(data, version: str) -> None:
    (releases.folder(data) / version / "haldor").mkdir(parents=True)


def test_prune_keeps_the_running_release_the_one_before_it_and_what_is_under_way(tmp_path):
    data = tmp_path / "data"
    for version in ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"):
        _release(data, version)
    (releases.folder(data) / ".0.5.0.unpacking").mkdir()  # an update being unpacked
    (releases.folder(data) / ".incoming").mkdir()
    releases.write(data, releases.CURRENT, releases.release("0.3.1", releases.folder(data) / "0.3.1"))
    releases.write(data, releases.ROLLED_BACK, {"to": "0.4.0", "why": "x"})
    assert releases.prune(data, {"0.3.1", "0.3.0"}) == ["0.1.0", "0.2.0", "0.4.0"]
    assert _folders(data) == [".0.5.0.unpacking", ".incoming", "0.3.0", "0.3.1", "current", "rolled_back"]
    # what ``current`` names is never removed, whatever the caller keeps
    assert releases.prune(data, set()) == ["0.3.0"]
    assert "0.3.1" in _folders(data)


def test_a_release_that_passes_its_self_check_removes_the_old_ones(tmp_path):
    data = tmp_path / "data"
    path = tmp_path / "haldor.toml"
    path.write_text(f'[site]\nid = "valby-skole"\ndata_dir = "{data}"\n')
    cfg = config.load(path)
    for version in ("0.0.1", "0.0.2", "0.0.3"):
        _release(data, version)
    _release(data, __version__)
    releases.stage(data, releases.release(__version__, releases.folder(data) / __version__), {"version": "0.0.2"}, command="c1")
    store = open_store(cfg)
    heard = SimpleNamespace(connected=threading.Event())
    heard.connected.set()
    try:
        updating = Updating(cfg, store, heard, lambda message: None, lambda *a: [], 0.0)
        assert updating.check is not None
        updating.poll(1.0)
        assert updating.check is None and releases.read(data, releases.PENDING) is None
        kept = ["0.0.2", __version__, "current"]
        wait_for(lambda: [n for n in _folders(data) if not n.startswith(".")] == kept, what="the old releases removed")
    finally:
        store.close()
