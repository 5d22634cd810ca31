"""What the fleet's page works from: the store it reads (under one lock: a connection is
shared by the pages), who may look, this process's consumer and alerting, the command
sender and the audit log. The web application (``app.py``) is built from one of these;
``serving.py`` runs it."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from haldor.records import record

from .commands import AuditLog, Commander
from .dashboard import Figures, season_weeks, totals, year_before
from .enrolment import Enroller
from .incidents import IncidentBook
from .login_limits import HashSlots, SourceLimits
from .register import Register
from .report import SEASON_WEEKS, SeasonLine, UsageLine
from .rollout_book import RolloutBook
from .rollouts import Rollouts
from .sessions import Sessions
from .store import FleetStore
from .usage_details import UsageDetails
from .usage_sums import UsageSums
from .view import View
from .view_data import ViewData
from .week_map import WeekMap

if TYPE_CHECKING:
    from .alerting import AlertWorker
    from .ingest import FleetConsumer

#: how often an open page's stream looks for changes: also the fastest it refreshes
LIVE_POLL_S = 5.0
ALARMS_SHOWN = 50
#: rows a table shows on the page; the spreadsheet has them all
PAGE_ROWS = 500
#: how often the page looks whether users exist (the first one added locks every running page)
USERS_CHECK_S = 2.0


@record
class Overview:
    """What the overview shows, read from the store."""

    sites: list[dict[str, Any]]
    alarms: list[dict[str, Any]]
    usage: list[UsageLine]
    seasons: list[SeasonLine]
    generation: str
    now: float
    incidents: list[dict[str, Any]] = field(default_factory=list)
    #: alert messages not delivered yet, and the last error
    undelivered: tuple[int, str | None] = (0, None)
    #: the dashboard's sums of ``usage`` and of the same period a year (52 weeks) before
    figures: Figures | None = None
    #: booked and used hours by weekday and hour; the chosen site's rooms
    week_map: WeekMap | None = None
    rooms: list[tuple[str, str]] = field(default_factory=list)


class FleetWeb:
    """The page's objects, wired by ``run.py`` (or a test) before the server starts."""

    def __init__(
        self,
        store: FleetStore,
        clock: Callable[[], float] = time.time,
        *,
        zone: str = "Europe/Copenhagen",
        season: tuple[int, int] = SEASON_WEEKS,
        live_poll_s: float = LIVE_POLL_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.zone = zone
        self.season = season
        self.live_poll_s = live_poll_s
        self.lock = threading.Lock()
        #: set when the server stops: open live streams end
        self.stopping = threading.Event()
        self.incidents = IncidentBook(store.db)
        self.audit = AuditLog(store.db)
        self.read = ViewData(store, zone)
        self.details = UsageDetails(store.db)
        #: the boxes to enrol; the enroller (None without fleet.toml's [enrolment]) makes their logins
        self.register = Register(store.db)
        self.enroller: Enroller | None = None
        self.kept = UsageSums(store.db)
        #: signs and sends the page's commands; None without the fleet's command key
        self.commander: Commander | None = None
        #: the release rolled out in stages from /releases (one at a time, in this process)
        self.rollouts = Rollouts(RolloutBook(store.db), self.audit, clock)
        self._sessions: Sessions | None = None
        #: the login is asked for whether or not users exist (beyond loopback, behind a proxy's sign-on)
        self.login_always = False
        self._users_exist = False
        self._users_checked_at = float("-inf")
        self.metrics_token = ""
        #: the page's address as the browsers see it ("https://fleet.kommune.dk"), for the forms' origin check
        self.public_origin = ""
        #: argon2 verifications at once: two in all, one per source
        self.slots = HashSlots(2)
        #: wrong enrolment codes per source (as ``enrol:<address>``), refused for a while past a limit like logins
        self.enrol_sources = SourceLimits(store.db)
        #: this process's consumer and alerting, for /metrics (set by whoever starts them)
        self.consumer: FleetConsumer | None = None
        self.alerting: AlertWorker | None = None
        #: what the pages read of the usage, kept until a booking's figures come in
        self._lines_cache: OrderedDict[tuple, tuple[int, list[UsageLine]]] = OrderedDict()
        self._map_cache: OrderedDict[tuple, tuple[int, WeekMap]] = OrderedDict()
        self._figures_cache: OrderedDict[tuple, tuple[int, tuple[Figures, list[SeasonLine]]]] = OrderedDict()

    @property
    def auth(self) -> Sessions | None:
        """Who may look: None while the page is open (on loopback, no users). The users are
        looked at again every few seconds, so the first ``haldor fleet user add`` locks every
        running page at once, and removing the last opens one on loopback again."""
        sessions = self._sessions
        if sessions is None or self.login_always:
            return sessions
        now = time.monotonic()
        if now - self._users_checked_at >= USERS_CHECK_S:
            self._users_exist = sessions.operators.any()
            self._users_checked_at = now
        return sessions if self._users_exist else None

    @auth.setter
    def auth(self, sessions: Sessions | None) -> None:
        self._sessions = sessions
        self._users_checked_at = float("-inf")

    # -- reading the store for a view (the caller holds the lock) --------------------------

    def generation(self) -> str:
        """Changes with what the page shows: the database's writes, and the broker lost or heard again."""
        return json.dumps([self.store.generation(), self.blind_since()])

    def blind_since(self) -> float | None:
        """Since when this process has not heard the broker (None: it hears it, or it has no consumer)."""
        return self.consumer.blind_since if self.consumer is not None else None

    def sites(self, now: float) -> list[dict[str, Any]]:
        return self.read.sites(now, self.consumer.unsure_before(now) if self.consumer is not None else None)

    def usage(self, view: View, sites: list[dict[str, Any]]) -> list[UsageLine]:
        return self.read.usage(view, sites)

    def access(self, view: View, site: dict[str, Any] | None, limit: int | None) -> list[dict[str, Any]]:
        return self.read.access(view, site, limit)

    def _lines(self, view: View, sites: list[dict[str, Any]]) -> list[UsageLine]:
        """The first lines of the view's table (one more than it shows: there are more)."""
        return _kept(
            self._lines_cache,
            (view.period, view.site),
            self.kept.bookings(),
            lambda: self.read.usage(view, sites, limit=PAGE_ROWS + 1),
        )

    def week_map(self, view: View) -> WeekMap:
        """The view's weekday-by-hour map, from the kept slots."""
        return _kept(
            self._map_cache,
            (view.period, view.site, view.room),
            self.kept.bookings(),
            lambda: self.kept.week_map(view.period, view.site or None, view.room or None),
        )

    def figures(self, view: View, sites: list[dict[str, Any]], *, with_sites: bool = False) -> Figures:
        """The dashboard's sums of the view's period beside last season's, from the kept sums."""
        return self._dashboard(view, sites, with_sites)[0]

    def seasons(self, view: View, sites: list[dict[str, Any]]) -> list[SeasonLine]:
        """The view's seasons per association (the overview's table), from the same reads as the ranking."""
        return self._dashboard(view, sites, False)[1]

    def _dashboard(self, view: View, sites: list[dict[str, Any]], with_sites: bool) -> tuple[Figures, list[SeasonLine]]:
        def make() -> tuple[Figures, list[SeasonLine]]:
            site = view.site or None
            weeks = self.kept.weeks(view.period, site)
            last = self.kept.weeks(year_before(view.period), site)
            ranks = self.kept.ranks(view.period, site)
            names = {s["site"]: s["name"] for s in sites}
            by_site = self.kept.sites(view.period, names, site) if with_sites else []
            made = Figures(totals(weeks), season_weeks(weeks, last), ranks, by_site)
            return made, self.kept.seasons(view.period, self.season, ranks, site)

        return _kept(self._figures_cache, (view.period, view.site, with_sites), self.kept.bookings(), make)

    def overview(self, view: View, now: float, sites: list[dict[str, Any]]) -> Overview:
        since, until = view.period.instants(self.read.zone_of(view, sites))
        return Overview(
            sites=sites,
            alarms=self.store.alarms(ALARMS_SHOWN, view.site or None, since, until),
            usage=self._lines(view, sites),
            seasons=self.seasons(view, sites)[: PAGE_ROWS + 1],
            generation=self.generation(),
            now=now,
            incidents=list(self.incidents.open_incidents().values()),
            undelivered=self.incidents.undelivered(),
            figures=self.figures(view, sites),
            week_map=self.week_map(view),
            rooms=self.details.rooms(view.site) if view.site else [],
        )


def _kept(cache: OrderedDict[tuple, tuple[int, Any]], key: tuple, count: int, make: Callable[[], Any]) -> Any:
    """``make()``, kept under ``key`` while the usage table holds ``count`` rows (32 kept at most)."""
    hit = cache.get(key)
    if hit is None or hit[0] != count:
        hit = (count, make())
        cache[key] = hit
    cache.move_to_end(key)
    while len(cache) > 32:
        cache.popitem(last=False)
    return hit[1]
