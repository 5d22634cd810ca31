"""Schedule documents applied beside the decision loop, in a process of their own.

Validating and applying a 100,000-credential snapshot takes seconds of pure Python
(a 25 MB `json.loads` alone holds the interpreter for 200 ms). In a thread of the
agent it would hold the GIL against the decision loop, and a badge meanwhile waited
up to a quarter of a second; in a child process the loop keeps its core. The child
has its own database connection; SQLite's WAL lets the loop read the schedule in
force until the new one is committed. Documents are taken one at a time, in arrival
order.

The child also contains what a hostile document could do to the interpreter: if it
dies (a crash, the kernel's OOM killer), the document is rejected and the agent goes
on. It dies with the agent (PR_SET_PDEATHSIG), so nothing applies behind a stopped
agent's back, and after a large document it is replaced, so that the memory its
parse took goes back to the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from nacl.public import PrivateKey

from haldor.access.damage import damaged
from haldor.access.envelope import load_public_key
from haldor.access.model import Policy
from haldor.errors import StoreError
from haldor.records import record
from haldor.store import Store, secret
from haldor.store.intake import Outcome, process

log = logging.getLogger(__name__)

#: after a document this large the child is replaced (its parse grew it by several times this)
RECYCLE_AFTER_BYTES = 1024 * 1024
#: documents waiting beyond this many bytes are not kept: "failed" (acknowledged, asked for again later)
MAX_WAITING_BYTES = 64 * 1024 * 1024
#: nor more documents than this (small ones cost memory and a process's time too)
MAX_WAITING = 20
#: a document not applied by then has hung the child (a 300,000-credential site takes about 10 s here)
APPLY_TIMEOUT_S = 600.0
#: where a document waits for the child to read it: in memory (it may hold card numbers in clear)
HANDOVER_DIR = "/dev/shm"


@record
class StoreOpening:
    """What the child needs to open the store and check documents (all picklable)."""

    data_dir: str
    site: str
    timezone: str
    policy: Policy
    keys: Mapping[str, str]  # kid -> base64 public key, as [trust] keys holds them
    require_signature: bool
    doors: tuple[str, ...] | None = None
    max_bytes: int | None = None  # None: envelope.MAX_DOCUMENT_BYTES
    #: the device secret's fingerprint the agent started with: the child opens that store or none
    secret: str | None = None
    #: schedules in clear accepted ([trust] plain_documents); sealed ones are opened with site.key
    plain: bool = True


class ScheduleWorker:
    def __init__(self, site: StoreOpening, clock: Callable[[], float]) -> None:
        self._site = site
        self._clock = clock
        self._pool: ProcessPoolExecutor | None = None
        self._closing = False
        self._queue: queue.Queue = queue.Queue()
        #: digests of documents the child died on once: the second time they are rejected
        self._killed_by: set[str] = set()
        self._waiting = 0  # bytes submitted and not yet applied
        self._count = 0  # documents submitted and not yet applied
        self._turned_away = 0
        self._waiting_lock = threading.Lock()
        self._prefix = handover_prefix(site.data_dir)
        _remove_left_over(self._prefix)
        self._thread = threading.Thread(target=self._run, name="schedule", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes, done: Callable[[Outcome], None]) -> None:
        """Apply ``payload`` after everything submitted before it; ``done(outcome)`` runs
        on the worker's thread. The loop reports the outcome (:meth:`Outcome.event`)."""
        with self._waiting_lock:
            if self._count >= MAX_WAITING or (self._waiting and self._waiting + len(payload) > MAX_WAITING_BYTES):
                if self._turned_away % 100 == 0:
                    log.error(
                        "%d schedule documents (%d bytes) wait already: %d turned away so far",
                        self._count,
                        self._waiting,
                        self._turned_away + 1,
                    )
                self._turned_away += 1
                full = True
            else:
                self._waiting += len(payload)
                self._count += 1
                full = False
        if full:  # a flood of large documents: memory is the Pi's, not theirs
            done(Outcome("failed", "too many documents wait to be applied; it is asked for again later"))
            return
        self._queue.put((payload, done))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            payload, done = item
            try:
                outcome = self._apply(payload)
            finally:
                with self._waiting_lock:
                    self._waiting -= len(payload)
                    self._count -= 1
            done(outcome)

    def _apply(self, payload: bytes) -> Outcome:
        try:
            if self._pool is None:
                # spawned by this thread, which lives as long as the agent: the child's parent-death signal
                root = logging.getLogger()
                fmt = root.handlers[0].formatter._fmt if root.handlers and root.handlers[0].formatter else None
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(root.level, fmt, os.getpid()),
                )
            path = _handed_over(payload, self._prefix)
            try:
                outcome = self._pool.submit(_apply_in_child, self._site, path, self._clock()).result(APPLY_TIMEOUT_S)
            finally:
                with contextlib.suppress(OSError):  # never turns an applied document into a failed one
                    os.unlink(path)
        except BrokenProcessPool:
            if self._closing:
                log.info("stopped while a document was applied; it was not acknowledged and comes again")
                return Outcome("failed", "stopped while it was applied")
            self._retire()
            key = hashlib.sha256(payload).hexdigest()
            if key not in self._killed_by:  # killed from outside, maybe (the OOM killer, a person): once more
                self._killed_by.add(key)
                log.error("schedule worker process died on a document of %d bytes; it is asked for again", len(payload))
                return Outcome(
                    "failed",
                    "the schedule worker process died while applying it; the schedule in force "
                    "stays and the document is asked for again",
                    again=True,
                )
            log.error("schedule worker process died twice on a document of %d bytes; the document is rejected", len(payload))
            return Outcome("rejected", "the document ended the schedule worker process twice; the schedule in force stays")
        except TimeoutError:
            log.error("schedule worker process hung on a document of %d bytes; it is stopped", len(payload))
            self._kill_children()
            self._retire()
            return Outcome("rejected", f"not applied within {APPLY_TIMEOUT_S} s; the schedule in force stays")
        except Exception as exc:  # the child could not even start: the store's part of it, retried on the next one
            log.exception("schedule worker process failed")
            self._retire()
            return Outcome("failed", f"schedule worker: {exc}; the schedule in force stays")
        if len(payload) > RECYCLE_AFTER_BYTES:
            self._retire()
        return outcome

    def _retire(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking documents. One being applied is not waited for beyond ``timeout``:
        its child dies with this process and its transaction rolls back; the broker
        delivers the document again, since it was not acknowledged."""
        self._closing = True
        while True:  # documents not begun: never acknowledged, so the broker delivers them again
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._kill_children()  # else the pool's exit hook would wait for it
        self._retire()

    @staticmethod
    def _kill_children() -> None:
        for child in multiprocessing.active_children():
            child.kill()


def _start_child(level: int, fmt: str | None, parent: int) -> None:
    """In the child: log as the agent does (to the same journal), and die with it: SIGKILL
    when the thread that spawned it ends (Linux; elsewhere nothing)."""
    logging.basicConfig(level=level, format=fmt or logging.BASIC_FORMAT)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the agent died while this child was starting: nothing would end it
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the demo's prompt is the agent's to handle


def _site_key(data_dir: str) -> PrivateKey | None:
    """The box's key (made by the agent at start); without it a sealed document is refused."""
    try:
        return secret.site_key(data_dir, create=False)
    except (StoreError, OSError):  # missing, short or unreadable: sealed documents are refused
        return None


def _handover_dir() -> str:
    return HANDOVER_DIR if os.path.isdir(HANDOVER_DIR) and os.access(HANDOVER_DIR, os.W_OK) else tempfile.gettempdir()


def handover_prefix(data_dir: str) -> str:
    """The names of one data folder's documents waiting for its child: one agent per folder
    (its lock), so what bears them at its start was left by an agent killed while applying."""
    folder = hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:12]
    return os.path.join(_handover_dir(), f"haldor-schedule-{folder}-")


def _remove_left_over(prefix: str) -> None:
    """A killed agent's document would stay in memory until the next boot."""
    for path in glob.glob(glob.escape(prefix) + "*"):
        with contextlib.suppress(OSError):
            os.unlink(path)
            log.info("%s: a document left by an agent killed while applying it, removed", path)


def _handed_over(payload: bytes, prefix: str) -> str:
    """The document in a file of its own (mode 0600), named to the child, not sent through the
    pool's queue: a document larger than a pipe's buffer whose child died before reading it held
    the queue's feeder thread for ever in Debian 12's Python 3.11.2 (cpython#94777, mended in
    later 3.11 releases), and with it every later document and the agent's stop."""
    folder, name = os.path.split(prefix)
    fd, path = tempfile.mkstemp(prefix=name, dir=folder)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return path


def _apply_in_child(site: StoreOpening, path: str, now: float) -> Outcome:
    try:
        with open(path, "rb") as f:
            payload = f.read()
    except OSError as exc:
        return Outcome("failed", f"the document was not handed over ({exc}); the schedule in force stays")
    try:
        store = Store.open(site.data_dir, site.site, site.timezone, site.policy, existing=site.secret)
    except StoreError as exc:
        logging.getLogger(__name__).error("schedule not applied: %s", exc)
        return Outcome("failed", f"storage: {exc}; the schedule in force stays", damaged=damaged(exc))
    try:
        keys = {kid: load_public_key(text) for kid, text in site.keys.items()}
        return process(
            store,
            payload,
            keys=keys,
            require_signature=site.require_signature,
            now=now,
            doors=site.doors,
            max_bytes=site.max_bytes,
            site_key=_site_key(site.data_dir),
            plain=site.plain,
        )
    finally:
        store.close()
