"""Signed updates that cannot brick a door (issue 27): real wheels of this Haldor at other
versions served on loopback, `haldor run` as a child with a real Mosquitto, the test
playing systemd (a stopped agent is started again). A newer release is installed, runs
and says done; one that breaks on start or never reaches the broker is rolled back and
the release before says so; unsigned, wrongly signed, wrongly hashed, older and equal
releases are refused in one line with nothing installed."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from haldor import __version__, cli
from haldor.access.envelope import seal
from haldor.access.release import newer, parse_manifest, version_key
from haldor.agent import launcher, releases
from haldor.errors import DocumentError
from haldor.integrator import documents
from haldor.integrator.releases import manifest_of

from .broker import Publisher, Watcher
from .helpers import wait_for
from .releases import Served, build_wheel
from .rig import AgentProcess, public_key

KID = "ops"
CHECK_S = 10
#: the shortest self-check the configuration allows: for a release that fails it
HASTY_CHECK_S = 5


class Box:
    """One box: the agent process, the broker's view of it, the operator, the wheels."""

    def __init__(self, tmp_path: Path, broker, release_pub: str, check_s: int = CHECK_S) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.check_s = check_s
        extra = f'\n[update]\nrelease_keys = {{ "release" = "{release_pub}" }}\ncheck_s = {check_s}\n'
        self.agent = AgentProcess(tmp_path, port=broker.port, keys={KID: public_key(self.key)}, extra=extra)
        self.watcher = Watcher(broker.port)
        self.publisher = Publisher(broker.port, self.key, kid=KID)
        self.data = self.agent.data_dir

    def start(self) -> None:
        self.agent.start()
        wait_for(lambda: self.statuses(), timeout=20, what="the agent online")

    def statuses(self) -> list[dict]:
        return [s for s in self.watcher.docs("status") if s["online"]]

    def result(self, command: str) -> dict | None:
        return next((r for r in self.watcher.docs("cmd/result") if r["id"] == command), None)

    def supervised(self, condition, timeout: float, what: str):
        """As systemd does (Restart=always): a stopped agent is started again."""

        def check():
            if not self.agent.alive():
                self.agent.start()
            return condition()

        return wait_for(check, timeout=timeout, what=what)

    def installed(self) -> list[str]:
        folder = releases.folder(self.data)
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []

    def close(self) -> None:
        self.publisher.close()
        self.watcher.close()
        self.agent.close()


@pytest.fixture
def release_key(tmp_path):
    key, pub, text = documents.keygen("release", tmp_path / "keys")
    return key, text


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    served = Served(folder)
    yield folder, served
    served.close()


@pytest.fixture
def box(tmp_path, broker, release_key):
    b = Box(tmp_path, broker, release_key[1])
    b.start()
    yield b
    b.close()


@pytest.fixture
def hasty_box(tmp_path, broker, release_key):
    """As ``box``, its self-check the shortest allowed: for a release that never passes it."""
    b = Box(tmp_path, broker, release_key[1], check_s=HASTY_CHECK_S)
    b.start()
    yield b
    b.close()


def _signed_manifest(tmp_path: Path, wheel: Path, key: Path) -> dict:
    """Through the command line, as a release manager signs it."""
    out = tmp_path / f"{wheel.stem}.manifest.json"
    assert cli.main(["release", "sign", str(wheel), "--key", str(key), "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _stamp(line: str) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _without_decisions(log: str) -> tuple[float, float]:
    """From the old loop's stop to the new loop's first decision, and from the old loop's
    last decision to it, in seconds (each decision is the line the loop logs for it)."""
    lines = log.splitlines()
    stop = next(i for i, line in enumerate(lines) if "stopping for the new release" in line)
    stop = next(i for i in range(stop, len(lines)) if "agent stopped; locks in their safe state" in lines[i])
    last = max(i for i in range(stop) if " card at main-in: " in lines[i])
    first = next(i for i in range(stop, len(lines)) if " card at main-in: " in lines[i])
    return _stamp(lines[first]) - _stamp(lines[stop]), _stamp(lines[first]) - _stamp(lines[last])


def _decided_after_the_update(log: str) -> bool:
    return " card at main-in: " in log.rpartition("on trial: checking itself")[2]


# --- the pure parts -----------------------------------------------------------------------


def test_versions_compare_as_numbers():
    assert newer("0.10.0", "0.9.1") and newer("0.2", "0.1.9") and newer("1.0.1", "1.0")
    assert not newer("1.0.0", "1.0") and not newer("0.1.0", "0.1.0") and not newer("0.0.9", "0.1.0")
    assert version_key("1.0.0") == version_key("1")
    with pytest.raises(DocumentError, match="not a release number"):
        version_key("0.2.0rc1")


def test_a_manifest_names_a_wheel_of_its_own_version(tmp_path):
    wheel = build_wheel(tmp_path, "0.2.0")
    doc = manifest_of(wheel)
    assert parse_manifest(doc).version == "0.2.0" and doc["size"] == wheel.stat().st_size
    with pytest.raises(
        DocumentError, match="manifest.wheel: 'haldor-0.2.0-py3-none-any.whl' is not the file name of a haldor 0.3.0"
    ):
        parse_manifest({**doc, "version": "0.3.0"})
    with pytest.raises(DocumentError, match="manifest.sha256"):
        parse_manifest({**doc, "sha256": "ABC"})


def test_a_release_key_is_refused_when_it_also_signs_schedules(tmp_path, signing_key):
    path = tmp_path / "haldor.toml"
    pub = public_key(signing_key)
    path.write_text(f'[site]\nid = "s"\n[trust]\nkeys = {{ k = "{pub}" }}\n[update]\nrelease_keys = {{ r = "{pub}" }}\n')
    assert cli.main(["check-config", "--config", str(path)]) == 2
    path.write_text('[site]\nid = "s"\n[update]\nrelease_keys = { r = "bm90IGEga2V5" }\n')
    from haldor import config
    from haldor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"update\.release_keys\.r: not a base64 Ed25519 public key"):
        config.load(path)
    with pytest.raises(ConfigError, match="update.check_s"):
        path.write_text('[site]\nid = "s"\n[update]\ncheck_s = 1\n')
        config.load(path)
    with pytest.raises(ConfigError, match="update.check_s: must be 5-3600 seconds"):
        path.write_text('[site]\nid = "s"\n[update]\ncheck_s = 4\n')
        config.load(path)
    path.write_text(f'[site]\nid = "s"\n[update]\ncheck_s = {HASTY_CHECK_S}\n')
    assert config.load(path).update.check_s == HASTY_CHECK_S  # a few seconds: a box on a fast link may want them


def test_the_launcher_gives_up_a_release_that_keeps_stopping(tmp_path):
    data = tmp_path / "data"
    folder = releases.folder(data) / "0.2.0"
    (folder / "haldor").mkdir(parents=True)
    releases.stage(data, releases.release("0.2.0", folder), None, command="c1", deadline=9e9)
    for start in (1, 2):  # each start of the release on trial is counted
        launcher.judge(str(data))
        assert releases.read(data, releases.PENDING)["starts"] == start
    launcher.judge(str(data))  # the third: rolled back to the base install
    assert releases.read(data, releases.PENDING) is None and releases.read(data, releases.CURRENT) is None
    record = releases.read(data, releases.ROLLED_BACK)
    assert record["command"] == "c1" and record["to"] == "0.2.0" and "stopped 2 times" in record["why"]


def test_the_launcher_runs_the_base_when_current_names_nothing_runnable(tmp_path):
    data = tmp_path / "data"
    releases.write(data, releases.CURRENT, releases.release("0.2.0", tmp_path / "gone"))
    launcher.launch(str(data), __version__, ["run"])  # returns: no exec
    assert releases.read(data, releases.CURRENT) is None


# --- the box, with real wheels and a real broker ------------------------------------------


def test_a_newer_release_is_installed_runs_and_says_done(tmp_path, box, wheels, release_key):
    folder, served = wheels
    wheel = build_wheel(folder, "0.2.0")
    manifest = _signed_manifest(tmp_path, wheel, release_key[0])
    assert box.statuses()[-1]["agent_version"] == __version__
    badging = threading.Event()

    def badge() -> None:  # a card every 20 ms, all through the update: the gap is the time without decisions
        while not badging.wait(0.02):
            box.agent.badge()

    badger = threading.Thread(target=badge, daemon=True)
    badger.start()
    try:
        wait_for(lambda: len(box.agent.stored()) >= 5, timeout=10, what="decisions before the update")
        command = box.publisher.command("update", manifest=manifest, url=served.url(wheel.name))
        assert box.agent.proc.wait(60) == 75  # staged: stopped for systemd, locks safe
        assert box.result(command) is None  # nothing says done before the new release confirmed
        box.supervised(lambda: box.result(command), timeout=60, what="the new release's answer")
        wait_for(lambda: _decided_after_the_update(box.agent.log.read_text()), timeout=10, what="a decision by the new release")
    finally:
        badging.set()
        badger.join()
    assert box.result(command)["ok"] is True and box.result(command)["error"] is None
    wait_for(lambda: box.statuses()[-1]["agent_version"] == "0.2.0", timeout=10, what="the status says 0.2.0")
    assert releases.read(box.data, releases.CURRENT)["version"] == "0.2.0"
    assert releases.read(box.data, releases.PENDING) is None and box.installed() == ["0.2.0", "current"]
    after_stop, after_last = _without_decisions(box.agent.log.read_text())
    # and on from that release to the next: the base install's launcher starts the newest
    nxt = build_wheel(folder, "0.2.1")
    again = box.publisher.command("update", manifest=_signed_manifest(tmp_path, nxt, release_key[0]), url=served.url(nxt.name))
    box.supervised(lambda: box.result(again), timeout=60, what="the next release's answer")
    assert box.result(again)["ok"] is True
    wait_for(lambda: box.statuses()[-1]["agent_version"] == "0.2.1", timeout=10, what="the status says 0.2.1")
    assert box.installed() == ["0.2.0", "0.2.1", "current"]
    print(
        f"\nno decision during the update: {after_stop:.2f} s from the old loop's stop, {after_last:.2f} s from its last decision"
    )
    assert after_last < 10


def test_a_release_that_breaks_on_start_is_rolled_back_and_reported(tmp_path, box, wheels, release_key):
    folder, served = wheels
    broken = {"haldor/agent/run.py": ("log = logging.getLogger(__name__)\n", 'raise RuntimeError("a broken release")\n')}
    wheel = build_wheel(folder, "0.3.0", breaks=broken)
    manifest = _signed_manifest(tmp_path, wheel, release_key[0])
    command = box.publisher.command("update", manifest=manifest, url=served.url(wheel.name))
    assert box.agent.proc.wait(60) == 75
    result = box.supervised(lambda: box.result(command), timeout=90, what="the rollback reported")
    assert result["ok"] is False
    assert result["error"] == f"update to 0.3.0 rolled back to {__version__}: it stopped 2 times before passing its self-check"
    assert "a broken release" in box.agent.log.read_text()
    assert box.statuses()[-1]["agent_version"] == __version__
    assert releases.read(box.data, releases.CURRENT) is None and releases.read(box.data, releases.ROLLED_BACK) is None
    # the event goes out through the outbox, after the command's answer: waited for, not read at once
    events = wait_for(
        lambda: [e for e in box.watcher.events("command.result") if e["command"] == command], what="the command.result event"
    )
    event = events[0]
    assert event["action"] == "update" and event["ok"] is False


def test_a_release_that_never_reaches_the_broker_rolls_itself_back(tmp_path, hasty_box, wheels, release_key):
    box = hasty_box
    folder, served = wheels
    unreachable = {"haldor/agent/link.py": ("connect_async(self.host, self.port,", "connect_async(self.host, 1,")}
    wheel = build_wheel(folder, "0.4.0", breaks=unreachable)
    manifest = _signed_manifest(tmp_path, wheel, release_key[0])
    command = box.publisher.command("update", manifest=manifest, url=served.url(wheel.name))
    assert box.agent.proc.wait(60) == 75
    box.agent.start()  # the release on trial, which cannot reach the broker
    assert box.agent.proc.wait(box.check_s + 30) == 75  # it gave itself up
    result = box.supervised(lambda: box.result(command), timeout=60, what="the rollback reported")
    assert result["ok"] is False and result["error"].startswith(f"update to 0.4.0 rolled back to {__version__}: self-check")
    assert "the broker was not reached" in result["error"]
    assert box.statuses()[-1]["agent_version"] == __version__


def test_unsigned_wrongly_signed_hashed_older_and_equal_releases_are_refused(tmp_path, box, wheels, release_key):
    folder, served = wheels
    wheel = build_wheel(folder, "0.5.0")
    good = _signed_manifest(tmp_path, wheel, release_key[0])
    doc = json.loads(good["doc"])
    release = documents.load_private_key(release_key[0])
    url = served.url(wheel.name)

    def signed(**changes) -> dict:
        return seal({**doc, **changes}, "release", release)

    older = build_wheel(folder, "0.0.9")
    lacking = build_wheel(folder, "0.6.0", requires=("no-such-library>=1",))
    unparsable = build_wheel(
        folder, "0.7.0", breaks={"haldor/agent/run.py": ("log = logging.getLogger(__name__)\n", "log = (\n")}
    )
    cases = {
        "unsigned": ({"doc": good["doc"], "kid": "release"}, url, "release refused: manifest: unsigned"),
        "signed with the command key": (seal(doc, "release", box.key), url, "signature does not verify with key 'release'"),
        "an unknown key": (seal(doc, KID, box.key), url, "kid: unknown key 'ops'"),
        "wrong sha256": (signed(sha256="0" * 64), url, "is not the manifest's " + "0" * 64),
        "wrong size": (signed(size=doc["size"] - 1), url, "larger than the manifest's"),
        "older": (
            _signed_manifest(tmp_path, older, release_key[0]),
            served.url(older.name),
            "0.0.9 is not newer than the running",
        ),
        "equal": (
            signed(version=__version__, wheel=f"haldor-{__version__}-py3-none-any.whl"),
            url,
            "is not newer than the running",
        ),
        "nowhere": (good, served.url("missing.whl"), "not downloaded"),
        "a library the box lacks": (
            _signed_manifest(tmp_path, lacking, release_key[0]),
            served.url(lacking.name),
            "requires no-such-library>=1, which this box's environment lacks",
        ),
        "a release that does not compile": (
            _signed_manifest(tmp_path, unparsable, release_key[0]),
            served.url(unparsable.name),
            "haldor-0.7.0-py3-none-any.whl: does not compile",
        ),
    }
    for what, (manifest, where, why) in cases.items():
        command = box.publisher.command("update", manifest=manifest, url=where)
        result = wait_for(lambda command=command: box.result(command), timeout=20, what=what)
        assert result["ok"] is False and why in result["error"], (what, result)
        assert "\n" not in result["error"]
    assert box.agent.alive() and box.installed() == []
    assert os.listdir(releases.folder(box.data) / ".incoming") == []


def test_haldor_command_sends_an_update_and_prints_the_refusal(tmp_path, box, wheels, release_key, broker, capsys):
    folder, served = wheels
    older = build_wheel(folder, "0.0.9")
    manifest = tmp_path / "older.json"
    assert cli.main(["release", "sign", str(older), "--key", str(release_key[0]), "--out", str(manifest)]) == 0
    key = tmp_path / f"{KID}.key"
    key.write_bytes(box.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    args = ["command", "valby-skole", "update", "--manifest", str(manifest), "--url", served.url(older.name)]
    args += ["--broker", f"127.0.0.1:{broker.port}", "--key", str(key), "--wait", "20"]
    capsys.readouterr()
    assert cli.main(args) == 1
    assert "refused update: version 0.0.9 is not newer than the running" in capsys.readouterr().err
    assert cli.main(["command", "valby-skole", "update", "--broker", f"127.0.0.1:{broker.port}", "--key", str(key)]) == 2
    assert "update: give --manifest FILE" in capsys.readouterr().err


def test_a_disk_that_refuses_the_rollback_marker_does_not_end_the_loop(tmp_path):
    """A release on trial past its time, its rollback marker refused by the disk (here:
    a folder where the marker's temporary file goes): the loop's input is not ended by
    it; the release stops to be started again, and the launcher counts that start."""
    from types import SimpleNamespace

    from haldor import config
    from haldor.agent.messages import Stop
    from haldor.agent.site import open_store
    from haldor.agent.updating import Updating

    data = tmp_path / "data"
    path = tmp_path / "haldor.toml"
    path.write_text(f'[site]\nid = "valby-skole"\ndata_dir = "{data}"\n')
    cfg = config.load(path)
    store = open_store(cfg)
    releases.write(data, releases.PENDING, {"command": "c1", "from": {"version": "0.0.1"}, "to": {"version": __version__}})
    (releases.folder(data) / f".{releases.ROLLED_BACK}.tmp").mkdir()
    posted: list = []
    away = SimpleNamespace(connected=threading.Event())  # the link's one part read here: never connected
    try:
        updating = Updating(cfg, store, away, posted.append, lambda *a: [], 0.0)
        assert updating.poll(cfg.update.check_s + 1.0) == []
        assert updating.restart_for is not None and [type(m) for m in posted] == [Stop]
        assert releases.read(data, releases.PENDING) is not None  # left for the launcher to judge
    finally:
        store.close()
