"""The fleet dashboard's pages at national size (1,000 sites, 200,000 bookings in a
season, a fifth as many in the season before): the server's time for the overview (with
its dashboard), a site's dashboard, an association's season and the season report, cold
(the first request after a booking came in: the sums are made again) and warm (the
median of repeats), beside the time of the queries alone (the store's reads, no page).

    python bench/bench_dashboard.py                                  # national size
    python bench/bench_dashboard.py --sites 20 --bookings 2000      # what CI runs
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.bench_access import report  # noqa: E402
from haldor.fleet.dashboard import year_before  # noqa: E402
from haldor.fleet.report import Period  # noqa: E402
from haldor.fleet.serving import FleetServer  # noqa: E402
from haldor.fleet.store import FleetStore  # noqa: E402
from haldor.fleet.web import FleetWeb  # noqa: E402

ZONE = ZoneInfo("Europe/Copenhagen")
SEASON = Period(date(2026, 8, 10), date(2027, 6, 27))
QUERY = "from=2026-08-10&to=2027-06-27"


def usage_event(rng: random.Random, site: int, n: int, day: date, associations: int) -> dict:
    start = datetime.combine(day, datetime.min.time(), ZONE) + timedelta(minutes=rng.choice(range(16 * 60, 21 * 60 + 1, 30)))
    used = rng.random() < 0.75
    association = f"a{rng.randrange(associations)}"
    return {
        "id": str(uuid.uuid4()),
        "site": f"s{site}",
        "type": "booking.usage",
        "booking": f"b{n}",
        "usage": {
            "booked_min": rng.choice((60, 90, 120)),
            "entries": rng.randrange(1, 20) if used else 0,
            "checkins": 1 if used and rng.random() < 0.5 else 0,
            "used": used,
            "no_show": not used and rng.random() < 0.8,
            "room": f"r{rng.randrange(3)}",
            "association": association,
            "room_name": f"Sal {rng.randrange(3)}",
            "association_name": f"Forening {association}",
            "start": start.isoformat(),
            "closed": rng.random() < 0.01,
            "closed_min": 0,
            "observed": 1.0 if rng.random() < 0.98 else 0.5,
        },
    }


def fill(store: FleetStore, sites: int, bookings: int, seed: int = 7) -> None:
    """``bookings`` in this season over ``sites``, a fifth as many a year before; statuses."""
    rng = random.Random(seed)
    now = time.time()
    for s in range(sites):
        store.set_status(f"s{s}", {"online": rng.random() < 0.97, "names": {"site": f"Hal {s}"}}, now)
    associations = max(1, bookings // 100)
    days = (SEASON.last - SEASON.first).days  # type: ignore[operator]
    batch: list[dict] = []
    for n in range(bookings + bookings // 5):
        first = SEASON.first if n < bookings else SEASON.first - timedelta(weeks=52)  # type: ignore[operator]
        day = first + timedelta(days=rng.randrange(days))
        batch.append(usage_event(rng, rng.randrange(sites), n, day, associations))
        if len(batch) == 2000:
            store.store((), batch)
            batch = []
    if batch:
        store.store((), batch)


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first, median of the rest) in milliseconds."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(times[0], 1), round(statistics.median(times[1:]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--bookings", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"sites": args.sites, "bookings": args.bookings}
    with tempfile.TemporaryDirectory() as folder:
        store = FleetStore(Path(folder) / "fleet.db")
        started = time.perf_counter()
        fill(store, args.sites, args.bookings)
        results["fill_s"] = round(time.perf_counter() - started, 1)
        web = FleetWeb(store)
        busiest = store.db.one("SELECT association FROM usage GROUP BY association ORDER BY COUNT(*) DESC LIMIT 1")
        association = busiest[0] if busiest else "a0"
        results["association_bookings"] = len(web.details.bookings(association, SEASON))

        # the queries alone: the store's reads a page makes, no template, no HTTP
        for name, read in (
            ("query_usage_ms", lambda: store.weekly_usage(SEASON)),
            ("query_usage_last_season_ms", lambda: store.weekly_usage(year_before(SEASON))),
            ("query_week_map_ms", lambda: web.details.week_map(SEASON)),
            ("query_site_week_map_ms", lambda: web.details.week_map(SEASON, "s0")),
            ("query_association_ms", lambda: web.details.bookings(association, SEASON)),
            ("query_sites_ms", lambda: web.sites(time.time())),
        ):
            _, results[name] = timed(read, args.repeat)

        server = FleetServer(web, ("127.0.0.1", 0)).start()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for name, path in (
                    ("overview", f"/?{QUERY}"),
                    ("site_dashboard", f"/?{QUERY}&site=s0"),
                    ("association_season", f"/association?{QUERY}&association={association}"),
                    ("report", f"/report?{QUERY}"),
                ):
                    sizes = []

                    def get(path: str = path, sizes: list[int] = sizes) -> None:
                        reply = client.get(path)
                        assert reply.status_code == 200, (path, reply.status_code)
                        sizes.append(len(reply.content))

                    results[f"page_{name}_cold_ms"], results[f"page_{name}_warm_ms"] = timed(get, args.repeat)
                    results[f"page_{name}_kb"] = round(sizes[-1] / 1024)
        finally:
            server.shutdown()
        store.close()
    report(results, args.json)


if __name__ == "__main__":
    main()
