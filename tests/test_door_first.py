"""Door-first start, as `haldor run` starts: the doors answer while the network part is still
being imported beside the loop; it is attached without a card once loaded, and goes online; a
stop before that is clean; a network part that does not load stops the agent with its own
exit status (a release then hands over to the base install: tests/test_update_hostile.py)."""

from __future__ import annotations

import functools
import gc
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest

from haldor.agent import door_first, run
from haldor.agent.door_first import load_beside
from haldor.agent.messages import Stop
from haldor.drivers.base import CardRead

from .broker import Watcher
from .helpers import CARD, wait_for
from .rig import Rig, running


def held(gate: threading.Event) -> Callable[[Callable[[Any], None]], None]:
    """The network part's import, held until ``gate`` opens (a slow card at a power cut's end)."""

    def load(post: Callable[[Any], None]) -> None:
        def later() -> None:
            gate.wait(30)
            load_beside(post)

        threading.Thread(target=later, daemon=True).start()

    return load


@pytest.fixture
def online(tmp_path, broker):
    r = Rig(tmp_path, port=broker.port)
    opened: list[Any] = []
    yield r, opened
    for part in opened:
        part.close()
    r.close()


def test_the_doors_answer_before_the_network_part_is_loaded_and_it_attaches_without_a_card(online, broker):
    rig, opened = online
    gate = threading.Event()
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    agent.later.load = held(gate)
    watcher = Watcher(broker.port)
    thread = running(agent)
    try:
        agent.post(CardRead("main-in", CARD))
        wait_for(lambda: rig.pin(17).state, what="unlocked while the network part is not loaded")
        wait_for(lambda: rig.events("access.granted"), what="the entry stored")
        assert agent.net is None and not opened
        gate.set()  # nothing at the door: the part is attached all the same
        wait_for(lambda: agent.net is not None, what="network part attached")
        link = agent.net.link
        assert link is not None
        wait_for(link.subscribed.is_set, what="online")
        wait_for(lambda: watcher.docs("status"), what="status published")
        assert watcher.docs("status")[-1]["online"] is True
        granted = wait_for(lambda: watcher.events("access.granted"), what="the entry made offline, delivered")
        assert granted[0]["credential"] == "c1001"
    finally:
        agent.post(Stop())
        thread.join(10)
        watcher.close()
    assert not thread.is_alive() and not thread.errors
    assert run._exit_status(agent, None) == 0


def test_a_stop_before_the_network_part_is_attached_is_clean(online):
    rig, opened = online
    gate = threading.Event()
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    agent.later.load = held(gate)
    thread = running(agent)
    agent.post(Stop())
    thread.join(10)
    gate.set()  # what it loads now reaches an agent that has stopped: nothing is built
    assert not thread.is_alive() and not thread.errors
    assert agent.net is None and not opened
    assert not rig.pin(17).state and rig.pin(18).state  # every lock in its safe state
    assert run._exit_status(agent, None) == 0


def test_a_network_part_that_does_not_load_stops_the_agent(online, caplog):
    rig, opened = online
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    agent.later.load = functools.partial(load_beside, modules=("haldor.agent.no_such_part",))
    thread = threading.Thread(target=agent.run, daemon=True)  # it may stop before running() would see it run
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert agent.net is None and not opened
    assert "ModuleNotFoundError" in (agent.unloaded or "")
    assert not rig.pin(17).state and rig.pin(18).state
    assert run._exit_status(agent, None) == run.EXIT_UNLOADED
    assert "the network part did not load" in caplog.text


def test_a_card_waiting_at_the_start_is_decided_before_the_network_part_is_loaded(online):
    """The import beside the loop would take the interpreter's lock from the first decision."""
    rig, opened = online
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    unlocked_when_loaded: list[bool] = []

    def load(post: Callable[[Any], None]) -> None:
        unlocked_when_loaded.append(bool(rig.pin(17).state))
        load_beside(post)

    agent.later.load = load
    agent.post(CardRead("main-in", CARD))  # presented as the box came up
    thread = running(agent)
    try:
        wait_for(lambda: agent.net is not None, what="network part attached")
        assert unlocked_when_loaded == [True]
    finally:
        agent.post(Stop())
        thread.join(10)
    assert not thread.errors


def test_a_reader_that_never_falls_silent_does_not_keep_the_network_part_away(online):
    rig, opened = online
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    flooding = threading.Event()

    def flood() -> None:
        while not flooding.is_set():
            agent.post(CardRead("main-in", "uid:DEADBEEF"))  # a card nobody has, over and over
            flooding.wait(0.005)

    threading.Thread(target=flood, daemon=True).start()
    thread = running(agent)
    try:
        wait_for(lambda: agent.net is not None, timeout=door_first.AT_LATEST_S + 5, what="attached while the reader floods")
    finally:
        flooding.set()
        agent.post(Stop())
        thread.join(10)
    assert not thread.errors


def _stopped_unloaded(agent) -> str:
    """Runs ``agent`` until it stops by itself; why its network part did not load."""
    thread = threading.Thread(target=agent.run, daemon=True)  # it may stop before running() would see it run
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    assert agent.net is None and run._exit_status(agent, None) == run.EXIT_UNLOADED
    return agent.unloaded or ""


@pytest.mark.parametrize(
    "fault",
    [OSError(24, "Too many open files"), sqlite3.OperationalError("database is locked"), ValueError("bad TLS settings")],
)
def test_a_network_part_that_cannot_be_built_stops_the_agent(online, fault):
    """Not only an import: whatever keeps the part from being built (the pump's store, a file)
    would leave a box that serves its doors and never reports."""
    rig, _ = online

    def build():
        raise fault

    agent = rig.agent(network=build)
    assert type(fault).__name__ in _stopped_unloaded(agent)
    assert not rig.pin(17).state and rig.pin(18).state


def test_a_module_that_exits_as_it_is_imported_stops_the_agent(online, tmp_path, monkeypatch):
    rig, opened = online
    (tmp_path / "haldor_exits_on_import.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    agent.later.load = functools.partial(load_beside, modules=("haldor_exits_on_import",))
    assert "SystemExit" in _stopped_unloaded(agent)


def test_a_network_part_whose_import_hangs_stops_the_agent(online):
    rig, opened = online
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    agent.later.load = held(threading.Event())  # never let go
    agent.later.loaded_within_s = 0.5
    assert "not loaded within" in _stopped_unloaded(agent)
    assert not opened


def test_the_collector_held_off_for_the_start_runs_again_once_the_doors_are_idle(online):
    rig, opened = online
    inbox = run.Inbox()
    agent = rig.agent(inbox=inbox, network=functools.partial(run._network, rig.cfg, inbox, opened))
    gc.disable()  # as haldor.__main__ starts `haldor run`
    try:
        thread = running(agent)
        wait_for(lambda: agent.net is not None, what="network part attached")
        assert gc.isenabled()
    finally:
        gc.enable()
        agent.post(Stop())
        thread.join(10)
    assert not thread.errors
