"""A release rolled out in stages (`haldor release rollout`): the boxes and their versions
read from their retained statuses, a test group first, then a share, then all; each
stage's boxes sent the signed ``update`` command and waited for (each answers only once
the new release passed its self-check, or after its rollback); the rollout stops when a
stage has more failures than allowed, and the boxes of later stages are never touched.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from haldor.errors import HaldorError
from haldor.mqtt import BrokerOptions
from haldor.protocol import Leaf

from .broker_client import CONNECT_TIMEOUT_S, connect
from .stages import outcome, plan

__all__ = ["Answers", "Rollout", "plan", "run"]


@dataclass
class Answers:
    """What the boxes said, gathered by paho's thread."""

    versions: dict[str, str | None] = field(default_factory=dict)
    #: (site, command id): the result
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)


class Rollout:
    def __init__(self, opts: BrokerOptions, make_command: Callable[[str], tuple[dict[str, Any], bytes]]) -> None:
        self.opts, self.make_command = opts, make_command
        self.answers = Answers()
        self.client = opts.client("rollout")
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{opts.prefix}/+/{Leaf.STATUS}", 1), (f"{opts.prefix}/+/{Leaf.CMD_RESULT}", 1)]
        )
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        site = msg.topic.removeprefix(f"{self.opts.prefix}/").split("/", 1)[0]
        with self.answers.changed:
            if msg.topic.endswith(f"/{Leaf.STATUS}"):
                version = doc.get("agent_version")
                self.answers.versions[site] = version if isinstance(version, str) else None
            elif isinstance(doc.get("id"), str):  # counted only from the site it was sent to
                self.answers.results[(site, doc["id"])] = doc
            self.answers.changed.notify_all()

    def __enter__(self) -> Rollout:
        connect(self.client, self.opts)
        if not self.subscribed.wait(CONNECT_TIMEOUT_S):
            self.client.loop_stop()
            raise HaldorError(f"broker {self.opts.host}:{self.opts.port}: the statuses and results could not be subscribed to")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def versions(self, quiet_s: float = 0.5, most_s: float = 10.0) -> dict[str, str | None]:
        """Every site's version, from the retained statuses (they come at once after the
        subscription): gathered until none came for ``quiet_s``."""
        deadline = time.monotonic() + most_s
        with self.answers.changed:
            count = -1
            while count != len(self.answers.versions) and time.monotonic() < deadline:
                count = len(self.answers.versions)
                self.answers.changed.wait(quiet_s)
            return dict(self.answers.versions)

    def stage(self, sites: Sequence[str], target: str, wait_s: float) -> dict[str, str | None]:
        """Each site sent the command; its failure (None: it runs ``target``), once all answered or the time ran out."""
        sent: dict[str, str] = {}
        for site in sites:
            doc, payload = self.make_command(site)
            info = self.client.publish(f"{self.opts.prefix}/{site}/{Leaf.CMD}", payload, qos=1)
            info.wait_for_publish(CONNECT_TIMEOUT_S)
            sent[site] = doc["id"]
        deadline = time.monotonic() + wait_s
        with self.answers.changed:
            while True:
                outcome = {site: self._outcome(command, site, target) for site, command in sent.items()}
                if all(o != "" for o in outcome.values()) or time.monotonic() >= deadline:
                    break
                self.answers.changed.wait(max(0.0, deadline - time.monotonic()))
        return {site: (o if o != "" else f"no answer within {wait_s:g} s") for site, o in outcome.items()}

    def _outcome(self, command: str, site: str, target: str) -> str | None:
        """None: done and its status says so; "": not yet; else why it failed."""
        return outcome(self.answers.results.get((site, command)), self.answers.versions.get(site), target)


def run(
    rollout: Rollout,
    target: str,
    stages: Sequence[str],
    test_sites: Sequence[str],
    max_failures: int,
    wait_s: float,
    say: Callable[[str], None],
) -> int:
    """0: every stage done; 1: stopped after a stage with too many failures."""
    planned = plan(rollout.versions(), target, stages, test_sites)
    if not any(planned):
        say(f"every site runs {target} or newer: nothing to do")
        return 0
    for i, (name, sites) in enumerate(zip(stages, planned, strict=True)):
        started = time.monotonic()
        failures = {s: why for s, why in rollout.stage(sites, target, wait_s).items() if why is not None}
        say(
            f"stage {name}: {len(sites) - len(failures)} of {len(sites)} site(s) run {target} ({time.monotonic() - started:.1f} s)"
        )
        for site, why in sorted(failures.items()):
            say(f"  {site}: {why}")
        if len(failures) > max_failures:
            later = sum(len(s) for s in planned[i + 1 :])
            say(
                f"stopped: {len(failures)} failure(s) in stage {name}, at most {max_failures} allowed; {later} site(s) not touched"
            )
            return 1
    return 0
