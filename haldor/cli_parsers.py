"""The parsers of `haldor`'s larger command groups (the CA, releases), the options several commands share, and the
commands' table that builds only the named command's parser, apart from :mod:`haldor.cli` so that each file stays
readable."""

from __future__ import annotations

import argparse
from typing import Any


class Skipped:
    """A command's parser left unbuilt: whatever is asked of it, nothing is done."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class Commands:
    """The commands' parsers, only the named one built when a command is named: building
    all of them takes argparse about 10 ms, a sixth of `haldor run`'s own start."""

    def __init__(self, sub: argparse._SubParsersAction, only: str | None) -> None:
        self.sub, self.only = sub, only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self.sub.add_parser(name, **kwargs) if self.only in (None, name) else Skipped()


def ca_command(sub: Commands, common: argparse.ArgumentParser) -> None:
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


def release_command(sub: Commands, common: argparse.ArgumentParser, broker: argparse.ArgumentParser) -> None:
    """`haldor release sign` (a wheel's manifest for the boxes' `update` command) and `rollout`."""
    release = sub.add_parser("release", parents=[common], help="releases for the boxes: sign a wheel's manifest")
    rsub = release.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    sign = rsub.add_parser("sign", parents=[common], help="print (or write) the signed manifest of WHEEL")
    sign.add_argument("wheel", metavar="WHEEL", help="the release's wheel (haldor-VERSION-py3-none-any.whl)")
    sign.add_argument("--key", required=True, help="the release key (haldor keygen release)")
    sign.add_argument("--kid", help="key id (default: the key file's name without .key)")
    sign.add_argument("--out", metavar="FILE", help="write the manifest here (default: print it)")
    roll = rsub.add_parser("rollout", parents=[common, broker], help="update every site in stages, stopping on failures")
    roll.add_argument("manifest", metavar="MANIFEST", help="the signed manifest (haldor release sign --out)")
    roll.add_argument("--url", required=True, help="where the boxes fetch the wheel")
    roll.add_argument(
        "--stages", default="test,10%,all", help="comma-separated: test, N%% (a share of all), all (default test,10%%,all)"
    )
    roll.add_argument("--test", metavar="SITE,...", help="the test group's sites")
    roll.add_argument(
        "--max-failures", type=int, default=0, metavar="N", help="stop after a stage with more failures (default 0)"
    )
    roll.add_argument("--wait", type=float, default=600, metavar="S", help="seconds a stage's boxes have to answer (default 600)")
    roll.add_argument("--key", required=True, help="the private key that signs commands")
    roll.add_argument("--kid", help="key id (default: the key file's name without .key)")
    roll.add_argument("--by", metavar="NAME", help="who asks (default: your login name)")
    roll.add_argument("--valid", type=float, default=900, metavar="S", help="a box refuses the command after this (default 900)")


def broker_parent() -> argparse.ArgumentParser:
    """The broker options of the commands that connect to it (default: the configured [mqtt])."""
    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument("--broker", metavar="HOST[:PORT]", help="default: the configured [mqtt] broker")
    broker.add_argument("--tls", action="store_true", default=None)
    broker.add_argument("--ca-file")
    broker.add_argument("--cert-file")
    broker.add_argument("--key-file")
    broker.add_argument("--username")
    broker.add_argument("--password-file")
    broker.add_argument("--websockets", action="store_true", default=None)
    broker.add_argument("--prefix", help="topic prefix (default haldor/v1)")
    return broker


def checks_parent() -> argparse.ArgumentParser:
    checks = argparse.ArgumentParser(add_help=False)
    checks.add_argument(
        "--verify-with",
        action="append",
        default=[],
        metavar="KID.pub",
        help="a public key the boxes trust (repeatable; default: the configuration's [trust] keys)",
    )
    return checks
