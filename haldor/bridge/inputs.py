"""A run's inputs: the sheets and every site's feeds, each parsed in the reading process
(:mod:`.worker`) within ``[limits]``.

One bad feed costs its own site, never the others: a feed that cannot be read in time or
memory, gives more bookings than its share, or lost most of its bookings since the last
run keeps its site as it was. A sheet holds every site's data, so a sheet that cannot be
read, or looks cut off, refuses the whole run.
"""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from haldor.errors import HaldorError

from . import build, feeds, sheets
from .calendar import Feed, TooManyBookings, read_feed
from .parsed import Parsed, digest, window
from .settings import BridgeConfig, FeedSource
from .state import BridgeState
from .worker import InputWorker, Shared, Timeout


class Refused(HaldorError):
    """The run publishes nothing: a sheet looks cut off."""


def read_inputs(cfg: BridgeConfig, state: BridgeState, now: float, *, accept: bool = False) -> tuple[build.Inputs, set[str]]:
    """Sheets and feeds; the sites whose feeds could not be read, or lost most of their
    bookings, are kept as they were (the second value)."""
    worker = InputWorker(cfg.limits.read_memory_mb)  # started only when something needs parsing
    parsed = Parsed(state)
    try:
        inputs = _read_sheets(cfg, state, worker, parsed, accept=accept)
        unread = _read_feeds(cfg, state, worker, parsed, inputs, now, accept=accept)
    finally:
        worker.close()
    parsed.save({f"sheet:{name}" for name in cfg.sheets} | {_feed_name(feed) for feed in cfg.feeds})
    return inputs, unread


def _feed_name(feed: FeedSource) -> str:
    return f"feed:{feed.site}/{feed.room}|{feed.source}"


def _read_sheets(cfg: BridgeConfig, state: BridgeState, worker: InputWorker, parsed: Parsed, *, accept: bool) -> build.Inputs:
    """Counts are what could be used, not lines: a sheet whose every row is bad has lost
    everything."""
    ctx = sheets.Context(ZoneInfo(cfg.sites[0].timezone), cfg.pin_digits)
    caps = sheets.Caps(cfg.limits.sheet_rows, cfg.limits.sheet_columns)
    read = {}
    for name, path in cfg.sheets.items():
        key = parsed.sheet_key(path, name, ctx.tz.key, ctx.pin_digits, caps.rows, caps.columns)
        sheet = parsed.sheet(f"sheet:{name}", key)
        if sheet is None:
            sheet = worker.call(
                path,
                Timeout(cfg.limits.sheet_timeout_s, "limits.sheet_timeout_s"),
                sheets.read_sheet,
                path,
                sheets.COLUMNS[name],
                sheets.PARSERS[name],
                ctx,
                sheets.KEYS[name],
                caps,
            )
            parsed.keep_sheet(f"sheet:{name}", key, sheet)
        before = state.sheet_rows(name)
        if not accept and feeds.shrunk(before, len(sheet.items), cfg.max_row_loss):
            raise Refused(
                f"{path}: {len(sheet.items)} usable rows, {before} at the last run: more than {cfg.max_row_loss:.0%} lost "
                f"({len(sheet.problems)} rows refused; an export cut off?); nothing published. "
                "Check the file; if it is right, run with --accept-sheets"
            )
        read[name] = sheet
    problems = [p for sheet in read.values() for p in sheet.problems]
    known, site_ids = {a["id"] for a in read["associations"].items}, {s.id for s in cfg.sites}
    for c in read["credentials"].items:
        if c["association"] is not None and c["association"] not in known:
            problems.append(
                f"{read['credentials'].path}: credential {c['id']}: association {c['association']!r} is not in the associations sheet (left out)"
            )
        for s in c["_sites"]:
            if s not in site_ids:
                problems.append(f"{read['credentials'].path}: credential {c['id']}: site {s!r} is not in [[sites]]")
    return build.Inputs(
        associations=read["associations"].items,
        credentials=read["credentials"].items,
        rooms=read["rooms"].items,
        closures=read["closures"].items if "closures" in read else [],
        bookings={},
        problems=problems,
        rows={name: len(sheet.items) for name, sheet in read.items()},
    )


def _read_feeds(
    cfg: BridgeConfig, state: BridgeState, worker: InputWorker, parsed: Parsed, inputs: build.Inputs, now: float, *, accept: bool
) -> set[str]:
    """Each feed into ``inputs``; the sites kept as they were. A site's feeds share
    ``site_bookings``, and the run's share ``run_bookings``: a feed is asked for no more
    than what is left."""
    names: dict[str, str] = {}
    for a in inputs.associations:
        for alias in (a["id"], a["name"], a.get("_calendar") or ""):
            if alias:
                names[alias.lower()] = a["id"]
    shared = Shared(names)  # the same for every feed: sent to the reading process once
    run_key = digest(parsed.versions, sorted(names.items()), repr(cfg.rule), cfg.all_day_closures, cfg.horizon_days)
    limits, unread = cfg.limits, set()
    used: Counter[str] = Counter()
    for feed in cfg.feeds:
        if feed.site in unread:
            continue  # kept as it was whatever its other feeds say
        left = {
            " (limits.feed_bookings; a rule that never ends?)": limits.feed_bookings,
            f" with {feed.site}'s other feeds (limits.site_bookings)": limits.site_bookings - used[feed.site],
            " with the run's other feeds (limits.run_bookings)": limits.run_bookings - used.total(),
        }
        why = min(left, key=lambda k: left[k])
        try:
            got = _read_feed(cfg, state, worker, parsed, feed, now, shared, run_key, max(left[why], 0))
        except TooManyBookings as exc:
            inputs.problems.append(f"{exc}{why}: {feed.site} is kept as it was")
            unread.add(feed.site)
            continue
        except HaldorError as exc:
            inputs.problems.append(f"{exc}: {feed.site} is kept as it was")
            unread.add(feed.site)
            continue
        key = f"feed:{feed.site}/{feed.room}"
        before = state.sheet_rows(key)
        if not accept and feeds.shrunk(before, len(got.bookings), cfg.max_row_loss):
            inputs.problems.append(
                f"{feeds.where(feed.source)}: {len(got.bookings)} bookings, {before} at the last run: more than "
                f"{cfg.max_row_loss:.0%} lost; {feed.site} is kept as it was (--accept-sheets if it is right)"
            )
            unread.add(feed.site)
            continue
        used[feed.site] += len(got.bookings)
        inputs.rows[key] = len(got.bookings)
        inputs.problems.extend(got.problems)
        inputs.bookings.setdefault(feed.site, []).extend(got.bookings)
        inputs.closures.extend(got.closures)
    return unread


def _read_feed(
    cfg: BridgeConfig,
    state: BridgeState,
    worker: InputWorker,
    parsed: Parsed,
    feed: FeedSource,
    now: float,
    names: Shared,
    run_key: str,
    cap: int,
) -> Feed:
    """Parsed again only when its bytes or what it is read with changed (``run_key``:
    what every feed shares)."""
    site = next(s for s in cfg.sites if s.id == feed.site)
    tz = ZoneInfo(site.timezone)
    start, end = window(now, tz, cfg.horizon_days)
    where = feeds.where(feed.source)  # a URL's query (its token) stays out of every message
    data = feeds.fetch(feed, state, cfg.limits.feed_mb * 2**20)
    key = digest(run_key, data, where, site.id, feed.room, tz.key, start.isoformat(), end.isoformat(), cap)
    got = parsed.feed(_feed_name(feed), key)
    if got is not None:
        return got
    got = worker.call(
        where,
        Timeout(cfg.limits.feed_timeout_s, "limits.feed_timeout_s"),
        read_feed,
        data,
        where,
        site=site.id,
        room=feed.room,
        tz=tz,
        start=start,
        end=end,
        rule=cfg.rule,
        associations=names,
        all_day_closures=cfg.all_day_closures,
        max_bookings=cap,
    )
    parsed.keep_feed(_feed_name(feed), key, got)
    return got
