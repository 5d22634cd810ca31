"""The status the agent tells the broker: sent when what it shows changes, and only built
when there is a broker to hear it."""

from __future__ import annotations

import threading

from haldor import config
from haldor.agent.site import open_store
from haldor.agent.status import Seen, StatusTeller


class _Link:
    """The broker link's part the status uses: a connection that comes and goes."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.sent: list[dict] = []

    def kick(self) -> None:
        pass

    def publish_status(self, doc: dict) -> bool:
        if not self.connected.is_set():
            return False
        self.sent.append(doc)
        return True


def test_offline_the_status_is_not_built_after_every_input(tmp_path):
    path = tmp_path / "haldor.toml"
    path.write_text(f'[site]\nid = "valby-skole"\ndata_dir = "{tmp_path / "data"}"\n')
    cfg = config.load(path)
    store = open_store(cfg)
    reads: list[str] = []
    store.db.conn.set_trace_callback(reads.append)
    link = _Link()
    try:
        teller = StatusTeller(cfg, store, lambda: 0.0, lambda: None, link)
        for n in range(20):  # a broker that is away: twenty inputs, then one that changes what it shows
            teller.tell(1000.0 + n, Seen(clock_trusted=n < 19))
        assert link.sent == [] and [r for r in reads if "delivered_at IS NULL" in r] == []
        link.connected.set()
        teller.tell(1030.0, Seen(clock_trusted=False))
        assert [doc["clock_trusted"] for doc in link.sent] == [False]
        assert len([r for r in reads if "delivered_at IS NULL" in r]) == 1
    finally:
        store.close()
