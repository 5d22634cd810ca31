"""`haldor run`: one agent on its data folder, wired to its hardware, broker and screen."""

from __future__ import annotations

import functools
import gc
import logging
import signal
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haldor import __version__
from haldor.access.damage import damaged
from haldor.config import Config
from haldor.errors import StoreError
from haldor.store import DB_NAME, Store, recovery
from haldor.store.journal import StorageChanged

from .data_lock import DataDirLock
from .hardware import build_hardware
from .inbox import Inbox
from .launcher import failed
from .loop import Agent
from .messages import Stop
from .notify import Notifier
from .site import open_store

if TYPE_CHECKING:
    from .http_fallback import HttpFallback
    from .kiosk_feed import KioskFeed
    from .link import MqttLink

log = logging.getLogger(__name__)

#: `haldor run`'s exit status when it stopped to be started again (EX_TEMPFAIL)
EXIT_RESTART = 75
#: when it stopped on a damaged database, for the start after it to put the good copy in place (EX_IOERR)
EXIT_DAMAGED = 74
#: when its network part did not load (EX_SOFTWARE): a release then hands over to the base install
EXIT_UNLOADED = 70


def run_forever(cfg: Config) -> int:
    """`haldor run`: until SIGTERM (exit 0), every non-fail-safe door locked at the end."""
    held = DataDirLock(cfg.data_dir).acquire()  # before anything of the folder is touched
    db_path = Path(cfg.data_dir) / DB_NAME
    try:
        store = _open_checked(cfg, db_path)
    except BaseException:
        held.release()
        raise
    agent = saved = broken = None
    opened: list[Any] = []  # the pump's connection and the kiosk feed, once the network part is built
    try:
        inbox = Inbox()  # the door's messages before the network's
        hardware = build_hardware(cfg, inbox.put)
        try:
            network = functools.partial(_network, cfg, inbox, opened)
            agent = Agent(cfg, store, hardware, inbox=inbox, notifier=Notifier(), network=network)
        except BaseException:
            hardware.close()
            raise

        def stop(signum, frame) -> None:
            log.info("signal %d: stopping", signum)
            agent.post(Stop())

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        _check_when_ready(agent, db_path)
        agent.run()
        if agent.storage.restart_for is not None:
            try:
                saved = recovery.save_deleted(store.db.conn, Path(cfg.data_dir) / DB_NAME)
            except (OSError, sqlite3.Error) as exc:  # the start after this one recovers from the good copy
                log.error("what the agent had open could not be saved: %s", exc)
    except (sqlite3.Error, StoreError) as exc:  # damage met outside the loop (its start): never a start that fails forever
        broken = damaged(exc)
        if broken is None:
            raise
        recovery.mark_damaged(db_path, broken)
    finally:
        for part in opened:
            part.close()
        store.close()
        if saved is not None:  # the deleted database's last connection is closed: its copy takes its place
            try:
                recovery.put_in_place(saved, Path(cfg.data_dir) / DB_NAME)
            except OSError as exc:  # the saved copy stays beside it, named in the log
                log.error("%s could not be put in place: %s", saved, exc)
        held.release()
        gc.enable()  # a stop before the doors were ever idle: the collector runs again all the same
    return _exit_status(agent, broken)


def _open_checked(cfg: Config, db_path: Path) -> Store:
    """The store, checked as far as the doors need it: missing, empty, marked damaged or
    without its schedule is recovered here; the whole file's check waits until the doors
    answer (:func:`_check_when_ready`), unless the store cannot even be opened."""
    recovery.check(db_path, integrity=False)
    try:
        return open_store(cfg)
    except (sqlite3.Error, StoreError) as exc:
        if damaged(exc) is None:
            raise
        log.error("%s: cannot be opened (%s): checked whole before the doors start", db_path, exc)
    recovery.check(db_path)
    return open_store(cfg)


def _check_when_ready(agent: Agent, db_path: Path) -> None:
    """``PRAGMA quick_check`` once the loop answers the doors and its network part is
    attached (the start's work in the order it matters), in a thread of its own (SQLite
    reads without the interpreter's lock): damage it finds stops the agent as damage found
    by a read does, and the next start puts the good copy in place."""

    def check() -> None:
        agent.attached.wait()
        why = recovery.integrity(db_path)
        if why is not None:
            agent.post(StorageChanged(damage=why))

    threading.Thread(target=check, name="integrity", daemon=True).start()


def _network(cfg: Config, inbox: Inbox, opened: list[Any]) -> tuple[MqttLink | None, HttpFallback | None, KioskFeed]:
    """The network part's link, fallback and kiosk feed, built by the loop once their modules
    are loaded (door-first); what they open is in ``opened``, closed at the end."""
    from .kiosk_feed import KioskFeed, feed_url
    from .link import MqttLink

    link = None
    if cfg.mqtt.host:
        outbox = open_store(cfg)  # the pump's own connection
        opened.append(outbox)
        link = MqttLink(cfg, outbox, inbox.put, version=__version__)
    fallback = _fallback(cfg, inbox, link)
    kiosk = KioskFeed(feed_url(cfg.kiosk.listen))
    opened.append(kiosk)
    return link, fallback, kiosk


def _fallback(cfg: Config, inbox: Inbox, link: MqttLink | None) -> HttpFallback | None:
    if not cfg.sync.http_url:
        return None
    # httpx costs a box without http_url 18 MB and 70 ms at start: only where it is used
    from .http_fallback import HttpFallback

    return HttpFallback(
        cfg.sync.http_url,
        cfg.site_id,
        cfg.sync.http_after_s,
        inbox.put,
        link.connected.is_set if link is not None else (lambda: False),
    )


def _exit_status(agent: Agent | None, broken: str | None) -> int:
    """``broken``: damage met before the loop ran (then there may be no agent)."""
    if agent is not None and broken is None:
        broken = agent.storage.damage
    if broken is not None or agent is None:  # no agent: only when the damage was met before it
        log.error("stopped: the database is damaged (%s); start it again (systemd does): it recovers", broken)
        return EXIT_DAMAGED
    if agent.unloaded is not None:
        failed(agent.unloaded)
        log.error("stopped: the network part did not load (%s)", agent.unloaded)
        return EXIT_UNLOADED
    if agent.storage.restart_for is not None:
        log.error("stopped: %s; start it again (systemd does)", agent.storage.restart_for)
        return EXIT_RESTART
    if agent.net is not None and agent.net.updating.restart_for is not None:
        log.warning("stopped: %s; start it again (systemd does)", agent.net.updating.restart_for)
        return EXIT_RESTART
    return 0
