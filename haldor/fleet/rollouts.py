"""A release rolled out in stages from the fleet's page (issue 27): the form's manifest
checked and the stages planned from the versions the boxes' statuses gave, then one
rollout at a time in a thread of this process. Each stage's boxes get the signed
``update`` through the page's :class:`Commander` (each command on its audit row), and a
box counts as done once its answer is ok and its status shows the new release; a stage
with more failures than allowed stops the rollout before anything goes to the next."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from haldor.errors import DocumentError
from haldor.integrator.releases import checked_manifest
from haldor.integrator.stages import checked, names, plan

from .commands import AuditLog, Commander
from .operators import Operator
from .rollout_book import Planned, RolloutBook

log = logging.getLogger(__name__)

#: how long a stage waits for its boxes when the form says nothing (a box answers after its self-check)
WAIT_S = 600.0
#: how often the rollout looks at the answers and statuses the consumer stored
POLL_S = 0.2


def planned_from(form: dict[str, str], versions: dict[str, str | None]) -> Planned:
    """The form's rollout, checked (the manifest's form, not its signature: the boxes check
    that) and planned; a DocumentError names the field that is wrong."""
    text = form.get("manifest", "").strip()
    try:
        doc: Any = json.loads(text)
    except ValueError:
        raise DocumentError("manifest: paste the signed manifest's JSON (haldor release sign --out manifest.json)") from None
    manifest = checked_manifest(doc, "manifest")
    url = form.get("url", "").strip()
    if not url.startswith(("https://", "http://")) or len(url) > 1000:
        raise DocumentError("url: the wheel's address, https://... (or http://: the manifest's sha256 is what counts)")
    stages, tests = names(form.get("stages", "") or "test,10%,all"), names(form.get("test", ""))
    checked(stages, tests)
    failures, wait = form.get("max_failures", "").strip() or "0", form.get("wait", "").strip() or f"{WAIT_S:g}"
    if not failures.isdigit() or not wait.isdigit() or not 1 <= int(wait) <= 24 * 3600:
        raise DocumentError("max_failures, wait: whole numbers (wait: 1 s to a day)")
    version = json.loads(manifest["doc"])["version"]
    sites = plan(versions, version, stages, tests)
    skipped = sorted(s for s in versions if not any(s in chosen for chosen in sites))
    return Planned(version, url, manifest, stages, tests, int(failures), float(wait), sites, skipped)


class Rollouts:
    """The one rollout this process runs, and the book it writes its progress in."""

    def __init__(self, book: RolloutBook, audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self.book, self.audit, self.clock = book, audit, clock
        self.poll_s = POLL_S
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def latest(self) -> dict[str, Any] | None:
        """The last rollout; one the book says runs but no thread here runs was cut off by a restart."""
        doc = self.book.latest()
        if doc is not None and doc["state"] == "running" and not self.running():
            doc["state"] = "interrupted"
        return doc

    def start(self, commander: Commander, operator: Operator, planned: Planned) -> str:
        """The rollout begun in its thread; a DocumentError when one runs already or nothing is to do."""
        with self._lock:
            if self.running():
                raise DocumentError("a rollout runs already: stop it first")
            if not any(planned.sites):
                raise DocumentError(f"every box runs {planned.version} or newer: nothing to do")
            now = self.clock()
            cut = self.book.latest()
            if cut is not None and cut["state"] == "running":
                self.book.end(cut["id"], "interrupted", "the fleet stopped during it", now)
            rollout = self.book.create(planned, operator.name, now)
            counts = ", ".join(f"{name} {len(s)}" for name, s in zip(planned.stages, planned.sites, strict=True))
            self.audit.record(now, operator, "rollout_start", detail=f"{planned.version}: {counts}; {len(planned.skipped)} on it")
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(commander, operator, rollout, planned), name="fleet-rollout", daemon=True
            )
            self._thread.start()
        log.info("rollout of %s started by %s", planned.version, operator.name)
        return rollout

    def stop(self, operator: Operator, *, wait_s: float = 10.0) -> bool:
        """The running rollout stopped by an operator: nothing more is sent. False: none ran."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        self._stop.set()
        thread.join(wait_s)
        doc, now = self.book.latest(), self.clock()
        self.audit.record(now, operator, "rollout_stop", detail=f"{doc['version'] if doc else ''}: stopped from the page")
        if doc is not None:
            self.book.end(doc["id"], "stopped", f"stopped by {operator.name}", now)
        return True

    def _run(self, commander: Commander, operator: Operator, rollout: str, planned: Planned) -> None:
        try:
            self._stages(commander, operator, rollout, planned)
        except Exception as exc:  # the rollout ends and says why; the fleet goes on
            log.exception("rollout %s failed", rollout)
            self.book.end(rollout, "stopped", f"the fleet's rollout failed: {exc}", self.clock())

    def _stages(self, commander: Commander, operator: Operator, rollout: str, planned: Planned) -> None:
        fields = {"manifest": planned.manifest, "url": planned.url}
        for i, (name, sites) in enumerate(zip(planned.stages, planned.sites, strict=True)):
            self.book.stage(rollout, i)
            for site in sites:
                if self._stop.is_set():
                    return
                command = commander.send_update(operator, site, fields, planned.version, self.clock())
                self.book.sent(rollout, site, command, self.clock())
            deadline = time.monotonic() + planned.wait_s
            while self.book.judge(rollout, i, planned.version) and time.monotonic() < deadline:
                if self._stop.wait(self.poll_s):
                    return
            self.book.unanswered(rollout, i, f"no answer within {planned.wait_s:g} s")
            failures = self.book.failures(rollout, i)
            detail = f"{planned.version}, {name}: {len(sites) - len(failures)} of {len(sites)} done"
            self.audit.record(self.clock(), operator, "rollout_stage", detail=detail)
            if len(failures) > planned.max_failures:
                later = sum(len(s) for s in planned.sites[i + 1 :])
                why = f"{len(failures)} failure(s) in stage {name}, at most {planned.max_failures} allowed; {later} box(es) not touched"
                self.audit.record(self.clock(), operator, "rollout_stop", detail=f"{planned.version}: {why}")
                self.book.end(rollout, "failed", why, self.clock())
                return
        self.audit.record(self.clock(), operator, "rollout_done", detail=planned.version)
        self.book.end(rollout, "done", None, self.clock())
