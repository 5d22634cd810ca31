"""The bridge's configuration (``bridge.toml``): where the sheets and feeds are, the
sites, the signing key and the broker. A fault stops start-up with one line naming the
key, as the agent's configuration does."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor import toml_file
from haldor.access import sealing
from haldor.errors import HaldorError
from haldor.integrator.documents import load_private_key
from haldor.mqtt import BrokerOptions
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, TOPIC_PREFIX

from .calendar import ASSOCIATION_SOURCES, AssociationRule


@dataclass(frozen=True)
class FeedSource:
    site: str
    room: str
    source: str  # a file, or an http(s) URL


@dataclass(frozen=True)
class Site:
    id: str
    timezone: str = "Europe/Copenhagen"
    policy: dict[str, Any] = field(default_factory=dict)
    #: the box's own key (``haldor keygen --site``): its schedules are sealed to it
    public_key: str = ""
    #: schedules in clear (card numbers on the broker), for a box with ``plain_documents``:
    #: said explicitly, never the default of a missing key
    plain: bool = False


@dataclass(frozen=True)
class Limits:
    """What one input may cost (``[limits]``): a feed or sheet beyond it is refused with
    one line, and the other sites go on (a calendar rule of ten million seconds, a
    workbook that claims a million columns)."""

    feed_timeout_s: float = 30.0  # to parse one feed (in a process of its own)
    sheet_timeout_s: float = 180.0  # one sheet (300,000 rows of .xlsx take a minute)
    read_memory_mb: int = 1024  # that process's address space
    feed_mb: int = 8  # one feed's size (a room's season is a few hundred kilobytes)
    feed_bookings: int = 20_000  # instances of one feed over the horizon
    site_bookings: int = 50_000  # a site's feeds together
    run_bookings: int = 500_000  # every feed of a run together
    sheet_rows: int = 300_000
    sheet_columns: int = 256


#: each limit's range: the first beyond which a value is a mistake, not a choice
_LIMIT_RANGES = {
    "feed_timeout_s": (1, 3600),
    "sheet_timeout_s": (1, 3600),
    "read_memory_mb": (128, 65536),
    "feed_mb": (1, 1024),
    "feed_bookings": (1, 10_000_000),
    "site_bookings": (1, 10_000_000),
    "run_bookings": (1, 100_000_000),
    "sheet_rows": (1, 1_048_576),
    "sheet_columns": (1, 16_384),
}


@dataclass(frozen=True)
class BridgeConfig:
    path: str
    state: str
    key: str
    kid: str
    interval_s: float
    horizon_days: int
    delta_max: int
    max_row_loss: float
    sheets: dict[str, str]
    sites: tuple[Site, ...]
    feeds: tuple[FeedSource, ...]
    rule: AssociationRule
    all_day_closures: bool
    broker: BrokerOptions | None
    limits: Limits = Limits()
    #: how long ``--once`` waits for the boxes' ``sync.applied`` or ``sync.rejected``
    answer_s: float = 30.0
    #: a PIN's length when a spreadsheet dropped its leading zeros (0: from the column)
    pin_digits: int = 0


_BRIDGE = {
    "state": "bridge.db",
    "key": "",
    "kid": "",
    "interval_s": 300,
    "horizon_days": 365,
    "delta_max": 500,
    "max_row_loss": 0.2,
    "answer_s": 30.0,
}
_SHEETS = ("associations", "credentials", "rooms", "closures")
#: a site's policy, as a snapshot carries it (minutes; leader_first)
POLICY = {"grace_before_min": 0, "grace_after_min": 0, "no_show_after_min": 0, "leader_first": False}
_MQTT = {
    "host": "",
    "port": 8883,
    "tls": True,
    "ca_file": "",
    "cert_file": "",
    "key_file": "",
    "username": "",
    "password_file": "",
    "transport": "tcp",
    "topic_prefix": TOPIC_PREFIX,
}


def load(path: str | Path) -> BridgeConfig:
    return parse(toml_file.read(path), str(path))


def parse(raw: dict[str, Any], path: str) -> BridgeConfig:
    c = toml_file.Checker(path)
    fail, checked, _resolve = c.fail, c.checked, c.resolve

    def section(name: str, keys: dict[str, Any]) -> dict[str, Any]:
        return c.section(raw, name, keys)

    c.only(raw, ("bridge", "sheets", "mqtt", "calendar", "sites", "feeds", "limits"))
    b = section("bridge", _BRIDGE)
    if not b["key"]:
        raise fail("bridge.key", "required: the private key that signs the schedules (haldor keygen)")
    sheets = section("sheets", {**dict.fromkeys(_SHEETS, ""), "pin_digits": 0})
    pin_digits = sheets.pop("pin_digits")
    if pin_digits != 0 and not 4 <= pin_digits <= 8:
        raise fail("sheets.pin_digits", "4 to 8 (the length of every PIN), or 0: from the column")
    for name in ("associations", "credentials", "rooms"):
        if not sheets[name]:
            raise fail(f"sheets.{name}", "required: a CSV or .xlsx file")
    cal = section("calendar", {"association_from": "categories", "pattern": "", "all_day": "ignore"})
    if cal["association_from"] not in ASSOCIATION_SOURCES:
        raise fail("calendar.association_from", f"one of {', '.join(ASSOCIATION_SOURCES)}")
    try:
        re.compile(cal["pattern"])
    except re.error as exc:
        raise fail("calendar.pattern", f"not a regular expression: {exc}") from None
    if cal["all_day"] not in ("ignore", "closure"):
        raise fail("calendar.all_day", 'must be "ignore" or "closure"')
    sites = []
    for i, s in enumerate(c.tables(raw, "sites")):
        s = checked(s, {"id": "", "timezone": "Europe/Copenhagen", "policy": {}, "public_key": "", "plain": False}, f"sites[{i}]")
        policy = checked(s["policy"], POLICY, f"sites[{i}].policy")
        for key, value in policy.items():
            if not isinstance(value, bool) and not 0 <= value <= 24 * 60:
                raise fail(f"sites[{i}].policy.{key}", "0 to 1440 minutes")
        site = Site(id=s["id"], timezone=s["timezone"], policy=s["policy"], public_key=s["public_key"], plain=s["plain"])
        if site.plain and site.public_key:
            raise fail(f"sites[{i}].plain", "true sends in clear: give either public_key or plain = true, not both")
        if site.public_key:
            try:
                sealing.load_public(site.public_key)
            except ValueError as exc:
                raise fail(f"sites[{i}].public_key", str(exc)) from None
        if not isinstance(site.id, str) or not IDENTIFIER.fullmatch(site.id):
            raise fail(f"sites[{i}].id", IDENTIFIER_TEXT)
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(f"sites[{i}].timezone", f"unknown time zone {site.timezone!r}") from None
        sites.append(site)
    if not sites:
        raise fail("sites", "at least one [[sites]] table")
    site_ids = {s.id for s in sites}
    feeds = []
    for i, f in enumerate(c.tables(raw, "feeds")):
        f = checked(f, {"site": "", "room": "", "source": ""}, f"feeds[{i}]")
        feed = FeedSource(site=f["site"], room=f["room"], source=f["source"])
        if feed.site not in site_ids:
            raise fail(f"feeds[{i}].site", f"no site {feed.site!r} in [[sites]]")
        if not IDENTIFIER.fullmatch(feed.room or ""):
            raise fail(f"feeds[{i}].room", IDENTIFIER_TEXT)
        if not feed.source:
            raise fail(f"feeds[{i}].source", "required: a file or an http(s) URL")
        feeds.append(FeedSource(feed.site, feed.room, _resolve(feed.source)))
    m = section("mqtt", _MQTT)
    broker = None
    if m["host"]:
        broker = BrokerOptions(
            host=m["host"],
            port=m["port"],
            tls=m["tls"],
            ca_file=_resolve(m["ca_file"]) if m["ca_file"] else "",
            cert_file=_resolve(m["cert_file"]) if m["cert_file"] else "",
            key_file=_resolve(m["key_file"]) if m["key_file"] else "",
            username=m["username"],
            password_file=_resolve(m["password_file"]) if m["password_file"] else "",
            transport=m["transport"],
            prefix=m["topic_prefix"],
        )
    if not 0 <= b["max_row_loss"] <= 1:
        raise fail("bridge.max_row_loss", "a share from 0 to 1 (0.2: refuse a sheet that lost a fifth of its rows)")
    if not 10 <= b["interval_s"] <= 86400:
        raise fail("bridge.interval_s", "10 seconds to a day")
    if not 1 <= b["horizon_days"] <= 3660:
        raise fail("bridge.horizon_days", "1 to 3660 days")
    if not 0 <= b["answer_s"] <= 600:
        raise fail("bridge.answer_s", "0 to 600 seconds (0: do not wait for the boxes' answers)")
    if not 1 <= b["delta_max"]:
        raise fail("bridge.delta_max", "at least 1")
    if m["transport"] not in ("tcp", "websockets"):
        raise fail("mqtt.transport", 'must be "tcp" or "websockets"')
    if not 0 < m["port"] < 65536:
        raise fail("mqtt.port", "must be 1-65535")
    key = _resolve(b["key"])
    try:
        load_private_key(key)  # a missing or wrong key is found at start, not when something changed
    except HaldorError as exc:
        raise fail("bridge.key", str(exc)) from None
    return BridgeConfig(
        path=path,
        state=_resolve(b["state"]),
        key=key,
        kid=b["kid"] or Path(key).name.removesuffix(".key"),
        interval_s=float(b["interval_s"]),
        horizon_days=int(b["horizon_days"]),
        delta_max=int(b["delta_max"]),
        max_row_loss=float(b["max_row_loss"]),
        sheets={k: _resolve(v) for k, v in sheets.items() if v},
        sites=tuple(sites),
        feeds=tuple(feeds),
        rule=AssociationRule(cal["association_from"], cal["pattern"]),
        all_day_closures=cal["all_day"] == "closure",
        broker=broker,
        limits=_limits(c, raw),
        answer_s=float(b["answer_s"]),
        pin_digits=int(pin_digits),
    )


def _limits(c: toml_file.Checker, raw: dict[str, Any]) -> Limits:
    given = c.section(raw, "limits", asdict(Limits()))
    for key, (low, high) in _LIMIT_RANGES.items():
        if not low <= given[key] <= high:
            raise c.fail(f"limits.{key}", f"{low} to {high}")
    return Limits(**given)
