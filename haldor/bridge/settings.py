"""The bridge's configuration (``bridge.toml``): where the sheets and feeds are, the
sites, the signing key and the broker. A fault stops start-up with one line naming the
key, as the agent's configuration does."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor import toml_file
from haldor.access import sealing
from haldor.errors import HaldorError
from haldor.integrator.documents import load_private_key
from haldor.mqtt import BrokerOptions
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, TOPIC_PREFIX
from haldor.records import record
from haldor.toml_file import key

from .calendar import ASSOCIATION_SOURCES, AssociationRule


@record
class FeedSource:
    """One ``[[feeds]]`` table."""

    site: str = ""
    room: str = ""
    source: str = ""  # a file, or an http(s) URL


def _minutes() -> Any:
    return key(None, low=0, high=24 * 60, problem="0 to 1440 minutes")


@record(kw_only=True)
class SitePolicy:
    """A site's policy, as a snapshot carries it: only the keys given (none: the box's own)."""

    grace_before_min: int | None = _minutes()
    grace_after_min: int | None = _minutes()
    no_show_after_min: int | None = _minutes()
    leader_first: bool | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@record
class Site:
    """One ``[[sites]]`` table."""

    id: str
    timezone: str = "Europe/Copenhagen"
    policy: SitePolicy = SitePolicy()
    #: the box's own key (``haldor keygen --site``): its schedules are sealed to it
    public_key: str = ""
    #: schedules in clear (card numbers on the broker), for a box with ``plain_documents``:
    #: said explicitly, never the default of a missing key
    plain: bool = False


@record
class Limits:
    """What one input may cost (``[limits]``): a feed or sheet beyond it is refused with
    one line, and the other sites go on (a calendar rule of ten million seconds, a
    workbook that claims a million columns). Each range's end is where a value is a
    mistake, not a choice."""

    feed_timeout_s: float = key(30.0, low=1, high=3600)  # to parse one feed (in a process of its own)
    sheet_timeout_s: float = key(180.0, low=1, high=3600)  # one sheet (300,000 rows of .xlsx take a minute)
    read_memory_mb: int = key(1024, low=128, high=65536)  # that process's address space
    feed_mb: int = key(8, low=1, high=1024)  # one feed's size (a room's season is a few hundred kilobytes)
    feed_bookings: int = key(20_000, low=1, high=10_000_000)  # instances of one feed over the horizon
    site_bookings: int = key(50_000, low=1, high=10_000_000)  # a site's feeds together
    run_bookings: int = key(500_000, low=1, high=100_000_000)  # every feed of a run together
    sheet_rows: int = key(300_000, low=1, high=1_048_576)
    sheet_columns: int = key(256, low=1, high=16_384)


@record(kw_only=True)
class _BridgeTable:
    """``[bridge]`` (its ``key`` field hides :func:`key` here: toml_file.key is spelt out)."""

    state: str = "bridge.db"
    key: str = ""
    kid: str = ""
    interval_s: float = toml_file.key(300.0, low=10, high=86400, problem="10 seconds to a day")
    horizon_days: int = toml_file.key(365, low=1, high=3660, problem="1 to 3660 days")
    delta_max: int = toml_file.key(500, low=1, problem="at least 1")
    max_row_loss: float = toml_file.key(
        0.2, low=0, high=1, problem="a share from 0 to 1 (0.2: refuse a sheet that lost a fifth of its rows)"
    )
    answer_s: float = toml_file.key(30.0, low=0, high=600, problem="0 to 600 seconds (0: do not wait for the boxes' answers)")


_SHEETS = ("associations", "credentials", "rooms", "closures")


@record(kw_only=True)
class _SheetsTable:
    associations: str = ""
    credentials: str = ""
    rooms: str = ""
    closures: str = ""
    #: a PIN's length when a spreadsheet dropped its leading zeros (0: from the column)
    pin_digits: int = 0


@record(kw_only=True)
class _CalendarTable:
    association_from: str = key("categories", choices=ASSOCIATION_SOURCES, problem=f"one of {', '.join(ASSOCIATION_SOURCES)}")
    pattern: str = ""
    all_day: Literal["ignore", "closure"] = "ignore"


@record(kw_only=True)
class _MqttTable:
    host: str = ""
    port: int = key(8883, low=1, high=65535, problem="must be 1-65535")
    tls: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    transport: Literal["tcp", "websockets"] = "tcp"
    topic_prefix: str = TOPIC_PREFIX


@record
class RegisterSource:
    """``[register]``: the fleet's register of enrolled boxes, and the token it asks for."""

    url: str
    token: str


@record(kw_only=True)
class _RegisterTable:
    url: str = ""
    token_file: str = ""


@record
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
    #: the sites' sealing keys from the fleet's register (None: only [[sites]] public_key)
    register: RegisterSource | None = None


def load(path: str | Path) -> BridgeConfig:
    return parse(toml_file.read(path), str(path))


def parse(raw: dict[str, Any], path: str) -> BridgeConfig:
    c = toml_file.Checker(path, toml_file.TYPE_NAMES)
    c.only(raw, ("bridge", "sheets", "mqtt", "calendar", "sites", "feeds", "limits", "register"))
    b = c.section(raw, "bridge", _BridgeTable)
    if not b.key:
        raise c.fail("bridge.key", "required: the private key that signs the schedules (haldor keygen)")
    sheets = c.section(raw, "sheets", _SheetsTable)
    if sheets.pin_digits != 0 and not 4 <= sheets.pin_digits <= 8:
        raise c.fail("sheets.pin_digits", "4 to 8 (the length of every PIN), or 0: from the column")
    for name in ("associations", "credentials", "rooms"):
        if not getattr(sheets, name):
            raise c.fail(f"sheets.{name}", "required: a CSV or .xlsx file")
    cal = c.section(raw, "calendar", _CalendarTable)
    try:
        re.compile(cal.pattern)
    except re.error as exc:
        raise c.fail("calendar.pattern", f"not a regular expression: {exc}") from None
    sites = _sites(c, raw)
    feeds = _feeds(c, raw, {s.id for s in sites})
    broker = _broker(c, c.section(raw, "mqtt", _MqttTable))
    key = c.resolve(b.key)
    try:
        load_private_key(key)  # a missing or wrong key is found at start, not when something changed
    except HaldorError as exc:
        raise c.fail("bridge.key", str(exc)) from None
    return BridgeConfig(
        path=path,
        state=c.resolve(b.state),
        key=key,
        kid=b.kid or Path(key).name.removesuffix(".key"),
        interval_s=b.interval_s,
        horizon_days=b.horizon_days,
        delta_max=b.delta_max,
        max_row_loss=b.max_row_loss,
        sheets={name: c.resolve(getattr(sheets, name)) for name in _SHEETS if getattr(sheets, name)},
        sites=sites,
        feeds=feeds,
        rule=AssociationRule(cal.association_from, cal.pattern),
        all_day_closures=cal.all_day == "closure",
        broker=broker,
        limits=c.section(raw, "limits", Limits),
        answer_s=b.answer_s,
        pin_digits=sheets.pin_digits,
        register=_register(c, c.section(raw, "register", _RegisterTable)) if "register" in raw else None,
    )


def _register(c: toml_file.Checker, r: _RegisterTable) -> RegisterSource:
    if not r.url.startswith(("https://", "http://")):
        raise c.fail("register.url", "required: the fleet's register, e.g. https://fleet.kommune.dk/register.json")
    if r.url.startswith("http://") and urlsplit(r.url).hostname not in ("127.0.0.1", "::1", "localhost"):
        raise c.fail("register.url", "https only beyond loopback (the bridge's token goes with each request)")
    try:
        token = Path(c.resolve(r.token_file)).read_text().strip() if r.token_file else ""
    except OSError as exc:
        raise c.fail("register.token_file", f"cannot read: {exc.strerror}") from None
    if not token:
        raise c.fail("register.token_file", "required: a file with the token of the fleet's [enrolment] register_token_file")
    return RegisterSource(r.url, token)


def _sites(c: toml_file.Checker, raw: dict[str, Any]) -> tuple[Site, ...]:
    sites = c.tables(raw, "sites", Site)
    for i, site in enumerate(sites):
        if site.plain and site.public_key:
            raise c.fail(f"sites[{i}].plain", "true sends in clear: give either public_key or plain = true, not both")
        if site.public_key:
            try:
                sealing.load_public(site.public_key)
            except ValueError as exc:
                raise c.fail(f"sites[{i}].public_key", str(exc)) from None
        if not IDENTIFIER.fullmatch(site.id):
            raise c.fail(f"sites[{i}].id", IDENTIFIER_TEXT)
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise c.fail(f"sites[{i}].timezone", f"unknown time zone {site.timezone!r}") from None
    if not sites:
        raise c.fail("sites", "at least one [[sites]] table")
    return sites


def _feeds(c: toml_file.Checker, raw: dict[str, Any], site_ids: set[str]) -> tuple[FeedSource, ...]:
    feeds = []
    for i, feed in enumerate(c.tables(raw, "feeds", FeedSource)):
        if feed.site not in site_ids:
            raise c.fail(f"feeds[{i}].site", f"no site {feed.site!r} in [[sites]]")
        if not IDENTIFIER.fullmatch(feed.room):
            raise c.fail(f"feeds[{i}].room", IDENTIFIER_TEXT)
        if not feed.source:
            raise c.fail(f"feeds[{i}].source", "required: a file or an http(s) URL")
        feeds.append(FeedSource(feed.site, feed.room, c.resolve(feed.source)))
    return tuple(feeds)


def _broker(c: toml_file.Checker, m: _MqttTable) -> BrokerOptions | None:
    """The broker to publish to; none without ``[mqtt] host`` (``--dry-run`` and tests)."""
    if not m.host:
        return None

    def path(value: str) -> str:
        return c.resolve(value) if value else ""

    return BrokerOptions(
        host=m.host,
        port=m.port,
        tls=m.tls,
        ca_file=path(m.ca_file),
        cert_file=path(m.cert_file),
        key_file=path(m.key_file),
        username=m.username,
        password_file=path(m.password_file),
        transport=m.transport,
        prefix=m.topic_prefix,
    )
