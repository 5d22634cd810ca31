"""`haldor demo`: the real agent on simulated hardware, with a sample schedule laid
around the present moment, and a prompt to present cards and PINs.

Nothing is faked in the decision path: the typed card goes as bytes through a
pseudo-terminal into the serial-line reader driver, the agent decides from its
SQLite store, and the lock is a gpiozero output on the mock pin factory.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import tempfile
import threading
import time
import tty
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Callable, TextIO
from zoneinfo import ZoneInfo

from haldor import cards, config
from haldor.texts import both, t

SAMPLE_NOW = "generated_at"  # the sample's own "now", moved to the present
ANSWER_S = 3.0


def sample_text(name: str) -> str:
    return resources.files("haldor").joinpath("samples", name).read_text(encoding="utf-8")


def lay_around(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """The sample schedule moved by whole half-hours so that its `generated_at` falls
    on the present half-hour: a booking on now, one later, one that is closed."""
    doc = copy.deepcopy(doc)
    tz = ZoneInfo(doc["timezone"])
    anchor = datetime.fromisoformat(doc[SAMPLE_NOW])
    present = datetime.fromtimestamp(now - now % 1800, tz)
    shift = present - anchor

    def moved(text: str | None) -> str | None:
        return None if text is None else (datetime.fromisoformat(text) + shift).astimezone(tz).isoformat()

    for item in doc["bookings"] + doc["closures"]:
        item["start"], item["end"] = moved(item["start"]), moved(item["end"])
    for cred in doc["credentials"]:
        cred["valid_from"], cred["valid_until"] = moved(cred["valid_from"]), moved(cred["valid_until"])
    doc[SAMPLE_NOW] = datetime.fromtimestamp(now, tz).isoformat(timespec="seconds")
    doc["version"] = int(now)  # greater than any earlier demo run in the same data directory
    return doc


class _ShownLock:
    """A lock driver that says so when it moves, for the person at the prompt."""

    def __init__(self, lock: Any, name: str, say: Callable[[str], None]) -> None:
        self._lock = lock
        self._name = name
        self._say = say

    @property
    def unlocked(self) -> bool:
        return self._lock.unlocked

    def set_unlocked(self, unlocked: bool) -> None:
        before = self._lock.unlocked
        self._lock.set_unlocked(unlocked)
        if self._lock.unlocked != before:
            state = "lock.unlocked" if self._lock.unlocked else "lock.locked"
            self._say(f"    [{'ÅBEN' if self._lock.unlocked else 'LÅST'}] {self._name}: {both(state)}")

    def close(self) -> None:
        self._lock.close()


def _card_table(doc: dict[str, Any]) -> list[str]:
    tz = ZoneInfo(doc["timezone"])
    names = {a["id"]: a["name"] for a in doc["associations"]}
    rooms = {r["id"]: r["name"] for r in doc["rooms"]}

    today = datetime.fromisoformat(doc[SAMPLE_NOW]).astimezone(tz).date()

    def hhmm(text: str) -> str:
        moment = datetime.fromisoformat(text).astimezone(tz)
        return moment.strftime("%H:%M" if moment.date() == today else "%d/%m %H:%M")

    def bookings_of(association: str | None) -> str:
        found = [f"{b['title']} {hhmm(b['start'])}-{hhmm(b['end'])}, {rooms[b['room']]}"
                 for b in doc["bookings"] if b["association"] == association]
        return "; ".join(found)

    lines = []
    for c in doc["credentials"]:
        who = names.get(c["association"], "") if c["association"] else ""
        role = both(f"role.{c['role']}")
        card = c["card"]
        pin = f"  PIN {c['pin']}" if c["pin"] else ""
        expired = ""
        if c["valid_until"] and datetime.fromisoformat(c["valid_until"]) < datetime.fromisoformat(doc[SAMPLE_NOW]):
            expired = " (udløbet / expired)"
        lines.append(f"  {card:<22}{pin:<12} {who} ({role}){expired}  {bookings_of(c['association'])}")
    for b in doc["bookings"]:
        if b["pin"]:
            lines.append(f"  {'':<22}  PIN {b['pin']:<7} {both('demo.booking_pin')}: {b['title']} "
                         f"{hhmm(b['start'])}-{hhmm(b['end'])}, {rooms[b['room']]}")
    for c in doc["closures"]:
        where = rooms.get(c["room"], "hele stedet / whole site")
        lines.append(f"  Lukket / closed: {where} {hhmm(c['start'])}-{hhmm(c['end'])}: {c['reason']}")
    lines.append(f"  {'uid:DEADBEEF':<22}{'':<12} {both('demo.unknown')}")
    return lines


def run_demo(data_dir: str | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    import sys

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="haldor-demo-") as tmp:
        return _demo(Path(data_dir or tmp), stdin, out)


def _demo(data_dir: Path, stdin: TextIO, out: TextIO) -> int:
    from haldor.access import intake
    from haldor.access.agent import Agent, Stop, build_hardware, open_store

    printing = threading.Lock()

    def say(text: str) -> None:
        with printing:
            print(text, file=out, flush=True)

    data_dir.mkdir(parents=True, exist_ok=True)
    ptys = {name: os.openpty() for name in ("main", "gym-a")}
    for _, slave in ptys.values():
        tty.setraw(slave)
    cfg_path = data_dir / "demo.toml"
    cfg_path.write_text(sample_text("demo.toml").replace("{data_dir}", str(data_dir))
                        .replace("{main_port}", os.ttyname(ptys["main"][1]))
                        .replace("{gym_port}", os.ttyname(ptys["gym-a"][1])))
    cfg = config.load(cfg_path)
    reader_of = {r.door: r.id for r in cfg.readers}
    door_names = {d.id: d.name or d.id for d in cfg.doors}

    now = time.time()
    doc = lay_around(json.loads(sample_text("schedule.json")), now)
    store = open_store(cfg)
    answers: queue.Queue = queue.Queue()
    thread = None
    try:
        doc["version"] = max(doc["version"], (store.version or 0) + 1)  # two runs within one second
        outcome = intake.receive(store, json.dumps(doc).encode(), keys={}, require_signature=False, now=now)
        if outcome.status != "applied":
            raise RuntimeError(f"the sample schedule was not applied: {outcome.message}")
        say(f"\n{both('demo.title')}\n")
        say(f"{both('demo.doors')}: " + ", ".join(f"{d} ({n})" for d, n in door_names.items()))
        say(f"\n{both('demo.cards')}:")
        for line in _card_table(doc):
            say(line)
        say(f"\n{both('demo.help')}\n")
        inbox: queue.Queue = queue.Queue()
        hw = build_hardware(cfg, inbox.put)
        hw.locks = {door: _ShownLock(lock, door_names[door], say) for door, lock in hw.locks.items()}
        agent = Agent(cfg, store, hw, inbox=inbox)
        agent.subscribe(lambda events: [answers.put(e) for e in events if e["type"].startswith("access.")])
        thread = threading.Thread(target=agent.run, name="agent", daemon=True)
        thread.start()
        deadline = time.monotonic() + 5
        for reader in hw.readers:
            reader.ready.wait(max(0.0, deadline - time.monotonic()))

        _prompt(stdin, say, ptys, reader_of, door_names, answers)
    finally:
        if thread is not None:
            agent.post(Stop())
            thread.join(5)
        store.close()
        for master, slave in ptys.values():
            os.close(master)
            os.close(slave)
    say(both("demo.bye"))
    return 0


def _prompt(stdin: TextIO, say, ptys, reader_of, door_names, answers: queue.Queue) -> None:
    while True:
        with_prompt = getattr(stdin, "isatty", lambda: False)()
        if with_prompt:
            print("dør/door main> ", end="", flush=True)
        line = stdin.readline()
        if not line or line.strip().lower() in ("q", "quit", "exit", "afslut"):
            return
        words = line.split()
        if not words:
            continue
        door, text = ("main", words[0]) if len(words) == 1 else (words[0], words[1])
        if door not in ptys:
            say(f"  {both('demo.unknown_door')}: {door} ({', '.join(ptys)})")
            continue
        if cards.is_pin(text):
            frame = f"pin:{text}"
        else:
            try:
                frame = cards.normalise(text)
            except cards.CardFormatError:
                say(f"  {both('demo.bad_input')}: {text}")
                continue
        say(f"> {door_names[door]}: {'PIN ' + '*' * len(text) if frame.startswith('pin:') else frame}")
        os.write(ptys[door][0], frame.encode() + b"\r\n")
        _show_answer(say, reader_of[door], answers)


def _show_answer(say, reader: str, answers: queue.Queue) -> None:
    deadline = time.monotonic() + ANSWER_S
    while True:
        try:
            event = answers.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            say(f"  {both('demo.no_answer')}")
            return
        if event["reader"] != reader:
            continue
        if event["type"] == "access.granted":
            detail = ", ".join(x for x in (event["credential"] and f"credential {event['credential']}",
                                           event["booking"] and f"booking {event['booking']}") if x)
            say(f"  {t('granted', 'da').upper()} / {t('granted', 'en')}  ({detail})")
        else:
            code = event["reason"]
            say(f"  {t('denied', 'da').upper()} / {t('denied', 'en')}: {t('reason.' + code, 'da')} / "
                f"{t('reason.' + code, 'en')}  [{code}]")
        return
