"""The box's own commands on its store, without the running agent: `haldor schedule load`
(a document applied as if it came over MQTT) and `haldor decide` (a decision printed,
no lock moved)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from haldor import cards, clock
from haldor.access import policy
from haldor.access.model import Conditions
from haldor.config import Config
from haldor.errors import EXIT_BAD_INPUT, EXIT_FAILURE, ConfigError, DocumentError
from haldor.store import intake

from .site import open_store, site_key


def schedule_load(cfg: Config, file: str) -> int:
    """Validate FILE and apply it to the store: 0 applied or stale, 2 rejected."""
    try:
        # read as it is applied: a snapshot in clear is never whole in memory
        payload = open(file, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        print(f"haldor: {file}: cannot read: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    with payload:
        store = open_store(cfg)
        try:
            outcome = intake.receive(
                store,
                payload,
                keys=cfg.trusted_keys,
                require_signature=cfg.trust.require_signature,
                now=time.time(),
                doors=[d.id for d in cfg.doors],
                site_key=site_key(cfg),
                plain=cfg.trust.plain_documents,
            )
        finally:
            store.close()
    if outcome.status in ("rejected", "gap"):
        print(f"haldor: {file}: rejected: {outcome.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{file}: {outcome.message}")
    for warning in outcome.warnings:
        print(f"{file}: warning: {warning}")
    return 0


def decide(cfg: Config, args: Any) -> int:
    """The decision for ``--card`` or ``--pin`` at ``--door``, as one JSON object."""
    if cfg.door(args.door) is None:
        raise ConfigError(f"{cfg.path}: --door: no door {args.door!r} is configured")
    store = open_store(cfg)
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
            facts = store.schedule.facts(args.door, now, card=card)
        else:
            if not cards.is_pin(args.pin):
                raise DocumentError("--pin: must be 4-8 digits")
            facts = store.schedule.facts(args.door, now, pin=args.pin)
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
