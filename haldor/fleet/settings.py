"""The fleet's own configuration (``haldor fleet --fleet-config fleet.toml``): which alarms
are worth waking someone for, and where alerts go (webhooks, e-mail). A fault stops
start-up with one line naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from haldor import toml_file
from haldor.texts import LANGUAGES


@dataclass(frozen=True, slots=True)
class AlertRules:
    door_forced: bool = True
    #: a door open (after door.held_open) this many minutes; 0: no alert
    door_held_open_min: int = 10
    reader_fault: bool = True
    storage_fault: bool = True
    #: a site offline or silent this many minutes; 0: no alert
    offline_min: int = 15
    #: events waiting in a box's outbox; 0: no alert
    outbox_backlog: int = 10_000
    #: a reader locked out for guessing (access.guessing) within this many minutes; 0: no alert
    access_guessing_min: int = 60
    #: the fleet itself has not heard the broker this many minutes; 0: no alert
    broker_lost_min: int = 2
    #: a box refused the last schedule sent to it (until one is applied)
    schedule_refused: bool = True
    #: a box refused or could not carry out a command, this many minutes after; 0: no alert
    command_failed_min: int = 60
    language: str = "da"


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    #: sent as "Authorization: Bearer <token>", so the receiver knows the alert is ours
    token: str = ""


@dataclass(frozen=True, slots=True)
class Email:
    host: str
    port: int
    starttls: bool
    ca_file: str
    username: str
    password_file: str
    sender: str
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FleetSettings:
    path: str = ""
    alerts: AlertRules = AlertRules()
    webhooks: tuple[Webhook, ...] = ()
    email: Email | None = None
    #: checked every this many seconds
    every_s: float = 5.0

    @property
    def alerting(self) -> bool:
        return bool(self.webhooks or self.email)


_ALERTS = {
    "door_forced": True,
    "door_held_open_min": 10,
    "reader_fault": True,
    "storage_fault": True,
    "offline_min": 15,
    "outbox_backlog": 10_000,
    "access_guessing_min": 60,
    "broker_lost_min": 2,
    "schedule_refused": True,
    "command_failed_min": 60,
    "language": "da",
    "every_s": 5.0,
}
_EMAIL = {
    "host": "",
    "port": 587,
    "starttls": True,
    "ca_file": "",
    "username": "",
    "password_file": "",
    "sender": "",
    "to": [],
}


def load(path: str | Path) -> FleetSettings:
    return parse(toml_file.read(path), str(path))


def parse(raw: dict[str, Any], path: str) -> FleetSettings:
    c = toml_file.Checker(path)
    c.only(raw, ("alerts", "webhooks", "email"))
    a = c.section(raw, "alerts", _ALERTS)
    for key in (
        "door_held_open_min",
        "offline_min",
        "outbox_backlog",
        "access_guessing_min",
        "broker_lost_min",
        "command_failed_min",
    ):
        if a[key] < 0:
            raise c.fail(f"alerts.{key}", "must not be negative (0: no alert)")
    if a["language"] not in LANGUAGES:
        raise c.fail("alerts.language", 'must be "da" or "en"')
    if not 1 <= a["every_s"] <= 3600:
        raise c.fail("alerts.every_s", "1 to 3600 seconds")
    every_s = float(a.pop("every_s"))
    webhooks = []
    for i, w in enumerate(c.tables(raw, "webhooks")):
        w = c.checked(w, {"url": "", "token_file": ""}, f"webhooks[{i}]")
        url = urlsplit(w["url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            raise c.fail(f"webhooks[{i}].url", "required: an http(s) URL")
        token = ""
        if w["token_file"]:
            try:
                token = Path(c.resolve(w["token_file"])).read_text().strip()
            except OSError as exc:
                raise c.fail(f"webhooks[{i}].token_file", f"cannot read: {exc.strerror}") from None
            if not token or any(ch in token for ch in "\r\n"):
                raise c.fail(f"webhooks[{i}].token_file", "one line: the token the receiver expects")
        webhooks.append(Webhook(w["url"], token))
    email = None
    if "email" in raw:
        e = c.section(raw, "email", _EMAIL)
        if not e["host"]:
            raise c.fail("email.host", "required: the SMTP server")
        if not 0 < e["port"] < 65536:
            raise c.fail("email.port", "must be 1-65535")
        if "@" not in e["sender"]:
            raise c.fail("email.sender", "required: the From address")
        if not e["to"] or not all(isinstance(x, str) and "@" in x for x in e["to"]):
            raise c.fail("email.to", "required: a list of addresses")
        if e["username"] and not e["password_file"]:
            raise c.fail("email.password_file", "required with a username: a file holding the password")
        email = Email(
            host=e["host"],
            port=e["port"],
            starttls=e["starttls"],
            ca_file=c.resolve(e["ca_file"]) if e["ca_file"] else "",
            username=e["username"],
            password_file=c.resolve(e["password_file"]) if e["password_file"] else "",
            sender=e["sender"],
            to=tuple(e["to"]),
        )
    return FleetSettings(path=path, alerts=AlertRules(**a), webhooks=tuple(webhooks), email=email, every_s=every_s)
