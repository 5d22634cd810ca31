"""Many simulated boxes on one MQTT connection, for the fleet's side of an update: each
holds a retained status with its version and answers a signed ``update`` command as a box
does (the command's and the manifest's signatures checked, the version compared), then
says its new version; the ones named failing answer that the update was rolled back, the
ones named silent never answer (a box that went offline after its status)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from haldor.access.commands import parse_command
from haldor.access.envelope import open_envelope
from haldor.access.release import open_manifest, refusal
from haldor.errors import DocumentError

from .broker import PREFIX

AT = "2026-12-06T12:00:00Z"


class SimulatedBoxes:
    def __init__(
        self,
        port: int,
        sites: list[str],
        *,
        command_keys: Mapping[str, Any],
        release_keys: Mapping[str, Any],
        version: str = "0.1.0",
        failing: frozenset[str] = frozenset(),
        silent: frozenset[str] = frozenset(),
    ) -> None:
        self.versions = dict.fromkeys(sites, version)
        self.command_keys, self.release_keys, self.failing, self.silent = command_keys, release_keys, failing, silent
        self.commands: dict[str, list[str]] = {s: [] for s in sites}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="simulated-boxes", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{PREFIX}/+/cmd", qos=1)
        assert subscribed.wait(10)
        for site in sites:
            self._status(site)

    def _status(self, site: str, *, wait: bool = True) -> None:
        doc = {
            "schema": "haldor.status/1",
            "site": site,
            "online": True,
            "at": AT,
            "agent_version": self.versions[site],
            "schedule_version": None,
            "last_sync": None,
            "clock_trusted": True,
            "time_floor": None,
            "mode": "normal",
            "doors": {"main": {"locked": True, "open": False, "mode": "normal"}},
            "readers": {},
            "storage": {"ok": True, "fault": None, "since": None, "waiting": 0, "dropped": 0, "cards_work": True},
            "outbox": {"pending": 0, "oldest": None, "dropped": 0, "capacity": 1000000},
            "uptime_s": 1,
            "site_key": None,
            "timezone": "Europe/Copenhagen",
            "names": {"site": site, "rooms": {}, "doors": {"main": "main"}},
        }
        info = self.client.publish(f"{PREFIX}/{site}/status", json.dumps(doc), qos=1, retain=True)
        if wait:  # never from paho's own thread: it would wait on itself
            info.wait_for_publish(10)

    def _answer(self, site: str, command: str | None, error: str | None) -> None:
        result = {"id": command, "ok": error is None, "error": error, "at": AT}
        self.client.publish(f"{PREFIX}/{site}/cmd/result", json.dumps(result), qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        site = msg.topic.split("/")[-2]
        try:
            cmd = parse_command(open_envelope(msg.payload, self.command_keys, True))
            manifest = open_manifest(cmd.manifest, self.release_keys)
        except DocumentError as exc:
            self._answer(site, None, str(exc))
            return
        with self._lock:
            self.commands[site].append(cmd.id)
        if site in self.silent:
            return
        why = refusal(manifest, self.versions[site])
        if why is None and site in self.failing:
            why = f"update to {manifest.version} rolled back to {self.versions[site]}: self-check not passed"
        if why is None:  # the new release runs, says its version, then answers
            self.versions[site] = manifest.version
            self._status(site, wait=False)
        threading.Thread(target=self._answer, args=(site, cmd.id, why), daemon=True).start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
