"""The fleet dashboard's pages at national size (1,000 sites, 200,000 bookings in a
season, a fifth as many in the season before), on SQLite and on PostgreSQL (one started
here, as the tests do): the server's time for the overview (with its dashboard), a site's
dashboard, an association's season and the season report, cold (the first request after
a booking came in: what the pages keep is read again) and warm (the median of repeats),
beside the time of the queries alone (the store's reads, no page); each page's weight,
and the weight of its shell (the HTML without the tables' rows, with its CSS and script).

    python bench/bench_dashboard.py                                  # national size, both
    python bench/bench_dashboard.py --sites 20 --bookings 2000      # what CI runs
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
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
from tests.postgres import Postgres  # noqa: E402

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


#: a table's rows: what "the page before the data" leaves out
ROWS = re.compile(rb"<tbody>.*?</tbody>|<ul id='site-states'>.*?</ul>", re.S)
STATIC = ROOT / "haldor" / "fleet" / "static"


def shell_kb(page: bytes) -> int:
    """The page without its tables' rows, with its CSS and script: what a browser loads
    before the data."""
    static = sum(f.stat().st_size for f in STATIC.iterdir() if f.suffix in (".css", ".js"))
    return round((len(ROWS.sub(b"", page)) + static) / 1024)


NEW_BOOKINGS = itertools.count(10_000_000)


def touch(store: FleetStore) -> None:
    """One booking's figures come in: every page's kept reads are stale."""
    n = next(NEW_BOOKINGS)
    store.store((), [usage_event(random.Random(n), 0, n, SEASON.first, 10)])  # type: ignore[arg-type]


def measure(store: FleetStore, sites: int, bookings: int, repeat: int, prefix: str) -> dict:
    """The figures of one backend, each name prefixed with it."""
    results: dict = {}
    started = time.perf_counter()
    fill(store, sites, bookings)
    results["fill_s"] = round(time.perf_counter() - started, 1)
    if store.db.kind == "postgresql":  # what autovacuum does within a minute of a bulk load: statistics, the visibility map
        store.db.execute("VACUUM ANALYZE")
    web = FleetWeb(store)
    busiest = store.db.one("SELECT association FROM usage GROUP BY association ORDER BY COUNT(*) DESC LIMIT 1")
    association = busiest[0] if busiest else "a0"
    results["association_bookings"] = len(web.details.bookings(association, SEASON))
    names: dict[str, str] = {}
    # the queries alone: the store's reads a page makes, no template, no HTTP
    for name, read in (
        ("query_sums_ms", lambda: web.kept.weeks(SEASON)),
        ("query_sums_last_season_ms", lambda: web.kept.weeks(year_before(SEASON))),
        ("query_ranks_ms", lambda: web.kept.ranks(SEASON)),
        ("query_sites_sums_ms", lambda: web.kept.sites(SEASON, names)),
        ("query_table_lines_ms", lambda: store.weekly_usage(SEASON, limit=501)),
        ("query_week_map_ms", lambda: web.kept.week_map(SEASON)),
        ("query_site_week_map_ms", lambda: web.kept.week_map(SEASON, "s0")),
        ("query_association_ms", lambda: web.details.bookings(association, SEASON)),
        ("query_association_lines_ms", lambda: store.weekly_usage(SEASON, association=association)),
        ("query_sites_ms", lambda: web.sites(time.time())),
        ("query_all_lines_ms", lambda: store.weekly_usage(SEASON)),
    ):
        _, results[name] = timed(read, repeat)
    server = FleetServer(web, ("127.0.0.1", 0)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for name, path in (
                ("overview", f"/?{QUERY}"),
                ("site_dashboard", f"/?{QUERY}&site=s0"),
                ("association_season", f"/association?{QUERY}&association={association}"),
                ("report", f"/report?{QUERY}"),
            ):
                pages: list[bytes] = []

                def get(path: str = path, pages: list[bytes] = pages) -> None:
                    reply = client.get(path)
                    assert reply.status_code == 200, (path, reply.status_code)
                    pages.append(reply.content)

                def cold(get: Callable[[], None] = get) -> None:
                    touch(store)
                    get()

                _, results[f"page_{name}_cold_ms"] = timed(cold, repeat)
                _, results[f"page_{name}_warm_ms"] = timed(get, repeat)
                results[f"page_{name}_kb"] = round(len(pages[-1]) / 1024)
                results[f"page_{name}_shell_kb"] = shell_kb(pages[-1])
    finally:
        server.shutdown()
    return {f"{prefix}_{k}": v for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--bookings", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"sites": args.sites, "bookings": args.bookings}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            store = FleetStore(Path(folder) / "fleet.db")
            try:
                results |= measure(store, args.sites, args.bookings, args.repeat, "sqlite")
            finally:
                store.close()
    if args.backend in ("postgresql", "both"):
        server = Postgres().start()
        try:
            store = FleetStore(server.database())
            try:
                results |= measure(store, args.sites, args.bookings, args.repeat, "pg")
            finally:
                store.close()
        finally:
            server.stop()
    side_by_side(results)
    report(results, args.json)


def side_by_side(results: dict) -> None:
    """Each page's server time beside the queries it makes, both backends."""
    print(f"{'page':<20} {'backend':<8} {'cold ms':>9} {'warm ms':>9} {'kB':>6} {'shell kB':>9}")
    for prefix in ("sqlite", "pg"):
        for page in ("overview", "site_dashboard", "association_season", "report"):
            key = f"{prefix}_page_{page}"
            if f"{key}_cold_ms" in results:
                print(
                    f"{page:<20} {prefix:<8} {results[f'{key}_cold_ms']:>9} {results[f'{key}_warm_ms']:>9} "
                    f"{results[f'{key}_kb']:>6} {results[f'{key}_shell_kb']:>9}"
                )
        queries = {k[len(prefix) + 7 :]: v for k, v in results.items() if k.startswith(f"{prefix}_query_")}
        if queries:
            print(f"  queries alone ({prefix}): " + ", ".join(f"{k} {v}" for k, v in queries.items()))


if __name__ == "__main__":
    main()
