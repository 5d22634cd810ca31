"""The loop's inbox (the door's lane first, the network's bounded) and the refusal budget."""

from __future__ import annotations

import queue

import pytest

from haldor.agent.budget import ReportBudget
from haldor.agent.inbox import Inbox
from haldor.agent.link import Received
from haldor.agent.messages import Stop
from haldor.drivers.base import CardRead


def test_the_doors_lane_comes_first_and_each_lane_keeps_its_order():
    inbox = Inbox()
    garbage = [Received("t/cmd", b"x%d" % i, i, 1) for i in range(3)]
    for m in garbage:
        inbox.put(m)
    card, stop = CardRead("main-in", "uid:04AABBCC"), Stop()
    inbox.put(card)
    inbox.put(stop)
    assert [inbox.get(timeout=1) for _ in range(5)] == [card, stop, *garbage]
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)


def test_the_networks_lane_drops_unacknowledged_messages_beyond_its_bound_and_keeps_the_others():
    inbox = Inbox(max_remote_bytes=1500)  # room for one (8 bytes and the overhead of a message)
    kept = [Received("t/cmd", b"12345678", 1, 0), Received("t/cmd", b"12345678", 2, 1)]
    inbox.put(kept[0])
    inbox.put(Received("t/cmd", b"12345678", 0, 0))  # QoS 0 over the bound: dropped
    inbox.put(kept[1])  # QoS 1: the broker waits for its acknowledgement, so it is kept
    assert inbox.dropped == 1
    assert [inbox.get_nowait(), inbox.get_nowait()] == kept


def test_the_budget_reports_the_first_of_a_window_and_counts_the_rest_once_it_is_over():
    budget = ReportBudget(per_window=3, window_s=60)
    assert [budget.allow(t) for t in (0, 1, 2, 3, 4)] == [True, True, True, False, False]
    assert budget.overdue(59) == 0
    assert budget.allow(61) is False  # still counted with its window's until reported
    assert budget.overdue(61) == 3
    assert budget.overdue(62) == 0
    assert [budget.allow(t) for t in (70, 71, 72, 73)] == [True, True, True, False]
