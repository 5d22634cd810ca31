"""Nothing is lost: the agent killed with SIGKILL and the broker restarted in the middle
of a burst of events, and every event still reaches a subscriber, with no seq missing."""

from __future__ import annotations

from .broker import Watcher
from .helpers import wait_for
from .rig import AgentProcess


def test_every_event_arrives_across_a_sigkill_and_a_broker_restart(tmp_path, broker):
    watcher = Watcher(broker.port)
    agent = AgentProcess(tmp_path, port=broker.port)
    try:
        agent.start()
        wait_for(lambda: [s for s in watcher.docs("status") if s["online"]], timeout=20, what="agent online")
        agent.badge(150)
        wait_for(lambda: len(watcher.events("access.denied")) >= 50, timeout=20, what="part of the burst delivered")
        broker.restart()  # in the middle of the burst
        agent.badge(150)
        wait_for(lambda: len({e["id"] for e in watcher.events("access.denied")}) >= 200, timeout=30, what="more delivered")
        agent.badge(100)
        agent.kill()  # SIGKILL while reads may still be in flight
        before = len([e for e in agent.stored() if e["type"] == "access.denied"])
        wait_for(lambda: watcher.docs("status")[-1]["online"] is False, timeout=10, what="last will")
        agent.start()
        wait_for(lambda: watcher.docs("status")[-1]["online"], timeout=20, what="agent online again")
        agent.badge(100)
        wait_for(
            lambda: len([e for e in agent.stored() if e["type"] == "access.denied"]) == before + 100,
            timeout=30,
            what="reads after the restart stored",
        )
        stored = agent.stored
        wait_for(
            lambda: {e["id"] for e in watcher.events()} >= {e["id"] for e in stored()},
            timeout=60,
            what="every stored event delivered",
        )
    finally:
        agent.close()
        watcher.close()
    events = stored()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # no seq missing in the store
    received = {e["id"]: e["seq"] for e in watcher.events()}
    assert all(received[e["id"]] == e["seq"] for e in events)
    assert [e["type"] for e in events].count("agent.started") == 2
