"""``/metrics`` in Prometheus' text format (prometheus-client), for the municipality's
own monitoring: read from the database at each scrape (what every consumer wrote) and
from this process's consumer and alerting (counted since it started)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .incidents import IncidentBook
from .report import site_rows
from .store import FleetStore

if TYPE_CHECKING:
    from .alerting import AlertWorker
    from .ingest import FleetConsumer


class FleetCollector:
    """A custom collector: the figures are made when Prometheus asks, never kept twice."""

    def __init__(
        self,
        store: FleetStore,
        lock: Any,
        consumer: FleetConsumer | None = None,
        alerting: AlertWorker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.lock, self.consumer, self.alerting, self.clock = store, lock, consumer, alerting, clock
        self.book = IncidentBook(store.db)

    def collect(self) -> Iterator[Any]:
        blind_since = self.consumer.blind_since if self.consumer is not None else None
        unsure = self.consumer.unsure_before(self.clock()) if self.consumer is not None else None
        with self.lock:
            sites = site_rows(self.store.sites(), self.clock(), unsure)
            incidents = self.book.open_counts()
            waiting, _ = self.book.undelivered()
        yield from _site_figures(sites)
        from prometheus_client.core import GaugeMetricFamily

        alarms = GaugeMetricFamily("haldor_fleet_open_alarms", "Open incidents by kind", labels=["kind"])
        for kind, n in sorted(incidents.items()):
            alarms.add_metric([kind], n)
        yield alarms
        yield GaugeMetricFamily("haldor_fleet_alerts_waiting", "Alert messages not delivered yet", value=waiting)
        if self.consumer is not None:
            yield from self._consumer_figures(blind_since)
        if self.alerting is not None:
            from prometheus_client.core import CounterMetricFamily

            deliveries = CounterMetricFamily(
                "haldor_fleet_alert_deliveries", "Alert messages sent or failed, by channel", labels=["channel", "outcome"]
            )
            for (channel, outcome), n in sorted(self.alerting.deliveries.items()):
                deliveries.add_metric([channel, outcome], n)
            yield deliveries

    def _consumer_figures(self, blind_since: float | None) -> Iterator[Any]:
        """This process's consumer: the broker heard or not, and what it counted since it started."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        consumer = self.consumer
        assert consumer is not None
        yield GaugeMetricFamily(
            "haldor_fleet_broker_connected", "1 while this fleet process hears the broker", value=0 if blind_since else 1
        )
        yield GaugeMetricFamily(
            "haldor_fleet_broker_lost_seconds",
            "How long this fleet process has not heard the broker (0 while it does)",
            value=max(0.0, self.clock() - blind_since) if blind_since else 0.0,
        )
        ingested = CounterMetricFamily("haldor_fleet_events_ingested", "Events stored by this consumer, by type", labels=["type"])
        with consumer._lock:
            by_type, lag = dict(consumer.by_type), consumer.lag_s
            received, duplicates = consumer.received, consumer.duplicates
        for kind, n in sorted(by_type.items()):
            ingested.add_metric([kind], n)
        yield ingested
        yield CounterMetricFamily("haldor_fleet_messages_received", "Statuses and events received", value=received)
        yield CounterMetricFamily("haldor_fleet_duplicates", "Events received again and stored once", value=duplicates)
        if lag is not None:
            yield GaugeMetricFamily("haldor_fleet_ingest_lag_seconds", "From an event happening to its batch stored", value=lag)


def _site_figures(sites: list[dict[str, Any]]) -> Iterator[Any]:
    """Sites by state, and each site's own figures."""
    from prometheus_client.core import GaugeMetricFamily

    state = GaugeMetricFamily("haldor_fleet_sites", "Sites by state: online, offline (its Last Will) or silent", labels=["state"])
    counts = {"online": 0, "offline": 0, "silent": 0, "unknown": 0}
    for s in sites:
        counts["unknown" if s["unknown"] else "online" if s["online"] else "silent" if s["silent"] else "offline"] += 1
    for name, n in counts.items():
        state.add_metric([name], n)
    yield state
    online = GaugeMetricFamily("haldor_site_online", "1 while the site's box is online", labels=["site"])
    backlog = GaugeMetricFamily("haldor_site_outbox_pending", "Events waiting in the box's outbox", labels=["site"])
    missing = GaugeMetricFamily(
        "haldor_site_events_missing", "Events of the site's seq the fleet lacks and has asked for again", labels=["site"]
    )
    lost = GaugeMetricFamily("haldor_site_events_lost", "Events the box no longer held when asked for", labels=["site"])
    for s in sites:
        online.add_metric([s["site"]], 1 if s["online"] else 0)
        if s["outbox_pending"] is not None:
            backlog.add_metric([s["site"]], s["outbox_pending"])
        missing.add_metric([s["site"]], s["events_missing"])
        lost.add_metric([s["site"]], s["events_lost"])
    yield online
    yield backlog
    yield missing
    yield lost


def exposition(collector: FleetCollector) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
