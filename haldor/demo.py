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
import socket
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from haldor import cards, config, osdp_keys
from haldor.agent.hardware import build_hardware
from haldor.agent.loop import Agent
from haldor.agent.messages import Stop
from haldor.agent.site import open_store
from haldor.drivers.osdp_sim import SimulatedBus, SimulatedReader
from haldor.errors import DocumentError
from haldor.kiosk import server as kiosk_server
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, Event
from haldor.stopping import wait_for_stop
from haldor.store import intake
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


def print_sample(site: str, version: int | None) -> int:
    """`haldor schedule sample`: the bundled snapshot laid around today, for ``site``."""
    if not IDENTIFIER.fullmatch(site):
        raise DocumentError(f"--site: {site!r} is not a site id ({IDENTIFIER_TEXT})")
    if version is not None and not 0 <= version <= 2**53 - 1:
        raise DocumentError("--version: from 0 to 2^53-1")
    doc = lay_around(json.loads(sample_text("schedule.json")), time.time())
    doc["site"] = site
    if version is not None:
        doc["version"] = version
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


def _card_table(doc: dict[str, Any]) -> list[str]:
    tz = ZoneInfo(doc["timezone"])
    names = {a["id"]: a["name"] for a in doc["associations"]}
    rooms = {r["id"]: r["name"] for r in doc["rooms"]}

    today = datetime.fromisoformat(doc[SAMPLE_NOW]).astimezone(tz).date()

    def hhmm(text: str) -> str:
        moment = datetime.fromisoformat(text).astimezone(tz)
        return moment.strftime("%H:%M" if moment.date() == today else "%d/%m %H:%M")

    def bookings_of(association: str | None) -> str:
        found = [
            f"{b['title']} {hhmm(b['start'])}-{hhmm(b['end'])}, {rooms[b['room']]}"
            for b in doc["bookings"]
            if b["association"] == association
        ]
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
            lines.append(
                f"  {'':<22}  PIN {b['pin']:<7} {both('demo.booking_pin')}: {b['title']} "
                f"{hhmm(b['start'])}-{hhmm(b['end'])}, {rooms[b['room']]}"
            )
    for c in doc["closures"]:
        where = rooms.get(c["room"], "hele stedet / whole site")
        lines.append(f"  Lukket / closed: {where} {hhmm(c['start'])}-{hhmm(c['end'])}: {c['reason']}")
    lines.append(f"  {'uid:DEADBEEF':<22}{'':<12} {both('demo.unknown')}")
    return lines


class _DemoFeed:
    """The agent's word to the kiosk, handed over in-process, with each check-in
    answer also printed at the prompt."""

    def __init__(self, kiosk: Any, answers: queue.Queue) -> None:
        self.kiosk = kiosk
        self.answers = answers

    def status(self, doc: dict[str, Any]) -> None:
        self.kiosk.agent_push({"status": doc})

    def answer(self, doc: dict[str, Any]) -> None:
        self.kiosk.agent_push({"answer": doc})
        greeting = json.loads(self.kiosk.state_json).get("greeting") or {}
        self.answers.put({"reader": doc["reader"], "kiosk": greeting})


def free_listen(preferred: int = 8080) -> str:
    """127.0.0.1:8080 when it is free, else any free port on loopback."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return f"127.0.0.1:{s.getsockname()[1]}"
    raise RuntimeError("no free port on 127.0.0.1")


def run_demo(
    data_dir: str | None = None, stdin: TextIO | None = None, out: TextIO | None = None, port: int = 8080, prompt: bool = True
) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="haldor-demo-") as tmp:
        return _demo(Path(data_dir or tmp), stdin, out, port, prompt)


def _frame(text: str) -> tuple[str | None, str | None]:
    """What a serial-line reader sends for a typed card or PIN, or (None, why)."""
    if cards.is_pin(text):
        return f"pin:{text}", None
    try:
        return cards.normalise(text), None
    except cards.CardFormatError:
        return None, f"{both('demo.bad_input')}: {text}"


def _demo(data_dir: Path, stdin: TextIO, out: TextIO, port: int, prompt: bool) -> int:
    printing = threading.Lock()

    def say(text: str) -> None:
        with printing:
            print(text, file=out, flush=True)

    data_dir.mkdir(parents=True, exist_ok=True)
    ptys = {name: os.openpty() for name in ("main", "kiosk")}
    for _, slave in ptys.values():
        tty.setraw(slave)
    osdp_bus, cfg = _site(data_dir, ptys, port)
    reader_of = {(r.door or "kiosk"): r.id for r in cfg.readers}
    door_names = {d.id: d.name or d.id for d in cfg.doors} | {"kiosk": "Kiosk"}

    present = _Presenter(osdp_bus, ptys)
    badge = _Presenter.badge_for(present, reader_of)
    now = time.time()
    doc = lay_around(json.loads(sample_text("schedule.json")), now)
    store = open_store(cfg)
    answers: queue.Queue = queue.Queue()
    thread = None
    kiosk = kiosk_server.Kiosk(cfg, demo_badge=badge)
    web = kiosk_server.serve(cfg, kiosk=kiosk)
    try:
        doc["version"] = max(doc["version"], (store.version or 0) + 1)  # two runs within one second
        outcome = intake.receive(store, json.dumps(doc).encode(), keys={}, require_signature=False, now=now)
        if outcome.status != "applied":
            raise RuntimeError(f"the sample schedule was not applied: {outcome.message}")
        _introduce(say, doc, door_names, web.server_address[:2])
        osdp_bus.start()
        agent, thread = _start_agent(cfg, store, say, door_names, _DemoFeed(kiosk, answers), answers)

        if prompt:
            _prompt(stdin, say, present, reader_of, door_names, answers)
        else:
            wait_for_stop()
    finally:
        if thread is not None:
            agent.post(Stop())
            thread.join(5)
        kiosk_server.stop(web)
        store.close()
        osdp_bus.close()
        for master, slave in ptys.values():
            os.close(master)
            os.close(slave)
    say(both("demo.bye"))
    return 0


class _Presenter:
    """A card or PIN through the reader's own protocol: a line on a pty, or OSDP to the gym's reader."""

    def __init__(self, osdp_bus: SimulatedBus, ptys: dict[str, tuple[int, int]]) -> None:
        self._bus, self._ptys = osdp_bus, ptys

    def __call__(self, where: str, frame: str) -> None:
        if where == "gym-a":
            self._bus.reader(1).present(frame)
        else:
            os.write(self._ptys[where][0], frame.encode() + b"\r\n")

    @staticmethod
    def badge_for(present: Callable[[str, str], None], reader_of: dict[str, str]) -> Callable[[str, str], str | None]:
        def badge(where: str, text: str) -> str | None:
            """The demo panel on the page: a card at a door or at the kiosk, through its reader."""
            frame, why = _frame(text.strip())
            if where not in reader_of:
                return f"{both('demo.unknown_door')}: {where}"
            if frame is None:
                return why
            present(where, frame)
            return None

        return badge


def _start_agent(
    cfg: config.Config, store: Any, say: Callable[[str], None], door_names: dict[str, str], feed: Any, answers: queue.Queue
) -> tuple[Agent, threading.Thread]:
    """The agent on its own thread, with locks that say when they move; back once its readers listen."""
    inbox: queue.Queue = queue.Queue()
    hw = build_hardware(cfg, inbox.put)
    hw.locks = {door: _ShownLock(lock, door_names[door], say) for door, lock in hw.locks.items()}
    agent = Agent(cfg, store, hw, inbox=inbox, kiosk=feed)
    agent.subscribe(lambda events: _answered(answers, events))
    thread = threading.Thread(target=agent.run, name="agent", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    for reader in hw.readers:
        ready = getattr(reader, "ready", None) or getattr(reader, "all_secure", None)  # a port open; Secure Channel up
        if ready is not None:
            ready.wait(max(0.0, deadline - time.monotonic()))
    return agent, thread


def _answered(answers: queue.Queue, events: list[dict]) -> None:
    for event in events:
        if event["type"].startswith("access."):
            answers.put(event)


def _site(data_dir: Path, ptys: dict[str, tuple[int, int]], port: int) -> tuple[SimulatedBus, config.Config]:
    """The demo site's configuration, its readers on ptys and a simulated OSDP bus."""
    gym_key = data_dir / "osdp" / "gym-a-in.key"
    gym_key.parent.mkdir(mode=0o700, exist_ok=True)
    key = osdp_keys.read_key(gym_key) if gym_key.exists() else osdp_keys.create_key(gym_key)
    osdp_bus = SimulatedBus([SimulatedReader(1, key)])
    cfg_path = data_dir / "demo.toml"
    cfg_path.write_text(
        sample_text("demo.toml")
        .replace("{data_dir}", str(data_dir))
        .replace("{main_port}", os.ttyname(ptys["main"][1]))
        .replace("{gym_port}", osdp_bus.port)
        .replace("{gym_key}", str(gym_key))
        .replace("{kiosk_port}", os.ttyname(ptys["kiosk"][1]))
        .replace("{listen}", free_listen(port))
    )
    return osdp_bus, config.load(cfg_path)


def _introduce(say: Callable[[str], None], doc: dict[str, Any], door_names: dict[str, str], web: tuple) -> None:
    say(f"\n{both('demo.title')}\n")
    say(f"{both('demo.doors')}: " + ", ".join(f"{d} ({n})" for d, n in door_names.items()))
    say(both("demo.osdp"))
    say(f"\n{both('demo.cards')}:")
    for line in _card_table(doc):
        say(line)
    host, web_port = web
    say(f"\n{both('demo.screen')}: http://{host}:{web_port}/")
    say(f"\n{both('demo.help')}\n")


def _prompt(stdin: TextIO, say, present, reader_of, door_names, answers: queue.Queue) -> None:
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
        if door not in reader_of:
            say(f"  {both('demo.unknown_door')}: {door} ({', '.join(reader_of)})")
            continue
        frame, why = _frame(text)
        if frame is None:
            say(f"  {why}")
            continue
        while not answers.empty():  # forget answers to badges made on the page
            answers.get_nowait()
        say(f"> {door_names[door]}: {'PIN ' + '*' * len(text) if frame.startswith('pin:') else frame}")
        present(door, frame)
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
        if "kiosk" in event:
            greeting = event["kiosk"]
            say(f"  {'OK' if greeting.get('good') else '--'}  {greeting.get('text', '')}")
            if greeting.get("enrol"):
                say(f"      {greeting['enrol']}")
        elif event["type"] == Event.ACCESS_GRANTED:
            detail = ", ".join(
                x
                for x in (
                    event["credential"] and f"credential {event['credential']}",
                    event["booking"] and f"booking {event['booking']}",
                )
                if x
            )
            say(f"  {t('granted', 'da').upper()} / {t('granted', 'en')}  ({detail})")
        else:
            code = event["reason"]
            say(
                f"  {t('denied', 'da').upper()} / {t('denied', 'en')}: {t('reason.' + code, 'da')} / "
                f"{t('reason.' + code, 'en')}  [{code}]"
            )
        return
