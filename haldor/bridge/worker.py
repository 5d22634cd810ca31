"""Each feed and sheet parsed in a process of its own, within a time and a memory bound.

A calendar rule crafted to expand slowly, a 30 MB feed or a workbook that unpacks to
gigabytes costs its parser minutes and gigabytes. In the bridge's own process that
stalled every site, and a ``MemoryError`` ended the run with a traceback. In a child
whose address space is capped (``RLIMIT_AS``) and which is killed at a deadline, it costs
that one input: it is refused with one line, and the run goes on.

One child serves input after input (starting one costs a few hundred milliseconds); it
is replaced after a failure, and once it has grown past a quarter of its bound (the
memory a large input took is not all given back). It dies with the thread that started
it (``PR_SET_PDEATHSIG``), so nothing is left behind a killed bridge.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import pickle
import resource
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from haldor.errors import DocumentError, HaldorError
from haldor.records import record

T = TypeVar("T")
#: what the child imports before it says it is ready (so the first input's time is its own)
PRELOAD = ("haldor.bridge.calendar", "haldor.bridge.sheets", "openpyxl")
#: a child that has not started by then will not (a machine out of processes or memory)
START_TIMEOUT_S = 60.0


class Shared:
    """An argument every call of a run passes (the associations' names): sent to the child
    once, not pickled again with each of 2,000 feeds (200 kB each at 1,000 sites)."""

    def __init__(self, value: Any) -> None:
        self.value = value


@record
class _Ref:
    """A :class:`Shared` the child already holds."""

    key: int


@record
class Timeout:
    """How long one input may take, and the setting that says so (for the refusal)."""

    seconds: float
    key: str


class InputWorker:
    """Runs ``fn(*args)`` in the child and gives back its result or its refusal."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self._child: Any = None  # a multiprocessing Process (its type is the context's)
        self._conn: Connection | None = None
        #: the Shared values this child holds, by their id, kept alive while it does
        self._sent: dict[int, Shared] = {}

    def call(self, what: str, timeout: Timeout, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The result; a refusal (``HaldorError``) the child raised is raised here as it was,
        and an input that took too long, too much memory or the child's life is refused as
        a ``DocumentError`` naming ``what`` and the bound."""
        conn = self._conn if self._conn is not None else self._start()
        try:
            args = tuple(self._shared(conn, a) for a in args)
            kwargs = {k: self._shared(conn, v) for k, v in kwargs.items()}
            conn.send((fn, args, kwargs))
            ready = conn.poll(timeout.seconds)
        except OSError:  # the child is gone: as if it had died on this input
            ready = True
        if not ready:
            self._stop(kill=True)
            raise DocumentError(f"{what}: not read within {timeout.seconds:g} s ({timeout.key})")
        try:
            kind, value, peak_kb = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            code = self._stop(kill=True)
            why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
            raise DocumentError(f"{what}: its reading process died ({why}); nothing of it is used") from None
        if kind != "ok" or peak_kb > self.memory_mb * 1024 // 4:
            self._stop(kill=False)
        if kind == "memory":
            raise DocumentError(f"{what}: needs more than {self.memory_mb} MB to read (limits.read_memory_mb)")
        if kind == "refused":
            raise value
        if kind == "failed":
            raise DocumentError(f"{what}: cannot be read ({value})")
        return value

    def close(self) -> None:
        self._stop(kill=False)

    def _shared(self, conn: Connection, value: Any) -> Any:
        if not isinstance(value, Shared):
            return value
        if id(value) not in self._sent:
            conn.send((_Ref(id(value)), value.value))
            self._sent[id(value)] = value
        return _Ref(id(value))

    def _start(self) -> Connection:
        ctx = multiprocessing.get_context("spawn")  # never fork a bridge that has a broker thread
        ours, theirs = ctx.Pipe()
        memory = self.memory_mb * 1024 * 1024
        self._child = ctx.Process(target=_serve, args=(theirs, memory, os.getpid()), name="bridge-reader", daemon=True)
        # starting it also starts multiprocessing's resource tracker, which unblocks SIGTERM
        # and SIGINT on this thread: a caller that blocked them keeps them blocked
        # (haldor.stopping no longer blocks them; this keeps the worker from surprising one that does)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        try:
            self._child.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        self._conn = ours
        try:
            if ours.poll(START_TIMEOUT_S) and ours.recv_bytes() == b"ready":
                return ours
        except (EOFError, OSError):
            pass
        self._stop(kill=True)
        raise HaldorError(f"the process that reads feeds and sheets did not start within {START_TIMEOUT_S:g} s")

    def _stop(self, *, kill: bool) -> int | None:
        """Its exit code (negative: the signal that ended it)."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        self._sent.clear()
        if child is None:
            return None
        if conn is not None:
            conn.close()  # an idle child reads the end and exits
        if kill:
            child.kill()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
        return child.exitcode


def _serve(conn: Connection, memory: int, parent: int) -> None:
    """The child: bounded, then one input after another until the bridge hangs up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the bridge died while this child was starting
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the bridge's to handle
    for name in PRELOAD:
        importlib.import_module(name)
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]  # under a lower bound already (LimitAS=, ulimit -v): that one
    memory = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    conn.send_bytes(b"ready")
    held: dict[_Ref, Any] = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if isinstance(message[0], _Ref):  # a Shared value, for the calls that follow
            held[message[0]] = message[1]
            continue
        fn, args, kwargs = message
        args = tuple(held[a] if isinstance(a, _Ref) else a for a in args)
        kwargs = {k: held[v] if isinstance(v, _Ref) else v for k, v in kwargs.items()}
        answer, end = _answer(fn, args, kwargs)
        conn.send_bytes(answer)
        if end:  # out of memory once, its heap may be in pieces: the next input gets a new child
            return


def _answer(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bytes, bool]:
    """The pickled (kind, value, peak RSS in kB), and whether the child should end."""
    try:
        result: tuple[str, Any] = ("ok", fn(*args, **kwargs))
    except MemoryError:
        result = ("memory", None)
    except HaldorError as exc:
        result = ("memory", None) if _ran_out(exc) else ("refused", exc)
    except RecursionError:  # a parser's recursion on a deeply nested input
        result = ("failed", "nested too deeply")
    except Exception as exc:  # a library's fault on an input it did not expect: one line, not a traceback
        result = ("memory", None) if _ran_out(exc) else ("failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if result[0] != "memory":
        try:
            return pickle.dumps((*result, peak)), False
        except MemoryError:  # the answer itself did not fit
            pass
    return pickle.dumps(("memory", None, peak)), True


def _ran_out(exc: BaseException) -> bool:
    """A MemoryError a parser reworded ("Expected StringType with content lines")."""
    link: BaseException | None = exc
    for _ in range(20):
        if link is None or isinstance(link, MemoryError):
            return link is not None
        link = link.__cause__ or link.__context__
    return False
