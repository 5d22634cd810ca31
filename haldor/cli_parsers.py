"""The parsers of `haldor`'s larger command groups (the CA, the fleet, releases), apart
from :mod:`haldor.cli` so that each file stays readable."""

from __future__ import annotations

import argparse


def ca_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ca = sub.add_parser("ca", parents=[common], help="the municipality's CA: TLS certificates for the broker and its clients")
    csub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", default=".", help="the CA's folder: ca.key, ca.pem and what it signs (default: here)")
    init = csub.add_parser("init", parents=[common, where], help="make the CA: ca.key (mode 0600) and ca.pem, 10 years")
    init.add_argument("--name", default="", help='the municipality, e.g. "Valby Kommune"')
    broker = csub.add_parser("broker-cert", parents=[common, where], help="broker.key and broker.pem for Mosquitto")
    broker.add_argument("host", metavar="HOST", help="the name (or address) the clients dial")
    broker.add_argument("--ip", action="append", default=[], metavar="ADDR", help="an address it is also dialled at")
    client = csub.add_parser("client-cert", parents=[common, where], help="NAME.key and NAME.pem; CN = NAME, the MQTT user")
    client.add_argument("name", metavar="NAME", help="the login: a site id, fleet, booking-system, ...")
    client.add_argument("--csr", metavar="FILE", help="sign this request (haldor ca request on the box): no key made here")
    request = csub.add_parser("request", parents=[common, where], help="on a box: NAME.key and NAME.csr for the CA to sign")
    request.add_argument("name", metavar="NAME", help="its login: the site id")


def fleet_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, broker: argparse.ArgumentParser) -> None:
    """`haldor fleet`: the municipality's view of every site, and its users."""
    fleet = sub.add_parser("fleet", parents=[common, broker], help="watch many sites: status, alarms, usage (web page, CSV)")
    fleet.add_argument(
        "--db", default="fleet.db", help="the fleet's own database: a file (default fleet.db) or a postgresql:// URL"
    )
    fleet.add_argument("--listen", default="127.0.0.1:8090", help="web page address (default 127.0.0.1:8090)")
    fleet.add_argument("--client-id", default="haldor-fleet", help="MQTT client id: the broker keeps its session")
    fleet.add_argument("--shared-group", help="share the load with other fleet consumers ($share/GROUP/...)")
    fleet.add_argument(
        "--timezone", default="Europe/Copenhagen", help="the page's own zone: a site in another is shown with its zone named"
    )
    fleet.add_argument(
        "manage",
        nargs="*",
        metavar="user add|remove|unlock NAME | user list",
        help="manage the page's users instead of running",
    )
    fleet.add_argument("--role", choices=("viewer", "operator"), default="viewer", help="user add: viewer reads, operator acts")
    fleet.add_argument("--password-stdin", action="store_true", help="user add: read the password from stdin, not a prompt")
    fleet.add_argument(
        "--public-url", default="", metavar="URL", help="the page's address as browsers see it (https://... behind a TLS proxy)"
    )
    fleet.add_argument(
        "--trusted-header",
        default="",
        metavar="NAME",
        help="take the user from this header of a reverse proxy that did the login",
    )
    fleet.add_argument(
        "--metrics-token-file",
        default="",
        metavar="FILE",
        help="a bearer token Prometheus sends for /metrics when a login is needed",
    )
    fleet.add_argument(
        "--command-key",
        default="",
        metavar="KEY",
        help="the fleet's own command key (haldor keygen): operators act from the page",
    )
    fleet.add_argument("--command-kid", default="", metavar="KID", help="its key id (default: the key file's name)")
    fleet.add_argument("--fleet-config", metavar="FLEET.toml", help="alert rules, webhooks and e-mail (see the README)")
    fleet.add_argument(
        "--season", default="33-26", metavar="FIRST-LAST", help="ISO weeks of a season, for the season totals (default 33-26)"
    )


def release_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """`haldor release sign`: a wheel's manifest for the boxes' `update` command."""
    release = sub.add_parser("release", parents=[common], help="releases for the boxes: sign a wheel's manifest")
    rsub = release.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    sign = rsub.add_parser("sign", parents=[common], help="print (or write) the signed manifest of WHEEL")
    sign.add_argument("wheel", metavar="WHEEL", help="the release's wheel (haldor-VERSION-py3-none-any.whl)")
    sign.add_argument("--key", required=True, help="the release key (haldor keygen release)")
    sign.add_argument("--kid", help="key id (default: the key file's name without .key)")
    sign.add_argument("--out", metavar="FILE", help="write the manifest here (default: print it)")
