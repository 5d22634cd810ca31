"""The ``update`` command as the loop sees it (PROTOCOL 4, "Updates"): refused at once when
the manifest is not signed by a release key or not newer, else handed to the installer's
thread; the agent stops for the new release once it is staged. A release on trial checks
itself (:class:`SelfCheck`) and answers the command only when it passed; one that does not
pass in time is rolled back, and the release before it says so when it runs again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from haldor import __version__
from haldor.access import policy, release
from haldor.access.commands import CommandDoc
from haldor.access.model import Conditions
from haldor.config import Config
from haldor.errors import DocumentError
from haldor.protocol import Action
from haldor.store import Store

from . import releases
from .messages import Stop, UpdateRefused, UpdateStaged

if TYPE_CHECKING:  # the installer (urllib, zipfile) is imported when the first update comes
    from .installer import Installer

log = logging.getLogger(__name__)

#: a card no credential has: the self-check's decision goes through the real policy and moves nothing
PROBE_CARD = "uid:00"

Result = Callable[..., list]


class SelfCheck:
    """What a release on trial must show within ``[update] check_s``: the store read, a
    decision made through the real policy, the broker reached."""

    def __init__(self, cfg: Config, store: Store, link: Any, deadline: float) -> None:
        self.cfg, self.store, self.link, self.deadline = cfg, store, link, deadline
        self.decided = False

    def missing(self, now: float) -> list[str]:
        """What has not passed yet (empty: the release passed)."""
        missing = []
        try:
            _ = self.store.version  # the schedule's version, read from the store
            self.store.meta("last_sync")
            if not self.decided and self.cfg.doors:
                facts = self.store.schedule.facts(self.cfg.doors[0].id, now, card=PROBE_CARD)
                policy.decide(now, facts, Conditions(lockdown=False, clock_trusted=True))
            self.decided = True
        except Exception as exc:  # whatever breaks here is the release's fault, not a door's
            missing.append(f"the store or a decision failed ({type(exc).__name__}: {exc})")
        if self.link is not None and not self.link.connected.is_set():
            missing.append("the broker was not reached")
        return missing


class Updating:
    def __init__(self, cfg: Config, store: Store, link: Any, post: Callable[[Any], None], result: Result, now: float) -> None:
        self.cfg, self.store, self.link, self._post, self._result = cfg, store, link, post, result
        self._installer: Installer | None = None
        #: why the agent stops to be started again (exit 75), once an update asks for it
        self.restart_for: str | None = None
        pending = releases.read(cfg.data_dir, releases.PENDING)
        to = pending.get("to") if pending is not None else None
        on_trial = isinstance(to, dict) and to.get("version") == __version__
        self.trial = pending if on_trial else None
        self.check = SelfCheck(cfg, store, link, now + cfg.update.check_s) if on_trial else None
        self.rolled_back = releases.read(cfg.data_dir, releases.ROLLED_BACK)
        if self.check is not None:
            log.warning("release %s on trial: checking itself within %d s", __version__, cfg.update.check_s)

    @property
    def next_at(self) -> float | None:
        """When the loop must look again even if nothing happens (the trial's end)."""
        return self.check.deadline if self.check is not None else None

    def order(self, cmd: CommandDoc, now: float) -> list:
        """A valid, signed ``update`` command for this box."""
        try:
            manifest = release.open_manifest(cmd.manifest, self.cfg.release_keys)
        except DocumentError as exc:
            return self._refuse(cmd, f"release refused: {exc}", now)
        why = release.refusal(manifest, __version__)
        if why is None and self.check is not None:
            why = f"release {__version__} is still checking itself; update again once it passed"
        if why is not None:
            return self._refuse(cmd, why, now)
        if not self.installer().start(cmd.id, manifest, str(cmd.url), cmd.expires_at):
            return self._refuse(cmd, "another update is under way", now)
        log.warning("update to %s from %s: fetching it beside the loop", manifest.version, cmd.url)
        return []  # answered by the release once it passed its self-check, or by this one after a rollback

    def _refuse(self, cmd: CommandDoc, why: str, now: float) -> list:
        return self._result(cmd.id, Action.UPDATE, None, why, now, cmd)

    def installer(self) -> Installer:
        if self._installer is None:
            from .installer import Installer

            self._installer = Installer(self.cfg.data_dir, self.cfg.update.check_s, self._post)
        return self._installer

    def staged(self, message: UpdateStaged, now: float) -> list:
        self.restart_for = f"update to {message.version} staged"
        self._post(Stop())
        return []

    def refused(self, message: UpdateRefused, now: float) -> list:
        return self._result(message.command, Action.UPDATE, None, f"release refused: {message.why}", now)

    def poll(self, now: float) -> list:
        """After every input: a rollback reported once the broker hears it, a trial judged.
        Its marker files are written beside the doors: a disk that refuses one (full, read
        only) is logged and tried again at the next input, never carried into the loop."""
        effects: list = []
        heard = self.link is None or self.link.connected.is_set()
        if self.rolled_back is not None and heard and self._marked(releases.write, self.cfg.data_dir, releases.ROLLED_BACK, None):
            r = self.rolled_back
            why = f"update to {r.get('to')} rolled back to {r.get('from') or __version__}: {r.get('why')}"
            effects += self._result(r.get("command"), Action.UPDATE, None, why, now)
            self.rolled_back = None
        if self.check is None or self.restart_for is not None:
            return effects
        missing = self.check.missing(now)
        if not missing:
            pending = releases.read(self.cfg.data_dir, releases.PENDING) or {}
            if not self._marked(releases.confirm, self.cfg.data_dir):
                return effects
            self.check = None
            log.warning("release %s passed its self-check: the update is done", __version__)
            came_from = pending.get("from")
            keep = {__version__, str(came_from.get("version") if isinstance(came_from, dict) else None)}
            # beside the loop: removing a release's hundreds of files is not the doors' time
            threading.Thread(target=releases.prune, args=(self.cfg.data_dir, keep), name="prune", daemon=True).start()
            return effects + self._result(pending.get("command"), Action.UPDATE, None, None, now)
        if now >= self.check.deadline:
            why = f"self-check not passed within {self.cfg.update.check_s} s: {'; '.join(missing)}"
            # not written: the next start counts this one as a failed start, and the launcher rolls back
            self._marked(releases.roll_back, self.cfg.data_dir, why)
            self.restart_for = f"release {__version__} rolled back"
            self._post(Stop())
        return effects

    @staticmethod
    def _marked(write: Callable[..., Any], *args: Any) -> bool:
        try:
            write(*args)
        except OSError as exc:
            log.error("releases/: %s (tried again)", exc)
            return False
        return True
