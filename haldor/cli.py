"""The `haldor` command line (PROTOCOL 8). Errors are one line on stderr; exit 2 for a
bad configuration or document, 1 for other failures."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from haldor import __version__, cards, clock, config
from haldor.errors import ConfigError, DocumentError, HaldorError

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="haldor", description="Door access for facilities booked by associations.")
    p.add_argument("--version", action="version", version=f"haldor {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, help=f"configuration file (default $HALDOR_CONFIG or {config.DEFAULT_PATH})")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check-config", parents=[common], help="validate the configuration and print a summary")
    sub.add_parser("run", parents=[common], help="run the agent until SIGTERM")
    schedule = sub.add_parser("schedule", parents=[common], help="the local schedule")
    ssub = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    load = ssub.add_parser("load", parents=[common], help="validate FILE and apply it to the local store")
    load.add_argument("file", metavar="FILE")
    decide = sub.add_parser("decide", parents=[common], help="print the decision for a card or PIN at a door")
    decide.add_argument("--door", required=True)
    who = decide.add_mutually_exclusive_group(required=True)
    who.add_argument("--card")
    who.add_argument("--pin")
    decide.add_argument("--at", help="RFC 3339 time (default now)")
    demo = sub.add_parser("demo", parents=[common], help="run with simulated hardware and a sample schedule")
    demo.add_argument("--data-dir", default=None, help="keep the demo's data here (default: a temporary folder)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else (logging.INFO if args.command == "run" else logging.WARNING if args.command == "demo" else logging.ERROR),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = {
        "check-config": _check_config,
        "run": _run,
        "schedule": _schedule_load,
        "decide": _decide,
        "demo": _demo,
    }[args.command]
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


def _config(args) -> config.Config:
    return config.load(args.config or config.default_path())


def _check_config(args) -> int:
    print(_config(args).summary())
    return 0


def _open_store(cfg: config.Config):
    from haldor.access.agent import open_store

    return open_store(cfg)


def _schedule_load(args) -> int:
    from haldor.access import intake

    cfg = _config(args)
    try:
        payload = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"haldor: {args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    store = _open_store(cfg)
    try:
        outcome = intake.receive(
            store, payload, keys=cfg.trusted_keys, require_signature=cfg.trust["require_signature"], now=time.time()
        )
    finally:
        store.close()
    if outcome.status in ("rejected", "gap"):
        print(f"haldor: {args.file}: rejected: {outcome.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: {outcome.message}")
    return 0


def _decide(args) -> int:
    from haldor.access import policy
    from haldor.access.model import Conditions

    cfg = _config(args)
    if cfg.door(args.door) is None:
        raise ConfigError(f"{cfg.path}: --door: no door {args.door!r} is configured")
    store = _open_store(cfg)
    try:
        tz = ZoneInfo(store.timezone)
        if args.at:
            now = _parse_time(args.at, tz)
            trusted = True  # a question about a given time, not about this clock
        else:
            now = time.time()
            trusted = clock.trusted(now, store.meta("last_seen"), clock.SystemClock().synchronized())
        if args.card is not None:
            try:
                card = cards.normalise(args.card)
            except cards.CardFormatError as exc:
                raise DocumentError(f"--card: {exc}") from None
            facts = store.facts(args.door, now, card=card)
        else:
            if not cards.is_pin(args.pin):
                raise DocumentError("--pin: must be 4-8 digits")
            facts = store.facts(args.door, now, pin=args.pin)
        conditions = Conditions(lockdown=store.meta("mode") == "lockdown", clock_trusted=trusted)
        decision = policy.decide(now, facts, conditions, pin=args.pin is not None)
    finally:
        store.close()
    print(json.dumps(decision.as_json()))
    return 0


def _parse_time(text: str, tz: ZoneInfo) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DocumentError(f"--at: not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)  # a local reading at the site
    return moment.timestamp()


def _run(args) -> int:
    from haldor.access.agent import run_forever

    return run_forever(_config(args))


def _demo(args) -> int:
    from haldor.demo import run_demo

    return run_demo(args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
