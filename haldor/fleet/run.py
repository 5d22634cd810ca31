"""`haldor fleet`: the municipality's view wired together (the consumer, the alerting, the
page and its login) and run until SIGTERM; and `haldor fleet user ...`, its operators.
The command line only parses; what the options mean is decided here."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from haldor import listen as listening
from haldor.errors import EXIT_BAD_INPUT, ConfigError
from haldor.mqtt import BrokerOptions
from haldor.sql import Database
from haldor.stopping import wait_for_stop

from . import settings as fleet_settings
from .alerting import AlertWorker
from .commands import Commander
from .dynsec import Dynsec
from .enrolment import Enroller, Enrolment
from .ingest import FleetConsumer
from .operators import Operators
from .serving import FleetServer
from .sessions import Sessions
from .store import FleetStore
from .web import FleetWeb

log = logging.getLogger("haldor.fleet")


def serve(args: Any, opts: BrokerOptions) -> int:
    """Consume, alert and serve the page until SIGTERM or SIGINT."""
    season = _season(args)
    if season is None:
        return EXIT_BAD_INPUT
    settings = fleet_settings.load(args.fleet_config) if args.fleet_config else fleet_settings.FleetSettings()
    try:
        listen = listening.parse(args.listen)
    except ValueError as exc:
        raise ConfigError(f"--listen {exc}") from None
    users = Operators(Database.open(args.db))
    public = _checked_address(args, listen[0], users)
    consumer = FleetConsumer(
        opts,
        FleetStore(args.db),
        client_id=args.client_id,
        shared_group=args.shared_group,
        command_results=bool(args.command_key),
    )
    alerting = AlertWorker(settings, FleetStore(args.db)) if settings.alerting else None
    web = FleetWeb(FleetStore(args.db), zone=args.timezone, season=season)
    # the login is always there; on loopback it is asked for once a user exists, added before or after the start
    web.auth = Sessions(users, secure=public is not None and public.scheme == "https", trusted_header=args.trusted_header)
    # behind a proxy (a public address) every request comes from loopback: never open there, users or not
    web.login_always = not listening.is_loopback(listen[0]) or bool(args.trusted_header) or public is not None
    web.public_origin = f"{public.scheme}://{public.netloc}" if public is not None else ""
    web.metrics_token = Path(args.metrics_token_file).read_text().strip() if args.metrics_token_file else ""
    if args.command_key:
        kid = args.command_kid or Path(args.command_key).name.removesuffix(".key")
        web.commander = Commander(consumer.client, opts, args.command_key, kid, web.audit)
    if settings.enrolment is not None:
        web.enroller = enroller(web, opts, settings.enrolment)
    web.consumer, web.alerting = consumer, alerting
    server = FleetServer(web, listen)  # bound now: a port in use stops the start before anything runs
    consumer.start()
    if alerting is not None:
        alerting.blind, alerting.unsure = (lambda: consumer.blind_since), consumer.unsure_before
        alerting.start()
    server.start()
    log.info("fleet on %s/ reading %s:%s", server.url, opts.host, opts.port)
    wait_for_stop()
    consumer.stop()
    if alerting is not None:
        alerting.stop()
    server.shutdown()
    return 0


def enroller(web: FleetWeb, opts: BrokerOptions, enrolment: Enrolment) -> Enroller:
    """Boxes enrol through the fleet's broker, logged in as the dynamic security plugin's admin."""
    admin = replace(
        opts, username=enrolment.admin_username, password_file=enrolment.admin_password_file, cert_file="", key_file=""
    )
    return Enroller(web.register, Dynsec(admin), enrolment, opts.prefix)


def _season(args: Any) -> tuple[int, int] | None:
    try:
        ZoneInfo(args.timezone)
        first, last = (int(w) for w in args.season.split("-"))
        if not (1 <= first <= 53 and 1 <= last <= 53):
            raise ValueError
    except (ZoneInfoNotFoundError, ValueError):
        print(f"haldor fleet: --timezone {args.timezone!r} or --season {args.season!r} cannot be read", file=sys.stderr)
        return None
    return first, last


def _checked_address(args: Any, host: str, users: Operators) -> SplitResult | None:
    """The page's public address; beyond loopback only behind TLS and with a user."""
    beyond_loopback = not listening.is_loopback(host)
    public = urlsplit(args.public_url) if args.public_url else None
    if public is not None and (public.scheme not in ("http", "https") or not public.netloc):
        raise ConfigError(
            f"--public-url {args.public_url!r}: the page's address as browsers see it, e.g. https://fleet.kommune.dk"
        )
    if args.trusted_header and beyond_loopback:
        raise ConfigError(
            f"--listen {args.listen}: with --trusted-header only the proxy on this machine may reach the page: listen on loopback"
        )
    if beyond_loopback and (public is None or public.scheme != "https"):
        raise ConfigError(
            f"--listen {args.listen}: beyond loopback passwords and sessions need TLS: put the page behind a proxy with TLS "
            "and give its address with --public-url https://..."
        )
    if beyond_loopback and not users.any():
        raise ConfigError(
            f"--listen {args.listen}: beyond loopback the page needs a login: add a user first (haldor fleet user add NAME --role operator)"
        )
    return public
