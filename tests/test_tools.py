"""The integrator's tools against a real broker and a real `haldor run`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading

from .helpers import SITE, dump, site_config, snapshot, wait_for

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def haldor(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "haldor", *args], capture_output=True, text=True, env=ENV, timeout=60, **kw)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    out = haldor("keygen", "bookings-2026", "--dir", str(tmp_path)).stdout
    key = tmp_path / "bookings-2026.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (tmp_path / "bookings-2026.pub").read_text().strip()
    assert f'keys = {{ "bookings-2026" = "{public}" }}' in out
    again = haldor("keygen", "bookings-2026", "--dir", str(tmp_path), check=False)
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_a_signed_file_loads_and_a_tampered_one_does_not(tmp_path):
    haldor("keygen", "k1", "--dir", str(tmp_path))
    public = (tmp_path / "k1.pub").read_text().strip()
    config = tmp_path / "haldor.toml"
    config.write_text(
        f'[site]\nid = "{SITE}"\ndata_dir = "{tmp_path / "data"}"\n[trust]\nkeys = {{ "k1" = "{public}" }}\n'
        '[gpio]\npin_factory = "mock"\n[[doors]]\nid = "main"\nlock_pin = 17\n'
    )
    envelope = json.loads(haldor("sign", str(tmp_path / "k1.key"), str(dump(tmp_path / "s.json", snapshot(42)))).stdout)
    assert envelope["kid"] == "k1"
    haldor("schedule", "load", "--config", str(config), str(dump(tmp_path / "env.json", envelope)))
    envelope["doc"] = envelope["doc"].replace('"version":42', '"version":43')
    bad = haldor("schedule", "load", "--config", str(config), str(dump(tmp_path / "bad.json", envelope)), check=False)
    assert bad.returncode == 2 and "signature does not verify" in bad.stderr


def test_publish_reaches_a_running_agent_and_watch_shows_what_it_says(tmp_path, broker):
    haldor("keygen", "k1", "--dir", str(tmp_path))
    public = (tmp_path / "k1.pub").read_text().strip()
    config = site_config(tmp_path / "haldor.toml", tmp_path / "data", port=broker.port, keys={"k1": public})
    lines: list[str] = []
    watcher = subprocess.Popen(
        [sys.executable, "-m", "haldor", "watch", "--broker", f"127.0.0.1:{broker.port}", "--site", SITE],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    threading.Thread(target=lambda: lines.extend(watcher.stdout), daemon=True).start()
    agent = subprocess.Popen([sys.executable, "-m", "haldor", "run", "--config", str(config)], env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any('"online": true' in line for line in lines), timeout=20, what="agent online")
        out = haldor(
            "publish",
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--key",
            str(tmp_path / "k1.key"),
            str(dump(tmp_path / "s.json", snapshot(42))),
        ).stdout
        assert f"haldor/v1/{SITE}/schedule" in out
        wait_for(lambda: any('"reason": "snapshot 42"' in line for line in lines), timeout=10, what="sync.applied seen")
        agent.send_signal(signal.SIGKILL)  # no goodbye: the broker speaks the Last Will
        agent.wait(10)
        wait_for(
            lambda: any(f"haldor/v1/{SITE}/status" in line and '"online": false' in line for line in lines),
            timeout=10,
            what="last will",
        )
    finally:
        for proc in (agent, watcher):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    line = next(line for line in lines if "sync.applied" in line)
    topic, body = line.split(" ", 1)
    assert topic == f"haldor/v1/{SITE}/events" and json.loads(body)["site"] == SITE


def test_publish_refuses_what_is_not_a_protocol_document(tmp_path, broker):
    result = haldor("publish", "--broker", f"127.0.0.1:{broker.port}", str(dump(tmp_path / "x.json", {"hello": 1})), check=False)
    assert result.returncode == 2 and "schema and site decide the topic" in result.stderr
