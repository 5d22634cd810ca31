"""The `haldor` command line (PROTOCOL 8). Errors are one line on stderr; exit 2 for a
bad configuration or document, 1 for other failures.

Each command imports the part it runs when it runs (the only imports inside functions
in Haldor): loading every part takes a Pi Zero about two seconds, which `haldor
check-config` and `haldor decide` should not pay for the broker, the kiosk and the fleet."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from haldor import __version__, cli_parsers, config
from haldor.errors import EXIT_BAD_INPUT, EXIT_FAILURE, ConfigError, DocumentError, HaldorError
from haldor.protocol import Action


def _command_named(argv: list[str]) -> str | None:
    """The command ``argv`` names, if it names one (else every parser is built, for the
    help and the error that lists them)."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in _HANDLERS else None
    return None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="haldor", description="Door access for facilities booked by associations.")
    p.add_argument("--version", action="version", version=f"haldor {__version__}")
    where = f"configuration file (default $HALDOR_CONFIG or {config.DEFAULT_PATH})"
    # --config and -v before the command or after it: the command's own are SUPPRESSed, so an
    # absent one does not overwrite what came before the command
    p.add_argument("--config", default=None, help=where)
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=where)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug detail")
    sub = cli_parsers.Commands(p.add_subparsers(dest="command", required=True, metavar="COMMAND"), only)
    _box_commands(sub, common)
    broker, checks = cli_parsers.broker_parent(), cli_parsers.checks_parent()
    _document_commands(sub, common, broker, checks)
    _fleet_command(sub, common, broker)
    cli_parsers.ca_command(sub, common)
    cli_parsers.release_command(sub, common, broker)
    bridge = sub.add_parser("bridge", help="calendar feeds and spreadsheets in, signed schedules for every site out")
    bridge.add_argument("--config", required=True, metavar="BRIDGE.toml", help="the bridge's configuration")
    bridge.add_argument("--once", action="store_true", help="one run, then exit (cron, tests)")
    bridge.add_argument("--dry-run", action="store_true", help="print per site what would change; publish nothing")
    bridge.add_argument("--accept-sheets", action="store_true", help="accept sheets that lost many rows since the last run")
    bridge.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    watch = sub.add_parser("watch", parents=[common, broker], help="print events and status as they come")
    watch.add_argument("--site", default="+", help="one site id, or + for all (default)")
    watch.add_argument("--count", type=int, default=0, help="stop after this many messages")
    return p


def _box_commands(sub: cli_parsers.Commands, common: argparse.ArgumentParser) -> None:
    """What runs on a box: the agent, its schedule, a decision, the demo, the screen."""
    sub.add_parser("check-config", parents=[common], help="validate the configuration and print a summary")
    sub.add_parser("run", parents=[common], help="run the agent until SIGTERM")
    schedule = sub.add_parser("schedule", parents=[common], help="the local schedule")
    ssub = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    load = ssub.add_parser("load", parents=[common], help="validate FILE and apply it to the local store")
    load.add_argument("file", metavar="FILE")
    sample = ssub.add_parser("sample", parents=[common], help="print a sample snapshot laid around today: a starting point")
    sample.add_argument("--site", default="demo-hal", help="the site id it is for (default demo-hal)")
    sample.add_argument("--version", type=int, help="its version (default: the time now in seconds, so a newer one wins)")
    decide = sub.add_parser("decide", parents=[common], help="print the decision for a card or PIN at a door")
    decide.add_argument("--door", required=True)
    who = decide.add_mutually_exclusive_group(required=True)
    who.add_argument("--card")
    who.add_argument("--pin")
    decide.add_argument("--at", help="RFC 3339 time (default now)")
    badge = sub.add_parser("badge", parents=[common], help="on mock pins: present a card or PIN at the running agent's reader")
    badge.add_argument("card", nargs="?", metavar="CARD", help="a card string, e.g. uid:04A1B2C3D4E5F6")
    badge.add_argument("--pin", help="a PIN instead of a card")
    badge.add_argument("--reader", help="a [[readers]] id (default: the first reader at a door)")
    badge.add_argument("--wait", type=float, default=5.0, metavar="S", help="seconds to wait for the answer (default 5)")
    demo = sub.add_parser("demo", parents=[common], help="run with simulated hardware and a sample schedule")
    demo.add_argument("--data-dir", default=None, help="keep the demo's data here (default: a temporary folder)")
    demo.add_argument("--port", type=int, default=8080, help="the screen's port on 127.0.0.1 (default 8080, else any free one)")
    demo.add_argument("--no-prompt", action="store_true", help="no card prompt: run until Ctrl-C, badge on the page")
    enrol = sub.add_parser("enrol", parents=[common], help="join the municipality: this box's keys, configuration and login")
    enrol.add_argument("url", metavar="URL", help="the fleet's address, e.g. https://fleet.kommune.dk")
    enrol.add_argument("code", metavar="CODE", help="the one-time code the fleet's page showed")
    enrol.add_argument("--data", default="/var/lib/haldor", help="the box's data folder (default /var/lib/haldor)")
    enrol.add_argument(
        "--ca-file", default="", help="the CA the fleet's HTTPS certificate is checked against (default: the system's)"
    )
    kiosk = sub.add_parser("kiosk", parents=[common], help="serve the display page for the screen by the entrance")
    kiosk.add_argument("--browser", action="store_true", help="instead: show the page in Chromium's kiosk mode once it answers")


def _document_commands(
    sub: cli_parsers.Commands,
    common: argparse.ArgumentParser,
    broker: argparse.ArgumentParser,
    checks: argparse.ArgumentParser,
) -> None:
    """The integrator's: keys, signing, publishing a document, sending a command."""
    keygen = sub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair for signing documents")
    keygen.add_argument("kid", nargs="?", default="bookings", help="key id, also the file name (default: bookings)")
    keygen.add_argument(
        "--site", action="store_true", help="on a box: print its own public key, which schedules are sealed to (made if new)"
    )
    keygen.add_argument("--dir", default=".", help="where to write KID.key and KID.pub")
    sign = sub.add_parser("sign", parents=[common], help="print FILE in a signed envelope")
    sign.add_argument("key", metavar="KEY")
    sign.add_argument("file", metavar="FILE")
    sign.add_argument("--kid", help="key id (default: the key file's name without .key)")
    publish = sub.add_parser(
        "publish", parents=[common, broker, checks], help="check, sign and publish a snapshot, delta or command"
    )
    publish.add_argument("file", metavar="FILE")
    publish.add_argument("--key", help="sign with this private key (omitted: FILE must be a signed envelope)")
    publish.add_argument("--kid", help="key id (default: the key file's name without .key)")
    publish.add_argument("--site", help="refuse unless the document is for this site")
    publish.add_argument("--unsigned", action="store_true", help="publish without a signature (development boxes only)")
    publish.add_argument("--older", action="store_true", help="publish a schedule older than the box has (after reset_version)")
    publish.add_argument(
        "--seal-to", metavar="SITE_KEY", help="seal a schedule to the site's public key (haldor keygen --site on the box)"
    )
    command = sub.add_parser(
        "command", parents=[common, broker, checks], help="send a signed command to a site and wait for its result"
    )
    command.add_argument("site", metavar="SITE")
    command.add_argument("action", metavar="ACTION", choices=[a.value for a in Action], help=", ".join(Action))
    command.add_argument("--door", help="the door (unlock, lock, hold_open, release)")
    command.add_argument("--duration", type=float, metavar="S", help="unlock: seconds (default: the door's unlock time)")
    command.add_argument("--reason", metavar="TEXT", help="why, for the box's audit trail (at most 200 characters)")
    command.add_argument("--by", metavar="NAME", help="who asks (default: your login name)")
    command.add_argument("--manifest", metavar="FILE", help="update: the signed manifest (haldor release sign)")
    command.add_argument("--url", help="update: where the boxes fetch the wheel")
    command.add_argument("--key", required=True, help="the private key that signs commands")
    command.add_argument("--kid", help="key id (default: the key file's name without .key)")
    command.add_argument("--wait", type=float, default=30, metavar="S", help="seconds to wait for the result (default 30)")
    command.add_argument(
        "--valid", type=float, default=120, metavar="S", help="the box refuses it after this many seconds (default 120)"
    )


def _fleet_command(sub: cli_parsers.Commands, common: argparse.ArgumentParser, broker: argparse.ArgumentParser) -> None:
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
    roles = ("viewer", "operator", "registrar")
    fleet.add_argument(
        "--role", choices=roles, default="viewer", help="user add: a viewer reads, an operator acts, a registrar enrols"
    )
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


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_named(given)).parse_args(given)
    args.argv = given
    logging.basicConfig(
        level=logging.DEBUG
        if getattr(args, "verbose", False)
        else (
            logging.INFO
            if args.command in ("run", "kiosk", "fleet", "bridge")
            else logging.WARNING
            if args.command == "demo"
            else logging.ERROR
        ),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = _HANDLERS[args.command]
    if args.command != "run":  # held off while the command's parts were imported (haldor.__main__)
        gc.enable()
    try:
        return handler(args)
    except (ConfigError, DocumentError) as exc:
        print(f"haldor: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except HaldorError as exc:
        print(f"haldor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # stdout full or closed, a file that vanished: one line, not a traceback
        print(f"haldor: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE


def _config(args) -> config.Config:
    return config.load(args.config or config.default_path())


def _check_config(args) -> int:
    print(_config(args).summary())
    return 0


def _schedule(args) -> int:
    if args.schedule_command == "sample":
        from haldor.demo import print_sample

        return print_sample(args.site, args.version)
    from haldor.agent import local

    return local.schedule_load(_config(args), args.file)


def _decide(args) -> int:
    from haldor.agent import local

    return local.decide(_config(args), args)


def _badge(args) -> int:
    from haldor.agent.badge import badge

    return badge(_config(args), args.card, args.pin, args.reader, args.wait)


def _run(args) -> int:
    from haldor.agent.launcher import launch
    from haldor.agent.run import run_forever

    cfg = _config(args)
    launch(cfg.data_dir, __version__, args.argv)  # the release named current, when it is another
    return run_forever(cfg)


def _enrol(args) -> int:
    from haldor.agent.enrol import enrol

    return enrol(args.url, args.code, args.data, args.ca_file)


def _demo(args) -> int:
    from haldor.demo import run_demo

    return run_demo(args.data_dir, port=args.port, prompt=not args.no_prompt)


def _kiosk(args) -> int:
    if args.browser:
        from haldor.kiosk.browser import open_browser

        return open_browser(_config(args).kiosk.listen)
    from haldor.kiosk.server import run_kiosk

    return run_kiosk(_config(args))


def _integrator(args) -> int:
    """keygen, publish, command, watch: the integrator's commands, which take defaults from the configuration."""
    from haldor.integrator import commands

    return getattr(commands, args.command)(args, _config)


def _ca(args) -> int:
    from haldor.integrator.commands import ca

    return ca(args)


def _release(args) -> int:
    from haldor.integrator import releases

    if args.release_command == "rollout":
        return releases.rollout_command(args, _broker_options(args))
    return releases.release_command(args)


def _sign(args) -> int:
    from haldor.integrator import commands

    return commands.sign(args)


def _broker_options(args):
    from haldor.integrator import commands

    return commands.broker_options(args, _config)


def _bridge(args) -> int:
    import os

    from haldor.bridge import service, settings

    os.umask(0o077)  # its state holds every member's card: readable by its own user only, from cron too
    cfg = settings.load(args.config)

    def warn(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.once or args.dry_run:
        return service.run_once(cfg, dry_run=args.dry_run, accept_sheets=args.accept_sheets, warn=warn)
    from haldor.stopping import wait_for_stop

    # the loop runs on a thread; this one waits for the signal (see haldor.stopping)
    stop, wake = threading.Event(), threading.Event()
    result: list[int] = []
    loop = threading.Thread(target=lambda: result.append(service.serve(cfg, stop, wake, warn)), name="bridge", daemon=True)
    loop.start()
    wait_for_stop(loop.is_alive)
    stop.set()
    wake.set()
    loop.join()
    return result[0] if result else EXIT_FAILURE


def _fleet(args) -> int:
    if args.manage:
        from haldor.fleet import user_commands

        return user_commands.manage_users(args)
    from haldor.fleet import run

    return run.serve(args, _broker_options(args))


#: every command and what runs it
_HANDLERS: dict[str, Callable[[Any], int]] = {
    "check-config": _check_config,
    "run": _run,
    "schedule": _schedule,
    "decide": _decide,
    "badge": _badge,
    "demo": _demo,
    "enrol": _enrol,
    "kiosk": _kiosk,
    "keygen": _integrator,
    "sign": _sign,
    "publish": _integrator,
    "command": _integrator,
    "watch": _integrator,
    "fleet": _fleet,
    "bridge": _bridge,
    "ca": _ca,
    "release": _release,
}


if __name__ == "__main__":
    sys.exit(main())
